use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use futures::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};

use super::ApiError;
use crate::actions;
use crate::alerts::{self, Alert, AlertStatus, ParseError, Severity};
use crate::audit::{AuditEvent, PreparedEvent};
use crate::context::AppContext;
use crate::domain::{Email, UserId, format_time, new_id};
use crate::store::{InsertOutcome, NewAlert};

/// What intake allows a request before and while its body is read.
pub struct IntakeLimits {
    /// Largest accepted body, in bytes.
    pub body_limit: usize,
    /// A body not received in full within this is answered 408.
    pub body_timeout: std::time::Duration,
    /// Bytes of bodies that may be held in memory, across requests, before their sender is
    /// authenticated (HMAC signs the body: it must be read first). Past it: 503.
    pub unauthenticated: tokio::sync::Semaphore,
}

impl IntakeLimits {
    pub fn new(
        body_limit: usize,
        body_timeout: std::time::Duration,
        unauthenticated_budget: usize,
    ) -> Self {
        Self {
            body_limit,
            body_timeout,
            unauthenticated: tokio::sync::Semaphore::new(
                unauthenticated_budget.min(tokio::sync::Semaphore::MAX_PERMITS),
            ),
        }
    }
}

/// `POST /v1/alerts/{source}`: authenticate, parse, store durably, answer 202.
pub async fn receive(
    ctx: web::Data<AppContext>,
    limits: web::Data<IntakeLimits>,
    source: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    receive_from(&source, ctx, limits, req, payload).await
}

/// The same, on a route of its own per configured source (`routes`): a static path, which
/// the router matches without the regex a `{source}` segment costs on every request.
pub async fn receive_from(
    source: &str,
    ctx: web::Data<AppContext>,
    limits: web::Data<IntakeLimits>,
    req: HttpRequest,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let Some(source) = ctx.sources.get(source) else {
        ctx.metrics.inc(
            "lockout_alerts_rejected_total",
            &[("source", "unknown"), ("reason", "unknown_source")],
        );
        return Err(ApiError::not_found(format!(
            "no alert source named {source:?}"
        )));
    };
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    // Bearer, basic and none are decided from the headers: an unauthenticated sender's body
    // is never read.
    let authenticated_early = !source.auth.needs_body();
    if authenticated_early
        && let Err(alerts::AuthError::Failed { reason }) = source.auth.verify_headers(&header)
    {
        tracing::warn!(source = %source.name, reason, "alert refused: authentication failed");
        reject(&ctx, &source.name, "unauthenticated", reason);
        return Err(ApiError::unauthorized());
    }
    let too_large = |ctx: &AppContext| {
        reject(ctx, &source.name, "too_large", "");
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than {} bytes", limits.body_limit),
        )
    };
    let declared: Option<usize> = header("content-length").and_then(|v| v.trim().parse().ok());
    if declared.is_some_and(|n| n > limits.body_limit) {
        return Err(too_large(&ctx));
    }
    // A body read before its sender is known holds memory on the sender's say-so: bounded
    // across all such requests.
    let _reserved = if authenticated_early {
        None
    } else {
        let want = declared.unwrap_or(limits.body_limit).max(1);
        match limits.unauthenticated.try_acquire_many(want as u32) {
            Ok(permit) => Some(permit),
            Err(_) => {
                reject(
                    &ctx,
                    &source.name,
                    "busy",
                    "unauthenticated body budget exhausted",
                );
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    "too many unauthenticated request bodies in flight; retry shortly",
                )
                .retry_after(1));
            }
        }
    };
    let read = async {
        let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0).min(limits.body_limit));
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| ApiError::bad_request("bad_body", e.to_string()))?;
            if body.len() + chunk.len() > limits.body_limit {
                return Err(too_large(&ctx));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    };
    let body = match tokio::time::timeout(limits.body_timeout, read).await {
        Ok(body) => body?,
        Err(_) => {
            reject(&ctx, &source.name, "body_timeout", "");
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!(
                    "the body did not arrive within {} ms",
                    limits.body_timeout.as_millis()
                ),
            ));
        }
    };
    if !authenticated_early {
        match source.auth.verify(&header, &body) {
            Err(alerts::AuthError::Failed { reason }) => {
                tracing::warn!(source = %source.name, reason, "alert refused: authentication failed");
                reject(&ctx, &source.name, "unauthenticated", reason);
                return Err(ApiError::unauthorized());
            }
            Ok(Some(signed)) => {
                // Replays are refused wherever they land: the key is kept in the store.
                let now = time::OffsetDateTime::now_utc();
                let fresh = ctx
                    .store
                    .remember_signature(
                        &source.name,
                        &signed.replay_key,
                        &format_time(now),
                        &format_time(now + signed.remember_for),
                    )
                    .await?;
                if !fresh {
                    tracing::warn!(source = %source.name, "alert refused: replayed signed request");
                    reject(&ctx, &source.name, "unauthenticated", "replayed request");
                    return Err(ApiError::unauthorized());
                }
            }
            Ok(None) => {}
        }
    }
    let parsed = alerts::parse(
        source.format,
        &source.mappings,
        source.default_severity,
        &body,
    )
    .map_err(|e| {
        let (status, code) = match &e {
            ParseError::NotJson { .. } => (StatusCode::BAD_REQUEST, "invalid_json"),
            ParseError::Shape { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_alert"),
        };
        (ApiError::new(status, code, e.to_string()), code)
    });
    let parsed = match parsed {
        Ok(p) => p,
        Err((err, code)) => {
            reject(&ctx, &source.name, code, &err.message);
            return Err(err);
        }
    };
    let now = time::OffsetDateTime::now_utc();
    let received_at = format_time(now);
    let dedup_since = format_time(now - source.dedup_window);
    let playbooks = ctx.playbooks();
    // All of a request's alerts go to the store at once, so they share a commit (in order: a
    // repeat inside the request is a duplicate of its first copy).
    let mut inserts = Vec::with_capacity(parsed.len());
    for p in parsed {
        let correlation = p.correlation(&source.name);
        let alert = p.into_alert(
            new_id("alr"),
            &source.name,
            source.format,
            received_at.clone(),
        );
        // Evaluation is pure and cheap: done here, an alert that calls for nothing is stored
        // already evaluated, in one transaction; one that starts actions goes to the planner.
        let plan = actions::decide(&ctx, &playbooks, &alert, &correlation);
        // Otherwise the plan is stored with the alert: the planner carries it out without
        // evaluating again.
        let (made, settled, stored_plan) = if plan.is_settled() {
            let (made, rest) = split_plan_made(plan.audit);
            (made, Some(rest), None)
        } else {
            (None, None, Some(plan.to_json()))
        };
        let audit = received_record(&source.name, &alert, made.as_deref());
        let stored = NewAlert {
            id: alert.id.clone(),
            source: source.name.clone(),
            fingerprint: alert.fingerprint.clone(),
            received_at: received_at.clone(),
            status: alert.status.as_str().into(),
            correlation,
            alert: serde_json::to_string(&alert).map_err(ApiError::internal)?,
            settled,
            plan: stored_plan,
        };
        let settled = stored.settled.is_some();
        let insert = ctx.store.insert_alert(stored, &dedup_since, audit);
        inserts.push(async move { (alert.id, settled, insert.await) });
    }
    let mut alert_ids = vec![];
    let mut duplicates = vec![];
    let mut planner_needed = false;
    for (id, settled, outcome) in futures::future::join_all(inserts).await {
        match outcome? {
            InsertOutcome::Inserted => {
                ctx.metrics
                    .inc("lockout_alerts_received_total", &[("source", &source.name)]);
                if settled {
                    ctx.metrics.inc("lockout_plans_total", &[]);
                } else {
                    planner_needed = true;
                }
                alert_ids.push(id)
            }
            InsertOutcome::Duplicate { original } => {
                ctx.metrics.inc(
                    "lockout_alerts_duplicate_total",
                    &[("source", &source.name)],
                );
                duplicates.push(json!({"alert_id": id, "duplicate_of": original}))
            }
        }
    }
    if planner_needed {
        ctx.alerts_waiting.notify_one();
    }
    #[derive(Serialize)]
    struct Accepted {
        alert_ids: Vec<String>,
        duplicates: Vec<Value>,
    }
    Ok(HttpResponse::Accepted().json(Accepted {
        alert_ids,
        duplicates,
    }))
}

/// An alert that calls for nothing (most SIEM traffic) gets one audit record, not two: its
/// `plan.made` data goes into its `alert.received` record, under `plan`. Returns that data and
/// the plan's other records (guards that held, a loop prevented), kept as they are.
fn split_plan_made(mut plan: Vec<PreparedEvent>) -> (Option<String>, Vec<PreparedEvent>) {
    let made = plan
        .iter()
        .position(|e| e.event.kind == "plan.made")
        .map(|at| plan.remove(at).data);
    (made, plan)
}

/// The `alert.received` record, its data serialised straight from the alert (no `Value` built
/// and dropped per alert). Keys in sorted order, as `PreparedEvent::with_data` requires: the
/// same text as the `Value` it replaces (unit test).
fn received_record(source: &str, alert: &Alert, plan: Option<&str>) -> PreparedEvent {
    // After `plan` (spliced in as text: it is JSON already), in sorted order.
    #[derive(Serialize)]
    struct AfterPlan<'a> {
        severity: Severity,
        status: AlertStatus,
        subjects: Vec<SortedSubject<'a>>,
        title: &'a str,
    }
    #[derive(Serialize)]
    struct SortedSubject<'a> {
        email: &'a Option<Email>,
        name: &'a Option<String>,
        user_id: &'a Option<UserId>,
    }
    let mut data = Vec::with_capacity(256 + plan.map_or(0, str::len));
    data.extend_from_slice(b"{\"fingerprint\":");
    serde_json::to_writer(&mut data, &alert.fingerprint).expect("strings serialise");
    if let Some(plan) = plan {
        data.extend_from_slice(b",\"plan\":");
        data.extend_from_slice(plan.as_bytes());
    }
    let rest = data.len();
    let after = AfterPlan {
        severity: alert.severity,
        status: alert.status,
        subjects: alert
            .subjects
            .iter()
            .map(|s| SortedSubject {
                email: &s.email,
                name: &s.name,
                user_id: &s.user_id,
            })
            .collect(),
        title: &alert.title,
    };
    serde_json::to_writer(&mut data, &after).expect("alert data serialises");
    data[rest] = b','; // its opening brace: the object goes on
    let data = String::from_utf8(data).expect("serde_json writes UTF-8");
    let event = AuditEvent::new("alert.received", format!("source:{source}")).alert(&alert.id);
    PreparedEvent::with_data(event, data)
}

/// A refused request is counted in the metrics and in the refusal log, which the audit
/// receives aggregated per source and reason per interval (never the body or credentials):
/// a flood of bad requests cannot grow the audit chain, nor take the writer from intake.
fn reject(ctx: &AppContext, source: &str, reason: &str, detail: &str) {
    ctx.metrics.inc(
        "lockout_alerts_rejected_total",
        &[("source", source), ("reason", reason)],
    );
    ctx.refusals.note(source, reason, detail);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::Subject;

    /// The record's text must be what serialising its data as a `Value` gives: the chain is
    /// verified that way.
    #[test]
    fn the_received_record_is_written_as_its_value_would_be() {
        let alert = Alert {
            id: "alr_1".into(),
            source: "s".into(),
            format: crate::config::SourceFormat::Generic,
            received_at: "2026-11-27T00:00:00.000000Z".into(),
            fingerprint: "fp \"q\"".into(),
            status: AlertStatus::Resolved,
            title: "t\u{e9}\n".into(),
            severity: Severity::High,
            occurred_at: None,
            subjects: vec![
                Subject {
                    email: Email::parse("a@example.com").ok(),
                    user_id: None,
                    name: Some("A".into()),
                },
                Subject {
                    email: None,
                    user_id: Some(UserId::parse("IR7VJHJ36JHINBFAD7V2T5MP3E").unwrap()),
                    name: None,
                },
            ],
            source_ip: None,
            labels: Default::default(),
            raw: Value::Null,
        };
        let plan = json!({"matched": [], "not_matched": ["x"], "playbooks_loaded": 1});
        for plan in [None, Some(&plan)] {
            let mut expected = json!({
                "fingerprint": alert.fingerprint,
                "title": alert.title,
                "status": alert.status,
                "severity": alert.severity,
                "subjects": alert.subjects,
            });
            if let Some(p) = plan {
                expected["plan"] = p.clone();
            }
            let text = plan.map(|p| serde_json::to_string(p).unwrap());
            let record = received_record("s", &alert, text.as_deref());
            assert_eq!(record.data, serde_json::to_string(&expected).unwrap());
            let whole = AuditEvent::new("alert.received", "source:s")
                .alert("alr_1")
                .data(expected);
            assert_eq!(
                record.chain_hash("h", 1, "aud_1", "t"),
                PreparedEvent::new(whole).chain_hash("h", 1, "aud_1", "t")
            );
        }
    }
}

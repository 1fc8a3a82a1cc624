//! Intake's decision for one request, once its source is authenticated and its body read:
//! the body parsed in the source's format, each alert identified and evaluated against the
//! playbooks, and what to store (the alert, its `alert.received` record, and either its
//! settled plan's records or the plan the planner will carry out). The decision does no I/O;
//! [`store_accepted`] is the one step that stores it, shared by the HTTP receiver and the
//! Events API source.

use serde::Serialize;

use crate::alerts::Source;
use crate::alerts::{self, Alert, AlertStatus, ParseError, Severity};
use crate::audit::{AuditEvent, PreparedEvent};
use crate::context::AppContext;
use crate::domain::{Email, UserId, format_time, new_id};
use crate::playbooks::PlaybookSet;
use crate::store::NewAlert;

/// One alert of the request, ready to store.
pub struct Accepted {
    pub alert: NewAlert,
    /// Its `alert.received` record.
    pub audit: PreparedEvent,
    /// Whether it calls for nothing (stored already evaluated) rather than for the planner.
    pub settled: bool,
}

/// Parses `body` from `source` and decides each alert's plan, received at `now`.
pub fn accept(
    ctx: &AppContext,
    playbooks: &PlaybookSet,
    suppressions: &[crate::store::Suppression],
    source: &Source,
    body: &[u8],
    now: time::OffsetDateTime,
) -> Result<Vec<Accepted>, ParseError> {
    let parsed = alerts::parse(
        source.format,
        &source.mappings,
        source.default_severity,
        body,
    )?;
    Ok(accept_parsed(
        ctx,
        playbooks,
        suppressions,
        source,
        parsed.into_iter().map(|p| (p, Default::default())),
        now,
    ))
}

/// The same for alerts already parsed, each with its windows (the events source computes
/// them; other sources have none).
pub fn accept_parsed(
    ctx: &AppContext,
    playbooks: &PlaybookSet,
    suppressions: &[crate::store::Suppression],
    source: &Source,
    parsed: impl IntoIterator<Item = (alerts::ParsedAlert, std::collections::BTreeMap<String, i64>)>,
    now: time::OffsetDateTime,
) -> Vec<Accepted> {
    let received_at = format_time(now);
    let mut accepted = vec![];
    for (p, windows) in parsed {
        let correlation = p.correlation(&source.name);
        let mut alert = p.into_alert(
            new_id("alr"),
            &source.name,
            source.format,
            received_at.clone(),
        );
        alert.windows = windows;
        // Evaluation is pure and cheap: an alert that calls for nothing is stored already
        // evaluated, in one transaction; one that starts actions is stored with its plan,
        // which the planner carries out without evaluating again.
        let plan = super::decide(ctx, playbooks, suppressions, &alert, &correlation);
        let (made, settled, stored_plan) = if plan.is_settled() {
            let (made, rest) = split_plan_made(plan.audit);
            (made, Some(rest), None)
        } else {
            (None, None, Some(plan.to_json()))
        };
        let audit = received_record(&source.name, &alert, made.as_deref());
        accepted.push(Accepted {
            settled: settled.is_some(),
            alert: NewAlert {
                id: alert.id.clone(),
                source: source.name.clone(),
                fingerprint: alert.fingerprint.clone(),
                received_at: received_at.clone(),
                status: alert.status.as_str().into(),
                correlation,
                alert: serde_json::to_string(&alert).expect("alerts serialise"),
                settled,
                plan: stored_plan,
                subjects: subject_names(&alert),
            },
            audit,
        });
    }
    accepted
}

/// What storing a request's alerts came to.
#[derive(Debug, Default)]
pub struct StoredAlerts {
    pub alert_ids: Vec<String>,
    /// (the new alert's id, the id of the alert it repeats)
    pub duplicates: Vec<(String, String)>,
}

/// Stores accepted alerts (all of a request at once, so they share a commit; a repeat inside
/// the request is a duplicate of its first copy), counts them, and wakes the planner if any
/// starts actions.
pub async fn store_accepted(
    ctx: &AppContext,
    source: &Source,
    accepted: Vec<Accepted>,
    now: time::OffsetDateTime,
) -> Result<StoredAlerts, crate::store::StoreError> {
    let dedup_since = format_time(now - source.dedup_window);
    let inserts = accepted.into_iter().map(|a| {
        let (id, settled) = (a.alert.id.clone(), a.settled);
        let insert = ctx.store.insert_alert(a.alert, &dedup_since, a.audit);
        async move { (id, settled, insert.await) }
    });
    let mut stored = StoredAlerts::default();
    let mut planner_needed = false;
    for (id, settled, outcome) in futures::future::join_all(inserts).await {
        match outcome? {
            crate::store::InsertOutcome::Inserted => {
                ctx.metrics
                    .inc("lockout_alerts_received_total", &[("source", &source.name)]);
                if settled {
                    ctx.metrics.inc("lockout_plans_total", &[]);
                } else {
                    planner_needed = true;
                }
                stored.alert_ids.push(id)
            }
            crate::store::InsertOutcome::Duplicate { original } => {
                ctx.metrics.inc(
                    "lockout_alerts_duplicate_total",
                    &[("source", &source.name)],
                );
                stored.duplicates.push((id, original))
            }
        }
    }
    if planner_needed {
        ctx.alerts_waiting.notify_one();
    }
    Ok(stored)
}

/// The names an alert gives the people it is about, for the store's search index.
fn subject_names(alert: &Alert) -> Vec<String> {
    let mut names: Vec<String> = alert
        .subjects
        .iter()
        .flat_map(|s| {
            s.email
                .as_ref()
                .map(|e| e.as_str().to_owned())
                .into_iter()
                .chain(s.user_id.as_ref().map(|u| u.as_str().to_owned()))
        })
        .collect();
    names.sort();
    names.dedup();
    names
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
        /// The events source's windows: the evidence a windowed condition read.
        #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
        windows: &'a std::collections::BTreeMap<String, i64>,
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
        windows: &alert.windows,
    };
    serde_json::to_writer(&mut data, &after).expect("alert data serialises");
    data[rest] = b','; // its opening brace: the object goes on
    let data = String::from_utf8(data).expect("serde_json writes UTF-8");
    let event = AuditEvent::new("alert.received", format!("source:{source}")).alert(&alert.id);
    PreparedEvent::with_data(event, data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::Subject;
    use serde_json::{Value, json};

    /// The record's text must be what serialising its data as a `Value` gives: the chain is
    /// verified that way.
    #[test]
    fn the_received_record_is_written_as_its_value_would_be() {
        let alert = Alert {
            id: "alr_1".into(),
            source: "s".into(),
            format: crate::alerts::SourceFormat::Generic,
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
            windows: Default::default(),
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

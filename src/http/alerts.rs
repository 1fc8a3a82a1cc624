use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use futures::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};

use super::ApiError;
use crate::actions;
use crate::alerts::{self, ParseError};
use crate::context::AppContext;
use crate::domain::format_time;

/// What intake allows a request before and while its body is read.
pub struct IntakeLimits {
    /// Largest accepted body, in bytes.
    pub body_limit: usize,
    /// A body not received in full within this is answered 408.
    pub body_timeout: std::time::Duration,
    /// Bytes of bodies that may be held in memory, across requests, before their sender is
    /// authenticated (HMAC signs the body: it must be read first). Past it: 503.
    pub unauthenticated: tokio::sync::Semaphore,
    /// The budget's size: no one request reserves more than all of it.
    pub unauthenticated_budget: usize,
}

impl IntakeLimits {
    pub fn new(
        body_limit: usize,
        body_timeout: std::time::Duration,
        unauthenticated_budget: usize,
    ) -> Self {
        // Permits are counted in u32 by `try_acquire_many`.
        let budget = unauthenticated_budget.clamp(1, u32::MAX as usize);
        Self {
            body_limit,
            body_timeout,
            unauthenticated: tokio::sync::Semaphore::new(budget),
            unauthenticated_budget: budget,
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
        // A chunked body (no length) reserves the most it may grow to.
        let want = declared
            .unwrap_or(limits.body_limit)
            .clamp(1, limits.unauthenticated_budget);
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
    let now = time::OffsetDateTime::now_utc();
    let suppressions = ctx.suppressions().await?;
    let accepted =
        match actions::intake::accept(&ctx, &ctx.playbooks(), &suppressions, source, &body, now) {
            Ok(a) => a,
            Err(e) => {
                let (status, code) = match &e {
                    ParseError::NotJson { .. } => (StatusCode::BAD_REQUEST, "invalid_json"),
                    ParseError::Shape { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_alert"),
                };
                let err = ApiError::new(status, code, e.to_string());
                reject(&ctx, &source.name, code, &err.message);
                return Err(err);
            }
        };
    let stored = actions::intake::store_accepted(&ctx, source, accepted, now).await?;
    let duplicates = stored
        .duplicates
        .into_iter()
        .map(|(id, original)| json!({"alert_id": id, "duplicate_of": original}))
        .collect();
    #[derive(Serialize)]
    struct Accepted {
        alert_ids: Vec<String>,
        duplicates: Vec<Value>,
    }
    Ok(HttpResponse::Accepted().json(Accepted {
        alert_ids: stored.alert_ids,
        duplicates,
    }))
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

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::ApiError;
use crate::context::AppContext;
use crate::users_api::CallLog;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Ready when the store answers, playbooks are loaded, and a Users API token can be had.
pub async fn readyz(ctx: web::Data<AppContext>) -> Result<HttpResponse, ApiError> {
    let store = ctx.store.ping().await.map_err(|e| e.to_string());
    let token = users_api_ready(&ctx).await;
    let playbooks = ctx.playbooks().playbooks.len();
    let body = json!({
        "status": if store.is_ok() && token.is_ok() { "ready" } else { "not_ready" },
        "sandbox": ctx.sandbox,
        "mode": if ctx.sandbox { "SANDBOX: fake 1Password Users API, no real account is touched" } else { "live" },
        "checks": {
            "store": store.as_ref().err().map(String::as_str).unwrap_or("ok"),
            "users_api": token.as_ref().err().map(String::as_str).unwrap_or("ok"),
            "playbooks_loaded": playbooks,
        }
    });
    if store.is_ok() && token.is_ok() {
        Ok(HttpResponse::Ok().json(body))
    } else {
        Err(ApiError::unavailable("not_ready", "the service is not ready").details(body))
    }
}

/// How long a failed Users API check is answered from memory: `/readyz` is unauthenticated,
/// and must not turn every probe into a token request while 1Password refuses or is down.
const FAILURE_CACHED_FOR: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether a Users API token can be had; on failure a short reason (the error's kind, never
/// the API's own text).
async fn users_api_ready(ctx: &AppContext) -> Result<(), String> {
    {
        let cached = ctx.readiness.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, why)) = cached.as_ref()
            && at.elapsed() < FAILURE_CACHED_FOR
        {
            return Err(why.clone());
        }
    }
    let result = ctx
        .users
        .check_credentials(&CallLog::default())
        .await
        .map_err(|e| format!("no token: {}", e.kind()));
    let mut cached = ctx.readiness.lock().unwrap_or_else(|p| p.into_inner());
    *cached = result
        .as_ref()
        .err()
        .map(|why| (std::time::Instant::now(), why.clone()));
    result
}

/// `GET /metrics`: Prometheus text format. Queue gauges are read from the store at scrape time.
pub async fn metrics(ctx: web::Data<AppContext>) -> Result<HttpResponse, ApiError> {
    let mut gauges = vec![];
    let mut depth: std::collections::BTreeMap<String, i64> = Default::default();
    for (_, state, n) in ctx.store.action_counts().await? {
        if crate::store::ActionState::parse(&state).is_ok_and(|s| s.is_open()) {
            *depth.entry(state).or_default() += n;
        }
    }
    for s in [
        "waiting",
        "pending_approval",
        "scheduled",
        "ready",
        "running",
    ] {
        gauges.push((
            "lockout_queue_depth",
            vec![("state", s.to_owned())],
            *depth.get(s).unwrap_or(&0) as f64,
        ));
    }
    let oldest = ctx
        .store
        .list_approvals(Some(crate::store::ApprovalState::Pending))
        .await?
        .iter()
        .filter_map(|a| crate::domain::parse_time(&a.created_at))
        .min()
        .map(|t| {
            (time::OffsetDateTime::now_utc() - t)
                .as_seconds_f64()
                .max(0.0)
        })
        .unwrap_or(0.0);
    gauges.push((
        "lockout_oldest_pending_approval_age_seconds",
        vec![],
        oldest,
    ));
    // The client counts its own token requests.
    gauges.push((
        "lockout_token_requests_total",
        vec![],
        ctx.users.token_requests() as f64,
    ));
    gauges.push((
        "lockout_dedup_forgotten_total",
        vec![],
        ctx.store.dedup_forgotten() as f64,
    ));
    let text = ctx.metrics.render(&gauges);
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(text))
}

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
    let events = events_status(&ctx);
    let body = json!({
        "status": if store.is_ok() && token.is_ok() { "ready" } else { "not_ready" },
        "sandbox": ctx.sandbox,
        "mode": if ctx.sandbox { "SANDBOX: fake 1Password Users API, no real account is touched" } else { "live" },
        "checks": {
            "store": store.as_ref().err().map(String::as_str).unwrap_or("ok"),
            "users_api": token.as_ref().err().map(String::as_str).unwrap_or("ok"),
            "playbooks_loaded": playbooks,
            "events_api": events,
        }
    });
    if store.is_ok() && token.is_ok() {
        Ok(HttpResponse::Ok().json(body))
    } else {
        Err(ApiError::unavailable("not_ready", "the service is not ready").details(body))
    }
}

/// The Events API as the service last saw it: what the token may read, and each feed's
/// health. A feed's trouble is shown (and alarmed), not a reason to take the instance out of
/// a balancer: alerts still arrive from the SIEMs.
fn events_status(ctx: &AppContext) -> serde_json::Value {
    let Some(rt) = &ctx.events else {
        return json!("not configured");
    };
    let now = time::OffsetDateTime::now_utc();
    let token = match &*rt.introspection.lock().unwrap_or_else(|p| p.into_inner()) {
        None => json!("not checked yet"),
        Some(Ok(i)) => {
            json!({"integration": i.uuid, "account_uuid": i.account_uuid, "features": i.features, "issued_at": i.issued_at})
        }
        Some(Err(e)) => json!({"error": e}),
    };
    let feeds: serde_json::Map<String, serde_json::Value> = rt
        .health
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(f, h)| {
            (
                f.as_str().to_owned(),
                h.to_json(now, rt.policy.silence_alarm),
            )
        })
        .collect();
    json!({"base_url": rt.client.base_url(), "token": token, "feeds": feeds})
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
    let limit = ctx.users.in_flight();
    gauges.push((
        "lockout_users_api_in_flight_limit",
        vec![],
        limit.limit as f64,
    ));
    gauges.push((
        "lockout_users_api_in_flight",
        vec![],
        limit.in_flight as f64,
    ));
    gauges.push((
        "lockout_users_api_in_flight_peak",
        vec![],
        limit.peak as f64,
    ));
    gauges.push((
        "lockout_users_api_backoffs_total",
        vec![],
        limit.backoffs as f64,
    ));
    if let Some(rt) = &ctx.events {
        let now = time::OffsetDateTime::now_utc();
        for (feed, h) in rt.health.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let label = || vec![("feed", feed.as_str().to_owned())];
            let age = |t: Option<time::OffsetDateTime>| {
                (now - t.unwrap_or(h.started_at)).as_seconds_f64().max(0.0)
            };
            gauges.push((
                "lockout_events_last_event_age_seconds",
                label(),
                age(h.last_event_at),
            ));
            // How far behind 1Password's newest event the feed reads.
            gauges.push((
                "lockout_events_lag_seconds",
                label(),
                age(h.newest_event_time),
            ));
            gauges.push((
                "lockout_events_feed_healthy",
                label(),
                if h.problem(now, rt.policy.silence_alarm).is_none() {
                    1.0
                } else {
                    0.0
                },
            ));
        }
    }
    let text = ctx.metrics.render(&gauges);
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(text))
}

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
    let token = ctx
        .users
        .check_credentials(&CallLog::default())
        .await
        .map_err(|e| e.to_string());
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

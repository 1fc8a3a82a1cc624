//! Sandbox-only routes: scripting the fake Events API's stream, so the sandbox can show a
//! detection with no SIEM. Each answers 404 in live mode.

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::ApiError;
use super::admin::Admin;
use crate::context::AppContext;

/// `POST /v1/sandbox/events` (sandbox only): scripts the fake Events API's stream, so the
/// sandbox can show a detection with no SIEM. 404 in live mode.
pub async fn sandbox_events(
    _admin: Admin,
    ctx: web::Data<AppContext>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let Some(fake) = &ctx.sandbox_fake else {
        return Err(ApiError::not_found(
            "the event stream can be scripted in the sandbox only",
        ));
    };
    let body: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("body is not JSON: {e}")))?;
    let items = crate::sandbox::play_events(fake, &body)
        .map_err(|m| ApiError::bad_request("invalid_script", m))?;
    Ok(HttpResponse::Ok().json(json!({"added": items.len(), "items": items})))
}

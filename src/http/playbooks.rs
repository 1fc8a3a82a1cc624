use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde_json::json;

use super::ApiError;
use super::admin::Admin;
use crate::context::AppContext;

pub async fn list(_: Admin, ctx: web::Data<AppContext>) -> HttpResponse {
    let set = ctx.playbooks();
    HttpResponse::Ok().json(json!({
        "playbooks": set.playbooks.iter().map(|p| json!({
            "name": p.name, "description": p.description, "enabled": p.enabled, "mode": p.mode,
            "file": p.file.display().to_string(), "hash": p.hash, "steps": p.steps.len(),
        })).collect::<Vec<_>>()
    }))
}

pub async fn reload(admin: Admin, ctx: web::Data<AppContext>) -> Result<HttpResponse, ApiError> {
    match ctx.reload_playbooks(&admin.who).await {
        Ok(n) => Ok(HttpResponse::Ok().json(json!({"reloaded": true, "playbooks": n}))),
        Err(errors) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "playbooks_invalid",
            "the playbook folder has errors; the running set is unchanged",
        )
        .details(json!({"errors": errors.iter().map(|e| e.to_string()).collect::<Vec<_>>()}))),
    }
}

pub async fn reset_limits(
    admin: Admin,
    ctx: web::Data<AppContext>,
) -> Result<HttpResponse, ApiError> {
    let was = ctx
        .store
        .reset_limits(&admin.who, &crate::domain::now_rfc3339())
        .await?;
    Ok(HttpResponse::Ok().json(json!({"reset": was})))
}

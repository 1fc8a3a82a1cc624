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

/// `GET /v1/playbooks/{name}/shadow`: how a shadow playbook compares with the live playbook it
/// shadows, over the newest 1,000 alerts where either matched: agreements, and disagreements
/// each way with example alert ids.
pub async fn shadow(
    who: super::auth::Authenticated,
    ctx: web::Data<AppContext>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    super::approvals::require_reader(&ctx, &who)?;
    let set = ctx.playbooks();
    let Some(pb) = set
        .playbooks
        .iter()
        .find(|p| p.name == *name && p.mode == crate::playbooks::Mode::Shadow)
    else {
        return Err(ApiError::not_found(format!("no shadow playbook {name}")));
    };
    let records = ctx
        .store
        .query_audit(&crate::store::AuditQuery {
            kind: Some("shadow.verdict".into()),
            playbook: Some(name.to_string()),
            limit: Some(1000),
            newest_first: true,
            ..Default::default()
        })
        .await?;
    let (mut both, mut shadow_only, mut live_only) = (0, vec![], vec![]);
    for r in &records {
        let (s, l) = (
            r.event.data["shadow_matched"] == true,
            r.event.data["live_matched"] == true,
        );
        let id = r.event.alert_id.clone().unwrap_or_default();
        match (s, l) {
            (true, true) => both += 1,
            (true, false) => shadow_only.push(id),
            (false, true) => live_only.push(id),
            (false, false) => {}
        }
    }
    let examples = |ids: &[String]| ids.iter().take(10).cloned().collect::<Vec<_>>();
    Ok(HttpResponse::Ok().json(json!({
        "shadow": pb.name,
        "shadows": pb.shadows,
        "compared": records.len(),
        "agree_both_matched": both,
        "shadow_only": {"count": shadow_only.len(), "examples": examples(&shadow_only)},
        "live_only": {"count": live_only.len(), "examples": examples(&live_only)},
        "note": "alerts neither matched are not recorded; counts cover the newest 1,000 alerts either matched",
    })))
}

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiError;
use super::auth::Authenticated;
use crate::context::AppContext;
use crate::store::{Approval, ApprovalState, DecideError, DecisionOutcome};

#[derive(Deserialize)]
pub struct ListQuery {
    pub state: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    #[serde(default)]
    pub reason: Option<String>,
}

/// What an approver is shown: the approval, the action it is bound to, and the alert.
pub(crate) async fn view(ctx: &AppContext, a: &Approval) -> Result<Value, ApiError> {
    let action = ctx.store.get_action(&a.action_id).await?;
    let alert = match action.as_ref().and_then(|x| x.alert_id.clone()) {
        Some(id) => ctx.store.get_alert(&id).await?.map(|s| s.alert),
        None => None,
    };
    // Every alert that asked for this action, not only the first.
    let mut asked_by = vec![];
    for r in ctx.store.action_requests(&a.action_id).await? {
        let al = ctx.store.get_alert(&r.alert_id).await?.map(|s| s.alert);
        asked_by.push(json!({
            "id": r.alert_id,
            "title": al.as_ref().map(|a| a["title"].clone()),
            "source": al.as_ref().map(|a| a["source"].clone()),
            "severity": al.as_ref().map(|a| a["severity"].clone()),
            "resolved_at": r.resolved_at,
        }));
    }
    let recent_activity = ctx.store.action_context(&a.action_id).await?;
    Ok(json!({
        "id": a.id,
        "state": a.state,
        "reason": a.request.reason,
        "recent_activity": recent_activity,
        "approvers": a.request.approvers,
        "quorum": a.request.quorum,
        "approvals": a.decisions.iter().filter(|d| d.decision == "approve").count(),
        "decisions": a.decisions,
        "requested_by": a.requested_by,
        "created_at": a.created_at,
        "expires_at": a.expires_at,
        "on_timeout": a.request.on_timeout,
        "binding_hash": a.binding_hash,
        "action": action.as_ref().map(|x| json!({
            "id": x.id,
            "kind": x.kind,
            "target": x.target,
            "user_id": x.user_id,
            "playbook": x.playbook,
            "mode": x.mode,
            "state": x.state,
            "will": format!("{} {}{}", x.kind, x.target, if x.mode == crate::playbooks::Mode::DryRun { " (dry run: nothing will change)" } else { "" }),
        })),
        "alerts": asked_by,
        "alert": alert.map(|al| json!({
            "id": al["id"], "source": al["source"], "title": al["title"], "severity": al["severity"],
            "status": al["status"], "subjects": al["subjects"],
        })),
    }))
}

/// Approvals show who is about to be suspended and why: only approvers and analysts see them.
pub(crate) fn require_reader(ctx: &AppContext, who: &Authenticated) -> Result<(), ApiError> {
    if who.0.roles.iter().any(|r| ctx.reads_approvals(r)) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "reading approvals, alerts and shadow comparisons needs an approver or analyst role",
        ))
    }
}

/// An approve/deny body: empty, or a JSON object with an optional `reason`. Anything else is
/// a 400, never read as an empty body.
fn decision_body(bytes: &[u8]) -> Result<DecisionBody, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(DecisionBody::default());
    }
    let body: DecisionBody = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request("invalid_body", format!("invalid decision body: {e}"))
    })?;
    if body.reason.as_deref().is_some_and(|r| r.contains('\0')) {
        return Err(ApiError::bad_request(
            "invalid_body",
            "the reason holds a NUL character",
        ));
    }
    Ok(body)
}

pub async fn list(
    who: Authenticated,
    ctx: web::Data<AppContext>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    require_reader(&ctx, &who)?;
    let state = match q.state.as_deref() {
        None => None,
        Some(s) => Some(ApprovalState::parse(s).map_err(|_| {
            ApiError::bad_request("invalid_query", format!("unknown approval state {s:?}"))
        })?),
    };
    let mut out = vec![];
    for a in ctx.store.list_approvals(state).await? {
        out.push(view(&ctx, &a).await?);
    }
    Ok(HttpResponse::Ok().json(json!({ "approvals": out })))
}

pub async fn get(
    who: Authenticated,
    ctx: web::Data<AppContext>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    require_reader(&ctx, &who)?;
    let a = ctx
        .store
        .get_approval(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no approval {id}")))?;
    // Frozen when the approval was announced; if this read came first, now.
    if let Some(action) = ctx.store.get_action(&a.action_id).await? {
        crate::actions::feeds::freeze_context(&ctx, &action).await?;
    }
    Ok(HttpResponse::Ok().json(view(&ctx, &a).await?))
}

pub async fn approve(
    who: Authenticated,
    ctx: web::Data<AppContext>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    decide(who, ctx, id.into_inner(), true, decision_body(&body)?).await
}

pub async fn deny(
    who: Authenticated,
    ctx: web::Data<AppContext>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let body = decision_body(&body)?;
    if body.reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "reason_required",
            "a reason is required to deny",
        )
        .details(json!({"field": "reason"})));
    }
    decide(who, ctx, id.into_inner(), false, body).await
}

async fn decide(
    who: Authenticated,
    ctx: web::Data<AppContext>,
    id: String,
    approve: bool,
    body: DecisionBody,
) -> Result<HttpResponse, ApiError> {
    let outcome = crate::actions::approvals::decide(&ctx, &who.0, &id, approve, body.reason)
        .await
        .map_err(|e| match e {
            DecideError::NotFound => ApiError::not_found(format!("no approval {id}")),
            DecideError::AlreadyDecided(_)
            | DecideError::Expired(_)
            | DecideError::DuplicateApprover
            | DecideError::BindingMismatch => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            DecideError::SelfApproval | DecideError::NotAnApprover(_) => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", e.to_string())
            }
            DecideError::Store(s) => ApiError::internal(s),
        })?;
    let body = match outcome {
        DecisionOutcome::Recorded { approvals, quorum } => {
            json!({"id": id, "state": "pending", "approvals": approvals, "quorum": quorum})
        }
        DecisionOutcome::Approved => json!({"id": id, "state": "approved"}),
        DecisionOutcome::Denied => json!({"id": id, "state": "denied"}),
    };
    Ok(HttpResponse::Ok().json(body))
}

//! Manual actions for analysts and other SOAR tools, and look-ups proxied to the Users API.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::ApiError;
use super::auth::Authenticated;
use crate::actions::approval_request;
use crate::audit::AuditEvent;
use crate::context::AppContext;
use crate::domain::{UserId, UserRef, new_id};
use crate::playbooks::{ApprovalSpec, OnTimeout, StepAction};
use crate::store::{NewChain, NewStep};
use crate::users_api::{CallLog, StateFilter, UsersApiError};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManualBody {
    pub reason: String,
    #[serde(default)]
    pub approval_required: bool,
}

#[derive(Deserialize)]
pub struct ListQuery {
    pub state: Option<StateFilter>,
}

fn require_analyst(ctx: &AppContext, who: &Authenticated) -> Result<(), ApiError> {
    if who.0.roles.iter().any(|r| ctx.analyst_roles.contains(r)) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("needs one of the roles: {}", ctx.analyst_roles.join(", ")),
        ))
    }
}

fn api_error(e: UsersApiError) -> ApiError {
    match e {
        UsersApiError::NotFound { message } => ApiError::not_found(message),
        other => ApiError::new(StatusCode::BAD_GATEWAY, "users_api", other.to_string()),
    }
}

pub async fn suspend(
    who: Authenticated,
    ctx: web::Data<AppContext>,
    user: web::Path<String>,
    body: web::Json<ManualBody>,
) -> Result<HttpResponse, ApiError> {
    manual(
        who,
        ctx,
        user.into_inner(),
        body.into_inner(),
        StepAction::Suspend,
    )
    .await
}

pub async fn reactivate(
    who: Authenticated,
    ctx: web::Data<AppContext>,
    user: web::Path<String>,
    body: web::Json<ManualBody>,
) -> Result<HttpResponse, ApiError> {
    manual(
        who,
        ctx,
        user.into_inner(),
        body.into_inner(),
        StepAction::Reactivate,
    )
    .await
}

async fn manual(
    who: Authenticated,
    ctx: web::Data<AppContext>,
    user: String,
    body: ManualBody,
    step: StepAction,
) -> Result<HttpResponse, ApiError> {
    require_analyst(&ctx, &who)?;
    // PostgreSQL text cannot hold NUL: refused here, on both stores alike.
    if body.reason.contains('\0') {
        return Err(ApiError::bad_request(
            "invalid_body",
            "the reason holds a NUL character",
        ));
    }
    if body.reason.trim().is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "reason_required",
            "a reason is required",
        )
        .details(json!({"field": "reason"})));
    }
    let target =
        UserRef::parse(&user).map_err(|e| ApiError::bad_request("invalid_user", e.to_string()))?;
    // The user under every name lockout knows: a manual suspend by e-mail supersedes what
    // a playbook scheduled against the same user's id, and a guard on either name holds.
    let log = CallLog::default();
    let (aliases, known) = ctx.known_names(&target, &log).await;
    let mut lookups: Vec<AuditEvent> = log
        .take()
        .into_iter()
        .map(|c| {
            AuditEvent::new("api.call", format!("analyst:{}", who.0.id))
                .subject(target.to_string())
                .data(serde_json::to_value(c).expect("calls serialise"))
        })
        .collect();
    let user_id = known.as_ref().map(|u| u.id.to_string());
    let known_email = known
        .as_ref()
        .and_then(|u| crate::domain::Email::parse(&u.email).ok());
    let protected = ctx
        .globally_protected(&target.to_string(), known_email.as_ref())
        .or_else(|| {
            user_id
                .as_deref()
                .and_then(|id| ctx.globally_protected(id, known_email.as_ref()))
        });
    if let Some(p) = protected {
        ctx.store
            .append_audit(vec![AuditEvent::new("guard.protected", format!("analyst:{}", who.0.id)).subject(&target).data(json!({"reason": format!("protected by global guard {p}"), "kind": step.kind()}))])
            .await?;
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "protected",
            format!("{target} is protected by guard {p}"),
        ));
    }
    let approval = body.approval_required.then(|| {
        approval_request(
            &ApprovalSpec {
                approvers: ctx.manual_approvers.clone(),
                quorum: 1,
                timeout: ctx.approval_timeout,
                on_timeout: OnTimeout::Deny,
                escalate: None,
                cancel_on_resolve: false,
            },
            "manual",
        )
    });
    let action_id = new_id("act");
    let kind = step.kind();
    let chain = NewChain {
        id: new_id("chn"),
        alert_id: None,
        playbook: None,
        target: target.to_string(),
        aliases,
        user_id: user_id.clone(),
        mode: "enforce".into(),
        reason: body.reason.clone(),
        origin: "manual".into(),
        requested_by: Some(who.0.id.clone()),
        deadline_secs: ctx.worker.action_deadline.as_secs() as i64,
        steps: vec![NewStep {
            id: action_id.clone(),
            kind: kind.into(),
            params: json!({"action": step}),
            approval,
            delay_secs: 0,
        }],
    };
    let mut audit = std::mem::take(&mut lookups);
    audit.push(AuditEvent::new(&format!("manual.{kind}"), format!("analyst:{}", who.0.id)).action(&action_id).subject(&target).data(json!({"reason": body.reason, "approval_required": body.approval_required, "roles": who.0.roles, "user_id": user_id})));
    // An analyst acting on the user supersedes what was scheduled for them (e.g. a delayed
    // reactivation).
    let created = ctx.store.enqueue(vec![chain], true, audit).await?;
    ctx.actions_waiting.notify_waiters();
    let id = created.first().cloned();
    let action = match &id {
        Some(id) => ctx.store.get_action(id).await?,
        None => None,
    };
    let approval_id = match &action {
        Some(a) if a.approval.is_some() => ctx
            .store
            .list_approvals(None)
            .await?
            .into_iter()
            .find(|x| x.action_id == a.id)
            .map(|x| x.id),
        _ => None,
    };
    Ok(HttpResponse::Accepted().json(json!({
        "action_id": id,
        "state": action.as_ref().map(|a| a.state),
        "approval_id": approval_id,
        "attached": id.is_none(),
    })))
}

pub async fn list(
    who: Authenticated,
    ctx: web::Data<AppContext>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    require_analyst(&ctx, &who)?;
    let users = ctx
        .users
        .list_all_users(q.state, &CallLog::default())
        .await
        .map_err(api_error)?;
    Ok(HttpResponse::Ok().json(json!({ "users": users })))
}

pub async fn get(
    who: Authenticated,
    ctx: web::Data<AppContext>,
    user: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    require_analyst(&ctx, &who)?;
    let log = CallLog::default();
    let u = match UserRef::parse(&user)
        .map_err(|e| ApiError::bad_request("invalid_user", e.to_string()))?
    {
        UserRef::Id(id) => ctx.users.get_user(&id, &log).await.map_err(api_error)?,
        UserRef::Email(e) => ctx
            .directory
            .find_by_email(&e, &log)
            .await
            .map_err(api_error)?
            .ok_or_else(|| ApiError::not_found(format!("no 1Password user has the e-mail {e}")))?,
    };
    let _: &UserId = &u.id;
    Ok(HttpResponse::Ok().json(u))
}

//! Manual actions for analysts and other SOAR tools, and look-ups proxied to the Users API.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::ApiError;
use super::auth::Authenticated;
use crate::actions::manual::{self, ManualError, ManualRequest, Requester};
use crate::context::AppContext;
use crate::domain::{UserId, UserRef};
use crate::playbooks::StepAction;
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

pub(crate) fn require_analyst(ctx: &AppContext, who: &Authenticated) -> Result<(), ApiError> {
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
    let target =
        UserRef::parse(&user).map_err(|e| ApiError::bad_request("invalid_user", e.to_string()))?;
    let requester = Requester {
        actor: format!("analyst:{}", who.0.id),
        id: who.0.id.clone(),
        roles: who.0.roles.clone(),
    };
    let queued = manual::request(
        &ctx,
        &requester,
        ManualRequest {
            target,
            step,
            reason: body.reason,
            approval_required: body.approval_required,
        },
    )
    .await
    .map_err(|e| match e {
        ManualError::NulInReason => ApiError::bad_request("invalid_body", e.to_string()),
        ManualError::ReasonRequired => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "reason_required",
            e.to_string(),
        )
        .details(json!({"field": "reason"})),
        ManualError::Protected { .. } => {
            ApiError::new(StatusCode::FORBIDDEN, "protected", e.to_string())
        }
        ManualError::Store(s) => s.into(),
    })?;
    Ok(HttpResponse::Accepted().json(queued))
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

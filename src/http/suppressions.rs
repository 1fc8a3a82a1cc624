//! `/v1/suppressions`: analysts hold back matches for a while, with a reason. The author is
//! the token's person; creation, removal and expiry are audited.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::ApiError;
use super::auth::Authenticated;
use super::users::require_analyst;
use crate::actions::suppressions::{self, NewSuppression, SuppressionError};
use crate::context::AppContext;
use crate::domain::now_rfc3339;

pub async fn create(
    who: Authenticated,
    ctx: web::Data<AppContext>,
    body: web::Json<NewSuppression>,
) -> Result<HttpResponse, ApiError> {
    require_analyst(&ctx, &who)?;
    let s = suppressions::create(
        ctx.store.as_ref(),
        &who.0.id,
        body.into_inner(),
        ctx.max_suppression,
    )
    .await
    .map_err(|e| match e {
        SuppressionError::Invalid(m) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_suppression", m)
        }
        SuppressionError::Store(s) => s.into(),
    })?;
    ctx.forget_suppressions().await;
    Ok(HttpResponse::Created().json(s))
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    pub all: bool,
}

pub async fn list(
    who: Authenticated,
    ctx: web::Data<AppContext>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    require_analyst(&ctx, &who)?;
    let list = ctx.store.list_suppressions(&now_rfc3339(), q.all).await?;
    Ok(HttpResponse::Ok().json(json!({ "suppressions": list })))
}

pub async fn remove(
    who: Authenticated,
    ctx: web::Data<AppContext>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    require_analyst(&ctx, &who)?;
    if !ctx
        .store
        .remove_suppression(&id, &who.0.id, &now_rfc3339())
        .await?
    {
        return Err(ApiError::not_found(format!("no suppression {id} in force")));
    }
    ctx.forget_suppressions().await;
    Ok(HttpResponse::NoContent().finish())
}

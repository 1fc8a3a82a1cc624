//! Approver and analyst authentication: a JWT bearer token verified by `approvals::JwtVerifier`.
//! A handler that takes [`Authenticated`] cannot run without a valid token.

use std::future::Future;
use std::pin::Pin;

use actix_web::{FromRequest, HttpRequest, web};

use super::ApiError;
use crate::approvals::Identity;
use crate::context::AppContext;

pub struct Authenticated(pub Identity);

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let ctx = req.app_data::<web::Data<AppContext>>().cloned();
        let token = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| t.trim().to_owned());
        Box::pin(async move {
            let (Some(ctx), Some(token)) = (ctx, token) else {
                return Err(ApiError::unauthorized());
            };
            match ctx.jwt.verify(&token).await {
                Ok(identity) => Ok(Authenticated(identity)),
                Err(e) => {
                    tracing::warn!(error = %e, "approver token refused");
                    Err(ApiError::unauthorized())
                }
            }
        })
    }
}

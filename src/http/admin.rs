//! Admin authentication: a named bearer token from the settings (compared in constant time), or
//! a person's approver-style JWT carrying a role in `approvals.admin_roles`. Either way the
//! handler knows who acted, and the audit says so.

use std::future::Future;
use std::pin::Pin;

use actix_web::{FromRequest, HttpRequest, web};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::ApiError;

/// SHA-256 digests of the accepted admin tokens, with their names.
pub struct AdminTokens(pub Vec<(String, [u8; 32])>);

impl AdminTokens {
    pub fn new<'a>(tokens: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self(
            tokens
                .into_iter()
                .map(|(name, t)| (name.to_owned(), Sha256::digest(t.as_bytes()).into()))
                .collect(),
        )
    }

    /// The name of the token presented, if it is one (every token compared, in constant time).
    fn name_of(&self, presented: &str) -> Option<String> {
        let d: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for (name, t) in &self.0 {
            if bool::from(t.ct_eq(&d)) {
                found = Some(name.clone());
            }
        }
        found
    }
}

/// Proof that the request is an admin's, and who: `admin:<token name>` or the person a JWT
/// names. Handlers that take it cannot run without one.
pub struct Admin {
    pub who: String,
}

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let tokens = req.app_data::<web::Data<AdminTokens>>().cloned();
        let ctx = req
            .app_data::<web::Data<crate::context::AppContext>>()
            .cloned();
        let presented = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| t.trim().to_owned());
        Box::pin(async move {
            let Some(presented) = presented else {
                return Err(ApiError::unauthorized());
            };
            if let Some(name) = tokens.as_ref().and_then(|t| t.name_of(&presented)) {
                return Ok(Admin {
                    who: format!("admin:{name}"),
                });
            }
            // A person: an approver-style JWT with an admin role.
            let Some(ctx) = ctx else {
                return Err(ApiError::unauthorized());
            };
            match ctx.jwt.verify(&presented).await {
                Ok(id) if id.roles.iter().any(|r| ctx.admin_roles.contains(r)) => {
                    Ok(Admin { who: id.id })
                }
                Ok(_) => Err(ApiError::new(
                    actix_web::http::StatusCode::FORBIDDEN,
                    "forbidden",
                    format!(
                        "admin endpoints need one of the roles: {}",
                        ctx.admin_roles.join(", ")
                    ),
                )),
                Err(_) => Err(ApiError::unauthorized()),
            }
        })
    }
}

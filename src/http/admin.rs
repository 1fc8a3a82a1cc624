//! Admin authentication: a bearer token from `server.admin_tokens`, compared in constant time.

use std::future::{Ready, ready};

use actix_web::{FromRequest, HttpRequest, web};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::ApiError;

/// SHA-256 digests of the accepted admin tokens.
pub struct AdminTokens(pub Vec<[u8; 32]>);

impl AdminTokens {
    pub fn new<'a>(tokens: impl IntoIterator<Item = &'a str>) -> Self {
        Self(
            tokens
                .into_iter()
                .map(|t| Sha256::digest(t.as_bytes()).into())
                .collect(),
        )
    }
}

/// Proof that the request carries an admin token. Handlers that take it cannot run without one.
pub struct Admin;

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let tokens = req.app_data::<web::Data<AdminTokens>>();
        let presented = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let ok = match (tokens, presented) {
            (Some(tokens), Some(p)) => {
                let d: [u8; 32] = Sha256::digest(p.trim().as_bytes()).into();
                bool::from(
                    tokens
                        .0
                        .iter()
                        .fold(subtle::Choice::from(0), |acc, t| acc | t.ct_eq(&d)),
                )
            }
            _ => false,
        };
        ready(if ok {
            Ok(Admin)
        } else {
            Err(ApiError::unauthorized())
        })
    }
}

//! The HTTP API (actix-web): routes, authentication extractors, the error mapping.
//!
//! Invariant: handlers parse, call one domain function, and map its result; no business
//! logic lives here.

mod admin;
mod alerts;
mod audit;
pub mod error;
mod health;

use actix_web::web;

pub use admin::AdminTokens;
pub use alerts::BodyLimit;
pub use error::ApiError;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/v1/alerts/{source}", web::post().to(alerts::receive))
        .route("/v1/audit", web::get().to(audit::list));
}

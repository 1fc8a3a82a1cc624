//! The console at `/console/`: approvers, analysts and auditors see, decide and act in a
//! browser. Server-rendered (minijinja, auto-escaped), no script needed to use it (one small
//! vendored script counts down expiries), served by lockout itself.
//!
//! Invariants: every page needs a signed-in session with a role that may look; every
//! state-changing form carries the session's CSRF token; decisions and manual actions go
//! through the same functions as the API (`actions::approvals::decide`,
//! `actions::manual::request`), so the rules are the API's.

mod oidc;
mod pages;
mod session;

use std::sync::Arc;
use std::time::Duration;

use actix_session::SessionMiddleware;
use actix_session::config::CookieContentSecurity;
use actix_session::storage::CookieSessionStore;
use actix_web::cookie::{Key, SameSite};
use actix_web::web;
use rand::RngCore;

use crate::config::{ConfigError, Settings};
pub use oidc::Oidc;
pub use session::SignedIn;

/// The console's own state beside `AppContext`.
pub struct Console {
    pub idle: Duration,
    pub absolute: Duration,
    pub viewer_roles: Vec<String>,
    pub oidc: Option<Oidc>,
    /// The sandbox sign-in (choose a sample identity) is offered.
    pub sandbox: bool,
    templates: minijinja::Environment<'static>,
    key: Key,
    secure_cookies: bool,
}

/// The sample identities of the sandbox sign-in: (identity, roles, what they show).
pub const SANDBOX_IDENTITIES: [(&str, &[&str], &str); 4] = [
    ("ana@example.com", &["secops"], "approver and analyst"),
    ("ben@example.com", &["secops"], "a second approver"),
    (
        "ivy@example.com",
        &["analyst"],
        "analyst: suspends by hand, cannot approve",
    ),
    ("vic@example.com", &["viewer"], "viewer: looks, cannot act"),
];

impl Console {
    pub fn from_settings(settings: &Settings, sandbox: bool) -> Result<Self, ConfigError> {
        let c = &settings.console;
        let key = match &c.session_key_file {
            Some(path) => Key::derive_from(crate::config::read_secret_file(path)?.as_bytes()),
            None => {
                let mut bytes = [0u8; 64];
                rand::rng().fill_bytes(&mut bytes);
                if !sandbox {
                    tracing::warn!(
                        "console.session_key_file is not set: console sessions end when lockout restarts and do not cross replicas"
                    );
                }
                Key::from(&bytes)
            }
        };
        let oidc = match (&c.oidc, &c.public_url) {
            (Some(o), Some(url)) => Some(Oidc::from_settings(
                o,
                url,
                &settings.approvals.roles_claim,
            )?),
            _ => None,
        };
        Ok(Self {
            idle: Duration::from_secs(c.idle_timeout_secs),
            absolute: Duration::from_secs(c.absolute_timeout_secs),
            viewer_roles: c.viewer_roles.clone(),
            oidc,
            sandbox,
            templates: pages::templates(),
            key,
            secure_cookies: c
                .public_url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://")),
        })
    }
}

/// The console's routes, under `/console`, each in the session middleware.
pub fn routes(cfg: &mut web::ServiceConfig, console: Arc<Console>) {
    let sessions = SessionMiddleware::builder(CookieSessionStore::default(), console.key.clone())
        .cookie_name("lockout_console".into())
        .cookie_secure(console.secure_cookies)
        .cookie_http_only(true)
        // Lax, not Strict: the provider's redirect back to the callback is a cross-site
        // navigation that must carry the session holding the PKCE verifier and nonce.
        .cookie_same_site(SameSite::Lax)
        .cookie_path("/console".into())
        .cookie_content_security(CookieContentSecurity::Private)
        .build();
    cfg.service(
        web::scope("/console")
            .app_data(web::Data::from(console))
            .wrap(sessions)
            .wrap(pages::security_headers())
            .service(web::resource("").route(web::get().to(pages::home)))
            .service(web::resource("/").route(web::get().to(pages::home)))
            .service(web::resource("/static/{file}").route(web::get().to(pages::asset)))
            .service(web::resource("/sign-in").route(web::get().to(session::sign_in_page)))
            .service(web::resource("/auth/oidc").route(web::get().to(session::oidc_start)))
            .service(web::resource("/auth/callback").route(web::get().to(session::oidc_callback)))
            .service(web::resource("/auth/sandbox").route(web::post().to(session::sandbox_sign_in)))
            .service(web::resource("/sign-out").route(web::post().to(session::sign_out)))
            .service(web::resource("/approvals").route(web::get().to(pages::approvals)))
            .service(
                web::resource("/approvals/{id}")
                    .route(web::get().to(pages::approval))
                    .route(web::post().to(pages::decide)),
            )
            .service(web::resource("/alerts").route(web::get().to(pages::alerts)))
            .service(web::resource("/alerts/{id}").route(web::get().to(pages::alert)))
            .service(web::resource("/users").route(web::get().to(pages::users)))
            .service(
                web::resource("/users/{user}")
                    .route(web::get().to(pages::user))
                    .route(web::post().to(pages::user_action)),
            )
            .service(web::resource("/audit").route(web::get().to(pages::audit)))
            .service(web::resource("/audit/verify").route(web::get().to(pages::audit_verify)))
            .service(web::resource("/audit/export").route(web::get().to(pages::audit_export))),
    );
}

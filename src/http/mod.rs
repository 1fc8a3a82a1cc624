//! The HTTP API (actix-web): routes, authentication extractors, the error mapping.
//!
//! Invariant: handlers parse, call one domain function, and map its result; no business
//! logic lives here. Every path is a resource, so an undeclared method answers 405.

mod admin;
pub(crate) mod alert_reads;
mod alerts;
pub(crate) mod approvals;
pub(crate) mod audit;
mod auth;
pub mod error;
mod health;
pub mod openapi;
mod playbooks;
mod sandbox;
mod slack;
mod suppressions;
mod users;

use actix_web::web;

pub use admin::AdminTokens;
pub use alerts::IntakeLimits;
pub use error::ApiError;

/// The request span of `tracing-actix-web`, built only when it would be recorded: the default
/// builder reads the route pattern (a regex match), the connection info and more for every
/// request, even with the span filtered out (~4% of intake CPU with `RUST_LOG=warn`).
pub struct RequestSpan;

impl tracing_actix_web::RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &actix_web::dev::ServiceRequest) -> tracing::Span {
        if tracing::span_enabled!(tracing::Level::INFO) {
            tracing_actix_web::root_span!(request)
        } else {
            tracing::Span::none()
        }
    }

    fn on_request_end<B: actix_web::body::MessageBody>(
        span: tracing::Span,
        outcome: &Result<actix_web::dev::ServiceResponse<B>, actix_web::Error>,
    ) {
        tracing_actix_web::DefaultRootSpanBuilder::on_request_end(span, outcome)
    }
}

/// Routes are tried in this order, and every pattern with a parameter is a regex match:
/// intake, the hot path, comes first (after the static health check), with a static route
/// per configured source (`sources`: their names) before the `{source}` one, which is left
/// for names a static pattern cannot hold and for unknown sources (404).
pub fn routes(cfg: &mut web::ServiceConfig, sources: &[String]) {
    cfg.service(web::resource("/healthz").route(web::get().to(health::healthz)));
    for name in sources.iter().filter(|n| static_segment(n)) {
        let name: std::sync::Arc<str> = name.as_str().into();
        let no_alert = format!("no alert {name}");
        cfg.service(
            web::resource(format!("/v1/alerts/{name}"))
                .route(web::post().to(move |ctx, limit, req, payload| {
                    let name = name.clone();
                    async move { alerts::receive_from(&name, ctx, limit, req, payload).await }
                }))
                // GET takes an alert id, never a source's name: the same answer as any
                // unknown id, after the same authentication.
                .route(web::get().to(move |who: auth::Authenticated| {
                    let no_alert = no_alert.clone();
                    async move {
                        drop(who);
                        Err::<actix_web::HttpResponse, _>(ApiError::not_found(no_alert))
                    }
                })),
        );
    }
    cfg.service(web::resource("/v1/alerts").route(web::get().to(alert_reads::list)))
        .service(
            web::resource("/v1/alerts/{source}")
                .route(web::post().to(alerts::receive))
                .route(web::get().to(alert_reads::get)),
        )
        .service(web::resource("/readyz").route(web::get().to(health::readyz)))
        .service(web::resource("/metrics").route(web::get().to(health::metrics)))
        .service(web::resource("/openapi.json").route(
            web::get().to(|| async { actix_web::HttpResponse::Ok().json(openapi::document()) }),
        ))
        .service(
            utoipa_swagger_ui::SwaggerUi::new("/docs/{_:.*}")
                .config(utoipa_swagger_ui::Config::from("/openapi.json")),
        )
        .service(web::resource("/v1/audit").route(web::get().to(audit::list)))
        .service(web::resource("/v1/audit/export").route(web::get().to(audit::export)))
        .service(web::resource("/v1/approvals").route(web::get().to(approvals::list)))
        .service(web::resource("/v1/approvals/{id}").route(web::get().to(approvals::get)))
        .service(
            web::resource("/v1/approvals/{id}/approve").route(web::post().to(approvals::approve)),
        )
        .service(web::resource("/v1/approvals/{id}/deny").route(web::post().to(approvals::deny)))
        .service(web::resource("/v1/users").route(web::get().to(users::list)))
        .service(web::resource("/v1/users/{user}").route(web::get().to(users::get)))
        .service(web::resource("/v1/users/{user}/suspend").route(web::post().to(users::suspend)))
        .service(
            web::resource("/v1/users/{user}/reactivate").route(web::post().to(users::reactivate)),
        )
        .service(
            web::resource("/v1/suppressions")
                .route(web::get().to(suppressions::list))
                .route(web::post().to(suppressions::create)),
        )
        .service(
            web::resource("/v1/suppressions/{id}").route(web::delete().to(suppressions::remove)),
        )
        .service(
            web::resource("/v1/integrations/slack/interactions")
                .route(web::post().to(slack::interactions)),
        )
        .service(web::resource("/v1/playbooks").route(web::get().to(playbooks::list)))
        .service(
            web::resource("/v1/playbooks/{name}/shadow").route(web::get().to(playbooks::shadow)),
        )
        .service(web::resource("/v1/playbooks/reload").route(web::post().to(playbooks::reload)))
        .service(web::resource("/v1/limits/reset").route(web::post().to(playbooks::reset_limits)))
        .service(
            web::resource("/v1/sandbox/events").route(web::post().to(sandbox::sandbox_events)),
        );
}

/// A name the router matches as plain text in a path (no pattern syntax, nothing to decode).
fn static_segment(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
}

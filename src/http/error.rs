//! The one place errors become HTTP responses. Every error body has one shape:
//! `{"error": {"code": "...", "message": "...", "details": ...}}`. 5xx bodies are opaque;
//! the cause goes to the log.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use serde_json::Value;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Value,
    /// Seconds, sent as `Retry-After` (503, 429).
    pub retry_after: Option<u64>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}
#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
    details: &'a Value,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.code,
            self.status.as_u16(),
            self.message
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }
    fn error_response(&self) -> HttpResponse {
        let mut r = HttpResponse::build(self.status);
        if self.status == StatusCode::UNAUTHORIZED {
            r.insert_header(("WWW-Authenticate", "Bearer"));
        }
        if let Some(secs) = self.retry_after {
            r.insert_header(("Retry-After", secs.to_string()));
        }
        r.json(Body {
            error: Inner {
                code: self.code,
                message: &self.message,
                details: &self.details,
            },
        })
    }
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Value::Null,
            retry_after: None,
        }
    }
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }
    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "authentication failed",
        )
    }
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    /// An internal failure: logged with its cause, answered opaquely.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::internal(e)
    }
}

/// The router's own 404 (no route) and 405 (a method the resource does not declare) answer
/// in the common shape too; responses that already carry a JSON body are left alone.
pub fn router_errors<B: 'static>() -> actix_web::middleware::ErrorHandlers<B> {
    use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
    fn rewrite<B: 'static>(
        res: actix_web::dev::ServiceResponse<B>,
    ) -> actix_web::Result<ErrorHandlerResponse<B>> {
        let is_json = res
            .headers()
            .get(actix_web::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if is_json {
            return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
        }
        let status = res.status();
        let err = if status == StatusCode::METHOD_NOT_ALLOWED {
            ApiError::new(
                status,
                "method_not_allowed",
                format!(
                    "{} is not allowed on {}",
                    res.request().method(),
                    res.request().path()
                ),
            )
        } else {
            ApiError::not_found(format!("no route {}", res.request().path()))
        };
        // A 405 says which methods the resource has (RFC 9110): kept.
        let allow = res.headers().get(actix_web::http::header::ALLOW).cloned();
        let (req, _) = res.into_parts();
        let mut response = err.error_response();
        if let Some(allow) = allow {
            response
                .headers_mut()
                .insert(actix_web::http::header::ALLOW, allow);
        }
        let res = actix_web::dev::ServiceResponse::new(req, response);
        Ok(ErrorHandlerResponse::Response(res.map_into_right_body()))
    }
    ErrorHandlers::new()
        .handler(StatusCode::NOT_FOUND, rewrite)
        .handler(StatusCode::METHOD_NOT_ALLOWED, rewrite)
}

/// JSON bodies and queries that do not deserialise answer in the common shape.
pub fn json_config() -> actix_web::web::JsonConfig {
    actix_web::web::JsonConfig::default().error_handler(|err, _| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            err.to_string(),
        )
        .into()
    })
}

pub fn query_config() -> actix_web::web::QueryConfig {
    actix_web::web::QueryConfig::default()
        .error_handler(|err, _| ApiError::bad_request("invalid_query", err.to_string()).into())
}

//! Typed errors of the Users API client. Each carries the API's own message.

use std::time::Duration;

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum UsersApiError {
    #[error("user not found: {message}")]
    NotFound { message: String },
    /// 403 on a state change for this user (last owner, externally managed admin, …). Never retried.
    #[error("1Password refused to act on this user: {message}")]
    CannotActOnUser { message: String },
    /// 403 because the OAuth application lacks the permission for this operation.
    #[error("the OAuth application lacks permission for this operation: {message}")]
    Forbidden { message: String },
    #[error("unauthorized: {message}")]
    Unauthorized { message: String },
    /// The token endpoint refused our client credentials.
    #[error("the token endpoint refused the client credentials ({status}): {message}")]
    InvalidClient { status: u16, message: String },
    #[error("bad request: {message}")]
    BadRequest { status: u16, message: String },
    #[error("rate limited (429){}: {message}", retry_after.map(|d| format!(", retry after {}s", d.as_secs())).unwrap_or_default())]
    RateLimited {
        retry_after: Option<Duration>,
        message: String,
    },
    #[error("server error ({status}): {message}")]
    Server { status: u16, message: String },
    #[error("the token endpoint failed ({status}): {message}")]
    TokenEndpoint { status: u16, message: String },
    #[error("request timed out")]
    Timeout,
    #[error("transport error: {0}")]
    Transport(String),
    #[error("unexpected response: {0}")]
    InvalidResponse(String),
    #[error("gave up after {attempts} attempts: {last}")]
    RetriesExhausted {
        attempts: u32,
        last: Box<UsersApiError>,
    },
}

impl UsersApiError {
    /// Transient failures are worth another attempt; everything else is final.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::RateLimited { .. } | Self::Server { .. } | Self::Timeout | Self::Transport(_) => {
                true
            }
            Self::TokenEndpoint { status, .. } => *status == 429 || *status >= 500 || *status == 0,
            _ => false,
        }
    }

    /// True when the failure will not change by waiting (retrying later cannot help).
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::RetriesExhausted { .. } => false,
            other => !other.is_retryable(),
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A short stable name for metrics and audit records.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "not_found",
            Self::CannotActOnUser { .. } => "cannot_act_on_user",
            Self::Forbidden { .. } => "forbidden",
            Self::Unauthorized { .. } => "unauthorized",
            Self::InvalidClient { .. } => "invalid_client",
            Self::BadRequest { .. } => "bad_request",
            Self::RateLimited { .. } => "rate_limited",
            Self::Server { .. } => "server",
            Self::TokenEndpoint { .. } => "token_endpoint",
            Self::Timeout => "timeout",
            Self::Transport(_) => "transport",
            Self::InvalidResponse(_) => "invalid_response",
            Self::RetriesExhausted { last, .. } => last.kind(),
        }
    }
}

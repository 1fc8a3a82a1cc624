//! The Events API client: bearer token, introspection, one page of a feed, retries.

use std::time::{Duration, Instant};

use reqwest::{StatusCode, header};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Feed;
use crate::users_api::RetryPolicy;

/// The region hosts, by the name 1Password gives the account's domain.
const REGIONS: &[(&str, &str)] = &[
    ("com", "https://events.1password.com"),
    ("ent", "https://events.ent.1password.com"),
    ("ca", "https://events.1password.ca"),
    ("eu", "https://events.1password.eu"),
];

#[derive(Clone)]
pub struct EventsConfig {
    pub base_url: String,
    pub token: SecretString,
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

impl std::fmt::Debug for EventsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventsConfig")
            .field("base_url", &self.base_url)
            .field("token", &"[REDACTED]")
            .finish()
    }
}

impl EventsConfig {
    /// The base URL: `base_url` as given, else the region's host, else the host the token
    /// names in its `aud` claim (as 1Password's own clients read it; the token is decoded, not
    /// verified: the server verifies it).
    pub fn base_url_for(
        base_url: Option<&str>,
        region: Option<&str>,
        token: &SecretString,
    ) -> Result<String, String> {
        if let Some(b) = base_url {
            return Ok(b.trim_end_matches('/').to_owned());
        }
        if let Some(r) = region {
            return REGIONS
                .iter()
                .find(|(name, _)| *name == r)
                .map(|(_, url)| (*url).to_owned())
                .ok_or_else(|| format!("unknown region {r:?} (one of: com, ent, ca, eu)"));
        }
        let aud = token_audience(token.expose_secret()).ok_or(
            "the token is not a JWT with an `aud` claim: set base_url or region".to_owned(),
        )?;
        if !aud.contains('.') || aud == "com.1password.streamingservice" {
            return Err(format!(
                "the token names no events host (aud {aud:?}, a token from before hosts were embedded): set base_url or region, or generate a new token"
            ));
        }
        Ok(format!("https://{aud}"))
    }
}

fn token_audience(token: &str) -> Option<String> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    match claims.get("aud")? {
        Value::String(s) => Some(s.clone()),
        Value::Array(a) => a.first()?.as_str().map(str::to_owned),
        _ => None,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    /// Missing, invalid, expired or revoked token, or one without the feed's feature. Fatal
    /// until the token is replaced.
    #[error("unauthorized (401): the token is invalid, revoked, expired, or lacks this feed")]
    Unauthorized,
    #[error("bad request ({status}): {message}")]
    BadRequest { status: u16, message: String },
    #[error("rate limited (429){}", .retry_after.map(|d| format!(", retry after {}s", d.as_secs())).unwrap_or_default())]
    RateLimited { retry_after: Option<Duration> },
    #[error("server error ({status})")]
    Server { status: u16 },
    #[error("transport error: {0}")]
    Transport(String),
    #[error("unexpected response: {0}")]
    InvalidResponse(String),
    #[error("gave up after {attempts} attempts: {last}")]
    RetriesExhausted {
        attempts: u32,
        last: Box<EventsError>,
    },
}

impl EventsError {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::BadRequest { .. } => "bad_request",
            Self::RateLimited { .. } => "rate_limited",
            Self::Server { .. } => "server",
            Self::Transport(_) => "transport",
            Self::InvalidResponse(_) => "invalid_response",
            Self::RetriesExhausted { last, .. } => last.kind(),
        }
    }

    fn retryable(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. } | Self::Server { .. } | Self::Transport(_)
        )
    }
}

/// `GET /api/v2/auth/introspect`: what the token may read and for which account.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Introspection {
    #[serde(default)]
    pub uuid: Option<String>,
    #[serde(default)]
    pub issued_at: Option<String>,
    #[serde(default)]
    pub features: Vec<String>,
    #[serde(default)]
    pub account_uuid: Option<String>,
}

impl Introspection {
    pub fn allows(&self, feed: Feed) -> bool {
        self.features.iter().any(|f| f == feed.as_str())
    }
}

/// The body of a feed request: a reset (first call, or a rewind) or a continuing cursor.
#[derive(Debug, Clone, PartialEq)]
pub enum PageRequest {
    Reset {
        limit: u32,
        start_time: Option<String>,
        end_time: Option<String>,
    },
    Cursor(String),
}

impl PageRequest {
    fn body(&self) -> Value {
        match self {
            Self::Reset {
                limit,
                start_time,
                end_time,
            } => {
                let mut b = serde_json::json!({"limit": limit});
                if let Some(s) = start_time {
                    b["start_time"] = s.clone().into();
                }
                if let Some(e) = end_time {
                    b["end_time"] = e.clone().into();
                }
                b
            }
            Self::Cursor(c) => serde_json::json!({"cursor": c}),
        }
    }
}

/// One page of a feed. `items` are kept as sent: [`super::EventFacts::read`] reads them.
#[derive(Debug, Clone)]
pub struct Page {
    pub cursor: String,
    pub has_more: bool,
    pub items: Vec<Value>,
}

#[derive(Clone, Debug)]
pub struct EventsClient {
    http: reqwest::Client,
    cfg: EventsConfig,
}

impl EventsClient {
    pub fn new(cfg: EventsConfig) -> Result<Self, EventsError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("lockout/", env!("CARGO_PKG_VERSION")))
            .timeout(cfg.timeout)
            .build()
            .map_err(|e| EventsError::Transport(e.to_string()))?;
        Ok(Self { http, cfg })
    }

    pub fn base_url(&self) -> &str {
        &self.cfg.base_url
    }

    pub async fn introspect(&self) -> Result<Introspection, EventsError> {
        let v = self.call(None, "/api/v2/auth/introspect").await?;
        serde_json::from_value(v)
            .map_err(|e| EventsError::InvalidResponse(format!("introspection: {e}")))
    }

    /// One page of `feed`. Retries 429 (after `Retry-After` when given), 5xx and transport
    /// errors with backoff, within the retry policy.
    pub async fn page(&self, feed: Feed, req: &PageRequest) -> Result<Page, EventsError> {
        let v = self
            .call(Some(req.body()), &format!("/api/v2/{}", feed.as_str()))
            .await?;
        let cursor = v
            .get("cursor")
            .and_then(Value::as_str)
            .ok_or_else(|| EventsError::InvalidResponse("a page without a cursor".into()))?
            .to_owned();
        let items = match v.get("items") {
            Some(Value::Array(a)) => a.clone(),
            None | Some(Value::Null) => vec![],
            Some(_) => {
                return Err(EventsError::InvalidResponse(
                    "a page whose items are not a list".into(),
                ));
            }
        };
        Ok(Page {
            cursor,
            has_more: v.get("has_more").and_then(Value::as_bool).unwrap_or(false),
            items,
        })
    }

    async fn call(&self, body: Option<Value>, path: &str) -> Result<Value, EventsError> {
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self.once(body.as_ref(), path).await;
            match result {
                Err(e)
                    if e.retryable()
                        && attempt < self.cfg.retry.max_attempts
                        && started.elapsed() < self.cfg.retry.deadline =>
                {
                    let retry_after = match &e {
                        EventsError::RateLimited { retry_after } => *retry_after,
                        _ => None,
                    };
                    let wait = self.cfg.retry.delay(attempt, retry_after);
                    tracing::warn!(error = %e, wait_ms = wait.as_millis() as u64, path, "Events API call failed; retrying");
                    tokio::time::sleep(wait).await;
                }
                Err(e) if attempt > 1 && e.retryable() => {
                    return Err(EventsError::RetriesExhausted {
                        attempts: attempt,
                        last: Box::new(e),
                    });
                }
                other => return other,
            }
        }
    }

    async fn once(&self, body: Option<&Value>, path: &str) -> Result<Value, EventsError> {
        let url = format!("{}{path}", self.cfg.base_url);
        let auth = format!("Bearer {}", self.cfg.token.expose_secret());
        let req = match body {
            Some(b) => self.http.post(&url).json(b),
            None => self.http.get(&url),
        }
        .header(header::AUTHORIZATION, auth);
        let resp = req.send().await.map_err(|e| {
            EventsError::Transport(if e.is_timeout() {
                "timed out".into()
            } else {
                // Without the URL: it is ours, and the message stays short.
                e.without_url().to_string()
            })
        })?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| EventsError::Transport(e.without_url().to_string()))?;
        match status {
            s if s.is_success() => serde_json::from_slice(&bytes)
                .map_err(|e| EventsError::InvalidResponse(format!("not JSON: {e}"))),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(EventsError::Unauthorized),
            StatusCode::TOO_MANY_REQUESTS => Err(EventsError::RateLimited { retry_after }),
            s if s.is_server_error() && s != StatusCode::NOT_IMPLEMENTED => {
                Err(EventsError::Server { status: s.as_u16() })
            }
            s => Err(EventsError::BadRequest {
                status: s.as_u16(),
                message: error_message(&bytes),
            }),
        }
    }
}

/// The error's message in either documented shape (`{"Error":{"Message"}}` or
/// `{"status","message"}`), cut short; never the whole body.
fn error_message(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let m = v
        .pointer("/Error/Message")
        .or_else(|| v.get("message"))
        .and_then(Value::as_str)
        .unwrap_or("no message");
    m.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn jwt(claims: &str) -> SecretString {
        let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        SecretString::from(format!(
            "{}.{}.sig",
            b.encode(r#"{"alg":"ES256"}"#),
            b.encode(claims)
        ))
    }

    #[test]
    fn the_host_comes_from_base_url_region_or_the_tokens_audience() {
        let t = jwt(r#"{"aud":["events.1password.ca"]}"#);
        assert_eq!(
            EventsConfig::base_url_for(None, None, &t).unwrap(),
            "https://events.1password.ca"
        );
        assert_eq!(
            EventsConfig::base_url_for(None, Some("eu"), &t).unwrap(),
            "https://events.1password.eu"
        );
        assert_eq!(
            EventsConfig::base_url_for(Some("http://x/"), None, &t).unwrap(),
            "http://x"
        );
        let old = jwt(r#"{"aud":["com.1password.streamingservice"]}"#);
        let e = EventsConfig::base_url_for(None, None, &old).unwrap_err();
        assert!(e.contains("generate a new token"), "{e}");
        assert!(EventsConfig::base_url_for(None, None, &SecretString::from("opaque")).is_err());
    }

    #[test]
    fn debug_output_holds_no_token() {
        let cfg = EventsConfig {
            base_url: "https://events.1password.com".into(),
            token: SecretString::from("very-secret-token"),
            timeout: Duration::from_secs(1),
            retry: RetryPolicy::default(),
        };
        assert!(!format!("{cfg:?}").contains("very-secret"));
    }
}

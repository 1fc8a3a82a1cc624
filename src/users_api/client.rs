use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{Stream, TryStreamExt, stream};
use rand::Rng;
use reqwest::{Method, StatusCode, header};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::error::UsersApiError;
use super::token::TokenCache;
use super::types::{ListUsersResponse, StateFilter, TokenResponse, User};
pub use crate::config::{ApiVersion, ClientAuth};
use crate::config::{ConfigError, RetrySettings, UsersApiSettings, read_secret_file};
use crate::domain::UserId;

// The route set and token authentication are named by the settings (`config`); what they
// mean for URLs lives here, with the client.
impl ApiVersion {
    pub fn default_token_url(self, base: &str) -> String {
        match self {
            Self::V1 => format!("{base}/v1/oauth/token"),
            Self::V1beta1 => format!("{base}/v1beta1/users/oauth2/token"),
        }
    }
    pub fn default_revoke_url(self, base: &str) -> String {
        match self {
            Self::V1 => format!("{base}/v1/oauth/revoke"),
            Self::V1beta1 => format!("{base}/v1beta1/users/oauth2/revoke"),
        }
    }
}

/// Retry schedule for transient failures (429, 5xx, timeouts, transport errors).
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// No attempt starts after this much time since the first.
    pub deadline: Duration,
    /// A `Retry-After` longer than this is clamped.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            deadline: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let mut rng = rand::rng();
        if let Some(ra) = retry_after {
            // Honour the server, clamped, plus up to 10% jitter so waiting clients do not stampede.
            let ra = ra.min(self.max_retry_after);
            let jitter = ra.as_millis() as u64 / 10;
            return ra + Duration::from_millis(rng.random_range(0..=jitter));
        }
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.max_delay);
        // "Equal jitter": half fixed, half random.
        let half = exp.as_millis() as u64 / 2;
        Duration::from_millis(half + rng.random_range(0..=half))
    }
}

impl RetryPolicy {
    pub fn from_settings(s: &RetrySettings) -> Self {
        RetryPolicy {
            max_attempts: s.max_attempts.max(1),
            base_delay: Duration::from_millis(s.base_delay_ms),
            max_delay: Duration::from_millis(s.max_delay_ms),
            deadline: Duration::from_millis(s.deadline_ms),
            max_retry_after: Duration::from_secs(s.max_retry_after_secs),
        }
    }
}

impl ClientConfig {
    /// The client's configuration from its settings, with the secret read from
    /// `client_secret_file` if given.
    pub fn from_settings(settings: &UsersApiSettings) -> Result<Self, ConfigError> {
        let s = settings;
        let base_url = s.base_url.trim_end_matches('/').to_owned();
        let client_secret = match (&s.client_secret, &s.client_secret_file) {
            (Some(s), None) => s.clone(),
            (None, Some(path)) => SecretString::from(read_secret_file(path)?),
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid(
                    "users_api: give client_secret or client_secret_file, not both".into(),
                ));
            }
            (None, None) => {
                return Err(ConfigError::Invalid(
                    "users_api: client_secret or client_secret_file is required".into(),
                ));
            }
        };
        Ok(Self {
            token_url: s
                .token_url
                .clone()
                .unwrap_or_else(|| s.api_version.default_token_url(&base_url)),
            revoke_url: s
                .revoke_url
                .clone()
                .unwrap_or_else(|| s.api_version.default_revoke_url(&base_url)),
            base_url,
            api_version: s.api_version,
            account_id: s.account_id.clone(),
            client_id: s.client_id.clone(),
            client_secret,
            client_auth: s.client_auth,
            timeout: Duration::from_millis(s.timeout_ms),
            retry: RetryPolicy::from_settings(&s.retry),
            token_refresh_margin: Duration::from_secs(s.token_refresh_margin_secs),
            max_in_flight: s.max_in_flight.max(1),
        })
    }
}

/// Everything the client needs, already validated by `config`.
#[derive(Clone)]
pub struct ClientConfig {
    pub base_url: String,
    pub api_version: ApiVersion,
    pub token_url: String,
    pub revoke_url: String,
    pub account_id: String,
    pub client_id: String,
    pub client_secret: SecretString,
    pub client_auth: ClientAuth,
    pub timeout: Duration,
    pub retry: RetryPolicy,
    /// Refresh the token this long before it expires.
    pub token_refresh_margin: Duration,
    /// At most this many Users API requests in flight at once (fewer while the API says to
    /// slow down: `limit`).
    pub max_in_flight: usize,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &self.base_url)
            .field("api_version", &self.api_version)
            .field("token_url", &self.token_url)
            .field("account_id", &self.account_id)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[REDACTED]")
            .field("client_auth", &self.client_auth)
            .finish_non_exhaustive()
    }
}

/// One HTTP exchange with 1Password, for the audit trail. Never holds a token or secret.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ApiCall {
    pub operation: String,
    pub method: String,
    pub path: String,
    pub attempt: u32,
    pub status: Option<u16>,
    pub latency_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Collects the [`ApiCall`]s made on behalf of one piece of work.
#[derive(Default, Debug)]
pub struct CallLog(Mutex<Vec<ApiCall>>);

impl CallLog {
    fn push(&self, call: ApiCall) {
        self.0.lock().expect("call log poisoned").push(call);
    }
    pub fn take(&self) -> Vec<ApiCall> {
        std::mem::take(&mut *self.0.lock().expect("call log poisoned"))
    }
}

/// The Users API client. Cheap to clone; clones share the token cache.
#[derive(Clone)]
pub struct UsersApiClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    limit: super::AdaptiveLimit,
    cfg: ClientConfig,
    token: TokenCache,
    token_requests: std::sync::atomic::AtomicU64,
}

const REQUEST_ID_HEADERS: [&str; 3] = ["x-request-id", "request-id", "x-1password-request-id"];
const MAX_ERROR_BODY: usize = 512;

impl UsersApiClient {
    pub fn new(cfg: ClientConfig) -> Result<Self, UsersApiError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("lockout/", env!("CARGO_PKG_VERSION")))
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| UsersApiError::Transport(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                limit: super::AdaptiveLimit::new(cfg.max_in_flight),
                cfg,
                token: TokenCache::default(),
                token_requests: 0.into(),
            }),
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.cfg
    }

    /// The in-flight limit as it stands: current, bound, in flight, peak, back-offs.
    pub fn in_flight(&self) -> super::LimitSnapshot {
        self.inner.limit.snapshot()
    }

    /// How many token requests this client has sent (for metrics and tests).
    pub fn token_requests(&self) -> u64 {
        self.inner
            .token_requests
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn users_url(&self, suffix: &str) -> String {
        let c = &self.inner.cfg;
        format!(
            "{}/{}/accounts/{}/users{suffix}",
            c.base_url,
            c.api_version.as_str(),
            c.account_id
        )
    }

    pub async fn get_user(&self, id: &UserId, log: &CallLog) -> Result<User, UsersApiError> {
        self.call(
            "get_user",
            Method::GET,
            &self.users_url(&format!("/{id}")),
            &[],
            log,
        )
        .await
    }

    pub async fn suspend_user(&self, id: &UserId, log: &CallLog) -> Result<User, UsersApiError> {
        self.call(
            "suspend_user",
            Method::POST,
            &self.users_url(&format!("/{id}:suspend")),
            &[],
            log,
        )
        .await
    }

    pub async fn reactivate_user(&self, id: &UserId, log: &CallLog) -> Result<User, UsersApiError> {
        self.call(
            "reactivate_user",
            Method::POST,
            &self.users_url(&format!("/{id}:reactivate")),
            &[],
            log,
        )
        .await
    }

    /// One page of users.
    pub async fn list_users_page(
        &self,
        filter: Option<StateFilter>,
        max_page_size: u32,
        page_token: Option<&str>,
        log: &CallLog,
    ) -> Result<ListUsersResponse, UsersApiError> {
        let mut query = vec![("max_page_size", max_page_size.to_string())];
        if let Some(f) = filter {
            query.push(("filter", f.expression().to_owned()));
        }
        if let Some(t) = page_token {
            query.push(("page_token", t.to_owned()));
        }
        self.call("list_users", Method::GET, &self.users_url(""), &query, log)
            .await
    }

    /// Every user, following `next_page_token` until the last page.
    pub fn list_users<'a>(
        &'a self,
        filter: Option<StateFilter>,
        max_page_size: u32,
        log: &'a CallLog,
    ) -> impl Stream<Item = Result<User, UsersApiError>> + 'a {
        // State: None = finished; Some(None) = first page; Some(Some(t)) = page after token t.
        stream::try_unfold(Some(None::<String>), move |state| async move {
            let Some(token) = state else { return Ok(None) };
            let page = self
                .list_users_page(filter, max_page_size, token.as_deref(), log)
                .await?;
            let next = page.next_page_token.filter(|t| !t.is_empty());
            if next.is_some() && next == token {
                return Err(UsersApiError::InvalidResponse(
                    "the API returned the same page token twice".into(),
                ));
            }
            Ok(Some((page.results, next.map(Some))))
        })
        .map_ok(|users| stream::iter(users.into_iter().map(Ok)))
        .try_flatten()
    }

    pub async fn list_all_users(
        &self,
        filter: Option<StateFilter>,
        log: &CallLog,
    ) -> Result<Vec<User>, UsersApiError> {
        self.list_users(filter, 1000, log).try_collect().await
    }

    /// Obtain a token now: a readiness check that the credentials work.
    pub async fn check_credentials(&self, log: &CallLog) -> Result<(), UsersApiError> {
        self.token(log).await.map(|_| ())
    }

    /// Revoke the cached token (on shutdown). Answers Ok when there is none.
    pub async fn revoke_token(&self, log: &CallLog) -> Result<(), UsersApiError> {
        let token = self.inner.token.state.lock().await.current.take();
        let Some(token) = token else { return Ok(()) };
        let form = [("token", token.token.expose_secret().to_owned())];
        let started = Instant::now();
        let cfg = &self.inner.cfg;
        let resp = self
            .authenticated_client_request(&cfg.revoke_url, &form)
            .send()
            .await;
        let (status, error) = match &resp {
            Ok(r) => (Some(r.status().as_u16()), None),
            Err(e) => (None, Some(transport_error(e).to_string())),
        };
        log.push(ApiCall {
            operation: "revoke_token".into(),
            method: "POST".into(),
            path: path_of(&cfg.revoke_url),
            attempt: 1,
            status,
            latency_ms: started.elapsed().as_millis() as u64,
            request_id: resp.as_ref().ok().and_then(request_id),
            error,
        });
        let resp = resp.map_err(|e| transport_error(&e))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            let status = resp.status().as_u16();
            let message = error_message(&resp.text().await.unwrap_or_default());
            Err(UsersApiError::InvalidClient { status, message })
        }
    }

    fn authenticated_client_request(
        &self,
        url: &str,
        form: &[(&str, String)],
    ) -> reqwest::RequestBuilder {
        let cfg = &self.inner.cfg;
        let mut form: Vec<(&str, String)> = form.to_vec();
        let mut req = self.inner.http.post(url);
        match cfg.client_auth {
            ClientAuth::Basic => {
                req = req.header(
                    header::AUTHORIZATION,
                    basic_header(&cfg.client_id, cfg.client_secret.expose_secret()),
                );
            }
            ClientAuth::BasicRfc6749 => {
                req = req.header(
                    header::AUTHORIZATION,
                    basic_header(
                        &form_encode(&cfg.client_id),
                        &form_encode(cfg.client_secret.expose_secret()),
                    ),
                );
            }
            ClientAuth::Post => {
                form.push(("client_id", cfg.client_id.clone()));
                form.push((
                    "client_secret",
                    cfg.client_secret.expose_secret().to_owned(),
                ));
            }
        }
        req.form(&form)
    }

    /// A valid access token: the cached one, or a fresh one (one request in flight at most).
    async fn token(&self, log: &CallLog) -> Result<(u64, Arc<SecretString>), UsersApiError> {
        let mut state = self.inner.token.state.lock().await;
        if let Some(valid) = state.valid() {
            return Ok(valid);
        }
        let cfg = &self.inner.cfg;
        self.inner
            .token_requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let form = [
            ("grant_type", "client_credentials".to_owned()),
            ("scope", "openid".to_owned()),
        ];
        let started = Instant::now();
        let resp = self
            .authenticated_client_request(&cfg.token_url, &form)
            .send()
            .await;
        let mut call = ApiCall {
            operation: "token".into(),
            method: "POST".into(),
            path: path_of(&cfg.token_url),
            attempt: 1,
            status: None,
            latency_ms: 0,
            request_id: None,
            error: None,
        };
        let result = async {
            let resp = resp.map_err(|e| transport_error(&e))?;
            call.status = Some(resp.status().as_u16());
            call.request_id = request_id(&resp);
            let status = resp.status();
            let body = resp.bytes().await.map_err(|e| transport_error(&e))?;
            if status.is_success() {
                let t: TokenResponse = serde_json::from_slice(&body)
                    .map_err(|e| UsersApiError::InvalidResponse(format!("token response: {e}")))?;
                if let Some(tt) = &t.token_type
                    && !tt.eq_ignore_ascii_case("bearer")
                {
                    return Err(UsersApiError::InvalidResponse(format!(
                        "token_type {tt:?} is not Bearer"
                    )));
                }
                return Ok(t);
            }
            let message = error_message(&String::from_utf8_lossy(&body));
            let status = status.as_u16();
            Err(match status {
                400 | 401 | 403 => UsersApiError::InvalidClient { status, message },
                _ => UsersApiError::TokenEndpoint { status, message },
            })
        }
        .await;
        call.latency_ms = started.elapsed().as_millis() as u64;
        call.error = result.as_ref().err().map(|e| e.to_string());
        log.push(call);
        let t = result?;
        let lifetime = Duration::from_secs(t.expires_in.unwrap_or(900).max(1));
        Ok(state.store(
            SecretString::from(t.access_token),
            lifetime,
            cfg.token_refresh_margin,
        ))
    }

    /// One logical operation: retries transient failures, refreshes the token once on a 401.
    async fn call<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        method: Method,
        url: &str,
        query: &[(&str, String)],
        log: &CallLog,
    ) -> Result<T, UsersApiError> {
        let policy = &self.inner.cfg.retry;
        let started = Instant::now();
        let mut attempt = 0u32;
        let mut refreshed_after_401 = false;
        loop {
            attempt += 1;
            let result = match self.token(log).await {
                Ok((generation, token)) => {
                    let r = self
                        .send_once(operation, method.clone(), url, query, &token, attempt, log)
                        .await;
                    if matches!(r, Err(UsersApiError::Unauthorized { .. })) && !refreshed_after_401
                    {
                        // The token may have been revoked or expired early: one fresh token, one retry.
                        refreshed_after_401 = true;
                        self.inner.token.state.lock().await.invalidate(generation);
                        attempt -= 1;
                        continue;
                    }
                    r
                }
                Err(e) => Err(e),
            };
            let err = match result {
                Ok(v) => return Ok(v),
                Err(e) if !e.is_retryable() => return Err(e),
                Err(e) => e,
            };
            let delay = policy.delay(attempt, err.retry_after());
            if attempt >= policy.max_attempts || started.elapsed() + delay > policy.deadline {
                return Err(UsersApiError::RetriesExhausted {
                    attempts: attempt,
                    last: Box::new(err),
                });
            }
            tracing::warn!(operation, attempt, error = %err, delay_ms = delay.as_millis() as u64, "Users API call failed; retrying");
            tokio::time::sleep(delay).await;
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn send_once<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        method: Method,
        url: &str,
        query: &[(&str, String)],
        token: &SecretString,
        attempt: u32,
        log: &CallLog,
    ) -> Result<T, UsersApiError> {
        // A place among the requests in flight, held until the answer is read.
        let _permit = self.inner.limit.acquire().await;
        let started = Instant::now();
        let resp = self
            .inner
            .http
            .request(method.clone(), url)
            .query(query)
            .bearer_auth(token.expose_secret())
            .send()
            .await;
        let mut call = ApiCall {
            operation: operation.into(),
            method: method.to_string(),
            path: path_with_query(url, query),
            attempt,
            status: None,
            latency_ms: 0,
            request_id: None,
            error: None,
        };
        let result = async {
            let resp = resp.map_err(|e| transport_error(&e))?;
            let status = resp.status();
            call.status = Some(status.as_u16());
            call.request_id = request_id(&resp);
            let retry_after = resp
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let body = resp.bytes().await.map_err(|e| transport_error(&e))?;
            if status.is_success() {
                return serde_json::from_slice(&body).map_err(|e| {
                    UsersApiError::InvalidResponse(format!("{operation} response: {e}"))
                });
            }
            let message = error_message(&String::from_utf8_lossy(&body));
            Err(classify(operation, status, message, retry_after))
        }
        .await;
        call.latency_ms = started.elapsed().as_millis() as u64;
        call.error = result.as_ref().err().map(|e| e.to_string());
        log.push(call);
        let signal = match &result {
            Err(UsersApiError::RateLimited { .. })
            | Err(UsersApiError::Server { .. })
            | Err(UsersApiError::Timeout)
            | Err(UsersApiError::Transport(_)) => super::limit::Signal::Overloaded,
            _ => super::limit::Signal::Fine,
        };
        self.inner.limit.record(
            signal,
            result.as_ref().err().and_then(UsersApiError::retry_after),
        );
        result
    }
}

fn classify(
    operation: &str,
    status: StatusCode,
    message: String,
    retry_after: Option<Duration>,
) -> UsersApiError {
    let code = status.as_u16();
    match code {
        401 => UsersApiError::Unauthorized { message },
        403 => {
            let is_state_change = operation == "suspend_user" || operation == "reactivate_user";
            let about_permission = message.contains("permission") || message.contains("scope");
            if is_state_change && !about_permission {
                UsersApiError::CannotActOnUser { message }
            } else {
                UsersApiError::Forbidden { message }
            }
        }
        404 => UsersApiError::NotFound { message },
        429 => UsersApiError::RateLimited {
            retry_after,
            message,
        },
        500..=599 => UsersApiError::Server {
            status: code,
            message,
        },
        _ => UsersApiError::BadRequest {
            status: code,
            message,
        },
    }
}

fn transport_error(e: &reqwest::Error) -> UsersApiError {
    if e.is_timeout() {
        UsersApiError::Timeout
    } else {
        // reqwest's message names the URL, which holds no secret (tokens go in headers).
        UsersApiError::Transport(format!("{e}"))
    }
}

fn request_id(resp: &reqwest::Response) -> Option<String> {
    REQUEST_ID_HEADERS
        .iter()
        .find_map(|h| resp.headers().get(*h))
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(128).collect())
}

/// The most useful message in an error body: `google.rpc.Status.message`, an OAuth
/// `error_description`/`error`, or the raw text, truncated.
pub(crate) fn error_message(body: &str) -> String {
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(body) {
        for key in ["message", "error_description", "error"] {
            if let Some(serde_json::Value::String(s)) = map.get(key)
                && !s.is_empty()
            {
                return s.chars().take(MAX_ERROR_BODY).collect();
            }
        }
    }
    let trimmed = body.trim();
    if trimmed.is_empty() {
        "(empty body)".into()
    } else {
        trimmed.chars().take(MAX_ERROR_BODY).collect()
    }
}

fn basic_header(id: &str, secret: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

fn form_encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn path_of(url: &str) -> String {
    match url.find("://") {
        Some(i) => match url[i + 3..].find('/') {
            Some(j) => url[i + 3 + j..].to_owned(),
            None => "/".into(),
        },
        None => url.to_owned(),
    }
}

fn path_with_query(url: &str, query: &[(&str, String)]) -> String {
    let path = path_of(url);
    if query.is_empty() {
        return path;
    }
    let q: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{k}={}", form_encode(v)))
        .collect();
    format!("{path}?{}", q.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1beta1_defaults_its_token_paths() {
        let s = UsersApiSettings {
            base_url: "https://api.1password.eu/".into(),
            api_version: ApiVersion::V1beta1,
            token_url: None,
            revoke_url: None,
            account_id: "A".into(),
            client_id: "c".into(),
            client_secret: Some(SecretString::from("x")),
            client_secret_file: None,
            client_auth: ClientAuth::Basic,
            timeout_ms: 1,
            retry: RetrySettings::default(),
            token_refresh_margin_secs: 60,
            max_in_flight: 8,
        };
        let c = ClientConfig::from_settings(&s).unwrap();
        assert_eq!(
            c.token_url,
            "https://api.1password.eu/v1beta1/users/oauth2/token"
        );
        assert_eq!(
            c.revoke_url,
            "https://api.1password.eu/v1beta1/users/oauth2/revoke"
        );
    }

    #[test]
    fn rfc6749_basic_form_encodes_first() {
        assert_eq!(form_encode("a+b/c=d e"), "a%2Bb%2Fc%3Dd+e");
        assert_eq!(basic_header("id", "s"), "Basic aWQ6cw==");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            ..RetryPolicy::default()
        };
        for _ in 0..50 {
            let d1 = p.delay(1, None);
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100));
            let d10 = p.delay(10, None);
            assert!(d10 >= Duration::from_millis(500) && d10 <= Duration::from_millis(1000));
            let ra = p.delay(1, Some(Duration::from_secs(1)));
            assert!(ra >= Duration::from_secs(1) && ra <= Duration::from_millis(1100));
            let clamped = p.delay(1, Some(Duration::from_secs(3600)));
            assert!(clamped <= Duration::from_secs(66));
        }
    }

    #[test]
    fn error_messages_prefer_structured_fields() {
        assert_eq!(
            error_message(r#"{"code":7,"message":"no_owner_remain","details":[]}"#),
            "no_owner_remain"
        );
        assert_eq!(
            error_message(r#"{"error":"invalid_client"}"#),
            "invalid_client"
        );
        assert_eq!(error_message(""), "(empty body)");
    }

    #[test]
    fn state_change_403_is_about_the_user_unless_it_names_permissions() {
        let e = classify(
            "suspend_user",
            StatusCode::FORBIDDEN,
            "no_owner_remain".into(),
            None,
        );
        assert!(matches!(e, UsersApiError::CannotActOnUser { .. }));
        let e = classify(
            "suspend_user",
            StatusCode::FORBIDDEN,
            "permission_denied".into(),
            None,
        );
        assert!(matches!(e, UsersApiError::Forbidden { .. }));
        let e = classify("get_user", StatusCode::FORBIDDEN, "x".into(), None);
        assert!(matches!(e, UsersApiError::Forbidden { .. }));
    }

    #[test]
    fn debug_redacts_the_secret() {
        let cfg = ClientConfig {
            base_url: "http://x".into(),
            api_version: ApiVersion::V1,
            token_url: "http://x/t".into(),
            revoke_url: "http://x/r".into(),
            account_id: "A".into(),
            client_id: "id".into(),
            client_secret: SecretString::from("hunter2-very-secret"),
            client_auth: ClientAuth::Basic,
            timeout: Duration::from_secs(1),
            retry: RetryPolicy::default(),
            token_refresh_margin: Duration::from_secs(60),
            max_in_flight: 32,
        };
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }
}

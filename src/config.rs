//! One typed configuration: a YAML file, then `LOCKOUT__SECTION__KEY` environment overrides,
//! validated before anything starts. Secrets are `SecretString` and print as `[REDACTED]`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {message}")]
    File { path: String, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub server: ServerSettings,
    #[serde(default)]
    pub store: StoreSettings,
    /// The 1Password Users API. Absent: the in-process sandbox fake is used.
    #[serde(default)]
    pub users_api: Option<UsersApiSettings>,
    #[serde(default)]
    pub sandbox: SandboxSettings,
    #[serde(default)]
    pub playbooks: PlaybookSettings,
    /// Named alert sources: `POST /v1/alerts/{name}`.
    #[serde(default)]
    pub sources: BTreeMap<String, SourceSettings>,
    #[serde(default)]
    pub worker: WorkerSettings,
    #[serde(default)]
    pub directory: DirectorySettings,
    /// Named outbound webhooks (playbook `notify` steps and service notifications).
    #[serde(default)]
    pub notify: BTreeMap<String, NotifyTarget>,
    /// Which notify targets hear about what.
    #[serde(default)]
    pub notifications: NotificationSettings,
    /// Approver authentication and defaults.
    #[serde(default)]
    pub approvals: ApprovalSettings,
    /// Guards for every playbook and manual action.
    #[serde(default)]
    pub guards: GlobalGuards,
    #[serde(default)]
    pub audit: AuditSettings,
    /// The web console at `/console/`: sign-in, sessions.
    #[serde(default)]
    pub console: ConsoleSettings,
    /// Approvals from Slack's interactive buttons.
    #[serde(default)]
    pub slack: Option<SlackSettings>,
    /// The 1Password Events API: context for approvals, proof after actions, and a direct
    /// source of alerts. In the sandbox, without `base_url`/`token`: the in-process fake.
    #[serde(default)]
    pub events_api: Option<EventsApiSettings>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EventsApiSettings {
    /// The events host, e.g. `https://events.1password.com`; default: from `region`, else the
    /// host named in the token's `aud` claim.
    #[serde(default, serialize_with = "redact::option_url")]
    pub base_url: Option<String>,
    /// `com`, `ent`, `ca` or `eu`.
    #[serde(default)]
    pub region: Option<String>,
    /// The bearer token of an Events Reporting integration (prefer `token_file`).
    #[serde(default, serialize_with = "redact::option")]
    pub token: Option<SecretString>,
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Feeds to poll (default: all three; each needs the token's feature).
    #[serde(default = "default_event_feeds")]
    pub feeds: Vec<String>,
    /// A source of `format: 1password_events` that receives every new event as an alert (the
    /// playbooks' direct source). None: events are kept for context and proof only.
    #[serde(default)]
    pub source: Option<String>,
    /// Pause between polls once a feed is caught up.
    #[serde(default = "default_event_poll")]
    pub poll_interval_secs: u64,
    /// Items per page (1–1000).
    #[serde(default = "default_event_page_limit")]
    pub page_limit: u32,
    /// The first poll (no cursor kept yet) starts this far back.
    #[serde(default = "default_event_lookback")]
    pub start_lookback_secs: u64,
    /// A feed that errors, or brings no event, for this long is unhealthy (`/readyz`, metric,
    /// `notifications.feed_unhealthy`).
    #[serde(default = "default_event_silence")]
    pub silence_alarm_secs: u64,
    /// The user's recent activity frozen into approvals and manual actions: how far back…
    #[serde(default = "default_event_context_window")]
    pub context_window_secs: u64,
    /// …and at most how many events per feed.
    #[serde(default = "default_event_context_max")]
    pub context_max_events: u32,
    /// After a suspend or reactivate, how long lockout waits for 1Password's audit event of it
    /// before recording `action.unverified`.
    #[serde(default = "default_event_verify_window")]
    pub verify_window_secs: u64,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default)]
    pub retry: RetrySettings,
}
fn default_event_feeds() -> Vec<String> {
    vec![
        "signinattempts".into(),
        "itemusages".into(),
        "auditevents".into(),
    ]
}
fn default_event_poll() -> u64 {
    10
}
fn default_event_page_limit() -> u32 {
    1000
}
fn default_event_lookback() -> u64 {
    3600
}
fn default_event_silence() -> u64 {
    3600
}
fn default_event_context_window() -> u64 {
    86400
}
fn default_event_context_max() -> u32 {
    20
}
fn default_event_verify_window() -> u64 {
    600
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSettings {
    /// The URL people reach lockout at (links in notifications, the OIDC redirect URI
    /// `<public_url>/console/auth/callback`). Sessions are `Secure` cookies when it is https.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Key of the session cookies (at least 64 bytes; the same on every replica). Without it,
    /// a random key per start: sessions end at a restart and do not cross replicas.
    #[serde(default)]
    pub session_key_file: Option<PathBuf>,
    /// A session unused this long ends.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_secs: u64,
    /// A session ends this long after sign-in, however active.
    #[serde(default = "default_absolute_timeout")]
    pub absolute_timeout_secs: u64,
    /// Roles that may look (every page) without deciding or acting; approver and analyst
    /// roles may look too.
    #[serde(default = "default_viewer_roles")]
    pub viewer_roles: Vec<String>,
    /// Sign-in with the organisation's OpenID Connect provider (authorization code + PKCE).
    #[serde(default)]
    pub oidc: Option<OidcSettings>,
}
impl Default for ConsoleSettings {
    fn default() -> Self {
        Self {
            public_url: None,
            session_key_file: None,
            idle_timeout_secs: default_idle_timeout(),
            absolute_timeout_secs: default_absolute_timeout(),
            viewer_roles: default_viewer_roles(),
            oidc: None,
        }
    }
}
fn default_idle_timeout() -> u64 {
    30 * 60
}
fn default_absolute_timeout() -> u64 {
    12 * 3600
}
fn default_viewer_roles() -> Vec<String> {
    vec!["viewer".into(), "auditor".into()]
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSettings {
    /// The issuer; its discovery document is at `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    #[serde(default)]
    #[serde(serialize_with = "redact::option")]
    pub client_secret: Option<SecretString>,
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// Scopes asked for beyond `openid`.
    #[serde(default = "default_oidc_scopes")]
    pub scopes: Vec<String>,
    /// The ID token claim holding the person's roles; `approvals.roles_claim` if unset.
    #[serde(default)]
    pub roles_claim: Option<String>,
}
impl OidcSettings {
    pub fn client_secret(&self) -> Result<SecretString, ConfigError> {
        one_secret(
            "console.oidc.client_secret",
            &self.client_secret,
            &self.client_secret_file,
        )
    }
}
fn default_oidc_scopes() -> Vec<String> {
    vec!["email".into(), "profile".into()]
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SlackSettings {
    /// The Slack app's signing secret (Basic Information → App Credentials).
    #[serde(default)]
    #[serde(serialize_with = "redact::option")]
    pub signing_secret: Option<SecretString>,
    #[serde(default)]
    pub signing_secret_file: Option<PathBuf>,
    /// Slack user id → the approver it is, and their roles. Anyone else is refused.
    #[serde(default)]
    pub users: BTreeMap<String, SlackUser>,
    /// Where Slack's `response_url`s must point (the message is updated there).
    #[serde(default = "default_slack_response_prefix")]
    pub response_url_prefix: String,
}
impl SlackSettings {
    pub fn signing_secret(&self) -> Result<SecretString, ConfigError> {
        one_secret(
            "slack.signing_secret",
            &self.signing_secret,
            &self.signing_secret_file,
        )
    }
}
fn default_slack_response_prefix() -> String {
    "https://hooks.slack.com/".into()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SlackUser {
    /// The approver identity (an e-mail, as the IdP's tokens carry it).
    pub identity: String,
    pub roles: Vec<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSettings {
    /// Forward every record (at least once, in order) to a webhook or Splunk HEC.
    #[serde(default)]
    pub forward: Option<AuditForwardSettings>,
    /// Refused alert requests reach the audit aggregated per source and reason, once per
    /// this interval (each is counted in the metrics at once).
    #[serde(default = "default_refusal_interval")]
    pub refusal_interval_secs: u64,
    /// Signed checkpoints of the chain's head, with a key the database never holds: they
    /// reveal a truncated or rewritten tail and a forged retention anchor.
    #[serde(default)]
    pub checkpoint: Option<CheckpointSettings>,
}
impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            forward: None,
            refusal_interval_secs: default_refusal_interval(),
            checkpoint: None,
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointSettings {
    /// The signing key (keep it off the database's host, or at least out of its backups).
    pub key_file: PathBuf,
    /// How often a checkpoint of the head is made (written to the log, and to `file`).
    #[serde(default = "default_checkpoint_interval")]
    pub interval_secs: u64,
    /// Also append each checkpoint, as a JSON line, to this file.
    #[serde(default)]
    pub file: Option<PathBuf>,
}
fn default_checkpoint_interval() -> u64 {
    300
}

fn default_refusal_interval() -> u64 {
    60
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditForwardFormat {
    /// `{"source": "lockout", "records": [...]}`
    #[default]
    Webhook,
    /// Splunk HTTP Event Collector (`Authorization: Splunk <token>`).
    SplunkHec,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuditForwardSettings {
    #[serde(serialize_with = "redact::secret")]
    pub url: SecretString,
    #[serde(default)]
    #[serde(serialize_with = "redact::option")]
    pub token: Option<SecretString>,
    #[serde(default)]
    pub format: AuditForwardFormat,
    #[serde(default = "default_forward_batch")]
    pub batch_size: u32,
    #[serde(default = "default_forward_interval")]
    pub interval_ms: u64,
}
fn default_forward_batch() -> u32 {
    200
}
fn default_forward_interval() -> u64 {
    1000
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyFormat {
    /// `{"text": …, "event": …, …}`
    #[default]
    Generic,
    /// Slack incoming webhook: `{"text": …}`.
    Slack,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyTarget {
    /// The webhook URL (a secret for Slack: it embeds the token).
    #[serde(serialize_with = "redact::option")]
    pub url: Option<SecretString>,
    pub url_file: Option<PathBuf>,
    #[serde(default)]
    pub format: NotifyFormat,
    /// Extra headers (e.g. an Authorization for your chat-ops relay).
    #[serde(default)]
    #[serde(serialize_with = "redact::map")]
    pub headers: BTreeMap<String, SecretString>,
}

impl NotifyTarget {
    pub fn url(&self) -> Result<SecretString, ConfigError> {
        match (&self.url, &self.url_file) {
            (Some(u), None) => Ok(u.clone()),
            (None, Some(p)) => Ok(SecretString::from(read_secret_file(p)?)),
            _ => Err(ConfigError::Invalid(
                "notify target: give url or url_file".into(),
            )),
        }
    }
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationSettings {
    #[serde(default)]
    pub approval_pending: Vec<String>,
    #[serde(default)]
    pub action_failed: Vec<String>,
    #[serde(default)]
    pub limit_tripped: Vec<String>,
    /// An alert naming more users than `guards.max_subjects_per_alert` was held, not planned.
    #[serde(default)]
    pub alert_held: Vec<String>,
    /// A protected account was the subject of an alert (nothing about it was changed).
    #[serde(default)]
    pub protected_subject: Vec<String>,
    /// An Events API feed failed or fell silent (and, later, recovered).
    #[serde(default)]
    pub feed_unhealthy: Vec<String>,
    /// 1Password's audit log never showed a suspension or reactivation lockout made.
    #[serde(default)]
    pub action_unverified: Vec<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalSettings {
    /// HS256 secret for approver tokens (simple setups).
    #[serde(serialize_with = "redact::option")]
    pub hs256_secret: Option<SecretString>,
    pub hs256_secret_file: Option<PathBuf>,
    /// JWKS of an identity provider (RS256/ES256 tokens), cached and refreshed on unknown `kid`.
    #[serde(serialize_with = "redact::option_url")]
    pub jwks_url: Option<String>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    /// Claim holding the approver's roles (a list or a space-separated string).
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// Roles that may request manual suspensions and reactivations.
    #[serde(default = "default_analysts")]
    pub analyst_roles: Vec<String>,
    /// Roles that approve manual actions that ask for approval.
    #[serde(default = "default_approvers")]
    pub manual_approvers: Vec<String>,
    /// Roles that approve actions held back by a blast-radius limit.
    #[serde(default = "default_approvers")]
    pub limit_approvers: Vec<String>,
    /// Expiry of approvals that their playbook does not time.
    #[serde(default = "default_approval_timeout")]
    pub default_timeout_secs: u64,
    /// Roles whose JWTs may use the admin endpoints (reload, limit reset, audit), as a person.
    #[serde(default = "default_admin_roles")]
    pub admin_roles: Vec<String>,
}
fn default_admin_roles() -> Vec<String> {
    vec!["lockout-admin".into()]
}
impl Default for ApprovalSettings {
    fn default() -> Self {
        Self {
            hs256_secret: None,
            hs256_secret_file: None,
            jwks_url: None,
            issuer: None,
            audience: None,
            roles_claim: default_roles_claim(),
            analyst_roles: default_analysts(),
            manual_approvers: default_approvers(),
            limit_approvers: default_approvers(),
            default_timeout_secs: default_approval_timeout(),
            admin_roles: default_admin_roles(),
        }
    }
}
fn default_roles_claim() -> String {
    "roles".into()
}
fn default_analysts() -> Vec<String> {
    vec!["secops".into(), "analyst".into()]
}
fn default_approvers() -> Vec<String> {
    vec!["secops".into()]
}
fn default_approval_timeout() -> u64 {
    3600
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalGuards {
    /// Never acted on, whatever a playbook or analyst asks: e-mails, ids or `*@domain`.
    #[serde(default)]
    pub protected: Vec<String>,
    /// At most `max` suspensions per `per_secs` across the service; past it, suspensions wait
    /// for approval until an admin resets the limit or the window passes.
    #[serde(default)]
    pub global_limit: Option<GlobalLimit>,
    /// An alert naming more users than this is stored and held for a human (one
    /// notification, `notifications.alert_held`) instead of planned: one request cannot queue
    /// thousands of actions ahead of everyone else's.
    #[serde(default = "default_max_subjects")]
    pub max_subjects_per_alert: usize,
    /// 1Password identities (uuid or e-mail; never a display name, which a user could take)
    /// of lockout's own OAuth application: alerts about their actions never trigger a
    /// remediation.
    #[serde(default)]
    pub self_actors: Vec<String>,
    /// The longest a suppression may last (a reason and an expiry are always required).
    #[serde(default = "default_max_suppression")]
    pub max_suppression_secs: u64,
}
fn default_max_suppression() -> u64 {
    7 * 86400
}

impl Default for GlobalGuards {
    fn default() -> Self {
        Self {
            protected: vec![],
            global_limit: None,
            max_subjects_per_alert: default_max_subjects(),
            max_suppression_secs: default_max_suppression(),
            self_actors: vec![],
        }
    }
}
fn default_max_subjects() -> usize {
    25
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalLimit {
    pub max: u32,
    pub per_secs: u64,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Address the HTTP API listens on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Largest accepted request body, in bytes.
    #[serde(default = "default_body_limit")]
    pub body_limit_bytes: usize,
    /// An alert body not received in full within this is answered 408.
    #[serde(default = "default_body_timeout")]
    pub body_timeout_ms: u64,
    /// A connection that has not sent its request head within this is closed.
    #[serde(default = "default_header_timeout")]
    pub header_timeout_ms: u64,
    /// Bytes of alert bodies held, across requests, before their sender is authenticated
    /// (HMAC sources sign the body, so it is read first). Past it: 503 with Retry-After.
    #[serde(default = "default_unauthenticated_budget")]
    pub unauthenticated_body_budget_bytes: usize,
    /// Worker threads of the HTTP server (0: one per core).
    #[serde(default)]
    pub http_workers: usize,
    /// Bearer token for admin routes (audit, reload); `admin_tokens` holds more for rotation.
    #[serde(default)]
    #[serde(serialize_with = "redact::option")]
    pub admin_token: Option<SecretString>,
    #[serde(default)]
    #[serde(serialize_with = "redact::list")]
    pub admin_tokens: Vec<SecretString>,
    /// Admin tokens by name: the audit says which one acted (`admin:<name>`). The unnamed
    /// ones above are named `admin-token` and `admin-tokens-<n>`. People use approver-style
    /// JWTs with a role in `approvals.admin_roles` instead, and are named in the audit.
    #[serde(default)]
    #[serde(serialize_with = "redact::map")]
    pub named_admin_tokens: BTreeMap<String, SecretString>,
    /// Identifies this replica in claims and logs (default: hostname-pid).
    #[serde(default)]
    pub instance_name: Option<String>,
}

impl ServerSettings {
    pub fn admin_tokens(&self) -> Vec<SecretString> {
        self.named_admin_tokens()
            .into_iter()
            .map(|(_, t)| t)
            .collect()
    }

    /// Every admin token with its name, empty ones dropped.
    pub fn named_admin_tokens(&self) -> Vec<(String, SecretString)> {
        let mut all: Vec<(String, SecretString)> = self
            .named_admin_tokens
            .iter()
            .map(|(n, t)| (n.clone(), t.clone()))
            .collect();
        all.extend(
            self.admin_tokens
                .iter()
                .enumerate()
                .map(|(i, t)| (format!("admin-tokens-{}", i + 1), t.clone())),
        );
        all.extend(
            self.admin_token
                .clone()
                .map(|t| ("admin-token".to_owned(), t)),
        );
        all.retain(|(_, t)| !t.expose_secret().is_empty());
        all
    }
}
impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            body_limit_bytes: default_body_limit(),
            body_timeout_ms: default_body_timeout(),
            header_timeout_ms: default_header_timeout(),
            unauthenticated_body_budget_bytes: default_unauthenticated_budget(),
            http_workers: 0,
            admin_token: None,
            admin_tokens: vec![],
            named_admin_tokens: BTreeMap::new(),
            instance_name: None,
        }
    }
}
fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_body_limit() -> usize {
    1024 * 1024
}
fn default_body_timeout() -> u64 {
    10_000
}
fn default_header_timeout() -> u64 {
    5_000
}
fn default_unauthenticated_budget() -> usize {
    32 * 1024 * 1024
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// `sqlite://PATH` (embedded default).
    #[serde(default = "default_store_url", serialize_with = "redact::url")]
    pub url: String,
}
/// The URL may hold a database password: shown without it.
impl std::fmt::Debug for StoreSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreSettings")
            .field("url", &redact::userinfo(&self.url))
            .finish()
    }
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            url: default_store_url(),
        }
    }
}
fn default_store_url() -> String {
    "sqlite://lockout.db".into()
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UsersApiSettings {
    /// Region base URL, e.g. `https://api.1password.com`.
    #[serde(serialize_with = "redact::url")]
    pub base_url: String,
    #[serde(default)]
    pub api_version: ApiVersion,
    #[serde(serialize_with = "redact::option_url")]
    pub token_url: Option<String>,
    #[serde(serialize_with = "redact::option_url")]
    pub revoke_url: Option<String>,
    pub account_id: String,
    pub client_id: String,
    #[serde(serialize_with = "redact::option")]
    pub client_secret: Option<SecretString>,
    pub client_secret_file: Option<PathBuf>,
    #[serde(default)]
    pub client_auth: ClientAuth,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default)]
    pub retry: RetrySettings,
    #[serde(default = "default_refresh_margin")]
    pub token_refresh_margin_secs: u64,
    /// At most this many requests in flight at once; fewer while 1Password answers 429 or 5xx.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
}
fn default_max_in_flight() -> usize {
    32
}
fn default_timeout_ms() -> u64 {
    10_000
}
fn default_refresh_margin() -> u64 {
    60
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySettings {
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    #[serde(default = "default_base_delay")]
    pub base_delay_ms: u64,
    #[serde(default = "default_max_delay")]
    pub max_delay_ms: u64,
    #[serde(default = "default_deadline")]
    pub deadline_ms: u64,
    #[serde(default = "default_max_retry_after")]
    pub max_retry_after_secs: u64,
}
impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            max_attempts: default_attempts(),
            base_delay_ms: default_base_delay(),
            max_delay_ms: default_max_delay(),
            deadline_ms: default_deadline(),
            max_retry_after_secs: default_max_retry_after(),
        }
    }
}
fn default_attempts() -> u32 {
    5
}
fn default_base_delay() -> u64 {
    200
}
fn default_max_delay() -> u64 {
    10_000
}
fn default_deadline() -> u64 {
    60_000
}
fn default_max_retry_after() -> u64 {
    60
}

/// Route set of the Users API: `v1` (GA, the default) or `v1beta1` (public preview).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiVersion {
    #[default]
    V1,
    V1beta1,
}

impl ApiVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "v1",
            Self::V1beta1 => "v1beta1",
        }
    }
}

/// How the Users API client authenticates to the token endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// HTTP Basic over plain `id:secret`, as 1Password's documentation shows it.
    #[default]
    Basic,
    /// HTTP Basic with id and secret form-urlencoded first (RFC 6749 §2.3.1).
    BasicRfc6749,
    /// `client_id` and `client_secret` in the form body.
    Post,
}

/// A secret given inline or in a file (exactly one of them).
fn one_secret(
    key: &str,
    inline: &Option<SecretString>,
    file: &Option<PathBuf>,
) -> Result<SecretString, ConfigError> {
    let secret = match (inline, file) {
        (Some(s), None) => s.clone(),
        (None, Some(p)) => SecretString::from(read_secret_file(p)?),
        (Some(_), Some(_)) => {
            return Err(ConfigError::Invalid(format!(
                "{key}: give {key} or {key}_file, not both"
            )));
        }
        (None, None) => {
            return Err(ConfigError::Invalid(format!(
                "{key} or {key}_file is required"
            )));
        }
    };
    if secret.expose_secret().trim().is_empty() {
        return Err(ConfigError::Invalid(format!("{key} is empty")));
    }
    Ok(secret)
}

pub fn read_secret_file(path: &Path) -> Result<String, ConfigError> {
    let secret = std::fs::read_to_string(path)
        .map(|s| s.trim_end_matches(['\r', '\n']).to_owned())
        .map_err(|e| {
            ConfigError::Invalid(format!("cannot read secret file {}: {e}", path.display()))
        })?;
    if secret.trim().is_empty() {
        return Err(ConfigError::Invalid(format!(
            "secret file {} is empty",
            path.display()
        )));
    }
    Ok(secret)
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxSettings {
    /// JSON or YAML list of users for the in-process fake (default: built-in sample users).
    pub users_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PlaybookSettings {
    #[serde(default = "default_playbook_dir")]
    pub dir: PathBuf,
}
impl Default for PlaybookSettings {
    fn default() -> Self {
        Self {
            dir: default_playbook_dir(),
        }
    }
}
fn default_playbook_dir() -> PathBuf {
    "playbooks".into()
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSettings {
    /// How payloads are read: generic, splunk, datadog, elastic, sentinel, alertmanager,
    /// grafana, panther or sumologic (parsed by `alerts`).
    #[serde(default = "default_source_format")]
    pub format: String,
    pub auth: SourceAuth,
    /// JSON pointers that say where the fields of the canonical alert sit, by field name.
    #[serde(default)]
    pub mappings: BTreeMap<String, String>,
    /// Re-deliveries within this window are duplicates.
    #[serde(default = "default_dedup_window")]
    pub dedup_window_secs: u64,
    /// Severity for alerts whose payload carries none (e.g. Splunk's webhook).
    #[serde(default)]
    pub default_severity: Option<String>,
}
fn default_source_format() -> String {
    "generic".into()
}
fn default_dedup_window() -> u64 {
    24 * 3600
}

/// How a source authenticates its requests. `none` must be written out explicitly.
#[derive(Debug, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceAuth {
    /// `Authorization: Bearer <token>`; several tokens allow rotation.
    Bearer {
        #[serde(default)]
        #[serde(serialize_with = "redact::option")]
        token: Option<SecretString>,
        #[serde(default)]
        #[serde(serialize_with = "redact::list")]
        tokens: Vec<SecretString>,
        #[serde(default)]
        token_file: Option<PathBuf>,
    },
    /// HTTP Basic; several passwords allow rotation.
    Basic {
        username: String,
        #[serde(default)]
        #[serde(serialize_with = "redact::option")]
        password: Option<SecretString>,
        #[serde(default)]
        #[serde(serialize_with = "redact::list")]
        passwords: Vec<SecretString>,
    },
    /// An HMAC of the body (and optionally a timestamp) in a header.
    Hmac {
        /// Header carrying the signature, e.g. `X-Grafana-Alerting-Signature`.
        header: String,
        #[serde(default)]
        #[serde(serialize_with = "redact::option")]
        secret: Option<SecretString>,
        #[serde(default)]
        #[serde(serialize_with = "redact::list")]
        secrets: Vec<SecretString>,
        #[serde(default)]
        secret_file: Option<PathBuf>,
        #[serde(default)]
        algorithm: HmacAlgorithm,
        #[serde(default)]
        encoding: HmacEncoding,
        /// Text before the signature, e.g. `sha256=` or `v1=`.
        #[serde(default)]
        prefix: String,
        /// Header with the Unix time the sender signed at; signed as `<ts>:<body>`.
        #[serde(default)]
        timestamp_header: Option<String>,
        /// How far the timestamp may be from now (replay window).
        #[serde(default = "default_tolerance")]
        tolerance_secs: u64,
    },
    /// No authentication. Must be written out; logged as a warning at start.
    None,
}

fn default_tolerance() -> u64 {
    300
}

/// The hash of a source's HMAC signature.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HmacAlgorithm {
    #[default]
    Sha256,
    Sha1,
}

/// How a source writes its HMAC signature in the header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HmacEncoding {
    #[default]
    Hex,
    Base64,
}

impl SourceAuth {
    pub fn bearer_tokens(&self) -> Result<Vec<SecretString>, ConfigError> {
        match self {
            Self::Bearer {
                token,
                tokens,
                token_file,
            } => {
                let mut all: Vec<SecretString> = tokens.clone();
                all.extend(token.clone());
                if let Some(p) = token_file {
                    all.push(SecretString::from(read_secret_file(p)?));
                }
                all.retain(|t| !t.expose_secret().is_empty());
                Ok(all)
            }
            _ => Ok(vec![]),
        }
    }

    /// The secrets of a `basic` or `hmac` source, empty ones dropped.
    pub fn secrets(&self) -> Result<Vec<SecretString>, ConfigError> {
        let mut all = match self {
            Self::Bearer { .. } => return self.bearer_tokens(),
            Self::Basic {
                password,
                passwords,
                ..
            } => {
                let mut all = passwords.clone();
                all.extend(password.clone());
                all
            }
            Self::Hmac {
                secret,
                secrets,
                secret_file,
                ..
            } => {
                let mut all = secrets.clone();
                all.extend(secret.clone());
                if let Some(p) = secret_file {
                    all.push(SecretString::from(read_secret_file(p)?));
                }
                all
            }
            Self::None => vec![],
        };
        all.retain(|t| !t.expose_secret().is_empty());
        Ok(all)
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    /// Concurrent action workers in this process.
    #[serde(default = "default_workers")]
    pub concurrency: usize,
    /// How often an idle worker looks for ready actions.
    #[serde(default = "default_poll")]
    pub poll_interval_ms: u64,
    /// A claim is a lease of this long, renewed every third of it while the action runs: a
    /// claimed action whose worker died is taken again within this.
    #[serde(default = "default_claim_ttl")]
    pub claim_ttl_secs: u64,
    /// Transient failures are retried until the action is this old, then it fails.
    #[serde(default = "default_action_deadline")]
    pub action_deadline_secs: u64,
    /// Delay before an action that failed transiently is tried again.
    #[serde(default = "default_requeue")]
    pub requeue_delay_ms: u64,
    /// How often approvals are expired and escalated.
    #[serde(default = "default_scheduler_tick")]
    pub scheduler_interval_ms: u64,
    /// TEST ONLY: abort the process at `after_claim`, `after_call` or `before_commit`, as a
    /// crash would. Logged loudly when set.
    #[serde(default)]
    pub danger_failpoint: Option<String>,
}
fn default_scheduler_tick() -> u64 {
    1000
}
impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            concurrency: default_workers(),
            poll_interval_ms: default_poll(),
            claim_ttl_secs: default_claim_ttl(),
            action_deadline_secs: default_action_deadline(),
            requeue_delay_ms: default_requeue(),
            scheduler_interval_ms: default_scheduler_tick(),
            danger_failpoint: None,
        }
    }
}
fn default_workers() -> usize {
    32
}
fn default_poll() -> u64 {
    250
}
fn default_claim_ttl() -> u64 {
    15
}
fn default_action_deadline() -> u64 {
    3600
}
fn default_requeue() -> u64 {
    2000
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DirectorySettings {
    /// The e-mail directory is re-paged when older than this.
    #[serde(default = "default_dir_ttl")]
    pub ttl_secs: u64,
    /// On a miss, re-page at most this often.
    #[serde(default = "default_miss_refresh")]
    pub miss_refresh_secs: u64,
}
impl Default for DirectorySettings {
    fn default() -> Self {
        Self {
            ttl_secs: default_dir_ttl(),
            miss_refresh_secs: default_miss_refresh(),
        }
    }
}
fn default_dir_ttl() -> u64 {
    300
}
fn default_miss_refresh() -> u64 {
    30
}

/// Where the settings came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOrigin {
    File(PathBuf),
    /// No file: the embedded sandbox defaults.
    Defaults,
    /// No file, and `users_api` from `LOCKOUT__…` variables: live, with no sandbox default.
    Environment,
}

impl std::fmt::Display for ConfigOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(p) => write!(f, "{}", p.display()),
            Self::Defaults => f.write_str("the embedded sandbox defaults"),
            Self::Environment => f.write_str("LOCKOUT__ environment variables"),
        }
    }
}

/// Which 1Password lockout acts on, and why: printed by `config check` and logged by `serve`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Sandbox { why: String },
    Live { why: String },
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sandbox { why } => write!(f, "sandbox ({why})"),
            Self::Live { why } => write!(f, "live ({why})"),
        }
    }
}

pub const SANDBOX_SOURCE_TOKEN: &str = "sandbox-token";
pub const SANDBOX_ADMIN_TOKEN: &str = "sandbox-admin";
pub const SANDBOX_APPROVER_SECRET: &str = "sandbox-approver-signing-secret";

/// The top-level sections: a variable `LOCKOUT_<SECTION>…` with one underscore is a typo for
/// `LOCKOUT__<SECTION>…`, which the loader would otherwise ignore without a word.
const SECTIONS: [&str; 13] = [
    "server",
    "store",
    "users_api",
    "sandbox",
    "playbooks",
    "sources",
    "worker",
    "directory",
    "notify",
    "notifications",
    "approvals",
    "guards",
    "audit",
];

/// Environment variables that look like settings but would be ignored: refused by name.
fn misspelt_variables(vars: impl Iterator<Item = String>) -> Vec<String> {
    let mut bad: Vec<String> = vars
        .filter(|k| {
            let Some(rest) = k.strip_prefix("LOCKOUT_") else {
                return false;
            };
            if rest.starts_with('_') {
                return false;
            }
            let rest = rest.to_ascii_lowercase();
            SECTIONS.iter().any(|s| {
                rest.strip_prefix(s)
                    .is_some_and(|after| after.is_empty() || after.starts_with('_'))
            })
        })
        .collect();
    bad.sort();
    bad
}

/// Keys whose value is a list, settable from the environment as comma-separated text.
const LIST_KEYS: [&str; 17] = [
    "events_api.feeds",
    "approvals.admin_roles",
    "notifications.protected_subject",
    "console.viewer_roles",
    "console.oidc.scopes",
    "server.admin_tokens",
    "guards.protected",
    "guards.self_actors",
    "approvals.analyst_roles",
    "approvals.manual_approvers",
    "approvals.limit_approvers",
    "notifications.approval_pending",
    "notifications.action_failed",
    "notifications.limit_tripped",
    "notifications.alert_held",
    "notifications.feed_unhealthy",
    "notifications.action_unverified",
];

/// `a.client_secret` for `a.client_secret_file` and back: the key an environment value
/// replaces beside its own, so that a secret set from the environment wins over the file's.
fn secret_twin(key: &str) -> Option<String> {
    const SECRETS: [&str; 5] = ["client_secret", "hs256_secret", "url", "token", "secret"];
    let (parent, leaf) = key.rsplit_once('.')?;
    if let Some(base) = leaf.strip_suffix("_file") {
        return SECRETS.contains(&base).then(|| format!("{parent}.{base}"));
    }
    SECRETS
        .contains(&leaf)
        .then(|| format!("{parent}.{leaf}_file"))
}

impl Settings {
    /// Load from `path` (or `./lockout.yaml` when present), then apply `LOCKOUT__…`
    /// environment overrides, then validate. With no file and no `users_api` from the
    /// environment, the embedded sandbox defaults sit below the environment; with `users_api`
    /// from the environment, nothing of the sandbox is used (live mode never holds a sandbox
    /// credential).
    pub fn load(path: Option<&Path>) -> Result<(Self, ConfigOrigin), ConfigError> {
        Self::load_with_env(path, std::env::vars().collect())
    }

    /// `load` with the environment given (tests).
    pub fn load_with_env(
        path: Option<&Path>,
        env: std::collections::HashMap<String, String>,
    ) -> Result<(Self, ConfigOrigin), ConfigError> {
        let misspelt = misspelt_variables(env.keys().cloned());
        if !misspelt.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "environment variable(s) {} look like settings but have one underscore after LOCKOUT; write LOCKOUT__SECTION__KEY (e.g. LOCKOUT__USERS_API__BASE_URL)",
                misspelt.join(", ")
            )));
        }
        let chosen = match path {
            Some(p) => {
                if !p.exists() {
                    return Err(ConfigError::File {
                        path: p.display().to_string(),
                        message: "no such file".into(),
                    });
                }
                Some(p.to_owned())
            }
            None => Some(PathBuf::from("lockout.yaml")).filter(|p| p.exists()),
        };
        let file_name = chosen
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "(embedded defaults)".into());
        let file_error = |e: config::ConfigError| ConfigError::File {
            path: file_name.clone(),
            message: e.to_string(),
        };
        // `LOCKOUT__A__B` → `a.b`. Values stay text (a secret of digits is not a number);
        // list keys split on commas; a secret given here replaces the file's `…_file` twin.
        let from_env: Vec<(String, String)> = env
            .iter()
            .filter_map(|(k, v)| {
                let key = k.strip_prefix("LOCKOUT__")?.to_ascii_lowercase();
                Some((key.replace("__", "."), v.clone()))
            })
            .collect();
        let file_only = {
            let mut b = config::Config::builder();
            if let Some(p) = &chosen {
                b = b.add_source(config::File::from(p.as_path()).format(config::FileFormat::Yaml));
            }
            b.build().map_err(file_error)?
        };
        let build = |defaults: Option<&str>| {
            let mut builder = config::Config::builder();
            if let Some(d) = defaults {
                builder = builder.add_source(config::File::from_str(d, config::FileFormat::Yaml));
            }
            if let Some(p) = &chosen {
                builder = builder
                    .add_source(config::File::from(p.as_path()).format(config::FileFormat::Yaml));
            }
            for (key, value) in &from_env {
                builder = if LIST_KEYS.contains(&key.as_str()) {
                    let items: Vec<String> = value
                        .split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect();
                    builder.set_override(key.as_str(), items)?
                } else {
                    builder.set_override(key.as_str(), value.as_str())?
                };
                if let Some(twin) = secret_twin(key)
                    && file_only.get::<config::Value>(&twin).is_ok()
                {
                    builder =
                        builder.set_override(twin, config::Value::from(config::ValueKind::Nil))?;
                }
            }
            builder.build()
        };
        let raw = build(None).map_err(file_error)?;
        let users_api = raw.get::<config::Value>("users_api").ok();
        if let Some(v) = &users_api {
            let empty = match &v.kind {
                config::ValueKind::Nil => true,
                config::ValueKind::Table(t) => t.is_empty(),
                _ => false,
            };
            if empty {
                return Err(ConfigError::Invalid(
                    "users_api is present but empty (every key commented out?): give base_url, account_id, client_id and client_secret_file to go live, or remove the section for the sandbox".into(),
                ));
            }
        }
        let (config, origin) = match (&chosen, &users_api) {
            (Some(p), _) => (raw, ConfigOrigin::File(p.clone())),
            (None, Some(_)) => (raw, ConfigOrigin::Environment),
            (None, None) => (
                build(Some(SANDBOX_DEFAULTS)).map_err(file_error)?,
                ConfigOrigin::Defaults,
            ),
        };
        let settings: Settings = config.try_deserialize().map_err(file_error)?;
        settings.validate()?;
        Ok((settings, origin))
    }

    /// Which mode these settings run in, and why, for `config check` and the start-up log.
    pub fn mode(&self, origin: &ConfigOrigin) -> Mode {
        match (&self.users_api, origin) {
            (Some(_), ConfigOrigin::Environment) => Mode::Live {
                why: "users_api from LOCKOUT__USERS_API__* variables, no config file".into(),
            },
            (Some(_), ConfigOrigin::File(p)) => Mode::Live {
                why: format!("users_api configured in {}", p.display()),
            },
            (Some(_), ConfigOrigin::Defaults) => Mode::Live {
                why: "users_api configured".into(),
            },
            (None, ConfigOrigin::File(p)) => Mode::Sandbox {
                why: format!("{} has no users_api section", p.display()),
            },
            (None, _) => Mode::Sandbox {
                why: "no config file (./lockout.yaml or --config) and no LOCKOUT__USERS_API__* variables".into(),
            },
        }
    }

    /// Live mode holds no sandbox credential and no missing one: each refusal names its key.
    fn validate_live(&self) -> Result<(), ConfigError> {
        let sandbox_value = |key: &str| {
            ConfigError::Invalid(format!(
                "{key} holds the sandbox's published credential; live mode (users_api configured) needs a secret of your own"
            ))
        };
        let admin = self.server.admin_tokens();
        if admin.is_empty() {
            return Err(ConfigError::Invalid(
                "server.admin_token is required in live mode (users_api configured)".into(),
            ));
        }
        if admin
            .iter()
            .any(|t| t.expose_secret() == SANDBOX_ADMIN_TOKEN)
        {
            return Err(sandbox_value("server.admin_token"));
        }
        let hs256 = match (
            &self.approvals.hs256_secret,
            &self.approvals.hs256_secret_file,
        ) {
            (Some(s), _) => Some(s.expose_secret().to_owned()),
            (None, Some(p)) => Some(read_secret_file(p)?),
            (None, None) => None,
        };
        if hs256.as_deref() == Some(SANDBOX_APPROVER_SECRET) {
            return Err(sandbox_value("approvals.hs256_secret"));
        }
        if hs256.is_none() && self.approvals.jwks_url.is_none() {
            return Err(ConfigError::Invalid(
                "approvals.hs256_secret_file or approvals.jwks_url is required in live mode: without one, nobody can approve, suspend by hand or list approvals".into(),
            ));
        }
        for (name, source) in &self.sources {
            if source
                .auth
                .secrets()?
                .iter()
                .any(|s| s.expose_secret() == SANDBOX_SOURCE_TOKEN)
            {
                return Err(sandbox_value(&format!("sources.{name}.auth")));
            }
        }
        Ok(())
    }

    /// Checks across fields, after deserialising.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let url = &self.store.url;
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres:")
            || url.starts_with("postgresql:"))
        {
            return Err(ConfigError::Invalid(format!(
                "store.url must start with sqlite:// or postgres:// (got {:?})",
                self.store.url.split('@').next_back().unwrap_or_default()
            )));
        }
        if let Some(api) = &self.users_api {
            self.validate_live()?;
            if !(api.base_url.starts_with("https://") || api.base_url.starts_with("http://")) {
                return Err(ConfigError::Invalid(format!(
                    "users_api.base_url must be an http(s) URL, got {:?}",
                    api.base_url
                )));
            }
            if api.account_id.trim().is_empty() || api.client_id.trim().is_empty() {
                return Err(ConfigError::Invalid(
                    "users_api.account_id and users_api.client_id are required".into(),
                ));
            }
        }
        for (name, target) in &self.notify {
            let url = target.url()?;
            if !(url.expose_secret().starts_with("https://")
                || url.expose_secret().starts_with("http://"))
            {
                return Err(ConfigError::Invalid(format!(
                    "notify.{name}.url must be an http(s) URL"
                )));
            }
        }
        let n = &self.notifications;
        for name in n
            .approval_pending
            .iter()
            .chain(&n.action_failed)
            .chain(&n.limit_tripped)
            .chain(&n.alert_held)
            .chain(&n.protected_subject)
        {
            if !self.notify.contains_key(name) {
                return Err(ConfigError::Invalid(format!(
                    "notifications: unknown notify target {name:?}"
                )));
            }
        }
        if let Some(p) = &self.approvals.hs256_secret_file {
            read_secret_file(p)?;
        }
        if let (Some(_), Some(_)) = (
            &self.approvals.hs256_secret,
            &self.approvals.hs256_secret_file,
        ) {
            return Err(ConfigError::Invalid(
                "approvals: give hs256_secret or hs256_secret_file, not both".into(),
            ));
        }
        self.validate_console()?;
        for (name, source) in &self.sources {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(ConfigError::Invalid(format!(
                    "source name {name:?} may only use letters, digits, '-' and '_'"
                )));
            }
            if !matches!(source.auth, SourceAuth::None) && source.auth.secrets()?.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "sources.{name}.auth: at least one token, password or secret is required"
                )));
            }
        }
        Ok(())
    }

    fn validate_console(&self) -> Result<(), ConfigError> {
        let c = &self.console;
        if let Some(url) = &c.public_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(ConfigError::Invalid(format!(
                "console.public_url must be an http(s) URL, got {url:?}"
            )));
        }
        if c.idle_timeout_secs == 0 || c.absolute_timeout_secs < c.idle_timeout_secs {
            return Err(ConfigError::Invalid(
                "console: idle_timeout_secs must be positive and at most absolute_timeout_secs"
                    .into(),
            ));
        }
        if let Some(p) = &c.session_key_file
            && read_secret_file(p)?.len() < 64
        {
            return Err(ConfigError::Invalid(
                "console.session_key_file: the key must be at least 64 bytes".into(),
            ));
        }
        if let Some(o) = &c.oidc {
            o.client_secret()?;
            let Some(url) = &c.public_url else {
                return Err(ConfigError::Invalid(
                    "console.oidc needs console.public_url (the redirect URI is <public_url>/console/auth/callback)".into(),
                ));
            };
            let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
                .iter()
                .any(|p| url.starts_with(p));
            if !url.starts_with("https://") && !loopback {
                return Err(ConfigError::Invalid(
                    "console.public_url must be https with OIDC sign-in (session cookies are Secure); plain http only on loopback".into(),
                ));
            }
            if !(o.issuer.starts_with("https://") || o.issuer.starts_with("http://")) {
                return Err(ConfigError::Invalid(
                    "console.oidc.issuer must be an http(s) URL".into(),
                ));
            }
        }
        if let Some(slack) = &self.slack {
            slack.signing_secret()?;
        }
        Ok(())
    }

    pub fn is_sandbox(&self) -> bool {
        self.users_api.is_none()
    }
}

/// What `lockout serve` runs on with no config file: SQLite in `./lockout.db`, `./playbooks`,
/// the in-process fake Users API, one `generic` source with a well-known sandbox token, and a
/// well-known admin token. Loudly labelled as a sandbox; never for a real account.
pub const SANDBOX_DEFAULTS: &str = r#"
server:
  admin_token: "sandbox-admin"
approvals:
  hs256_secret: "sandbox-approver-signing-secret"
store:
  url: "sqlite://lockout.db"
playbooks:
  dir: playbooks
sources:
  generic:
    format: generic
    auth:
      type: bearer
      token: "sandbox-token"
  onepassword:
    format: 1password_events
    auth:
      type: bearer
      token: "sandbox-token"
events_api:
  source: onepassword
  poll_interval_secs: 2
guards:
  self_actors: ["LOCKOUTSANDBOXINTEGRAT2345"]
"#;

/// A URL as it may be shown: its password (and secret-named query parameters) redacted.
pub fn redact_url(url: &str) -> String {
    redact::userinfo(url)
}

/// How `config check` prints secrets and URLs: never a secret, never a URL's password.
mod redact {
    use std::collections::BTreeMap;

    use secrecy::SecretString;
    use serde::Serializer;

    const REDACTED: &str = "[REDACTED]";

    pub fn secret<S: Serializer>(_: &SecretString, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
    pub fn option<S: Serializer>(v: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(_) => s.serialize_str(REDACTED),
            None => s.serialize_none(),
        }
    }
    pub fn list<S: Serializer>(v: &[SecretString], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|_| REDACTED))
    }
    pub fn map<S: Serializer>(v: &BTreeMap<String, SecretString>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(v.keys().map(|k| (k, REDACTED)))
    }
    pub fn url<S: Serializer>(v: &str, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&userinfo(v))
    }
    pub fn option_url<S: Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(u) => s.serialize_str(&userinfo(u)),
            None => s.serialize_none(),
        }
    }

    /// `scheme://user:password@host/…` → `scheme://user:[REDACTED]@host/…`; query parameters
    /// named like secrets are redacted too.
    pub fn userinfo(url: &str) -> String {
        let Some((scheme, rest)) = url.split_once("://") else {
            return url.to_owned();
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let authority = match authority.rsplit_once('@') {
            Some((info, host)) => match info.split_once(':') {
                Some((user, _)) => format!("{user}:{REDACTED}@{host}"),
                None => format!("{info}@{host}"),
            },
            None => authority.to_owned(),
        };
        let path = match path.split_once('?') {
            Some((p, query)) => {
                let query: Vec<String> = query
                    .split('&')
                    .map(|kv| match kv.split_once('=') {
                        Some((k, _))
                            if ["password", "pass", "secret", "token", "key", "sslpassword"]
                                .iter()
                                .any(|n| k.eq_ignore_ascii_case(n)) =>
                        {
                            format!("{k}={REDACTED}")
                        }
                        _ => kv.to_owned(),
                    })
                    .collect();
                format!("{p}?{}", query.join("&"))
            }
            None => path.to_owned(),
        };
        format!("{scheme}://{authority}{path}")
    }

    #[cfg(test)]
    #[test]
    fn passwords_in_urls_are_redacted() {
        assert_eq!(
            userinfo(
                "postgres://lockout:s3cret@db.internal:5432/lockout?sslmode=require&password=x"
            ),
            "postgres://lockout:[REDACTED]@db.internal:5432/lockout?sslmode=require&password=[REDACTED]"
        );
        assert_eq!(userinfo("sqlite://lockout.db"), "sqlite://lockout.db");
        assert_eq!(
            userinfo("https://api.1password.com"),
            "https://api.1password.com"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_secrets() {
        let settings: Settings = config::Config::builder()
            .add_source(config::File::from_str(
                r#"
users_api:
  base_url: https://api.1password.com
  account_id: ACC
  client_id: cid
  client_secret: "s3cr3t-value"
server: { admin_token: "adm-value" }
approvals: { hs256_secret: "jwt-value" }
sources:
  s:
    auth: { type: bearer, token: "tok-value" }
"#,
                config::FileFormat::Yaml,
            ))
            .build()
            .unwrap()
            .try_deserialize()
            .unwrap();
        let printed = format!("{settings:?}");
        assert!(!printed.contains("s3cr3t-value"), "{printed}");
        assert!(!printed.contains("tok-value"), "{printed}");
        assert!(!printed.contains("adm-value"), "{printed}");
        assert!(!printed.contains("jwt-value"), "{printed}");
        settings.validate().unwrap();
    }

    /// Every key path of a serialised value (`a`, `a.b`, …), map keys of user-named entries
    /// (sources, notify targets) left out.
    fn keys(v: &serde_json::Value, prefix: &str, out: &mut std::collections::BTreeSet<String>) {
        if let serde_json::Value::Object(m) = v {
            for (k, child) in m {
                let named = ["sources", "notify", "headers"]
                    .contains(&prefix.rsplit('.').next().unwrap_or(""));
                let path = if named { prefix.to_owned() } else { k.clone() };
                if !named {
                    out.insert(k.clone());
                }
                keys(child, &path, out);
            }
        }
    }

    #[test]
    fn the_example_config_shows_the_defaults_and_documents_every_key() {
        let example = include_str!("../lockout.example.yaml");
        // Its active lines are real keys (deny_unknown_fields everywhere) with the defaults.
        let settings: Settings = config::Config::builder()
            .add_source(config::File::from_str(example, config::FileFormat::Yaml))
            .build()
            .unwrap()
            .try_deserialize()
            .unwrap();
        settings.validate().unwrap();
        assert!(settings.is_sandbox(), "the example turns nothing on");
        assert_eq!(
            serde_json::to_value(&settings).unwrap(),
            serde_json::to_value(Settings::default()).unwrap(),
            "the example's active lines are the defaults"
        );
        // Every key, including those of optional sections and each auth type, is documented
        // (active or in a commented example).
        let maximal: Settings = config::Config::builder()
            .add_source(config::File::from_str(
                r#"
users_api: { base_url: "https://api.1password.com", account_id: A, client_id: c, client_secret: s }
sources:
  a: { auth: { type: bearer, token: t } }
  b: { auth: { type: basic, username: u, password: p } }
  c: { auth: { type: hmac, header: X-Sig, secret: s } }
  d: { auth: { type: none } }
notify: { n: { url: "https://example.com/hook" } }
guards: { global_limit: { max: 1, per_secs: 1 } }
audit:
  forward: { url: "https://example.com/audit" }
  checkpoint: { key_file: /k }
events_api: { token: t }
"#,
                config::FileFormat::Yaml,
            ))
            .build()
            .unwrap()
            .try_deserialize()
            .unwrap();
        let mut all = std::collections::BTreeSet::new();
        keys(&serde_json::to_value(&maximal).unwrap(), "", &mut all);
        let missing: Vec<&String> = all
            .iter()
            .filter(|k| !example.contains(&format!("{k}:")) && k.as_str() != "type")
            .collect();
        assert!(all.len() > 80, "{all:?}");
        assert!(missing.is_empty(), "undocumented keys: {missing:?}");
        for auth in ["type: bearer", "type: basic", "type: hmac", "type: none"] {
            assert!(example.contains(auth), "{auth} is not shown");
        }
    }

    fn env(pairs: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const LIVE_API: [(&str, &str); 4] = [
        ("LOCKOUT__USERS_API__BASE_URL", "https://api.1password.com"),
        ("LOCKOUT__USERS_API__ACCOUNT_ID", "ACC"),
        ("LOCKOUT__USERS_API__CLIENT_ID", "cid"),
        ("LOCKOUT__USERS_API__CLIENT_SECRET", "0001"),
    ];

    fn load_err(path: Option<&Path>, pairs: &[(&str, &str)]) -> String {
        Settings::load_with_env(path, env(pairs))
            .expect_err("refused")
            .to_string()
    }

    #[test]
    fn live_from_the_environment_holds_no_sandbox_credential() {
        let mut pairs = LIVE_API.to_vec();
        pairs.push(("LOCKOUT__SERVER__ADMIN_TOKEN", "mine-admin"));
        pairs.push(("LOCKOUT__APPROVALS__HS256_SECRET", "mine-approver-secret"));
        let (s, origin) = Settings::load_with_env(None, env(&pairs)).unwrap();
        assert_eq!(origin, ConfigOrigin::Environment);
        assert!(matches!(s.mode(&origin), Mode::Live { .. }));
        assert!(s.sources.is_empty(), "no sandbox source in live mode");
        let admin: Vec<String> = s
            .server
            .admin_tokens()
            .iter()
            .map(|t| t.expose_secret().to_owned())
            .collect();
        assert_eq!(admin, ["mine-admin"]);
        assert_eq!(
            s.approvals.hs256_secret.as_ref().unwrap().expose_secret(),
            "mine-approver-secret"
        );
        // A secret of digits stays text.
        assert_eq!(
            s.users_api.unwrap().client_secret.unwrap().expose_secret(),
            "0001"
        );
    }

    #[test]
    fn live_mode_with_missing_or_sandbox_credentials_refuses_naming_the_key() {
        let e = load_err(None, &LIVE_API);
        assert!(e.contains("server.admin_token is required"), "{e}");
        let mut pairs = LIVE_API.to_vec();
        pairs.push(("LOCKOUT__SERVER__ADMIN_TOKEN", "mine"));
        let e = load_err(None, &pairs);
        assert!(
            e.contains("approvals.hs256_secret_file or approvals.jwks_url"),
            "{e}"
        );
        pairs.push(("LOCKOUT__APPROVALS__HS256_SECRET", SANDBOX_APPROVER_SECRET));
        let e = load_err(None, &pairs);
        assert!(
            e.contains("approvals.hs256_secret holds the sandbox"),
            "{e}"
        );
        let mut pairs = LIVE_API.to_vec();
        pairs.push(("LOCKOUT__SERVER__ADMIN_TOKEN", SANDBOX_ADMIN_TOKEN));
        pairs.push(("LOCKOUT__APPROVALS__HS256_SECRET", "x"));
        let e = load_err(None, &pairs);
        assert!(e.contains("server.admin_token holds the sandbox"), "{e}");
        let mut pairs = LIVE_API.to_vec();
        pairs.push(("LOCKOUT__SERVER__ADMIN_TOKEN", "a"));
        pairs.push(("LOCKOUT__APPROVALS__HS256_SECRET", "x"));
        pairs.push(("LOCKOUT__SOURCES__SIEM__AUTH__TYPE", "bearer"));
        pairs.push(("LOCKOUT__SOURCES__SIEM__AUTH__TOKEN", SANDBOX_SOURCE_TOKEN));
        let e = load_err(None, &pairs);
        assert!(e.contains("sources.siem.auth holds the sandbox"), "{e}");
    }

    #[test]
    fn the_sandbox_is_never_chosen_silently() {
        // A single underscore after the prefix is refused by name, not ignored.
        let e = load_err(
            None,
            &[("LOCKOUT_USERS_API__BASE_URL", "https://api.1password.com")],
        );
        assert!(e.contains("LOCKOUT_USERS_API__BASE_URL"), "{e}");
        // Unrelated variables with that prefix are fine.
        let (s, origin) =
            Settings::load_with_env(None, env(&[("LOCKOUT_LOG_FORMAT", "json")])).unwrap();
        assert!(matches!(s.mode(&origin), Mode::Sandbox { .. }));
        // A users_api section with every key commented out.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lockout.yaml");
        std::fs::write(
            &path,
            "users_api:\n#  base_url: https://api.1password.com\n",
        )
        .unwrap();
        let e = load_err(Some(&path), &[]);
        assert!(e.contains("users_api is present but empty"), "{e}");
        std::fs::write(&path, "users_api: {}\n").unwrap();
        let e = load_err(Some(&path), &[]);
        assert!(e.contains("users_api is present but empty"), "{e}");
    }

    #[test]
    fn the_environment_sets_lists_and_replaces_the_files_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lockout.yaml");
        std::fs::write(
            &path,
            "server: {admin_token: a}\napprovals: {hs256_secret: h}\nusers_api:\n  base_url: https://api.1password.com\n  account_id: A\n  client_id: c\n  client_secret_file: /nonexistent/secret\n",
        )
        .unwrap();
        let (s, _) = Settings::load_with_env(
            Some(&path),
            env(&[
                ("LOCKOUT__USERS_API__CLIENT_SECRET", "from-env"),
                (
                    "LOCKOUT__GUARDS__PROTECTED",
                    "a@example.com, *@corp.example",
                ),
            ]),
        )
        .unwrap();
        let api = s.users_api.unwrap();
        assert!(api.client_secret_file.is_none());
        assert_eq!(api.client_secret.unwrap().expose_secret(), "from-env");
        assert_eq!(s.guards.protected, ["a@example.com", "*@corp.example"]);
    }
}

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::domain::UserId;
use crate::users_api::{User, UserState};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    GetUser,
    ListUsers,
    SuspendUser,
    ReactivateUser,
}

impl Permission {
    pub const ALL: [Permission; 4] = [
        Self::GetUser,
        Self::ListUsers,
        Self::SuspendUser,
        Self::ReactivateUser,
    ];
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Admin,
    #[default]
    Member,
}

/// How the token endpoint reads the Basic credentials. 1Password documents plain
/// `id:secret`; RFC 6749 servers form-decode both halves. `Either` accepts both readings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BasicDecoding {
    Raw,
    Rfc6749,
    #[default]
    Either,
}

/// An OAuth application registered in the fake account.
#[derive(Clone)]
pub struct FakeClient {
    pub client_id: String,
    pub client_secret: String,
    pub permissions: HashSet<Permission>,
}

impl FakeClient {
    pub fn new(id: &str, secret: &str) -> Self {
        Self {
            client_id: id.into(),
            client_secret: secret.into(),
            permissions: Permission::ALL.into_iter().collect(),
        }
    }
}

/// A user of the fake account, with the parts the API does not expose.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeedUser {
    pub id: UserId,
    pub email: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default = "active")]
    pub state: UserState,
    #[serde(default = "default_create_time")]
    pub create_time: String,
    #[serde(default)]
    pub role: Role,
    #[serde(default)]
    pub externally_managed: bool,
}

fn active() -> UserState {
    UserState::Active
}
fn default_create_time() -> String {
    "2024-01-15T10:30:00Z".into()
}

impl SeedUser {
    pub fn new(id: &str, email: &str, name: &str) -> Self {
        Self {
            id: UserId::parse(id).expect("seed ids are valid"),
            email: email.into(),
            display_name: name.into(),
            state: UserState::Active,
            create_time: default_create_time(),
            role: Role::Member,
            externally_managed: false,
        }
    }
    pub fn role(mut self, role: Role) -> Self {
        self.role = role;
        self
    }

    /// Reads a JSON or YAML list of users.
    pub fn load_file(path: &Path) -> Result<Vec<SeedUser>, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let is_json = path.extension().is_some_and(|e| e == "json");
        if is_json {
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
        } else {
            serde_saphyr::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
        }
    }

    /// `n` generated members with valid ids, for paging tests.
    pub fn generated(n: usize) -> Vec<SeedUser> {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        (0..n)
            .map(|i| {
                let mut id = String::from("GEN");
                let mut x = i as u64 * 2654435761 + 12345;
                while id.len() < 26 {
                    id.push(ALPHABET[(x % 32) as usize] as char);
                    x /= 32;
                    x = x * 31 + 7;
                }
                SeedUser::new(
                    &id,
                    &format!("user{i:04}@example.com"),
                    &format!("User {i}"),
                )
            })
            .collect()
    }
}

/// The built-in sample account of sandbox mode.
pub fn sample_users() -> Vec<SeedUser> {
    vec![
        SeedUser::new(
            "IR7VJHJ36JHINBFAD7V2T5MP3E",
            "wendy_appleseed@agilebits.com",
            "Wendy Appleseed",
        )
        .role(Role::Owner),
        SeedUser::new(
            "A3K7MZQ2XJRVHBKWH7WLSPU4TE",
            "alice@example.com",
            "Alice Appleseed",
        ),
        SeedUser::new(
            "B4L2NQR3YKSWJCLXJ2XMTQV5UF",
            "bob@example.com",
            "Bob Builder",
        ),
        SeedUser::new(
            "C5M3PRS4ZLTXKDMYK3YNURW6VG",
            "carol@example.com",
            "Carol Admin",
        )
        .role(Role::Admin),
        SeedUser::new(
            "D6N4QST5AMUYLENZL4ZOVSX7WH",
            "dave@example.com",
            "Dave Departing",
        ),
        SeedUser {
            externally_managed: true,
            ..SeedUser::new(
                "E7O5RTU6BNVZMFOAM5APWTY2XI",
                "erin@example.com",
                "Erin Externally-Managed",
            )
            .role(Role::Admin)
        },
        SeedUser::new(
            "F2P6SUV7COWANGPBN6BQXUZ3YJ",
            "breakglass@example.com",
            "Break Glass",
        ),
        SeedUser {
            state: UserState::Suspended,
            ..SeedUser::new(
                "G3Q7TVW2DPXBOHQCO7CRYVA4ZK",
                "mallory@example.com",
                "Mallory Suspended",
            )
        },
    ]
}

pub struct FakeConfig {
    pub account_id: String,
    pub clients: Vec<FakeClient>,
    pub users: Vec<SeedUser>,
    pub token_lifetime: Duration,
    pub basic_decoding: BasicDecoding,
    /// 1Password requires `client_secret_basic`; `client_secret_post` is refused unless this is set.
    pub allow_client_secret_post: bool,
    /// Serve a newer schema than the contract: every user gains fields the contract does not
    /// name (a client must keep them, not fail). Users seeded with a state the contract does
    /// not name are served with it either way.
    pub newer_schema: bool,
    /// Events API bearer tokens and the features each may read.
    pub events_tokens: Vec<(String, Vec<crate::events_api::Feed>)>,
    /// Serve Events API items with fields and enum values the contract does not name.
    pub events_newer_schema: bool,
    /// The actor of the audit events recorded for suspensions and reactivations (lockout's
    /// integration, as 1Password names it).
    pub events_actor: String,
    /// Whether suspensions and reactivations appear in the audit-event feed (off: a tenant
    /// whose audit log lost them, for proof-after-action tests).
    pub events_record_changes: bool,
    /// Called with the user after every state change, before the answer, so that the
    /// sandbox's users can be kept (in the store): the CLI and a restarted service then see
    /// what the service did.
    pub keeper: Option<Keeper>,
}

/// Keeps a changed user somewhere that outlives this process.
pub type Keeper = Arc<dyn Fn(SeedUser) -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

impl FakeConfig {
    pub const SANDBOX_ACCOUNT: &'static str = "SANDBOXACCOUNT7ZQ2XJRVHBKWH";
    pub const SANDBOX_CLIENT_ID: &'static str = "sandbox-client";
    pub const SANDBOX_CLIENT_SECRET: &'static str = "sandbox-secret";
    pub const SANDBOX_EVENTS_TOKEN: &'static str = "sandbox-events-token";
    /// lockout's OAuth integration as the fake's audit events name it.
    pub const SANDBOX_ACTOR: &'static str = "LOCKOUTSANDBOXINTEGRAT2345";

    pub fn sandbox(users: Vec<SeedUser>) -> Self {
        Self {
            account_id: Self::SANDBOX_ACCOUNT.into(),
            clients: vec![FakeClient::new(
                Self::SANDBOX_CLIENT_ID,
                Self::SANDBOX_CLIENT_SECRET,
            )],
            users,
            token_lifetime: Duration::from_secs(900),
            basic_decoding: BasicDecoding::Either,
            allow_client_secret_post: false,
            newer_schema: false,
            events_tokens: vec![(
                Self::SANDBOX_EVENTS_TOKEN.into(),
                crate::events_api::Feed::ALL.to_vec(),
            )],
            events_newer_schema: false,
            events_actor: Self::SANDBOX_ACTOR.into(),
            events_record_changes: true,
            keeper: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    pub body: String,
}

pub(crate) struct IssuedToken {
    pub client_id: String,
    pub expires_at: Instant,
    pub revoked: bool,
}

#[derive(Default)]
pub(crate) struct Faults {
    pub latency: Duration,
    /// Up to this much more, at random, per request.
    pub jitter: Duration,
    /// A tenant's rate limit: at most this many Users API requests per second, then 429 with
    /// `Retry-After` (the window's count and start beside it).
    pub rate_per_sec: Option<u32>,
    pub rate_window: Option<(Instant, u32)>,
    pub rate_limit_remaining: u32,
    pub rate_limit_retry_after: Option<u64>,
    pub fail_remaining: u32,
    pub fail_status: u16,
    pub error_rate: f64,
    pub token_endpoint_down: bool,
    pub provisioning_managed: bool,
}

pub(crate) struct FakeState {
    pub cfg: FakeConfig,
    pub users: Vec<SeedUser>,
    pub tokens: HashMap<String, IssuedToken>,
    pub requests: Vec<RecordedRequest>,
    pub faults: Faults,
    pub page_key: [u8; 32],
    pub events: super::events::EventLog,
    /// Users API requests being answered now, and the most at once.
    pub in_flight: usize,
    pub peak_in_flight: usize,
    /// Successful `:suspend`/`:reactivate` answers per path (a change made twice shows).
    pub changes_ok: HashMap<String, u32>,
    /// When each path first had a successful answer (for latency benchmarks).
    pub first_ok_at: HashMap<String, Instant>,
}

/// Control and inspection of a running fake, shared with its server.
#[derive(Clone)]
pub struct FakeHandle(pub(crate) Arc<Mutex<FakeState>>);

impl FakeHandle {
    pub(crate) fn new(mut cfg: FakeConfig) -> Self {
        let users = std::mem::take(&mut cfg.users);
        Self(Arc::new(Mutex::new(FakeState {
            cfg,
            users,
            tokens: HashMap::new(),
            requests: Vec::new(),
            faults: Faults::default(),
            page_key: rand::random(),
            events: Default::default(),
            in_flight: 0,
            peak_in_flight: 0,
            changes_ok: HashMap::new(),
            first_ok_at: HashMap::new(),
        })))
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn account_id(&self) -> String {
        self.lock().cfg.account_id.clone()
    }
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }
    pub fn clear_requests(&self) {
        self.lock().requests.clear();
    }
    /// Requests whose path ends with `suffix` (e.g. `"/users/ID:suspend"`), any method.
    pub fn requests_to(&self, suffix: &str) -> Vec<RecordedRequest> {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.path.ends_with(suffix))
            .cloned()
            .collect()
    }
    pub fn token_requests(&self) -> usize {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.path.ends_with("/token"))
            .count()
    }
    /// Whether `token` was issued by the token endpoint (to any client).
    pub fn issued(&self, token: &str) -> bool {
        self.lock().tokens.contains_key(token)
    }
    pub fn user(&self, id: &str) -> Option<User> {
        let state = self.lock();
        state
            .users
            .iter()
            .find(|u| u.id.as_str() == id)
            .map(|u| state.view(u))
    }
    /// Every user with its current state, as the fake holds them (to keep and restore).
    pub fn seed_users(&self) -> Vec<SeedUser> {
        self.lock().users.clone()
    }
    pub fn set_user_state(&self, id: &str, to: UserState) {
        if let Some(u) = self.lock().users.iter_mut().find(|u| u.id.as_str() == id) {
            u.state = to;
        }
    }
    pub fn add_users(&self, users: Vec<SeedUser>) {
        self.lock().users.extend(users);
    }
    pub fn set_latency(&self, latency: Duration) {
        self.lock().faults.latency = latency;
    }
    /// Each Users API request takes `latency` plus up to `jitter` more, at random.
    pub fn set_latency_jitter(&self, latency: Duration, jitter: Duration) {
        let mut s = self.lock();
        s.faults.latency = latency;
        s.faults.jitter = jitter;
    }
    /// At most `per_sec` Users API requests per second; past it, 429 with `Retry-After: 1`.
    pub fn set_rate_limit(&self, per_sec: Option<u32>) {
        let mut s = self.lock();
        s.faults.rate_per_sec = per_sec;
        s.faults.rate_window = None;
    }
    /// The most Users API requests answered at once so far; and now.
    pub fn peak_in_flight(&self) -> usize {
        self.lock().peak_in_flight
    }
    pub fn reset_peak_in_flight(&self) {
        let mut s = self.lock();
        s.peak_in_flight = s.in_flight;
    }
    /// How many times a change (`…/users/{id}:suspend`) was answered 200.
    pub fn changes_ok(&self, path_suffix: &str) -> u32 {
        self.lock()
            .changes_ok
            .iter()
            .filter(|(p, _)| p.ends_with(path_suffix))
            .map(|(_, n)| n)
            .sum()
    }
    /// When each changed path was first answered 200.
    pub fn first_ok_at(&self) -> HashMap<String, Instant> {
        self.lock().first_ok_at.clone()
    }
    /// The next `n` Users API requests answer 429, with `Retry-After` when given.
    pub fn rate_limit_next(&self, n: u32, retry_after_secs: Option<u64>) {
        let mut s = self.lock();
        s.faults.rate_limit_remaining = n;
        s.faults.rate_limit_retry_after = retry_after_secs;
    }
    /// The next `n` Users API requests answer `status` (a 5xx).
    pub fn fail_next(&self, n: u32, status: u16) {
        let mut s = self.lock();
        s.faults.fail_remaining = n;
        s.faults.fail_status = status;
    }
    /// A share (0.0–1.0) of Users API requests answer 500.
    pub fn set_error_rate(&self, rate: f64) {
        self.lock().faults.error_rate = rate;
    }
    pub fn set_token_endpoint_down(&self, down: bool) {
        self.lock().faults.token_endpoint_down = down;
    }
    /// Refuse state changes as an account with automated (SCIM) provisioning might.
    pub fn set_provisioning_managed(&self, on: bool) {
        self.lock().faults.provisioning_managed = on;
    }
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.lock().cfg.token_lifetime = lifetime;
    }
    /// Make every issued token expired now.
    pub fn expire_tokens(&self) {
        let now = Instant::now();
        for t in self.lock().tokens.values_mut() {
            t.expires_at = now;
        }
    }
    /// Revoke every issued token (as an admin rotating the app would).
    pub fn revoke_tokens(&self) {
        for t in self.lock().tokens.values_mut() {
            t.revoked = true;
        }
    }
    pub fn set_permissions(&self, client_id: &str, permissions: &[Permission]) {
        if let Some(c) = self
            .lock()
            .cfg
            .clients
            .iter_mut()
            .find(|c| c.client_id == client_id)
        {
            c.permissions = permissions.iter().copied().collect();
        }
    }
}

impl FakeState {
    pub fn view(&self, u: &SeedUser) -> User {
        User {
            id: u.id.clone(),
            email: u.email.clone(),
            display_name: u.display_name.clone(),
            state: u.state.clone(),
            create_time: u.create_time.clone(),
            path: format!("accounts/{}/users/{}", self.cfg.account_id, u.id),
            unknown: if self.cfg.newer_schema {
                serde_json::json!({
                    "type": "GUEST_PLUS",
                    "mfa": {"enrolled": true, "methods": ["PASSKEY"]},
                    "last_auth_time": "2026-12-01T08:00:00Z",
                })
                .as_object()
                .cloned()
                .unwrap_or_default()
            } else {
                Default::default()
            },
        }
    }
}

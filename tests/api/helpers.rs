use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lockout::audit::AuditRecord;
use lockout::config::Settings;
use lockout::context::AppContext;
use lockout::sandbox::{FakeClient, FakeConfig, FakeHandle, RunningFake, SeedUser, sample_users};
use lockout::startup::{Application, StartupError};
use lockout::users_api::{ApiVersion, ClientAuth, ClientConfig, RetryPolicy, UsersApiClient};
use secrecy::SecretString;
use serde_json::Value;

pub const CLIENT_ID: &str = "test-client";
pub const CLIENT_SECRET: &str = "test-secret";
pub const SOURCE_TOKEN: &str = "test-source-token";
pub const ADMIN_TOKEN: &str = "test-admin-token";
pub const JWT_SECRET: &str = "test-jwt-secret-0123456789";

/// An approver/analyst token as the configured IdP would issue it.
pub fn token(subject: &str, roles: &[&str]) -> String {
    let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
    lockout::approvals::issue_hs256(
        JWT_SECRET,
        subject,
        &roles,
        std::time::Duration::from_secs(600),
        Some("lockout-tests"),
        Some("lockout"),
    )
}
pub const ALICE: &str = "A3K7MZQ2XJRVHBKWH7WLSPU4TE";
pub const WENDY_OWNER: &str = "IR7VJHJ36JHINBFAD7V2T5MP3E";
pub const ERIN_EAM: &str = "E7O5RTU6BNVZMFOAM5APWTY2XI";

/// The fake every test talks to. With `LOCKOUT_TEST_FAKE_SCHEMA=newer` (a second CI pass of
/// the client suite) it serves a newer schema than the contract: unknown fields on every user.
pub fn fake_config(users: Vec<SeedUser>) -> FakeConfig {
    FakeConfig {
        clients: vec![FakeClient::new(CLIENT_ID, CLIENT_SECRET)],
        newer_schema: std::env::var("LOCKOUT_TEST_FAKE_SCHEMA").as_deref() == Ok("newer"),
        events_newer_schema: std::env::var("LOCKOUT_TEST_FAKE_SCHEMA").as_deref() == Ok("newer"),
        ..FakeConfig::sandbox(users)
    }
}

pub fn start_fake(cfg: FakeConfig) -> RunningFake {
    lockout::sandbox::start(cfg, TcpListener::bind("127.0.0.1:0").unwrap()).unwrap()
}

/// Fast retry schedule so tests spend milliseconds, not seconds, backing off.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        deadline: Duration::from_secs(10),
        max_retry_after: Duration::from_secs(5),
    }
}

pub fn client_for(fake: &RunningFake, secret: &str, auth: ClientAuth) -> UsersApiClient {
    UsersApiClient::new(ClientConfig {
        base_url: fake.base_url.clone(),
        api_version: ApiVersion::V1,
        token_url: ApiVersion::V1.default_token_url(&fake.base_url),
        revoke_url: ApiVersion::V1.default_revoke_url(&fake.base_url),
        account_id: fake.handle.account_id(),
        client_id: CLIENT_ID.into(),
        client_secret: SecretString::from(secret),
        client_auth: auth,
        timeout: Duration::from_secs(5),
        retry: fast_retry(),
        token_refresh_margin: Duration::from_secs(0),
        max_in_flight: 32,
    })
    .unwrap()
}

pub const BRUTE_FORCE_PLAYBOOK: &str = r#"
name: suspend-on-brute-force
on:
  status: firing
  when: "alert.severity in ['high', 'critical'] && alert.title.contains('brute')"
guards:
  protected: [breakglass@example.com]
steps:
  - suspend: {}
"#;

pub struct TestApp {
    pub address: String,
    pub stop: actix_web::dev::ServerHandle,
    pub running: tokio::task::JoinHandle<std::io::Result<()>>,
    pub fake: RunningFake,
    pub ctx: Arc<AppContext>,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

pub struct AppOptions {
    pub playbooks: Vec<(&'static str, String)>,
    pub client_secret: String,
    pub extra_yaml: String,
    /// More entries under `sources:` (indented two spaces).
    pub extra_sources: String,
    /// More keys under `approvals:` (indented two spaces).
    pub extra_approvals: String,
    /// More keys under `server:` (indented two spaces).
    pub extra_server: String,
    pub users: Vec<SeedUser>,
    /// `server.listen` (a random port unless a test needs to know it first).
    pub listen: String,
}

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            playbooks: vec![("brute-force.yaml", BRUTE_FORCE_PLAYBOOK.into())],
            client_secret: CLIENT_SECRET.into(),
            extra_yaml: String::new(),
            extra_sources: String::new(),
            extra_approvals: String::new(),
            extra_server: String::new(),
            users: sample_users(),
            listen: "127.0.0.1:0".into(),
        }
    }
}

/// Which store the integration suite runs on: SQLite (default) or, with
/// `LOCKOUT_TEST_STORE=postgres`, a fresh PostgreSQL database per test on the server at
/// `LOCKOUT_TEST_DATABASE_URL` (default `postgres://root@127.0.0.1:5432/test`).
pub fn test_store_url(dir: &std::path::Path) -> String {
    if std::env::var("LOCKOUT_TEST_STORE").as_deref() == Ok("postgres") {
        fresh_pg_database()
    } else {
        format!("sqlite://{}", dir.join("lockout.db").display())
    }
}

pub fn pg_base_url() -> String {
    std::env::var("LOCKOUT_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".into())
}

/// A test's PostgreSQL database, dropped when the test's thread ends (libtest runs each test
/// on a thread of its own, and runs its thread-locals' destructors when the test ends, passed
/// or failed). `WITH (FORCE)` ends the connections the test's app still holds.
struct PgDatabase(String);

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .arg(pg_base_url())
            .args([
                "-q",
                "-c",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.0),
            ])
            .output();
    }
}

thread_local! {
    static TEST_DATABASES: std::cell::RefCell<Vec<PgDatabase>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Creates an empty database for one test and returns its URL. It is dropped when the test
/// ends.
pub fn fresh_pg_database() -> String {
    let base = pg_base_url();
    let name = format!("lockout_t_{}", uuid::Uuid::now_v7().simple());
    TEST_DATABASES.with(|d| d.borrow_mut().push(PgDatabase(name.clone())));
    let out = std::process::Command::new("psql")
        .arg(&base)
        .args(["-q", "-c", &format!("CREATE DATABASE {name}")])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "CREATE DATABASE failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (head, _) = base.rsplit_once('/').expect("a database URL");
    format!("{head}/{name}")
}

/// Whether a PostgreSQL server answers (for tests that need one).
pub fn postgres_available() -> bool {
    std::process::Command::new("psql")
        .arg(pg_base_url())
        .args(["-q", "-c", "SELECT 1"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// `what` cannot run here, for `reason`: in CI (where `.ci/run` installs and starts everything
/// the tests need, and sets `CI`) that fails the test; elsewhere it says what was skipped.
pub fn skip_outside_ci(what: &str, reason: &str) {
    assert!(
        std::env::var("CI").is_err(),
        "{what} cannot run in CI: {reason}"
    );
    // Straight to the process's stderr: libtest captures only the print macros, so this line
    // shows in the normal output, not only with --nocapture.
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {what}: {reason}");
}

/// Whether a test can run its PostgreSQL part: true when a server answers; otherwise
/// `skip_outside_ci`.
pub fn postgres_or_skip(what: &str) -> bool {
    if postgres_available() {
        return true;
    }
    skip_outside_ci(what, &format!("no PostgreSQL server at {}", pg_base_url()));
    false
}

/// The store a test app used, opened from its config (SQLite or PostgreSQL alike).
pub async fn store_of(dir: &std::path::Path) -> lockout::store::SqlStore {
    let settings = Settings::load(Some(&dir.join("lockout.yaml"))).unwrap().0;
    lockout::store::SqlStore::connect(&settings.store.url)
        .await
        .unwrap()
}

/// Writes a config file and loads it with the real loader, as `lockout serve` would.
pub fn write_settings(dir: &std::path::Path, fake: &RunningFake, opts: &AppOptions) -> Settings {
    let playbook_dir = dir.join("playbooks");
    std::fs::create_dir_all(&playbook_dir).unwrap();
    for (name, text) in &opts.playbooks {
        std::fs::write(playbook_dir.join(name), text).unwrap();
    }
    let yaml = format!(
        r#"
server:
  listen: "{listen}"
  admin_token: "{ADMIN_TOKEN}"
  http_workers: 2
{extra_server}
store:
  url: "{db}"
playbooks:
  dir: "{playbooks}"
users_api:
  base_url: "{base}"
  account_id: "{account}"
  client_id: "{CLIENT_ID}"
  client_secret: "{secret}"
  token_refresh_margin_secs: 0
  retry: {{ max_attempts: 4, base_delay_ms: 10, max_delay_ms: 50, deadline_ms: 10000, max_retry_after_secs: 5 }}
sources:
  generic:
    format: generic
    auth: {{ type: bearer, token: "{SOURCE_TOKEN}" }}
{extra_sources}
worker:
  concurrency: 2
  poll_interval_ms: 50
  requeue_delay_ms: 50
  action_deadline_secs: 30
  scheduler_interval_ms: 100
approvals:
  hs256_secret: "{JWT_SECRET}"
  issuer: lockout-tests
  audience: lockout
{extra_approvals}
{extra}
"#,
        db = test_store_url(dir),
        playbooks = playbook_dir.display(),
        base = fake.base_url,
        account = fake.handle.account_id(),
        secret = opts.client_secret,
        // `FAKE_BASE_URL` in the extra settings is the fake's address (e.g. for `events_api`).
        extra = opts.extra_yaml.replace("FAKE_BASE_URL", &fake.base_url),
        extra_sources = opts.extra_sources,
        extra_approvals = opts.extra_approvals,
        extra_server = opts.extra_server,
        listen = opts.listen,
    );
    let path = dir.join("lockout.yaml");
    std::fs::write(&path, yaml).unwrap();
    Settings::load(Some(&path)).unwrap().0
}

pub async fn try_spawn_app(
    opts: AppOptions,
) -> Result<TestApp, (StartupError, RunningFake, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let fake = start_fake(fake_config(opts.users.clone()));
    write_settings(dir.path(), &fake, &opts);
    start_in(dir, fake).await
}

/// Starts the app on the config already written in `dir` (a restart keeps store and fake).
pub async fn start_in(
    dir: tempfile::TempDir,
    fake: RunningFake,
) -> Result<TestApp, (StartupError, RunningFake, tempfile::TempDir)> {
    let settings = Settings::load(Some(&dir.path().join("lockout.yaml")))
        .unwrap()
        .0;
    match Application::build(settings).await {
        Ok(app) => {
            let address = format!("http://127.0.0.1:{}", app.port());
            let ctx = app.context();
            let stop = app.stop_handle();
            let running = tokio::spawn(app.run_until_stopped());
            Ok(TestApp {
                address,
                stop,
                running,
                fake,
                ctx,
                dir,
                http: reqwest::Client::new(),
            })
        }
        Err(e) => Err((e, fake, dir)),
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(AppOptions::default()).await
}

pub async fn spawn_app_with(opts: AppOptions) -> TestApp {
    match try_spawn_app(opts).await {
        Ok(app) => app,
        Err((e, _, _)) => panic!("app did not start: {e}"),
    }
}

impl TestApp {
    /// Graceful stop, then a new process-equivalent on the same store, config and fake.
    #[allow(dead_code)]
    pub async fn restart(self) -> TestApp {
        let (fake, dir) = self.shutdown().await;
        match start_in(dir, fake).await {
            Ok(app) => app,
            Err((e, _, _)) => panic!("app did not restart: {e}"),
        }
    }

    /// Graceful stop, as on SIGTERM; waits until the app has finished shutting down.
    pub async fn shutdown(self) -> (RunningFake, tempfile::TempDir) {
        self.stop.stop(true).await;
        self.running.await.unwrap().unwrap();
        (self.fake, self.dir)
    }

    pub fn fake(&self) -> &FakeHandle {
        &self.fake.handle
    }

    #[allow(dead_code)]
    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("lockout.db")
    }

    pub async fn post_alert(&self, source: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/alerts/{source}", self.address))
            .bearer_auth(SOURCE_TOKEN)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Waits until `at` (an action's `not_before`) has passed, then settles: whatever would
    /// have run by then has run, so a test can assert that something did not.
    pub async fn settle_after(&self, at: &str) {
        let at = time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
            .expect("an RFC 3339 time");
        let left = at - time::OffsetDateTime::now_utc();
        if left.is_positive() {
            tokio::time::sleep(left.unsigned_abs() + Duration::from_millis(50)).await;
        }
        self.settle().await;
    }

    /// Steps the pipeline until nothing is left to do now: every stored alert planned, every
    /// due action run (by this test, through the worker's single-step function, or by the
    /// app's own workers, which it waits for). A test that asserts that nothing happened
    /// calls this instead of sleeping: after it, whatever was going to happen has.
    pub async fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            lockout::actions::plan_pending(&self.ctx).await.unwrap();
            while lockout::actions::try_run_next(&self.ctx, "test/settle")
                .await
                .unwrap()
                == lockout::actions::Outcome::Ran
            {}
            let busy = self
                .ctx
                .store
                .action_counts()
                .await
                .unwrap()
                .iter()
                .any(|(_, state, n)| state == "running" && *n > 0);
            let unplanned = !self
                .ctx
                .store
                .unevaluated_alerts(1)
                .await
                .unwrap()
                .is_empty();
            if !busy && !unplanned {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the pipeline did not settle in 20 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Posts an alert with the source token and returns the id of the (first) alert stored.
    pub async fn post_alert_id(&self, source: &str, body: &Value) -> String {
        let resp: Value = self.post_alert(source, body).await.json().await.unwrap();
        resp["alert_ids"][0]
            .as_str()
            .unwrap_or_else(|| panic!("no alert stored: {resp}"))
            .to_owned()
    }

    pub async fn audit(&self, query: &str) -> Vec<AuditRecord> {
        let mut all = vec![];
        let mut after = 0;
        loop {
            let resp: Value = self
                .http
                .get(format!(
                    "{}/v1/audit?after_seq={after}&limit=1000&{query}",
                    self.address
                ))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let records: Vec<AuditRecord> =
                serde_json::from_value(resp["records"].clone()).unwrap();
            let done = records.len() < 1000;
            after = records.last().map(|r| r.seq).unwrap_or(after);
            all.extend(records);
            if done {
                return all;
            }
        }
    }

    pub async fn get_json(&self, path: &str, bearer: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.address))
            .bearer_auth(bearer)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post_json(&self, path: &str, bearer: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.address))
            .bearer_auth(bearer)
            .json(body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// The pending approval for an alert's action, polling (bounded) until it exists.
    pub async fn pending_approval_for(&self, alert_id: &str) -> Value {
        self.wait_for_audit("approval.requested", alert_id).await;
        let (status, body) = self
            .get_json(
                "/v1/approvals?state=pending",
                &token("viewer@example.com", &["secops"]),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["approvals"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["alert"]["id"] == alert_id)
            .cloned()
            .unwrap_or_else(|| panic!("no pending approval for {alert_id}: {body}"))
    }

    /// Polls (bounded) until the action reaches `state`.
    pub async fn wait_for_action_state(
        &self,
        action_id: &str,
        state: lockout::store::ActionState,
    ) -> lockout::store::Action {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let a = self.ctx.store.get_action(action_id).await.unwrap().unwrap();
            if a.state == state {
                return a;
            }
            assert!(
                Instant::now() < deadline,
                "action {action_id} is {:?}, not {state:?}, after 20 s",
                a.state
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls (bounded) until the audit trail holds a record of `kind`, and returns them all.
    pub async fn wait_for_audit(&self, kind: &str, alert_id: &str) -> Vec<AuditRecord> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let records = self.audit(&format!("alert_id={alert_id}")).await;
            if records.iter().any(|r| r.event.kind == kind) {
                return records;
            }
            assert!(
                Instant::now() < deadline,
                "no {kind} record for {alert_id} within 20 s: {records:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A loopback webhook receiver that records every body it gets (notify targets).
pub struct Receiver {
    pub url: String,
    pub bodies: Arc<std::sync::Mutex<Vec<Value>>>,
    pub fail: Arc<std::sync::atomic::AtomicBool>,
}

pub fn start_receiver() -> Receiver {
    use actix_web::{App, HttpResponse, HttpServer, web};
    let bodies: Arc<std::sync::Mutex<Vec<Value>>> = Default::default();
    let fail: Arc<std::sync::atomic::AtomicBool> = Default::default();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/hook",
        listener.local_addr().unwrap().port()
    );
    let (b, f) = (bodies.clone(), fail.clone());
    let server = HttpServer::new(move || {
        let (b, f) = (b.clone(), f.clone());
        App::new().route(
            "/hook",
            web::post().to(move |body: web::Json<Value>| {
                let (b, f) = (b.clone(), f.clone());
                async move {
                    if f.load(std::sync::atomic::Ordering::SeqCst) {
                        return HttpResponse::ServiceUnavailable().finish();
                    }
                    b.lock().unwrap().push(body.into_inner());
                    HttpResponse::Ok().finish()
                }
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    Receiver { url, bodies, fail }
}

impl Receiver {
    pub fn texts(&self) -> Vec<String> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .map(|b| b["text"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

pub fn brute_force_alert(email: &str) -> Value {
    serde_json::json!({
        "title": "brute force against 1Password sign-in",
        "severity": "high",
        "user": {"email": email},
        "labels": {"rule": "1password-failed-signins"},
    })
}

pub fn kinds(records: &[AuditRecord]) -> Vec<&str> {
    records.iter().map(|r| r.event.kind.as_str()).collect()
}

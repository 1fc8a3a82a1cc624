//! Assembly: `Application::build` wires the store, the Users API client (or the sandbox
//! fake), playbooks, sources, the planner, the workers and the HTTP server. `main` and the
//! tests both go through it.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{App, HttpServer, web};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::actions::{run_planner, run_scheduler, run_workers};
use crate::alerts::Source;
use crate::approvals::JwtVerifier;
use crate::audit::AuditEvent;
use crate::config::NotificationSettings;
use crate::config::{ConfigError, Settings};
use crate::context::{AppContext, LivePlaybooks, WorkerTuning};
use crate::http::{AdminTokens, error};
use crate::notify::Notifier;
use crate::playbooks::{LoadContext, ProtectedPattern};
use crate::playbooks::{LoadError, load_dir};
use crate::sandbox::{FakeConfig, RunningFake, SeedUser, sample_users};
use crate::store::LimitPolicy;
use crate::store::{SqlStore, Store, StoreError};
use crate::users_api::{
    ApiVersion, CallLog, ClientAuth, ClientConfig, Directory, RetryPolicy, UsersApiClient,
    UsersApiError,
};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("playbooks do not load:\n{}", .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    Playbooks(Vec<LoadError>),
    #[error("1Password Users API: {0}. Check users_api.client_id, client_secret and client_auth")]
    Credentials(UsersApiError),
    #[error("1Password Users API client: {0}")]
    Client(UsersApiError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("sandbox: {0}")]
    Sandbox(String),
}

/// The settings parsed once into what the service runs on: domain types live in their own
/// modules, and this is where the settings become them. `config check` builds it too, so a
/// configuration that passes the check starts.
pub struct Prepared {
    pub sources: HashMap<String, Source>,
    pub protected: Vec<ProtectedPattern>,
    /// The Users API client's configuration; none in sandbox mode.
    pub users_api: Option<ClientConfig>,
    pub checkpoint_key: Option<crate::audit::checkpoint::CheckpointKey>,
    /// The Events API's client and policy; none without an `events_api` section.
    pub events: Option<crate::events_api::EventsSetup>,
}

/// What `serve` checks before it starts, beyond the settings themselves (and what `config
/// check` runs too): the settings parse ([`prepare`]) and the playbooks load against them
/// ([`load_playbooks`]).
pub fn preflight(
    settings: &Settings,
) -> Result<(Prepared, crate::playbooks::PlaybookSet), StartupError> {
    Ok((prepare(settings)?, load_playbooks(settings)?))
}

/// Every setting that names a domain value (a source's format, severity and mappings, a
/// protected pattern, lockout's own identities, the Users API client, the checkpoint key),
/// parsed: an error names the key.
pub fn prepare(settings: &Settings) -> Result<Prepared, StartupError> {
    let mut sources = HashMap::new();
    for (name, s) in &settings.sources {
        sources.insert(name.clone(), Source::from_settings(name, s)?);
    }
    for a in &settings.guards.self_actors {
        if crate::domain::UserRef::parse(a).is_err() {
            return Err(ConfigError::Invalid(format!(
                "guards.self_actors: {a:?} is neither a 1Password id nor an e-mail (display names are never matched: a user could take one)"
            ))
            .into());
        }
    }
    let protected = settings
        .guards
        .protected
        .iter()
        .map(|p| {
            ProtectedPattern::parse(p)
                .map_err(|e| ConfigError::Invalid(format!("guards.protected: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let users_api = settings
        .users_api
        .as_ref()
        .map(ClientConfig::from_settings)
        .transpose()?;
    let checkpoint_key = crate::audit::checkpoint::CheckpointKey::from_settings(&settings.audit)?;
    let events = settings
        .events_api
        .as_ref()
        .map(|e| crate::events_api::EventsSetup::from_settings(e, settings.is_sandbox()))
        .transpose()?;
    if let Some(name) = events.as_ref().and_then(|e| e.policy.source.as_ref()) {
        match sources.get(name) {
            Some(s) if s.format == crate::alerts::SourceFormat::OnePasswordEvents => {}
            Some(s) => {
                return Err(ConfigError::Invalid(format!(
                    "events_api.source: source {name:?} has format {}, not 1password_events",
                    s.format.as_str()
                ))
                .into());
            }
            None => {
                return Err(ConfigError::Invalid(format!(
                    "events_api.source: no source named {name:?} (add one with format: 1password_events)"
                ))
                .into());
            }
        }
    }
    Ok(Prepared {
        sources,
        protected,
        users_api,
        checkpoint_key,
        events,
    })
}

/// The playbook folder, loaded against the settings; if a playbook can wait for an approval
/// (an approval step, or a blast-radius limit, which holds for approval), an approver key is
/// configured, or nobody could ever decide.
pub fn load_playbooks(settings: &Settings) -> Result<crate::playbooks::PlaybookSet, StartupError> {
    let load_context = LoadContext {
        notify_targets: settings.notify.keys().cloned().collect(),
    };
    let playbooks =
        load_dir(&settings.playbooks.dir, &load_context).map_err(StartupError::Playbooks)?;
    let a = &settings.approvals;
    let has_key = a.hs256_secret.is_some() || a.hs256_secret_file.is_some() || a.jwks_url.is_some();
    if !has_key {
        let needs = playbooks
            .playbooks
            .iter()
            .find(|p| p.approver_roles().next().is_some() || p.limit.is_some())
            .map(|p| format!("playbook {}", p.name))
            .or_else(|| {
                settings
                    .guards
                    .global_limit
                    .map(|_| "guards.global_limit".to_owned())
            });
        if let Some(what) = needs {
            return Err(StartupError::Config(ConfigError::Invalid(format!(
                "{what} can wait for an approval, but no approver key is configured (approvals.hs256_secret_file or approvals.jwks_url): nobody could decide"
            ))));
        }
    }
    Ok(playbooks)
}

/// The Users API client the settings call for, and the in-process fake when in sandbox mode.
/// The sandbox's users are kept in the store: the fake starts from the states last kept (so
/// the CLI and a restarted service see what the service did), and every change is kept.
pub async fn users_api_client(
    settings: &Settings,
    prepared: &Prepared,
    store: Arc<dyn Store>,
) -> Result<(UsersApiClient, Option<RunningFake>), StartupError> {
    if let Some(api) = &prepared.users_api {
        let client = UsersApiClient::new(api.clone()).map_err(StartupError::Client)?;
        return Ok((client, None));
    }
    let kept: Vec<SeedUser> = store
        .sandbox_users()
        .await?
        .iter()
        .map(|json| serde_json::from_str(json))
        .collect::<Result<_, _>>()
        .map_err(|e| StartupError::Sandbox(format!("the kept sandbox users: {e}")))?;
    let kept = Some(kept).filter(|k| !k.is_empty());
    let restored = kept.is_some();
    if let Some(kept) = &kept {
        let suspended: Vec<&str> = kept
            .iter()
            .filter(|u| u.state == crate::users_api::UserState::Suspended)
            .map(|u| u.email.as_str())
            .collect();
        tracing::info!(
            suspended = %suspended.join(", "),
            "SANDBOX: the fake's users are as the service left them (alerts already received are duplicates until their window ends); to start the walkthrough afresh, stop lockout and delete the database ({})",
            crate::config::redact_url(&settings.store.url)
        );
    }
    let users = match (kept, &settings.sandbox.users_file) {
        (Some(kept), _) => kept,
        (None, Some(path)) => SeedUser::load_file(path).map_err(StartupError::Sandbox)?,
        (None, None) => sample_users(),
    };
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| StartupError::Sandbox(e.to_string()))?;
    let keeper: crate::sandbox::Keeper = {
        let store = store.clone();
        Arc::new(move |user: SeedUser| {
            let store = store.clone();
            Box::pin(async move {
                if let Err(e) = keep_sandbox_user(store.as_ref(), &user).await {
                    tracing::warn!(error = %e, "could not keep the sandbox's user");
                }
            })
        })
    };
    if !restored {
        for u in &users {
            keep_sandbox_user(store.as_ref(), u).await?;
        }
    }
    let fake = crate::sandbox::start(
        FakeConfig {
            keeper: Some(keeper),
            ..FakeConfig::sandbox(users)
        },
        listener,
    )
    .map_err(|e| StartupError::Sandbox(e.to_string()))?;
    let cfg = ClientConfig {
        base_url: fake.base_url.clone(),
        api_version: ApiVersion::V1,
        token_url: ApiVersion::V1.default_token_url(&fake.base_url),
        revoke_url: ApiVersion::V1.default_revoke_url(&fake.base_url),
        account_id: FakeConfig::SANDBOX_ACCOUNT.into(),
        client_id: FakeConfig::SANDBOX_CLIENT_ID.into(),
        client_secret: SecretString::from(FakeConfig::SANDBOX_CLIENT_SECRET),
        client_auth: ClientAuth::Basic,
        timeout: Duration::from_secs(10),
        retry: RetryPolicy::default(),
        token_refresh_margin: Duration::from_secs(60),
        max_in_flight: 32,
    };
    let client = UsersApiClient::new(cfg).map_err(StartupError::Client)?;
    Ok((client, Some(fake)))
}

/// Keeps one of the sandbox fake's users, with its state, in the store.
async fn keep_sandbox_user(store: &dyn Store, user: &SeedUser) -> Result<(), StoreError> {
    let json = serde_json::to_string(user).expect("users serialise");
    store.keep_sandbox_user(user.id.as_str(), &json).await
}

/// The service's shared state from its settings: what `serve` runs on, and what the CLI's
/// manual actions run on (the same guards, limits, approvals and audit).
pub fn build_context(
    settings: &Settings,
    prepared: Prepared,
    playbooks: crate::playbooks::PlaybookSet,
    store: Arc<dyn Store>,
    users: UsersApiClient,
    fake: Option<&RunningFake>,
) -> Result<AppContext, StartupError> {
    let sandbox = fake.is_some();
    let events = match &prepared.events {
        None => None,
        Some(setup) => {
            let cfg = match (&setup.client, fake) {
                (Some(c), _) => c.clone(),
                (None, Some(fake)) => crate::events_api::EventsConfig {
                    base_url: fake.base_url.clone(),
                    token: SecretString::from(FakeConfig::SANDBOX_EVENTS_TOKEN),
                    timeout: Duration::from_secs(10),
                    retry: RetryPolicy::default(),
                },
                (None, None) => {
                    return Err(StartupError::Config(ConfigError::Invalid(
                        "events_api: token_file is required outside the sandbox".into(),
                    )));
                }
            };
            let client = crate::events_api::EventsClient::new(cfg)
                .map_err(|e| StartupError::Sandbox(format!("Events API client: {e}")))?;
            Some(Arc::new(crate::events_api::EventsRuntime::new(
                client,
                setup.policy.clone(),
            )))
        }
    };
    let load_context = LoadContext {
        notify_targets: settings.notify.keys().cloned().collect(),
    };
    for (name, s) in &settings.sources {
        if matches!(s.auth, crate::config::SourceAuth::None) {
            tracing::warn!(source = %name, "alert source accepts UNAUTHENTICATED requests (auth: none)");
        }
    }
    let directory = Directory::new(
        users.clone(),
        Duration::from_secs(settings.directory.ttl_secs),
        Duration::from_secs(settings.directory.miss_refresh_secs),
    );
    let w = &settings.worker;
    if let Some(f) = &w.danger_failpoint {
        tracing::error!(failpoint = %f, "worker.danger_failpoint is set: this process WILL ABORT on purpose (tests only)");
    }
    Ok(AppContext {
        admin_roles: settings.approvals.admin_roles.clone(),
        max_suppression: Duration::from_secs(settings.guards.max_suppression_secs),
        suppression_cache: Default::default(),
        console_url: settings.console.public_url.clone(),
        slack: settings.slack.clone(),
        checkpoint_key: prepared.checkpoint_key.clone(),
        store: store.clone(),
        users,
        directory,
        playbooks: LivePlaybooks::new(playbooks),
        playbook_dir: settings.playbooks.dir.clone(),
        load_context,
        sources: prepared.sources,
        worker: WorkerTuning {
            poll_interval: Duration::from_millis(w.poll_interval_ms),
            claim_ttl: Duration::from_secs(w.claim_ttl_secs),
            action_deadline: Duration::from_secs(w.action_deadline_secs),
            requeue_delay: Duration::from_millis(w.requeue_delay_ms),
            failpoint: w.danger_failpoint.clone(),
        },
        limits: LimitPolicy {
            global: settings
                .guards
                .global_limit
                .map(|g| (g.max as i64, Duration::from_secs(g.per_secs))),
            approvers: settings.approvals.limit_approvers.clone(),
            approval_timeout_secs: settings.approvals.default_timeout_secs as i64,
        },
        protected: prepared.protected,
        self_actors: settings.guards.self_actors.clone(),
        notifier: Notifier::new(&settings.notify)?,
        notifications: NotificationSettings {
            approval_pending: settings.notifications.approval_pending.clone(),
            action_failed: settings.notifications.action_failed.clone(),
            limit_tripped: settings.notifications.limit_tripped.clone(),
            alert_held: settings.notifications.alert_held.clone(),
            protected_subject: settings.notifications.protected_subject.clone(),
            feed_unhealthy: settings.notifications.feed_unhealthy.clone(),
            action_unverified: settings.notifications.action_unverified.clone(),
        },
        max_subjects_per_alert: settings.guards.max_subjects_per_alert.max(1),
        jwt: JwtVerifier::new(&settings.approvals)?,
        analyst_roles: settings.approvals.analyst_roles.clone(),
        manual_approvers: settings.approvals.manual_approvers.clone(),
        approval_timeout: Duration::from_secs(settings.approvals.default_timeout_secs),
        sandbox,
        alerts_waiting: tokio::sync::Notify::new(),
        actions_waiting: tokio::sync::Notify::new(),
        metrics: Default::default(),
        refusals: Default::default(),
        readiness: Default::default(),
        refusal_interval: Duration::from_secs(settings.audit.refusal_interval_secs.max(1)),
        events,
        sandbox_fake: fake.map(|f| f.handle.clone()),
    })
}

pub struct Application {
    port: u16,
    server: actix_web::dev::Server,
    ctx: Arc<AppContext>,
    shutdown: CancellationToken,
    background: Vec<JoinHandle<()>>,
    fake: Option<RunningFake>,
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        // What can fail without side effects fails first: a busy port or a broken playbook
        // folder leaves no database and no audit record behind.
        let listener =
            TcpListener::bind(&settings.server.listen).map_err(|source| StartupError::Listen {
                addr: settings.server.listen.clone(),
                source,
            })?;
        let (prepared, playbooks) = preflight(&settings)?;
        let checkpoint_key = prepared.checkpoint_key.clone();
        let store: Arc<dyn Store> = Arc::new(SqlStore::connect(&settings.store.url).await?);
        let (users, fake) = users_api_client(&settings, &prepared, store.clone()).await?;
        if fake.is_some() {
            tracing::warn!(
                "SANDBOX MODE: lockout talks to an in-process FAKE 1Password Users API with sample users; no real account is touched. Configure users_api to go live."
            );
        }
        // A wrong secret is a misconfiguration: say so now, not at the first incident.
        let log = CallLog::default();
        match users.check_credentials(&log).await {
            Ok(()) => {}
            Err(e @ UsersApiError::InvalidClient { .. }) => {
                store
                    .append_audit(vec![
                        AuditEvent::new("service.credentials_refused", "system")
                            .data(json!({"error": e.to_string()})),
                    ])
                    .await?;
                return Err(StartupError::Credentials(e));
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not obtain a Users API token at start; /readyz will say so until it can")
            }
        }
        let ctx = Arc::new(build_context(
            &settings,
            prepared,
            playbooks,
            store.clone(),
            users,
            fake.as_ref(),
        )?);
        store
            .append_audit(vec![AuditEvent::new("service.started", "system").data(json!({
                "version": env!("CARGO_PKG_VERSION"),
                "sandbox": fake.is_some(),
                "playbooks": ctx.playbooks().playbooks.iter().map(|p| json!({"name": p.name, "hash": p.hash})).collect::<Vec<_>>(),
                "users_api_calls": log.take(),
            }))])
            .await?;

        let port = listener
            .local_addr()
            .map_err(|source| StartupError::Listen {
                addr: settings.server.listen.clone(),
                source,
            })?
            .port();
        let named = settings.server.named_admin_tokens();
        let admin = web::Data::new(AdminTokens::new(
            named.iter().map(|(n, t)| (n.as_str(), t.expose_secret())),
        ));
        let limit = web::Data::new(crate::http::IntakeLimits::new(
            settings.server.body_limit_bytes,
            Duration::from_millis(settings.server.body_timeout_ms),
            settings.server.unauthenticated_body_budget_bytes,
        ));
        let data = web::Data::from(ctx.clone());
        let mut sources: Vec<String> = ctx.sources.keys().cloned().collect();
        sources.sort();
        let console = Arc::new(crate::console::Console::from_settings(
            &settings,
            fake.is_some(),
        )?);
        let mut server = HttpServer::new(move || {
            let console = console.clone();
            // Without INFO spans the middleware would still wrap and poll every request, and
            // generate a request id nobody reads (~5% of intake's HTTP CPU).
            let request_spans = tracing::span_enabled!(tracing::Level::INFO);
            let sources = sources.clone();
            App::new()
                .wrap(actix_web::middleware::Condition::new(
                    request_spans,
                    tracing_actix_web::TracingLogger::<crate::http::RequestSpan>::new(),
                ))
                .app_data(data.clone())
                .app_data(admin.clone())
                .app_data(limit.clone())
                .app_data(error::json_config())
                .app_data(error::query_config())
                .wrap(error::router_errors())
                .configure(move |cfg| {
                    crate::http::routes(cfg, &sources);
                    crate::console::routes(cfg, console);
                })
        })
        .shutdown_timeout(30)
        // A client that has not sent its request head within this is disconnected (408).
        .client_request_timeout(Duration::from_millis(settings.server.header_timeout_ms));
        if settings.server.http_workers > 0 {
            server = server.workers(settings.server.http_workers);
        }
        let server = server
            .listen(listener)
            .map_err(|source| StartupError::Listen {
                addr: settings.server.listen.clone(),
                source,
            })?
            .run();

        let shutdown = CancellationToken::new();
        let instance = settings
            .server
            .instance_name
            .clone()
            .unwrap_or_else(|| format!("{}-{}", hostname(), std::process::id()));
        release_dead_claims(
            store.as_ref(),
            &instance,
            settings.server.instance_name.is_some(),
        )
        .await?;
        let mut background = vec![
            tokio::spawn(run_planner(ctx.clone(), shutdown.clone())),
            tokio::spawn(run_workers(
                ctx.clone(),
                settings.worker.concurrency,
                instance,
                shutdown.clone(),
            )),
            tokio::spawn(run_scheduler(
                ctx.clone(),
                Duration::from_millis(settings.worker.scheduler_interval_ms),
                shutdown.clone(),
            )),
        ];
        background.push(tokio::spawn({
            let ctx = ctx.clone();
            let url = settings.store.url.clone();
            let shutdown = shutdown.clone();
            async move {
                crate::store::listen_for_due_actions(
                    &url,
                    || ctx.actions_waiting.notify_waiters(),
                    shutdown,
                )
                .await
            }
        }));
        background.push(tokio::spawn(crate::actions::feeds::run_feeds(
            ctx.clone(),
            shutdown.clone(),
        )));
        background.push(tokio::spawn({
            let ctx = ctx.clone();
            let shutdown = shutdown.clone();
            async move {
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(ctx.refusal_interval) => ctx.flush_refusals().await,
                    }
                }
            }
        }));
        if let (Some(key), Some(c)) = (checkpoint_key.clone(), &settings.audit.checkpoint) {
            background.push(tokio::spawn(run_checkpoints(
                store.clone(),
                key,
                Duration::from_secs(c.interval_secs.max(1)),
                c.file.clone(),
                shutdown.clone(),
            )));
        }
        if let Some(f) = &settings.audit.forward {
            let forwarder = crate::forward::Forwarder::new(f, checkpoint_key.clone())?;
            background.push(tokio::spawn(crate::forward::run_forwarder(
                forwarder,
                store.clone(),
                shutdown.clone(),
            )));
        }
        // SIGHUP reloads the playbook folder (a broken folder leaves the running set live).
        #[cfg(unix)]
        background.push(tokio::spawn({
            let ctx = ctx.clone();
            let shutdown = shutdown.clone();
            async move {
                let Ok(mut hup) =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                else {
                    return;
                };
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = hup.recv() => {
                            let _ = ctx.reload_playbooks("signal:SIGHUP").await;
                        }
                    }
                }
            }
        }));
        tracing::info!(port, sandbox = fake.is_some(), "lockout is listening");
        Ok(Self {
            port,
            server,
            ctx,
            shutdown,
            background,
            fake,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn context(&self) -> Arc<AppContext> {
        self.ctx.clone()
    }

    /// Stops the server as SIGTERM would (graceful), for tests and embedding.
    pub fn stop_handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM/SIGINT (or the server handle stops it), then lets workers finish
    /// the action they hold, revokes the access token and stops the sandbox.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.shutdown.cancel();
        for task in self.background {
            let _ = task.await;
        }
        self.ctx.flush_refusals().await;
        let log = CallLog::default();
        if let Err(e) = self.ctx.users.revoke_token(&log).await {
            tracing::warn!(error = %e, "could not revoke the access token");
        }
        let _ = self
            .ctx
            .store
            .append_audit(vec![
                AuditEvent::new("service.stopped", "system")
                    .data(json!({"users_api_calls": log.take()})),
            ])
            .await;
        if let Some(fake) = self.fake {
            fake.stop().await;
        }
        result
    }
}

/// Signs the chain's head every `interval` (when it moved) and writes the checkpoint to the
/// log and, if configured, appends it to `file`: anchors the database cannot rewrite.
async fn run_checkpoints(
    store: Arc<dyn Store>,
    key: crate::audit::checkpoint::CheckpointKey,
    interval: Duration,
    file: Option<std::path::PathBuf>,
    shutdown: CancellationToken,
) {
    let mut last_seq = None;
    loop {
        match store.audit_head().await {
            Ok(Some((seq, hash))) if last_seq != Some(seq) => {
                let c = key.checkpoint(seq, &hash, &crate::domain::now_rfc3339());
                let line = serde_json::to_string(&c).expect("checkpoints serialise");
                tracing::info!(checkpoint = %line, "audit checkpoint");
                if let Some(path) = &file {
                    use std::io::Write;
                    let written = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                        .and_then(|mut f| writeln!(f, "{line}").and_then(|()| f.sync_data()));
                    if let Err(e) = written {
                        tracing::error!(error = %e, path = %path.display(), "could not write the audit checkpoint");
                    }
                }
                last_seq = Some(seq);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not read the audit head for a checkpoint"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// A restarted instance takes its predecessor's claims at once instead of waiting for their
/// leases: claims under its own configured name (the instance is only now starting, so the
/// holder is dead), or, by default name (`host-pid`), under this host with a process that no
/// longer exists.
async fn release_dead_claims(
    store: &dyn Store,
    instance: &str,
    named: bool,
) -> Result<(), StoreError> {
    let host = format!("{}-", hostname());
    let dead: Vec<String> = store
        .running_claims()
        .await?
        .into_iter()
        .filter(|(_, by)| {
            let holder = by.rsplit_once('/').map_or(by.as_str(), |(i, _)| i);
            if named {
                return holder == instance;
            }
            holder
                .strip_prefix(&host)
                .and_then(|pid| pid.parse::<u32>().ok())
                .is_some_and(|pid| {
                    pid != std::process::id()
                        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
                })
        })
        .map(|(id, _)| id)
        .collect();
    if !dead.is_empty() {
        tracing::warn!(
            actions = dead.len(),
            "taking over the claims of a previous instance that died"
        );
        store
            .expire_claims(&dead, &crate::domain::now_rfc3339())
            .await?;
    }
    Ok(())
}

/// This machine's name (`lockout` when it has none): claims and CLI workers carry it.
pub fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "lockout".into())
}

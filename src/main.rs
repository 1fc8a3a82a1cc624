//! The `lockout` command: parse the CLI, set up telemetry, call into the library.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use futures::TryStreamExt;
use lockout::config::Settings;
use lockout::domain::UserRef;
use lockout::sandbox::{FakeConfig, SeedUser, sample_users};
use lockout::startup::{Application, users_api_client};
use lockout::store::{SqlStore, Store};
use lockout::users_api::{CallLog, StateFilter, User, UsersApiClient};
use secrecy::ExposeSecret;
use serde_json::json;
use std::sync::Arc;

/// mimalloc instead of glibc's allocator: intake allocates on the HTTP workers and frees on
/// the store threads; glibc's malloc and free took ~15% of the process's samples under intake
/// load (perf).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `println!` that ends the process quietly when stdout is closed (`lockout … | head`)
/// instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            stdout_failed(e);
        }
    }};
}
macro_rules! out_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = write!(std::io::stdout(), $($arg)*) {
            stdout_failed(e);
        }
    }};
}

fn stdout_failed(e: std::io::Error) {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("error: cannot write to stdout: {e}");
    std::process::exit(1);
}

#[derive(Parser)]
#[command(
    name = "lockout",
    version,
    about = "SIEM alerts in, safe and audited 1Password account remediation out"
)]
struct Cli {
    /// Config file (default: ./lockout.yaml when present, else the sandbox defaults).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service.
    Serve,
    /// Run the fake 1Password Users API alone (client id `sandbox-client`, secret `sandbox-secret`).
    Sandbox {
        #[arg(long, default_value_t = 8081)]
        port: u16,
        /// JSON or YAML list of users (default: built-in sample users).
        #[arg(long)]
        users: Option<PathBuf>,
    },
    /// Look up and change 1Password users directly (each change is audited).
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Check playbooks.
    Playbooks {
        #[command(subcommand)]
        command: PlaybooksCommand,
    },
    /// The audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Hold back matches for a while (a user, a playbook, a source, labels), with a reason.
    Suppressions {
        #[command(subcommand)]
        command: SuppressionsCommand,
    },
    /// Apply the store's migrations (the service also applies them at start).
    Migrate,
    /// Print the OpenAPI document of the HTTP API.
    Openapi,
    /// Print the effective configuration, secrets redacted.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Issue an approver token (HS256, from approvals.hs256_secret), e.g. for the sandbox.
    Token {
        #[arg(long)]
        approver: String,
        #[arg(long = "role")]
        roles: Vec<String>,
        #[arg(long, default_value_t = 3600)]
        ttl_secs: u64,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Load and validate the configuration; print it with secrets redacted.
    Check,
}

#[derive(Subcommand)]
enum UsersCommand {
    List {
        #[arg(long)]
        state: Option<StateFilter>,
        #[arg(long)]
        json: bool,
    },
    Get {
        /// A 1Password user id or an e-mail address.
        user: String,
        #[arg(long)]
        json: bool,
    },
    Suspend {
        user: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        json: bool,
    },
    Reactivate {
        user: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum PlaybooksCommand {
    /// Validate every playbook; print `file:line:col: message` for each error.
    Check { dir: Option<PathBuf> },
    /// Run an alert through intake and the engine offline, or (without --alert) every test
    /// case in DIR/tests.
    Test {
        dir: Option<PathBuf>,
        /// An alert payload, in any supported format.
        #[arg(long)]
        alert: Option<PathBuf>,
        /// The source it came from (its format comes from the config).
        #[arg(long, conflicts_with = "format")]
        source: Option<String>,
        /// Its format, when not naming a configured source.
        #[arg(long)]
        format: Option<String>,
        /// A JSON list of users standing in for the directory.
        #[arg(long)]
        users: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum SuppressionsCommand {
    /// Add one: at least one of --user, --playbook, --source, --label; a reason and an expiry.
    Add {
        /// An e-mail, an e-mail glob (`*@contractor.example.com`) or a 1Password id.
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        playbook: Option<String>,
        #[arg(long)]
        source: Option<String>,
        /// key=value; repeatable.
        #[arg(long = "label")]
        labels: Vec<String>,
        #[arg(long)]
        reason: String,
        /// How long it lasts, in seconds (at most guards.max_suppression_secs).
        #[arg(long)]
        expires_in_secs: u64,
    },
    /// The suppressions in force (with --all, every one ever made).
    List {
        #[arg(long)]
        all: bool,
    },
    /// End one now.
    Rm { id: String },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify the hash chain; name the first broken record. With --checkpoint, also check the
    /// chain against the newest signed checkpoint in FILE (truncation, a rewritten tail).
    Verify {
        #[arg(long)]
        checkpoint: Option<PathBuf>,
    },
    /// Print a signed checkpoint of the chain's head (needs audit.checkpoint.key_file).
    Checkpoint,
    /// Write every record as CSV or JSON lines to stdout.
    Export {
        #[arg(long, default_value = "jsonl")]
        format: String,
    },
    /// Retention: delete records older than N days. The chain stays verifiable from an anchor,
    /// and the pruning is itself recorded.
    Prune {
        #[arg(long)]
        older_than_days: u64,
        /// Required: this deletes audit records.
        #[arg(long)]
        yes_i_know_what_im_doing: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve | Command::Sandbox { .. } => lockout::telemetry::init(),
        _ => lockout::telemetry::init_with("warn,sqlx=warn"),
    }
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Sandbox { port, users } => {
            let users = match users {
                Some(p) => SeedUser::load_file(&p).map_err(anyhow::Error::msg)?,
                None => sample_users(),
            };
            let listener = TcpListener::bind(("127.0.0.1", port))
                .with_context(|| format!("cannot listen on port {port}"))?;
            let fake = lockout::sandbox::start(FakeConfig::sandbox(users), listener)?;
            eprintln!(
                "SANDBOX: fake 1Password Users API at {} (account {}, client id {}, client secret {})",
                fake.base_url,
                FakeConfig::SANDBOX_ACCOUNT,
                FakeConfig::SANDBOX_CLIENT_ID,
                FakeConfig::SANDBOX_CLIENT_SECRET
            );
            tokio::signal::ctrl_c().await?;
            fake.stop().await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Playbooks { command } => playbooks(cli.config.as_deref(), command),
        Command::Openapi => {
            out!(
                "{}",
                serde_json::to_string_pretty(&lockout::http::openapi::document())?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Config {
            command: ConfigCommand::Check,
        } => {
            let (settings, origin) = Settings::load(cli.config.as_deref())?;
            out!("# mode: {}", settings.mode(&origin));
            // serve's checks beyond the settings themselves: the playbooks load against
            // them, and approvals they need have an approver key.
            let (prepared, _) = lockout::startup::preflight(&settings)?;
            // The Events API token: what it may read and for which account (a token without a
            // feed's feature is refused by that feed until it is replaced).
            match prepared.events.as_ref().map(|e| (&e.client, &e.policy)) {
                None => {}
                Some((None, _)) => out!("# events_api: the sandbox's fake"),
                Some((Some(cfg), policy)) => {
                    let client = lockout::events_api::EventsClient::new(cfg.clone())?;
                    match client.introspect().await {
                        Ok(i) => {
                            out!(
                                "# events_api: token of integration {} for account {}, features [{}]",
                                i.uuid.as_deref().unwrap_or("?"),
                                i.account_uuid.as_deref().unwrap_or("?"),
                                i.features.join(", ")
                            );
                            for f in policy.feeds.iter().filter(|f| !i.allows(**f)) {
                                out!(
                                    "# events_api: WARNING the token lacks {}: that feed will be refused",
                                    f.as_str()
                                );
                            }
                        }
                        Err(e) => out!("# events_api: introspection failed: {e}"),
                    }
                }
            }
            out!("# configuration from {origin}; valid (secrets redacted)");
            out!("{}", serde_saphyr::to_string(&settings)?);
            Ok(ExitCode::SUCCESS)
        }
        command => {
            let (settings, origin) = Settings::load(cli.config.as_deref())?;
            match command {
                Command::Serve => {
                    tracing::info!(mode = %settings.mode(&origin), "configuration loaded");
                    let app = Application::build(settings).await?;
                    app.run_until_stopped().await?;
                    Ok(ExitCode::SUCCESS)
                }
                Command::Users { command } => users(&settings, command).await,
                Command::Suppressions { command } => suppressions(&settings, command).await,
                Command::Migrate => {
                    let store = SqlStore::connect(&settings.store.url).await?;
                    out!(
                        "migrations applied ({})",
                        if store.is_postgres() {
                            "postgres"
                        } else {
                            "sqlite"
                        }
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Command::Audit {
                    command: AuditCommand::Verify { checkpoint },
                } => audit_verify(&settings, checkpoint.as_deref()).await,
                Command::Audit {
                    command: AuditCommand::Checkpoint,
                } => {
                    let key =
                        lockout::audit::checkpoint::CheckpointKey::from_settings(&settings.audit)?
                            .ok_or_else(|| {
                                anyhow::anyhow!("audit.checkpoint.key_file is not configured")
                            })?;
                    let store = SqlStore::connect(&settings.store.url).await?;
                    let (seq, hash) = store
                        .audit_head()
                        .await?
                        .ok_or_else(|| anyhow::anyhow!("the audit trail is empty"))?;
                    let c = key.checkpoint(seq, &hash, &lockout::domain::now_rfc3339());
                    out!("{}", serde_json::to_string(&c)?);
                    Ok(ExitCode::SUCCESS)
                }
                Command::Audit {
                    command:
                        AuditCommand::Prune {
                            older_than_days,
                            yes_i_know_what_im_doing,
                        },
                } => {
                    if !yes_i_know_what_im_doing {
                        bail!("pruning deletes audit records: add --yes-i-know-what-im-doing");
                    }
                    let store = SqlStore::connect(&settings.store.url).await?;
                    let before = lockout::domain::shift_time(
                        &lockout::domain::now_rfc3339(),
                        -((older_than_days * 86400) as i64),
                    );
                    let operator = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
                    let key =
                        lockout::audit::checkpoint::CheckpointKey::from_settings(&settings.audit)?;
                    if key.is_none() {
                        eprintln!(
                            "warning: audit.checkpoint.key_file is not configured: the retention anchor is unsigned"
                        );
                    }
                    let n = store.prune_audit(&before, &operator, key.as_ref()).await?;
                    out!("pruned {n} audit records older than {before}");
                    Ok(ExitCode::SUCCESS)
                }
                Command::Audit {
                    command: AuditCommand::Export { format },
                } => audit_export(&settings, &format).await,
                Command::Token {
                    approver,
                    roles,
                    ttl_secs,
                } => {
                    let secret = match (
                        &settings.approvals.hs256_secret,
                        &settings.approvals.hs256_secret_file,
                    ) {
                        (Some(s), _) => s.expose_secret().to_owned(),
                        (None, Some(p)) => lockout::config::read_secret_file(p)?,
                        _ => bail!(
                            "approvals.hs256_secret is not configured (with a JWKS, get tokens from your identity provider)"
                        ),
                    };
                    let token = lockout::approvals::issue_hs256(
                        &secret,
                        &approver,
                        &roles,
                        std::time::Duration::from_secs(ttl_secs),
                        settings.approvals.issuer.as_deref(),
                        settings.approvals.audience.as_deref(),
                    );
                    out!("{token}");
                    Ok(ExitCode::SUCCESS)
                }
                _ => unreachable!("handled above"),
            }
        }
    }
}

fn playbooks(
    config: Option<&std::path::Path>,
    command: PlaybooksCommand,
) -> anyhow::Result<ExitCode> {
    use lockout::playbooks::{LoadContext, load_dir, testing};
    // Notify targets and sources live in the config; without one, the sandbox defaults.
    let settings = Settings::load(config).map(|(s, _)| s).ok();
    let ctx = LoadContext {
        notify_targets: settings
            .as_ref()
            .map(|s| s.notify.keys().cloned().collect())
            .unwrap_or_default(),
    };
    let default_dir = || {
        settings
            .as_ref()
            .map(|s| s.playbooks.dir.clone())
            .unwrap_or_else(|| "playbooks".into())
    };
    match command {
        PlaybooksCommand::Check { dir } => match load_dir(&dir.unwrap_or_else(default_dir), &ctx) {
            Ok(set) => {
                for p in &set.playbooks {
                    out!("ok  {} ({})", p.name, p.file.display());
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(errors) => {
                for e in errors {
                    out!("{e}");
                }
                Ok(ExitCode::FAILURE)
            }
        },
        PlaybooksCommand::Test {
            dir,
            alert,
            source,
            format,
            users,
            json,
        } => {
            let dir = dir.unwrap_or_else(default_dir);
            let set = match load_dir(&dir, &ctx) {
                Ok(s) => s,
                Err(errors) => {
                    for e in errors {
                        out!("{e}");
                    }
                    return Ok(ExitCode::FAILURE);
                }
            };
            let Some(alert) = alert else {
                let results =
                    testing::run_cases(&set, &dir.join("tests")).map_err(anyhow::Error::msg)?;
                let failed = results.iter().filter(|r| r.failure.is_some()).count();
                for r in &results {
                    match &r.failure {
                        None => out!("ok    {} ({})", r.name, r.file.display()),
                        Some(f) => out!("FAIL  {} ({})\n{f}", r.name, r.file.display()),
                    }
                }
                out!(
                    "playbook cases: {} passed, {} failed",
                    results.len() - failed,
                    failed
                );
                return Ok(if failed == 0 {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                });
            };
            let (format, source_name) = match (&source, &format) {
                (Some(src), _) => {
                    let s = settings
                        .as_ref()
                        .and_then(|s| s.sources.get(src))
                        .ok_or_else(|| anyhow::anyhow!("no source named {src:?} in the config"))?;
                    let f: lockout::alerts::SourceFormat =
                        s.format.parse().map_err(anyhow::Error::msg)?;
                    (f, src.clone())
                }
                (None, Some(f)) => {
                    let f: lockout::alerts::SourceFormat = f.parse().map_err(anyhow::Error::msg)?;
                    (f, f.as_str().to_owned())
                }
                (None, None) => (lockout::alerts::SourceFormat::Generic, "generic".to_owned()),
            };
            let alerts =
                testing::read_alert(&alert, format, &source_name).map_err(anyhow::Error::msg)?;
            let users = users
                .map(|u| testing::read_users(&u))
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let mut out = vec![];
            for a in &alerts {
                let (plan, verdicts) = testing::explain(&set, a, users.as_deref());
                // Why each playbook did or did not match: the part of on.when that was false.
                let why = lockout::playbooks::explain(&set, a);
                if json {
                    out.push(json!({"alert": {"title": a.title, "severity": a.severity, "status": a.status, "subjects": a.subjects}, "plan": plan, "verdicts": verdicts, "why": why}));
                } else {
                    let subjects: Vec<String> = a
                        .subjects
                        .iter()
                        .filter_map(|s| s.user_ref())
                        .map(|r| r.to_string())
                        .collect();
                    out!(
                        "alert: {:?} ({:?}, {:?}), subjects: {}",
                        a.title,
                        a.severity,
                        a.status,
                        subjects.join(", ")
                    );
                    out_raw!("{}", testing::table(&verdicts, &plan));
                    for v in why.iter().filter(|v| v.verdict != "matched") {
                        out!("why not {}: {}", v.playbook, v.because);
                    }
                }
            }
            if json {
                out!("{}", serde_json::to_string_pretty(&out)?);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn audit_export(settings: &Settings, format: &str) -> anyhow::Result<ExitCode> {
    if format != "jsonl" && format != "csv" {
        bail!("--format must be jsonl or csv");
    }
    let store = SqlStore::connect(&settings.store.url).await?;
    let mut after = 0;
    if format == "csv" {
        out_raw!("{}", lockout::audit::CSV_HEADER);
    }
    loop {
        let batch = store.audit_chain(after, 1000).await?;
        if batch.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
        for r in &batch {
            if format == "jsonl" {
                out!("{}", serde_json::to_string(r)?);
            } else {
                out_raw!("{}", lockout::audit::csv_row(r));
            }
        }
        after = batch.last().map(|r| r.seq).unwrap_or(after);
    }
}

async fn audit_verify(
    settings: &Settings,
    checkpoint: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    let key = lockout::audit::checkpoint::CheckpointKey::from_settings(&settings.audit)?;
    let checkpoint = match checkpoint {
        None => None,
        Some(path) => {
            let key = key.as_ref().ok_or_else(|| {
                anyhow::anyhow!(
                    "--checkpoint needs audit.checkpoint.key_file to check its signature"
                )
            })?;
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let c = lockout::audit::checkpoint::newest_in(&text).map_err(anyhow::Error::msg)?;
            if !key.verify(&c) {
                out!(
                    "BROKEN: the checkpoint of {} (seq {}) is not signed by the checkpoint key",
                    c.at,
                    c.seq
                );
                return Ok(ExitCode::FAILURE);
            }
            Some(c)
        }
    };
    let store = SqlStore::connect(&settings.store.url).await?;
    // After a retention prune, the chain starts from the anchor the prune left; the anchor
    // must carry the checkpoint key's signature (an inserted row does not).
    let report = match lockout::store::verify_chain(&store, key.as_ref()).await {
        Ok(r) => r,
        Err(e) => {
            out!("BROKEN: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if let Some(seq) = report.anchor_unverified {
        eprintln!(
            "warning: the retention anchor at seq {seq} is unverified (no audit.checkpoint.key_file)"
        );
    }
    let (total, prev) = (report.records, report.head);
    if let Some(c) = &checkpoint {
        let head = store.audit_head().await?;
        let at_seq = store.audit_hash_at(c.seq).await?;
        if let Err(e) = lockout::audit::checkpoint::against(
            c,
            head.as_ref().map(|(s, h)| (*s, h.as_str())),
            at_seq.as_deref(),
        ) {
            out!("BROKEN: {e}");
            return Ok(ExitCode::FAILURE);
        }
        out!("checkpoint of {} (seq {}) matches", c.at, c.seq);
    }
    out!("ok: {total} audit records, chain intact, head {prev}");
    Ok(ExitCode::SUCCESS)
}

async fn resolve(client: &UsersApiClient, user: &str, log: &CallLog) -> anyhow::Result<User> {
    match UserRef::parse(user)? {
        UserRef::Id(id) => Ok(client.get_user(&id, log).await?),
        UserRef::Email(email) => {
            let all: Vec<User> = client.list_users(None, 1000, log).try_collect().await?;
            match all
                .into_iter()
                .find(|u| u.email.eq_ignore_ascii_case(email.as_str()))
            {
                Some(u) => Ok(u),
                None => bail!("no 1Password user has the e-mail {email}"),
            }
        }
    }
}

fn print_users(users: &[User], as_json: bool) {
    if as_json {
        out!(
            "{}",
            serde_json::to_string_pretty(users).expect("users serialise")
        );
        return;
    }
    out!("{:<26}  {:<10}  {:<32}  NAME", "ID", "STATE", "EMAIL");
    for u in users {
        out!(
            "{:<26}  {:<10}  {:<32}  {}",
            u.id,
            u.state.as_str(),
            u.email,
            u.display_name
        );
    }
}

async fn users(settings: &Settings, command: UsersCommand) -> anyhow::Result<ExitCode> {
    let store: Arc<dyn Store> = Arc::new(SqlStore::connect(&settings.store.url).await?);
    let prepared = lockout::startup::prepare(settings)?;
    let playbooks = matches!(
        command,
        UsersCommand::Suspend { .. } | UsersCommand::Reactivate { .. }
    )
    .then(|| lockout::startup::load_playbooks(settings))
    .transpose()?;
    let (client, fake) = users_api_client(settings, &prepared, store.clone()).await?;
    let mut parsed = Some((prepared, playbooks.unwrap_or_default()));
    if fake.is_some() {
        eprintln!(
            "SANDBOX: no users_api configured; talking to the in-process fake, with the users as the service left them"
        );
    }
    let log = CallLog::default();
    let suspend = matches!(command, UsersCommand::Suspend { .. });
    let result = async {
        match command {
            UsersCommand::List { state, json } => {
                let users: Vec<User> = client.list_users(state, 1000, &log).try_collect().await?;
                print_users(&users, json);
            }
            UsersCommand::Get { user, json } => {
                let u = resolve(&client, &user, &log).await?;
                if json {
                    out!("{}", serde_json::to_string_pretty(&u)?);
                } else {
                    print_users(&[u], false);
                }
            }
            UsersCommand::Suspend { user, reason, json }
            | UsersCommand::Reactivate { user, reason, json } => {
                let step = if suspend {
                    lockout::playbooks::StepAction::Suspend
                } else {
                    lockout::playbooks::StepAction::Reactivate
                };
                let (prepared, playbooks) = parsed.take().expect("one change per run");
                let ctx = lockout::startup::build_context(
                    settings,
                    prepared,
                    playbooks,
                    store.clone(),
                    client.clone(),
                    fake.as_ref(),
                )?;
                operator_change(&ctx, &user, &reason, step, json).await?;
            }
        }
        anyhow::Ok(())
    };
    let outcome = result.await;
    if let Some(fake) = fake {
        fake.stop().await;
    }
    outcome?;
    Ok(ExitCode::SUCCESS)
}

/// Suppressions from the command line: the same rules and audit as `/v1/suppressions`, the
/// author `operator:<login>`. A running service applies a change within a second.
async fn suppressions(
    settings: &Settings,
    command: SuppressionsCommand,
) -> anyhow::Result<ExitCode> {
    use lockout::actions::suppressions::{self, NewSuppression};
    let store = SqlStore::connect(&settings.store.url).await?;
    let operator = format!(
        "operator:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    );
    match command {
        SuppressionsCommand::Add {
            user,
            playbook,
            source,
            labels,
            reason,
            expires_in_secs,
        } => {
            let labels = labels
                .iter()
                .map(|l| {
                    l.split_once('=')
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .ok_or_else(|| anyhow::anyhow!("--label {l:?} is not key=value"))
                })
                .collect::<anyhow::Result<_>>()?;
            let s = suppressions::create(
                &store,
                &operator,
                NewSuppression {
                    user,
                    playbook,
                    source,
                    labels,
                    reason,
                    expires_in_secs: Some(expires_in_secs),
                },
                std::time::Duration::from_secs(settings.guards.max_suppression_secs),
            )
            .await?;
            out!("{}", serde_json::to_string_pretty(&s)?);
        }
        SuppressionsCommand::List { all } => {
            let list = store
                .list_suppressions(&lockout::domain::now_rfc3339(), all)
                .await?;
            out!("{}", serde_json::to_string_pretty(&list)?);
        }
        SuppressionsCommand::Rm { id } => {
            if !store
                .remove_suppression(&id, &operator, &lockout::domain::now_rfc3339())
                .await?
            {
                bail!("no suppression {id} in force");
            }
            out!("removed {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// An operator's suspension or reactivation: the same manual path as `POST
/// /v1/users/{user}/suspend` (protected list, chain, limits, approvals, audit), run here to its
/// end by a worker of this process that takes only this action.
async fn operator_change(
    ctx: &lockout::context::AppContext,
    user: &str,
    reason: &str,
    step: lockout::playbooks::StepAction,
    as_json: bool,
) -> anyhow::Result<()> {
    use lockout::actions::manual::{self, ManualRequest, Requester};
    let operator = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    // The requester as the action's records will name it: an operator, not an analyst.
    let who = Requester {
        actor: format!("operator:{operator}"),
        id: format!("operator:{operator}"),
        roles: vec![],
    };
    let target = UserRef::parse(user)?;
    let queued = manual::request(
        ctx,
        &who,
        ManualRequest {
            target,
            step,
            reason: reason.to_owned(),
            approval_required: false,
        },
    )
    .await?;
    let Some(id) = queued.action_id else {
        bail!("an open action of this kind on {user} exists already; it was not queued twice");
    };
    let worker = format!(
        "cli-{}-{}/0",
        lockout::startup::hostname(),
        std::process::id()
    );
    let deadline = std::time::Instant::now()
        + ctx
            .worker
            .action_deadline
            .min(std::time::Duration::from_secs(120));
    let action = loop {
        lockout::actions::try_run_action(ctx, &worker, &id).await?;
        let a = ctx
            .store
            .get_action(&id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("action {id} vanished"))?;
        if !a.state.is_open() || a.state == lockout::store::ActionState::PendingApproval {
            break a;
        }
        if std::time::Instant::now() > deadline {
            bail!(
                "action {id} is still {}; the service's workers will finish it",
                a.state.as_str()
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let skipped_because = action
        .result
        .as_ref()
        .filter(|_| action.state == lockout::store::ActionState::Skipped)
        .and_then(|r| r.get("reason").or_else(|| r.get("skipped")))
        .and_then(|r| r.as_str())
        .map(str::to_owned);
    if let Some(why) = skipped_because.filter(|w| w.contains("protected")) {
        bail!("{user}: {why}");
    }
    match action.state {
        lockout::store::ActionState::Succeeded | lockout::store::ActionState::Skipped => {
            let after: Option<User> = action
                .result
                .as_ref()
                .and_then(|r| r.get("user").cloned())
                .and_then(|u| serde_json::from_value(u).ok());
            let after = match after {
                Some(u) => u,
                None => resolve(&ctx.users, user, &CallLog::default()).await?,
            };
            if as_json {
                out!("{}", serde_json::to_string_pretty(&after)?);
            } else {
                print_users(&[after], false);
            }
            Ok(())
        }
        lockout::store::ActionState::PendingApproval => {
            out!("action {id} waits for approval (blast-radius limit): see GET /v1/approvals");
            Ok(())
        }
        other => bail!(
            "action {id} ended {}: {}",
            other.as_str(),
            action.last_error.unwrap_or_default()
        ),
    }
}

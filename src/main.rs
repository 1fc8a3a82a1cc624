//! The `lockout` command: parse the CLI, set up telemetry, call into the library.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use futures::TryStreamExt;
use lockout::audit::{AuditEvent, GENESIS_HASH};
use lockout::config::Settings;
use lockout::domain::UserRef;
use lockout::sandbox::{FakeConfig, SeedUser, sample_users};
use lockout::startup::{Application, users_api_client};
use lockout::store::{SqliteStore, Store};
use lockout::users_api::{CallLog, StateFilter, User, UsersApiClient};
use serde_json::json;

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
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify the hash chain; name the first broken record.
    Verify,
}

#[tokio::main]
async fn main() -> ExitCode {
    lockout::telemetry::init();
    let cli = Cli::parse();
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
        Command::Playbooks {
            command: PlaybooksCommand::Check { dir },
        } => {
            let dir = match dir {
                Some(d) => d,
                None => Settings::load(cli.config.as_deref())?.0.playbooks.dir,
            };
            match lockout::playbooks::load_dir(&dir) {
                Ok(set) => {
                    for p in &set.playbooks {
                        println!("ok  {} ({})", p.name, p.file.display());
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(errors) => {
                    for e in errors {
                        println!("{e}");
                    }
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        command => {
            let (settings, _) = Settings::load(cli.config.as_deref())?;
            match command {
                Command::Serve => {
                    let app = Application::build(settings).await?;
                    app.run_until_stopped().await?;
                    Ok(ExitCode::SUCCESS)
                }
                Command::Users { command } => users(&settings, command).await,
                Command::Audit {
                    command: AuditCommand::Verify,
                } => audit_verify(&settings).await,
                _ => unreachable!("handled above"),
            }
        }
    }
}

async fn audit_verify(settings: &Settings) -> anyhow::Result<ExitCode> {
    let store = SqliteStore::open(settings.sqlite_path()).await?;
    let mut prev = GENESIS_HASH.to_owned();
    let mut after = 0;
    let mut total = 0;
    loop {
        let batch = store.audit_chain(after, 1000).await?;
        if batch.is_empty() {
            break;
        }
        match lockout::audit::verify(&prev, &batch) {
            Ok((n, last)) => {
                total += n;
                prev = last;
                after = batch.last().map(|r| r.seq).unwrap_or(after);
            }
            Err(e) => {
                println!("BROKEN: {e}");
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    println!("ok: {total} audit records, chain intact, head {prev}");
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
        println!(
            "{}",
            serde_json::to_string_pretty(users).expect("users serialise")
        );
        return;
    }
    println!("{:<26}  {:<10}  {:<32}  NAME", "ID", "STATE", "EMAIL");
    for u in users {
        println!(
            "{:<26}  {:<10}  {:<32}  {}",
            u.id,
            u.state.as_str(),
            u.email,
            u.display_name
        );
    }
}

async fn users(settings: &Settings, command: UsersCommand) -> anyhow::Result<ExitCode> {
    let (client, fake) = users_api_client(settings).await?;
    if fake.is_some() {
        eprintln!(
            "SANDBOX: no users_api configured; talking to an in-process fake with sample users"
        );
    }
    let log = CallLog::default();
    let result = async {
        match command {
            UsersCommand::List { state, json } => {
                let users: Vec<User> = client.list_users(state, 1000, &log).try_collect().await?;
                print_users(&users, json);
            }
            UsersCommand::Get { user, json } => {
                let u = resolve(&client, &user, &log).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&u)?);
                } else {
                    print_users(&[u], false);
                }
            }
            UsersCommand::Suspend { user, reason, json } => {
                operator_change(&client, settings, &user, &reason, true, json, &log).await?;
            }
            UsersCommand::Reactivate { user, reason, json } => {
                operator_change(&client, settings, &user, &reason, false, json, &log).await?;
            }
        }
        anyhow::Ok(())
    };
    // The operator's change is audited whether it worked or not.
    let outcome = result.await;
    if let Some(fake) = fake {
        fake.stop().await;
    }
    outcome?;
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::too_many_arguments)]
async fn operator_change(
    client: &UsersApiClient,
    settings: &Settings,
    user: &str,
    reason: &str,
    suspend: bool,
    as_json: bool,
    log: &CallLog,
) -> anyhow::Result<()> {
    let store = SqliteStore::open(settings.sqlite_path()).await?;
    let operator = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let kind = if suspend { "suspend" } else { "reactivate" };
    let result = async {
        let u = resolve(client, user, log).await?;
        let after = if suspend {
            client.suspend_user(&u.id, log).await?
        } else {
            client.reactivate_user(&u.id, log).await?
        };
        anyhow::Ok(after)
    }
    .await;
    let mut events: Vec<AuditEvent> = log
        .take()
        .into_iter()
        .map(|c| {
            AuditEvent::new("api.call", format!("operator:{operator}"))
                .subject(user)
                .data(serde_json::to_value(c).expect("serialises"))
        })
        .collect();
    events.push(
        AuditEvent::new(&format!("operator.{kind}"), format!("operator:{operator}"))
            .subject(user)
            .data(json!({
                "reason": reason,
                "ok": result.is_ok(),
                "error": result.as_ref().err().map(|e| e.to_string()),
                "user": result.as_ref().ok(),
            })),
    );
    store.append_audit(events).await?;
    let after = result?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&after)?);
    } else {
        print_users(&[after], false);
    }
    Ok(())
}

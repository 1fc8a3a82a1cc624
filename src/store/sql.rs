use std::sync::{Arc, Once};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyConnection, AnyPool, Executor, Row};
use tokio::sync::mpsc;

use super::core::*;
use super::*;
use crate::audit::PreparedEvent;
use crate::decisions::limits;
use crate::domain::{new_id, now_rfc3339, shift_time};

/// The store, on SQLite (embedded default) or PostgreSQL (several replicas), through sqlx's
/// `Any` driver: one implementation, the same SQL for both (`$N` placeholders, in order).
///
/// Writes are serialised: in-process by an async mutex (SQLite allows one writer; no
/// busy-retry storms), and across replicas on PostgreSQL by a transaction-scoped advisory
/// lock taken first in every write transaction. That one rule is what keeps the audit chain
/// single and verifiable, and what makes the blast-radius limits hold in the claim's
/// transaction across replicas.
pub struct SqlStore {
    shared: Arc<Shared>,
    /// Finishes waiting for the writer, committed together by whoever takes it first.
    finishes: GroupCommit<FinishRequest, bool>,
    /// Claims waiting for the writer, likewise.
    claims: GroupCommit<ClaimRequest, Claim>,
    /// Intake inserts go through one task that commits them in batches: one fsync for many
    /// alerts (group commit), each caller answered only after its batch is on disk.
    intake: mpsc::Sender<IntakeRequest>,
}

struct ClaimRequest {
    worker: String,
    now: String,
    claim_until: String,
    policy: LimitPolicy,
    only: Option<String>,
}

struct FinishRequest {
    id: String,
    worker: String,
    outcome: ActionOutcome,
    audit: Vec<AuditEvent>,
}

/// The embedded default.
pub type SqliteStore = SqlStore;

/// Actions a worker may claim at `$1`: due, or held by a worker whose claim ran out.
macro_rules! claimable {
    () => {
        "(state IN ('scheduled', 'ready') AND not_before <= $1) OR (state = 'running' AND claim_expires_at < $1)"
    };
}

static DRIVERS: Once = Once::new();

impl SqlStore {
    /// Opens a SQLite file (the embedded default).
    pub async fn open(path: &str) -> StoreResult<Self> {
        Self::connect(&format!("sqlite://{path}")).await
    }

    /// Connects by URL: `sqlite://PATH` or `postgres://…`. Applies migrations.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        let postgres = url.starts_with("postgres:") || url.starts_with("postgresql:");
        let sqlite_path = (!postgres).then(|| {
            let path = url
                .trim_start_matches("sqlite://")
                .trim_start_matches("sqlite:");
            // Options in the URL are not part of the file's name.
            path.split('?').next().unwrap_or(path).to_owned()
        });
        let pool = if let Some(path) = &sqlite_path {
            AnyPoolOptions::new()
                .max_connections(4)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        conn.execute(sqlx::AssertSqlSafe(super::sqlite_intake::PRAGMAS))
                            .await
                            .map(|_| ())
                    })
                })
                .connect(&format!("sqlite://{path}?mode=rwc"))
                .await?
        } else {
            AnyPoolOptions::new()
                .max_connections(10)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await?
        };
        let shared = Arc::new(Shared {
            pool,
            writer: tokio::sync::Mutex::new(()),
            postgres,
            dedup_forgotten: Default::default(),
        });
        migrate(&shared).await?;
        let intake = match &sqlite_path {
            Some(path) => super::sqlite_intake::spawn(path, shared.clone())?,
            None => super::postgres_intake::spawn(shared.clone()),
        };
        Ok(Self {
            shared,
            intake,
            finishes: Default::default(),
            claims: Default::default(),
        })
    }

    pub fn is_postgres(&self) -> bool {
        self.shared.postgres
    }

    /// The pool, for tests that need to reach under the trait (e.g. to tamper with a row).
    pub fn pool(&self) -> &AnyPool {
        &self.shared.pool
    }
}

async fn migrate(sh: &Shared) -> StoreResult<()> {
    let migrations = if sh.postgres {
        super::migrations::POSTGRES
    } else {
        super::migrations::SQLITE
    };
    // Under the write lock: two replicas starting together migrate once.
    let (_w, mut tx) = sh.write_tx().await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)")
        .execute(&mut *tx)
        .await?;
    for (version, name, sql) in migrations {
        let done: Option<i64> =
            sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
                .bind(version)
                .fetch_optional(&mut *tx)
                .await?;
        if done.is_some() {
            continue;
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::Migration(format!("{version} {name}: {e}")))?;
        sqlx::query(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
        )
        .bind(version)
        .bind(name)
        .bind(now_rfc3339())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

pub(super) async fn append_audit_tx(
    conn: &mut AnyConnection,
    events: Vec<AuditEvent>,
) -> StoreResult<()> {
    append_prepared_tx(conn, events.into_iter().map(PreparedEvent::new).collect()).await
}

pub(super) async fn append_prepared_tx(
    conn: &mut AnyConnection,
    events: Vec<PreparedEvent>,
) -> StoreResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    let last: Option<(i64, String)> = sqlx::query_as(AUDIT_TAIL)
        .fetch_optional(&mut *conn)
        .await?;
    let last = match last {
        Some(l) => Some(l),
        // Everything before was pruned: the chain continues from the retention anchor.
        None => {
            sqlx::query_as(ANCHOR_TAIL)
                .fetch_optional(&mut *conn)
                .await?
        }
    };
    let at = now_rfc3339();
    let rows = chain_records(last, &at, events);
    // Multi-row inserts: one statement per 500 records (12 parameters each).
    for chunk in rows.chunks(500) {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(audit_insert(chunk.len())));
        for r in chunk {
            let e = &r.event.event;
            q = q
                .bind(r.seq)
                .bind(&r.id)
                .bind(&at)
                .bind(&e.kind)
                .bind(&e.actor)
                .bind(e.alert_id.clone())
                .bind(e.action_id.clone())
                .bind(e.playbook.clone())
                .bind(e.subject.clone())
                .bind(&r.event.data)
                .bind(&r.prev_hash)
                .bind(&r.hash);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

fn action_event(a: &Action, kind: &str, data: serde_json::Value) -> AuditEvent {
    a.audit_event(kind, "system").data(data)
}

async fn load_action(conn: &mut AnyConnection, id: &str) -> StoreResult<Option<Action>> {
    let row = sqlx::query("SELECT * FROM actions WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(action_from_row).transpose()
}

/// Makes an action due: it waits for approval (a new approval row) or is scheduled after its delay.
async fn activate(
    conn: &mut AnyConnection,
    a: &Action,
    now: &str,
    audit: &mut Vec<AuditEvent>,
) -> StoreResult<()> {
    if let Some(req) = &a.approval {
        sqlx::query("UPDATE actions SET state = 'pending_approval', updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(&a.id)
            .execute(&mut *conn)
            .await?;
        let approval_id = insert_approval(conn, a, req, now).await?;
        audit.push(action_event(a, "approval.requested", json!({"approval_id": approval_id, "approvers": req.approvers, "quorum": req.quorum, "reason": req.reason, "expires_in_secs": req.timeout_secs})));
    } else {
        schedule(conn, a, now, a.delay_secs, audit).await?;
    }
    Ok(())
}

/// The channel on which PostgreSQL tells every replica that an action became due: workers
/// wake at once instead of at their next poll. Sent inside the transaction, so delivered on
/// its commit (and never for one rolled back).
pub const ACTIONS_DUE_CHANNEL: &str = "lockout_actions_due";

async fn notify_due(conn: &mut AnyConnection) -> StoreResult<()> {
    if conn.backend_name() == "PostgreSQL" {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(ACTIONS_DUE_CHANNEL)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

async fn schedule(
    conn: &mut AnyConnection,
    a: &Action,
    now: &str,
    delay_secs: i64,
    audit: &mut Vec<AuditEvent>,
) -> StoreResult<()> {
    notify_due(conn).await?;
    let not_before = shift_time(now, delay_secs);
    let state = if delay_secs > 0 { "scheduled" } else { "ready" };
    sqlx::query("UPDATE actions SET state = $1, not_before = $2, deadline_at = $3, updated_at = $4 WHERE id = $5")
        .bind(state)
        .bind(&not_before)
        .bind(shift_time(&not_before, a.deadline_secs))
        .bind(now)
        .bind(&a.id)
        .execute(&mut *conn)
        .await?;
    audit.push(action_event(
        a,
        "action.scheduled",
        json!({"kind": a.kind, "mode": a.mode, "not_before": not_before, "state": state}),
    ));
    Ok(())
}

async fn insert_approval(
    conn: &mut AnyConnection,
    a: &Action,
    req: &ApprovalRequest,
    now: &str,
) -> StoreResult<String> {
    let id = new_id("apr");
    sqlx::query(
        "INSERT INTO approvals (id, action_id, state, request, binding_hash, requested_by, decisions, created_at, expires_at, escalate_at, escalated)
         VALUES ($1, $2, 'pending', $3, $4, $5, '[]', $6, $7, $8, 0)",
    )
    .bind(&id)
    .bind(&a.id)
    .bind(serde_json::to_string(req).map_err(corrupt)?)
    .bind(binding_hash(a))
    .bind(&a.requested_by)
    .bind(now)
    .bind(shift_time(now, req.timeout_secs))
    .bind(req.escalate_after_secs.map(|s| shift_time(now, s)))
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

/// Cancels the steps after `a` in its chain.
async fn cancel_successors(
    conn: &mut AnyConnection,
    a: &Action,
    why: &str,
    now: &str,
    audit: &mut Vec<AuditEvent>,
) -> StoreResult<()> {
    let rows = sqlx::query(
        "SELECT * FROM actions WHERE chain_id = $1 AND step_index > $2 AND state = 'waiting'",
    )
    .bind(&a.chain_id)
    .bind(a.step_index)
    .fetch_all(&mut *conn)
    .await?;
    for row in &rows {
        let s = action_from_row(row)?;
        sqlx::query("UPDATE actions SET state = 'cancelled', finished_at = $1, updated_at = $2, last_error = $3 WHERE id = $4")
            .bind(now)
            .bind(now)
            .bind(why)
            .bind(&s.id)
            .execute(&mut *conn)
            .await?;
        audit.push(action_event(
            &s,
            "action.cancelled",
            json!({"reason": why, "after": a.id}),
        ));
    }
    Ok(())
}

/// Moves the chain past a finished `a`: the next step becomes due.
async fn advance(
    conn: &mut AnyConnection,
    a: &Action,
    now: &str,
    audit: &mut Vec<AuditEvent>,
) -> StoreResult<()> {
    let row = sqlx::query(
        "SELECT * FROM actions WHERE chain_id = $1 AND step_index = $2 AND state = 'waiting'",
    )
    .bind(&a.chain_id)
    .bind(a.step_index + 1)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = row {
        let next = action_from_row(&row)?;
        activate(conn, &next, now, audit).await?;
    }
    Ok(())
}

/// Cancels an open action (and what follows it) with its pending approvals.
async fn cancel_action(
    conn: &mut AnyConnection,
    a: &Action,
    why: &str,
    now: &str,
    audit: &mut Vec<AuditEvent>,
) -> StoreResult<()> {
    sqlx::query("UPDATE actions SET state = 'cancelled', finished_at = $1, updated_at = $2, last_error = $3 WHERE id = $4")
        .bind(now)
        .bind(now)
        .bind(why)
        .bind(&a.id)
        .execute(&mut *conn)
        .await?;
    let cancelled = sqlx::query("UPDATE approvals SET state = 'cancelled', decided_at = $1 WHERE action_id = $2 AND state = 'pending'")
        .bind(now)
        .bind(&a.id)
        .execute(&mut *conn)
        .await?;
    if cancelled.rows_affected() > 0 {
        audit.push(action_event(
            a,
            "approval.cancelled",
            json!({"reason": why}),
        ));
    }
    audit.push(action_event(a, "action.cancelled", json!({"reason": why})));
    cancel_successors(conn, a, why, now, audit).await
}

/// Every name the chain's target goes by: its target, its aliases and its user id.
fn target_names(chain: &NewChain) -> Vec<String> {
    let mut names: Vec<String> = std::iter::once(&chain.target)
        .chain(&chain.aliases)
        .chain(&chain.user_id)
        .cloned()
        .collect();
    names.sort();
    names.dedup();
    names
}

/// `$from, $from+1, …` for a list of `n` values.
fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Open actions on the user any of `names` names (by target or resolved id), optionally of
/// one kind, oldest first.
async fn open_actions_on(
    conn: &mut AnyConnection,
    names: &[String],
    kind: Option<&str>,
    states: &str,
) -> StoreResult<Vec<Action>> {
    let list = placeholders(2, names.len());
    let sql = format!(
        "SELECT * FROM actions WHERE ($1 IS NULL OR kind = $1) AND state IN ({states}) AND (target IN ({list}) OR user_id IN ({list})) ORDER BY created_at, step_index"
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(kind);
    for n in names {
        q = q.bind(n);
    }
    q.fetch_all(&mut *conn)
        .await?
        .iter()
        .map(action_from_row)
        .collect()
}

/// Records that `alert_id` asked for `action_id` (a resolved alert withdraws it).
async fn record_request(
    conn: &mut AnyConnection,
    action_id: &str,
    alert_id: &str,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO action_alerts (action_id, alert_id, correlation)
         SELECT $1, id, correlation FROM alerts WHERE id = $2
         ON CONFLICT (action_id, alert_id) DO NOTHING",
    )
    .bind(action_id)
    .bind(alert_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Inserts a chain; its first step becomes due. If an open action on the same user (by any
/// of its names) has the kind of the first step, the chain attaches to it (its alert is
/// recorded as asking for it too) unless it asks for something stricter (`supersedes`), in
/// which case the open action is cancelled and the chain inserted.
async fn insert_chain(
    conn: &mut AnyConnection,
    chain: &NewChain,
    now: &str,
    audit: &mut Vec<AuditEvent>,
) -> StoreResult<Vec<String>> {
    let Some(first) = chain.steps.first() else {
        return Ok(vec![]);
    };
    if chain.target != "*" {
        let names = target_names(chain);
        let open = open_actions_on(
            conn,
            &names,
            Some(first.kind.as_str()),
            "'waiting', 'pending_approval', 'scheduled', 'ready', 'running'",
        )
        .await?;
        if let Some(existing) = open.into_iter().next() {
            match super::supersedes(chain.mode, first, &existing) {
                Some(why) => {
                    let mut e = AuditEvent::new("action.superseded", "system")
                        .action(&existing.id)
                        .subject(&chain.target)
                        .data(json!({"kind": first.kind, "reason": why, "by_chain": chain.id}));
                    e.alert_id = chain.alert_id.clone();
                    e.playbook = chain.playbook.clone();
                    audit.push(e);
                    cancel_action(conn, &existing, &why, now, audit).await?;
                }
                None => {
                    if let Some(alert_id) = &chain.alert_id {
                        record_request(conn, &existing.id, alert_id).await?;
                    }
                    let mut e = AuditEvent::new("action.attached", "system")
                        .action(&existing.id)
                        .subject(&chain.target)
                        .data(json!({"kind": first.kind, "reason": "an open action for this user and kind exists, asking for no less", "existing_state": existing.state, "steps_dropped": chain.steps.len()}));
                    e.alert_id = chain.alert_id.clone();
                    e.playbook = chain.playbook.clone();
                    audit.push(e);
                    return Ok(vec![]);
                }
            }
        }
    }
    let mut created = vec![];
    let mut predecessor: Option<String> = None;
    for (i, step) in chain.steps.iter().enumerate() {
        sqlx::query(
            "INSERT INTO actions (id, chain_id, step_index, predecessor, alert_id, playbook, kind, target, params, approval, mode, reason, origin, requested_by,
                                  state, attempts, delay_secs, deadline_secs, not_before, deadline_at, created_at, updated_at, user_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 'waiting', 0, $15, $16, $17, $18, $19, $20, $21)",
        )
        .bind(&step.id)
        .bind(&chain.id)
        .bind(i as i64)
        .bind(&predecessor)
        .bind(&chain.alert_id)
        .bind(&chain.playbook)
        .bind(step.kind.as_str())
        .bind(&chain.target)
        .bind(step.params.to_string())
        .bind(step.approval.as_ref().map(|a| serde_json::to_string(a).expect("serialises")))
        .bind(chain.mode.as_str())
        .bind(&chain.reason)
        .bind(chain.origin.as_str())
        .bind(&chain.requested_by)
        .bind(step.delay_secs)
        .bind(chain.deadline_secs)
        .bind(now)
        .bind(now)
        .bind(now)
        .bind(now)
        .bind(&chain.user_id)
        .execute(&mut *conn)
        .await?;
        if let Some(alert_id) = &chain.alert_id {
            record_request(conn, &step.id, alert_id).await?;
        }
        let mut e = AuditEvent::new("action.queued", "system")
            .action(&step.id)
            .subject(&chain.target)
            .data(json!({"kind": step.kind, "mode": chain.mode, "chain": chain.id, "step": i, "reason": chain.reason, "origin": chain.origin, "approval": step.approval, "delay_secs": step.delay_secs}));
        e.alert_id = chain.alert_id.clone();
        e.playbook = chain.playbook.clone();
        audit.push(e);
        created.push(step.id.clone());
        predecessor = Some(step.id.clone());
    }
    let first = load_action(conn, &chain.steps[0].id)
        .await?
        .ok_or_else(|| corrupt("inserted action vanished"))?;
    activate(conn, &first, now, audit).await?;
    Ok(created)
}

/// A resolved alert withdraws the requests of the firing alerts it correlates with. A
/// pending approval whose step cancels on resolve is cancelled once no request is left; while
/// another alert still asks for the action, it stays (audited).
async fn withdraw_requests(
    conn: &mut AnyConnection,
    correlation: &str,
    resolved_by: &str,
    now: &str,
    audit: &mut Vec<AuditEvent>,
) -> StoreResult<()> {
    let actions: Vec<String> = sqlx::query_scalar(
        "UPDATE action_alerts SET resolved_at = $1 WHERE correlation = $2 AND resolved_at IS NULL AND alert_id != $3 RETURNING action_id",
    )
    .bind(now)
    .bind(correlation)
    .bind(resolved_by)
    .fetch_all(&mut *conn)
    .await?;
    let mut seen = std::collections::HashSet::new();
    for action_id in actions {
        if !seen.insert(action_id.clone()) {
            continue;
        }
        let rows =
            sqlx::query("SELECT * FROM approvals WHERE action_id = $1 AND state = 'pending'")
                .bind(&action_id)
                .fetch_all(&mut *conn)
                .await?;
        for row in &rows {
            let approval = approval_from_row(row)?;
            if !approval.request.cancel_on_resolve {
                continue;
            }
            let Some(action) = load_action(conn, &approval.action_id).await? else {
                continue;
            };
            let still: Vec<String> = sqlx::query_scalar(
                "SELECT alert_id FROM action_alerts WHERE action_id = $1 AND resolved_at IS NULL ORDER BY alert_id",
            )
            .bind(&action_id)
            .fetch_all(&mut *conn)
            .await?;
            if still.is_empty() {
                let why = format!("the source resolved the alert (resolved by {resolved_by})");
                cancel_action(conn, &action, &why, now, audit).await?;
            } else {
                audit.push(action_event(
                    &action,
                    "approval.kept",
                    json!({"reason": format!("resolved by {resolved_by}, but other alerts still ask for it"), "alerts": still}),
                ));
            }
        }
    }
    Ok(())
}

fn alert_from_row(row: &AnyRow) -> StoreResult<StoredAlert> {
    let state: String = row.try_get("state")?;
    let state = match state.as_str() {
        "received" => AlertState::Received,
        "evaluated" => AlertState::Evaluated,
        "duplicate" => AlertState::Duplicate,
        other => return Err(StoreError::Corrupt(format!("alert state {other:?}"))),
    };
    let alert: String = row.try_get("alert")?;
    Ok(StoredAlert {
        id: row.try_get("id")?,
        source: row.try_get("source")?,
        fingerprint: row.try_get("fingerprint")?,
        received_at: row.try_get("received_at")?,
        status: row.try_get("status")?,
        state,
        duplicate_of: row.try_get("duplicate_of")?,
        correlation: row.try_get("correlation")?,
        alert: serde_json::from_str(&alert).map_err(corrupt)?,
        plan: row.try_get("plan")?,
    })
}

fn json_col<T: serde::de::DeserializeOwned>(row: &AnyRow, col: &str) -> StoreResult<Option<T>> {
    let v: Option<String> = row.try_get(col)?;
    v.map(|s| serde_json::from_str(&s))
        .transpose()
        .map_err(corrupt)
}

pub(super) fn action_from_row(row: &AnyRow) -> StoreResult<Action> {
    let state: String = row.try_get("state")?;
    let id: String = row.try_get("id")?;
    let kind: String = row.try_get("kind")?;
    let mode: String = row.try_get("mode")?;
    let origin: String = row.try_get("origin")?;
    let params: serde_json::Value = json_col(row, "params")?.unwrap_or_default();
    let step: StepParams = serde_json::from_value(params.clone())
        .map_err(|e| StoreError::Corrupt(format!("action {id}: params: {e}")))?;
    Ok(Action {
        step: Some(step),
        params,
        kind: parse_column(&id, "kind", &kind, ActionKind::parse)?,
        mode: parse_column(&id, "mode", &mode, Mode::parse)?,
        origin: parse_column(&id, "origin", &origin, Origin::parse)?,
        id,
        chain_id: row.try_get("chain_id")?,
        step_index: row.try_get("step_index")?,
        predecessor: row.try_get("predecessor")?,
        alert_id: row.try_get("alert_id")?,
        playbook: row.try_get("playbook")?,
        target: row.try_get("target")?,
        approval: json_col(row, "approval")?,
        reason: row.try_get("reason")?,
        requested_by: row.try_get("requested_by")?,
        state: ActionState::parse(&state)?,
        attempts: row.try_get("attempts")?,
        delay_secs: row.try_get("delay_secs")?,
        deadline_secs: row.try_get("deadline_secs")?,
        not_before: row.try_get("not_before")?,
        deadline_at: row.try_get("deadline_at")?,
        claimed_by: row.try_get("claimed_by")?,
        claim_expires_at: row.try_get("claim_expires_at")?,
        user_id: row.try_get("user_id")?,
        last_error: row.try_get("last_error")?,
        result: json_col(row, "result")?,
        limit_override: row.try_get::<i64, _>("limit_override")? != 0,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

fn suppression_from_row(row: &AnyRow) -> StoreResult<Suppression> {
    let id: String = row.try_get("id")?;
    let labels: String = row.try_get("labels")?;
    Ok(Suppression {
        labels: serde_json::from_str(&labels)
            .map_err(|e| StoreError::Corrupt(format!("suppression {id}: labels: {e}")))?,
        id,
        user: row.try_get("user_match")?,
        playbook: row.try_get("playbook")?,
        source: row.try_get("source")?,
        reason: row.try_get("reason")?,
        author: row.try_get("author")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        removed_at: row.try_get("removed_at")?,
        removed_by: row.try_get("removed_by")?,
    })
}

fn approval_from_row(row: &AnyRow) -> StoreResult<Approval> {
    let state: String = row.try_get("state")?;
    Ok(Approval {
        id: row.try_get("id")?,
        action_id: row.try_get("action_id")?,
        state: ApprovalState::parse(&state)?,
        request: json_col(row, "request")?.ok_or_else(|| corrupt("approval without request"))?,
        binding_hash: row.try_get("binding_hash")?,
        requested_by: row.try_get("requested_by")?,
        decisions: json_col(row, "decisions")?.unwrap_or_default(),
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        escalate_at: row.try_get("escalate_at")?,
        escalated: row.try_get::<i64, _>("escalated")? != 0,
        decided_at: row.try_get("decided_at")?,
    })
}

fn audit_from_row(row: &AnyRow) -> StoreResult<AuditRecord> {
    let data: String = row.try_get("data")?;
    Ok(AuditRecord {
        seq: row.try_get("seq")?,
        id: row.try_get("id")?,
        at: row.try_get("at")?,
        event: AuditEvent {
            kind: row.try_get("kind")?,
            actor: row.try_get("actor")?,
            alert_id: row.try_get("alert_id")?,
            action_id: row.try_get("action_id")?,
            playbook: row.try_get("playbook")?,
            subject: row.try_get("subject")?,
            data: serde_json::from_str(&data).map_err(corrupt)?,
        },
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

async fn load_approval(conn: &mut AnyConnection, id: &str) -> StoreResult<Option<Approval>> {
    let row = sqlx::query("SELECT * FROM approvals WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(approval_from_row).transpose()
}

/// Counts suspensions started within the window (optionally for one playbook).
async fn suspensions_since(
    conn: &mut AnyConnection,
    since: &str,
    playbook: Option<&str>,
) -> StoreResult<i64> {
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM actions WHERE kind = 'suspend' AND mode = 'enforce' AND started_at >= $1
           AND state IN ('running', 'succeeded') AND ($2 IS NULL OR playbook = $2)",
    )
    .bind(since)
    .bind(playbook)
    .fetch_one(&mut *conn)
    .await?)
}

/// Settles an approval that reached a final state: the action runs, or ends with its chain.
async fn settle(
    conn: &mut AnyConnection,
    approval: &Approval,
    outcome: ApprovalState,
    now: &str,
    actor: &str,
    audit: &mut Vec<AuditEvent>,
) -> StoreResult<()> {
    let Some(action) = load_action(conn, &approval.action_id).await? else {
        return Ok(());
    };
    if action.state != ActionState::PendingApproval {
        return Ok(());
    }
    let proceed = match outcome {
        ApprovalState::Approved => true,
        ApprovalState::Expired => approval.request.on_timeout == OnTimeout::Approve,
        _ => false,
    };
    if proceed {
        let held_by_limit = approval.request.reason.ends_with("limit");
        if held_by_limit {
            sqlx::query("UPDATE actions SET limit_override = 1 WHERE id = $1")
                .bind(&action.id)
                .execute(&mut *conn)
                .await?;
        }
        // The playbook's delay counts from the approval; a limit hold resumes at once.
        let delay = if held_by_limit { 0 } else { action.delay_secs };
        let mut e = action_event(
            &action,
            "approval.settled",
            json!({"approval_id": approval.id, "outcome": outcome.as_str(), "action": "runs"}),
        );
        e.actor = actor.into();
        audit.push(e);
        schedule(conn, &action, now, delay, audit).await
    } else {
        let state = if outcome == ApprovalState::Expired {
            "expired"
        } else {
            "denied"
        };
        sqlx::query(
            "UPDATE actions SET state = $1, finished_at = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(state)
        .bind(now)
        .bind(now)
        .bind(&action.id)
        .execute(&mut *conn)
        .await?;
        let mut e = action_event(
            &action,
            &format!("action.{state}"),
            json!({"approval_id": approval.id}),
        );
        e.actor = actor.into();
        audit.push(e);
        cancel_successors(conn, &action, &format!("previous step {state}"), now, audit).await
    }
}

#[async_trait]
impl Store for SqlStore {
    async fn insert_alert(
        &self,
        mut alert: NewAlert,
        dedup_since: &str,
        audit: PreparedEvent,
    ) -> StoreResult<InsertOutcome> {
        let (reply, answer) = Reply::new();
        let plan = alert.settled.take();
        let request = IntakeRequest {
            alert,
            dedup_since: dedup_since.to_owned(),
            audit: Some(audit),
            plan,
            reply,
        };
        self.intake
            .send(request)
            .await
            .map_err(|_| StoreError::Database("the intake writer stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Database("the intake writer stopped".into()))?
            .map_err(StoreError::Database)
    }

    async fn get_alert(&self, id: &str) -> StoreResult<Option<StoredAlert>> {
        let row = sqlx::query("SELECT * FROM alerts WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.shared.pool)
            .await?;
        row.as_ref().map(alert_from_row).transpose()
    }

    async fn unevaluated_alerts(&self, limit: i64) -> StoreResult<Vec<StoredAlert>> {
        let rows = sqlx::query(
            "SELECT * FROM alerts WHERE state = 'received' ORDER BY received_at, id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.shared.pool)
        .await?;
        rows.iter().map(alert_from_row).collect()
    }

    async fn record_plans(&self, plans: Vec<(String, PlanRecord)>) -> StoreResult<Vec<String>> {
        let (_w, mut tx) = self.shared.write_tx().await?;
        let now = now_rfc3339();
        let mut created = vec![];
        let mut audit = vec![];
        // Only alerts still unevaluated take their plan: another pass may have done one already.
        let list: Vec<String> = (0..plans.len()).map(|i| format!("${}", i + 1)).collect();
        let sql = format!(
            "UPDATE alerts SET state = 'evaluated' WHERE state = 'received' AND id IN ({}) RETURNING id",
            list.join(", ")
        );
        let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql));
        for (id, _) in &plans {
            q = q.bind(id);
        }
        let fresh: std::collections::HashSet<String> = if plans.is_empty() {
            Default::default()
        } else {
            q.fetch_all(&mut *tx).await?.into_iter().collect()
        };
        // What the commit itself adds (cancellations, chains), after each plan's own records.
        let mut more = vec![];
        for (alert_id, mut plan) in plans {
            if !fresh.contains(&alert_id) {
                continue;
            }
            if let Some(correlation) = &plan.cancel_correlation {
                withdraw_requests(&mut tx, correlation, &alert_id, &now, &mut more).await?;
            }
            for chain in &plan.chains {
                created.extend(insert_chain(&mut tx, chain, &now, &mut more).await?);
            }
            audit.append(&mut plan.audit);
            audit.extend(more.drain(..).map(PreparedEvent::new));
        }
        append_prepared_tx(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn enqueue(
        &self,
        chains: Vec<NewChain>,
        supersede: bool,
        mut audit: Vec<AuditEvent>,
    ) -> StoreResult<Vec<String>> {
        let (_w, mut tx) = self.shared.write_tx().await?;
        let now = now_rfc3339();
        let mut created = vec![];
        for chain in &chains {
            if supersede && chain.target != "*" {
                let open = open_actions_on(
                    &mut tx,
                    &target_names(chain),
                    None,
                    "'waiting', 'pending_approval', 'scheduled', 'ready'",
                )
                .await?;
                for a in open.iter().filter(|a| a.chain_id != chain.id) {
                    // Re-read: cancelling one may already have cancelled its successors.
                    if load_action(&mut tx, &a.id)
                        .await?
                        .is_some_and(|x| x.state.is_open())
                    {
                        cancel_action(
                            &mut tx,
                            a,
                            "superseded by a manual action on the user",
                            &now,
                            &mut audit,
                        )
                        .await?;
                    }
                }
            }
            created.extend(insert_chain(&mut tx, chain, &now, &mut audit).await?);
        }
        append_audit_tx(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn claim_action(
        &self,
        worker: &str,
        now: &str,
        claim_until: &str,
        policy: &LimitPolicy,
        only: Option<&str>,
    ) -> StoreResult<Claim> {
        // Workers poll: most polls find nothing, and must not take the writer (and on
        // PostgreSQL the cluster-wide lock) to learn it, which would make intake wait. A read
        // first; the claim below checks again under the lock.
        let due = sqlx::query(concat!(
            "SELECT 1 FROM actions WHERE (",
            claimable!(),
            ") AND ($2 IS NULL OR id = $2) LIMIT 1"
        ))
        .bind(now)
        .bind(only)
        .fetch_optional(&self.shared.pool)
        .await?;
        if due.is_none() {
            return Ok(Claim::Empty);
        }
        // Group commit: the claims waiting when one caller takes the writer are made in its
        // transaction, one commit for many.
        let request = ClaimRequest {
            worker: worker.to_owned(),
            now: now.to_owned(),
            claim_until: claim_until.to_owned(),
            policy: policy.clone(),
            only: only.map(str::to_owned),
        };
        self.claims
            .run(&self.shared, request, |tx, r| {
                Box::pin(claim_in_tx(
                    tx,
                    &r.worker,
                    &r.now,
                    &r.claim_until,
                    &r.policy,
                    r.only.as_deref(),
                ))
            })
            .await
    }

    async fn finish_action(
        &self,
        id: &str,
        worker: &str,
        outcome: ActionOutcome,
        audit: Vec<AuditEvent>,
    ) -> StoreResult<bool> {
        // Group commit: every finish waiting when one caller takes the writer goes into its
        // transaction (one commit, one fsync for many actions).
        let request = FinishRequest {
            id: id.to_owned(),
            worker: worker.to_owned(),
            outcome,
            audit,
        };
        self.finishes
            .run(&self.shared, request, |tx, r| {
                Box::pin(finish_in_tx(
                    tx,
                    &r.id,
                    &r.worker,
                    &r.outcome,
                    r.audit.clone(),
                ))
            })
            .await
    }

    async fn get_action(&self, id: &str) -> StoreResult<Option<Action>> {
        let mut conn = self.shared.pool.acquire().await?;
        load_action(&mut conn, id).await
    }

    async fn sandbox_users(&self) -> StoreResult<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT seed FROM sandbox_users ORDER BY id")
                .fetch_all(&self.shared.pool)
                .await?,
        )
    }

    async fn keep_sandbox_user(&self, id: &str, seed_json: &str) -> StoreResult<()> {
        let (_w, mut tx) = self.shared.write_tx().await?;
        sqlx::query(
            "INSERT INTO sandbox_users (id, seed) VALUES ($1, $2)
             ON CONFLICT (id) DO UPDATE SET seed = excluded.seed",
        )
        .bind(id)
        .bind(seed_json)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn renew_claim(&self, id: &str, worker: &str, until: &str) -> StoreResult<bool> {
        let (_w, mut tx) = self.shared.write_tx().await?;
        let n = sqlx::query(
            "UPDATE actions SET claim_expires_at = $1 WHERE id = $2 AND claimed_by = $3 AND state = 'running'",
        )
        .bind(until)
        .bind(id)
        .bind(worker)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }

    async fn running_claims(&self) -> StoreResult<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT id, claimed_by FROM actions WHERE state = 'running' AND claimed_by IS NOT NULL",
        )
        .fetch_all(&self.shared.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("claimed_by")?)))
            .collect()
    }

    async fn expire_claims(&self, ids: &[String], now: &str) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let (_w, mut tx) = self.shared.write_tx().await?;
        for id in ids {
            sqlx::query(
                "UPDATE actions SET claim_expires_at = $1 WHERE id = $2 AND state = 'running'",
            )
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        notify_due(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_suppression(&self, s: &Suppression, audit: AuditEvent) -> StoreResult<()> {
        let (_w, mut tx) = self.shared.write_tx().await?;
        sqlx::query(
            "INSERT INTO suppressions (id, user_match, playbook, source, labels, reason, author, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&s.id)
        .bind(s.user.clone())
        .bind(s.playbook.clone())
        .bind(s.source.clone())
        .bind(serde_json::to_string(&s.labels).expect("labels serialise"))
        .bind(&s.reason)
        .bind(&s.author)
        .bind(&s.created_at)
        .bind(&s.expires_at)
        .execute(&mut *tx)
        .await?;
        append_audit_tx(&mut tx, vec![audit]).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_suppressions(&self, now: &str, all: bool) -> StoreResult<Vec<Suppression>> {
        let rows = sqlx::query(
            "SELECT * FROM suppressions WHERE $1 = 1 OR (removed_at IS NULL AND expires_at > $2) ORDER BY created_at DESC, id DESC",
        )
        .bind(all as i64)
        .bind(now)
        .fetch_all(&self.shared.pool)
        .await?;
        rows.iter().map(suppression_from_row).collect()
    }

    async fn get_suppression(&self, id: &str) -> StoreResult<Option<Suppression>> {
        let row = sqlx::query("SELECT * FROM suppressions WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.shared.pool)
            .await?;
        row.as_ref().map(suppression_from_row).transpose()
    }

    async fn remove_suppression(&self, id: &str, by: &str, now: &str) -> StoreResult<bool> {
        let (_w, mut tx) = self.shared.write_tx().await?;
        let Some(row) = sqlx::query(
            "SELECT * FROM suppressions WHERE id = $1 AND removed_at IS NULL AND expires_at > $2",
        )
        .bind(id)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(false);
        };
        let s = suppression_from_row(&row)?;
        sqlx::query("UPDATE suppressions SET removed_at = $1, removed_by = $2 WHERE id = $3")
            .bind(now)
            .bind(by)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        append_audit_tx(&mut tx, vec![s.audit_event("suppression.removed", by)]).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn record_expired_suppressions(&self, now: &str) -> StoreResult<Vec<Suppression>> {
        let (_w, mut tx) = self.shared.write_tx().await?;
        let rows = sqlx::query(
            "SELECT * FROM suppressions WHERE expiry_recorded = 0 AND removed_at IS NULL AND expires_at <= $1",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        let expired: Vec<Suppression> = rows
            .iter()
            .map(suppression_from_row)
            .collect::<StoreResult<_>>()?;
        for s in &expired {
            sqlx::query("UPDATE suppressions SET expiry_recorded = 1 WHERE id = $1")
                .bind(&s.id)
                .execute(&mut *tx)
                .await?;
        }
        append_audit_tx(
            &mut tx,
            expired
                .iter()
                .map(|s| s.audit_event("suppression.expired", "system"))
                .collect(),
        )
        .await?;
        tx.commit().await?;
        Ok(expired)
    }

    async fn remember_signature(
        &self,
        source: &str,
        replay_key: &str,
        now: &str,
        expires_at: &str,
    ) -> StoreResult<bool> {
        let (_w, mut tx) = self.shared.write_tx().await?;
        sqlx::query("DELETE FROM seen_signatures WHERE expires_at < $1")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let inserted = sqlx::query(
            "INSERT INTO seen_signatures (source, replay_key, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (source, replay_key) DO NOTHING",
        )
        .bind(source)
        .bind(replay_key)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(inserted == 1)
    }

    async fn action_requests(&self, action_id: &str) -> StoreResult<Vec<ActionRequest>> {
        let rows = sqlx::query(
            "SELECT alert_id, resolved_at FROM action_alerts WHERE action_id = $1 ORDER BY alert_id",
        )
        .bind(action_id)
        .fetch_all(&self.shared.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ActionRequest {
                    alert_id: r.try_get("alert_id")?,
                    resolved_at: r.try_get("resolved_at")?,
                })
            })
            .collect()
    }

    async fn list_actions(&self, alert_id: Option<&str>) -> StoreResult<Vec<Action>> {
        let rows = sqlx::query("SELECT * FROM actions WHERE $1 IS NULL OR alert_id = $1 ORDER BY created_at, chain_id, step_index")
            .bind(alert_id)
            .fetch_all(&self.shared.pool)
            .await?;
        rows.iter().map(action_from_row).collect()
    }

    async fn actions_for_user(&self, names: &[String], limit: i64) -> StoreResult<Vec<Action>> {
        if names.is_empty() {
            return Ok(vec![]);
        }
        let list: Vec<String> = (0..names.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "SELECT * FROM actions WHERE target IN ({l}) OR user_id IN ({l}) ORDER BY created_at DESC, step_index DESC LIMIT $1",
            l = list.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(limit);
        for n in names {
            q = q.bind(n);
        }
        let rows = q.fetch_all(&self.shared.pool).await?;
        rows.iter().map(action_from_row).collect()
    }

    async fn list_alerts(&self, q: &AlertQuery) -> StoreResult<Vec<StoredAlert>> {
        let mut sql = String::from("SELECT * FROM alerts WHERE 1 = 1");
        let mut values: Vec<String> = vec![];
        let filters = [
            (" AND id < ?", q.before_id.clone()),
            (" AND source = ?", q.source.clone()),
            (" AND state = ?", q.state.clone()),
            (
                " AND id IN (SELECT alert_id FROM alert_subjects WHERE subject = ?)",
                q.subject.clone(),
            ),
            (
                " AND alert LIKE ? ESCAPE '\\'",
                q.text.as_ref().map(|t| {
                    let escaped = t
                        .replace('\\', "\\\\")
                        .replace('%', "\\%")
                        .replace('_', "\\_");
                    format!("%{escaped}%")
                }),
            ),
        ];
        for (condition, value) in filters {
            if let Some(v) = value {
                values.push(v);
                sql.push_str(&condition.replace('?', &format!("${}", values.len())));
            }
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", values.len() + 1));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for v in values {
            query = query.bind(v);
        }
        let rows = query
            .bind(q.limit.clamp(1, 500))
            .fetch_all(&self.shared.pool)
            .await?;
        rows.iter().map(alert_from_row).collect()
    }

    fn dedup_forgotten(&self) -> u64 {
        self.shared
            .dedup_forgotten
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn action_counts(&self) -> StoreResult<Vec<(String, String, i64)>> {
        Ok(
            sqlx::query_as("SELECT kind, state, COUNT(*) FROM actions GROUP BY kind, state")
                .fetch_all(&self.shared.pool)
                .await?,
        )
    }

    async fn list_approvals(&self, state: Option<ApprovalState>) -> StoreResult<Vec<Approval>> {
        let rows = sqlx::query(
            "SELECT * FROM approvals WHERE $1 IS NULL OR state = $1 ORDER BY created_at, id",
        )
        .bind(state.map(|s| s.as_str()))
        .fetch_all(&self.shared.pool)
        .await?;
        rows.iter().map(approval_from_row).collect()
    }

    async fn get_approval(&self, id: &str) -> StoreResult<Option<Approval>> {
        let mut conn = self.shared.pool.acquire().await?;
        load_approval(&mut conn, id).await
    }

    async fn decide_approval(
        &self,
        id: &str,
        approver: &Approver,
        approve: bool,
        reason: Option<String>,
        now: &str,
    ) -> Result<DecisionOutcome, DecideError> {
        let (_w, mut tx) = self.shared.write_tx().await?;
        let approval = load_approval(&mut tx, id)
            .await?
            .ok_or(DecideError::NotFound)?;
        let action = load_action(&mut tx, &approval.action_id)
            .await?
            .ok_or(DecideError::NotFound)?;
        let new_state = super::apply_decision(&approval, &action, approver, approve, now)?;
        let mut decisions = approval.decisions.clone();
        decisions.push(Decision {
            approver: approver.id.clone(),
            identities: approver.aliases.clone(),
            decision: if approve { "approve" } else { "deny" }.into(),
            reason: reason.clone(),
            at: now.into(),
        });
        let state = new_state.unwrap_or(ApprovalState::Pending);
        sqlx::query("UPDATE approvals SET decisions = $1, state = $2, decided_at = $3 WHERE id = $4 AND state = 'pending'")
            .bind(serde_json::to_string(&decisions).map_err(corrupt)?)
            .bind(state.as_str())
            .bind(new_state.map(|_| now))
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        let actor = format!("approver:{}", approver.id);
        let mut audit = vec![{
            let mut e = action_event(
                &action,
                "approval.decision",
                json!({
                    "approval_id": id, "decision": if approve { "approve" } else { "deny" }, "reason": reason,
                    "roles": approver.roles, "approvals": decisions.iter().filter(|d| d.decision == "approve").count(),
                    "quorum": approval.request.quorum, "state": state.as_str(),
                }),
            );
            e.actor = actor.clone();
            e
        }];
        let outcome = match new_state {
            None => DecisionOutcome::Recorded {
                approvals: decisions.iter().filter(|d| d.decision == "approve").count() as i64,
                quorum: approval.request.quorum,
            },
            Some(final_state) => {
                settle(&mut tx, &approval, final_state, now, &actor, &mut audit).await?;
                if final_state == ApprovalState::Approved {
                    DecisionOutcome::Approved
                } else {
                    DecisionOutcome::Denied
                }
            }
        };
        append_audit_tx(&mut tx, audit).await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(outcome)
    }

    async fn expire_approvals(&self, now: &str) -> StoreResult<Vec<Approval>> {
        let (_w, mut tx) = self.shared.write_tx().await?;
        let rows =
            sqlx::query("SELECT * FROM approvals WHERE state = 'pending' AND expires_at <= $1")
                .bind(now)
                .fetch_all(&mut *tx)
                .await?;
        let mut expired = vec![];
        let mut audit = vec![];
        for row in &rows {
            let approval = approval_from_row(row)?;
            sqlx::query("UPDATE approvals SET state = 'expired', decided_at = $1 WHERE id = $2")
                .bind(now)
                .bind(&approval.id)
                .execute(&mut *tx)
                .await?;
            if let Some(action) = load_action(&mut tx, &approval.action_id).await? {
                audit.push(action_event(
                    &action,
                    "approval.expired",
                    json!({"approval_id": approval.id, "on_timeout": approval.request.on_timeout}),
                ));
            }
            settle(
                &mut tx,
                &approval,
                ApprovalState::Expired,
                now,
                "system",
                &mut audit,
            )
            .await?;
            expired.push(approval);
        }
        append_audit_tx(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(expired)
    }

    async fn due_escalations(&self, now: &str) -> StoreResult<Vec<Approval>> {
        let (_w, mut tx) = self.shared.write_tx().await?;
        let rows = sqlx::query("SELECT * FROM approvals WHERE state = 'pending' AND escalated = 0 AND escalate_at IS NOT NULL AND escalate_at <= $1")
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
        let mut due = vec![];
        let mut audit = vec![];
        for row in &rows {
            let approval = approval_from_row(row)?;
            sqlx::query("UPDATE approvals SET escalated = 1 WHERE id = $1")
                .bind(&approval.id)
                .execute(&mut *tx)
                .await?;
            if let Some(action) = load_action(&mut tx, &approval.action_id).await? {
                audit.push(action_event(
                    &action,
                    "approval.escalated",
                    json!({"approval_id": approval.id, "to": approval.request.escalate_to}),
                ));
            }
            due.push(approval);
        }
        append_audit_tx(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(due)
    }

    async fn reset_limits(&self, by: &str, now: &str) -> StoreResult<bool> {
        let (_w, mut tx) = self.shared.write_tx().await?;
        let r = sqlx::query(
            "UPDATE limit_trips SET reset_at = $1, reset_by = $2 WHERE reset_at IS NULL",
        )
        .bind(now)
        .bind(by)
        .execute(&mut *tx)
        .await?;
        let mut e = AuditEvent::new("limit.reset", format!("admin:{by}"))
            .data(json!({"trips_reset": r.rows_affected()}));
        e.actor = format!("admin:{by}");
        append_audit_tx(&mut tx, vec![e]).await?;
        tx.commit().await?;
        Ok(r.rows_affected() > 0)
    }

    async fn append_audit(&self, events: Vec<AuditEvent>) -> StoreResult<()> {
        let (_w, mut tx) = self.shared.write_tx().await?;
        append_audit_tx(&mut tx, events).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn query_audit(&self, q: &AuditQuery) -> StoreResult<Vec<AuditRecord>> {
        // Only the filters given become conditions, so that the database can use the
        // index of a selective one (alert, action, subject) instead of scanning by seq.
        let mut sql = String::from(if q.newest_first {
            "SELECT * FROM audit WHERE ($1 = 0 OR seq < $1)"
        } else {
            "SELECT * FROM audit WHERE seq > $1"
        });
        let filters = [
            (" AND (kind = ? OR kind LIKE ? || '.%')", &q.kind),
            (" AND alert_id = ?", &q.alert_id),
            (" AND action_id = ?", &q.action_id),
            (" AND subject = ?", &q.subject),
            (" AND playbook = ?", &q.playbook),
            (" AND actor = ?", &q.actor),
            (" AND at >= ?", &q.since),
            (" AND at < ?", &q.until),
        ];
        let mut values: Vec<&str> = vec![];
        for (condition, value) in filters {
            if let Some(v) = value {
                values.push(v);
                sql.push_str(&condition.replace('?', &format!("${}", values.len() + 1)));
            }
        }
        let order = if q.newest_first { "DESC" } else { "ASC" };
        sql.push_str(&format!(
            " ORDER BY seq {order} LIMIT ${}",
            values.len() + 2
        ));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(q.after_seq.unwrap_or(0));
        for v in values {
            query = query.bind(v);
        }
        let rows = query
            .bind(q.limit.unwrap_or(100).clamp(1, 1000))
            .fetch_all(&self.shared.pool)
            .await?;
        rows.iter().map(audit_from_row).collect()
    }

    async fn audit_chain(&self, after_seq: i64, limit: i64) -> StoreResult<Vec<AuditRecord>> {
        let rows = sqlx::query("SELECT * FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2")
            .bind(after_seq)
            .bind(limit)
            .fetch_all(&self.shared.pool)
            .await?;
        rows.iter().map(audit_from_row).collect()
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.shared.pool).await?;
        Ok(())
    }

    async fn event_cursor(&self, feed: &str) -> StoreResult<Option<String>> {
        super::events::event_cursor(&self.shared, feed).await
    }
    async fn known_events(&self, feed: &str, uuids: &[String]) -> StoreResult<Vec<String>> {
        super::events::known_events(&self.shared, feed, uuids).await
    }
    async fn commit_event_page(
        &self,
        feed: &str,
        from: Option<&str>,
        to: &str,
        events: &[StoredEvent],
    ) -> StoreResult<bool> {
        super::events::commit_event_page(&self.shared, feed, from, to, events).await
    }
    async fn user_events(
        &self,
        names: &[String],
        feed: &str,
        since: &str,
        limit: i64,
    ) -> StoreResult<Vec<StoredEvent>> {
        super::events::user_events(&self.shared, names, feed, since, limit).await
    }
    async fn events_since(&self, since: &str, limit: i64) -> StoreResult<Vec<StoredEvent>> {
        super::events::events_since(&self.shared, since, limit).await
    }
    async fn audit_events_on(&self, object: &str, since: &str) -> StoreResult<Vec<StoredEvent>> {
        super::events::audit_events_on(&self.shared, object, since).await
    }
    async fn record_action_context(
        &self,
        action_id: &str,
        context: &serde_json::Value,
        audit: AuditEvent,
    ) -> StoreResult<bool> {
        super::events::record_action_context(&self.shared, action_id, context, audit).await
    }
    async fn action_context(&self, action_id: &str) -> StoreResult<Option<serde_json::Value>> {
        super::events::action_context(&self.shared, action_id).await
    }
    async fn unverified_actions(&self, since: &str) -> StoreResult<Vec<Action>> {
        super::events::unverified_actions(&self.shared, since).await
    }
    async fn record_verification(&self, v: &Verification, audit: AuditEvent) -> StoreResult<bool> {
        super::events::record_verification(&self.shared, v, audit).await
    }
    async fn verification(&self, action_id: &str) -> StoreResult<Option<Verification>> {
        super::events::verification(&self.shared, action_id).await
    }

    async fn forward_cursor(&self, name: &str) -> StoreResult<i64> {
        let seq: Option<i64> =
            sqlx::query_scalar("SELECT seq FROM forward_cursors WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.shared.pool)
                .await?;
        Ok(seq.unwrap_or(0))
    }

    async fn advance_forward_cursor(&self, name: &str, from: i64, to: i64) -> StoreResult<bool> {
        let (_w, mut tx) = self.shared.write_tx().await?;
        let current: Option<i64> =
            sqlx::query_scalar("SELECT seq FROM forward_cursors WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        let moved = match current {
            None if from == 0 => {
                sqlx::query(
                    "INSERT INTO forward_cursors (name, seq, updated_at) VALUES ($1, $2, $3)",
                )
                .bind(name)
                .bind(to)
                .bind(now_rfc3339())
                .execute(&mut *tx)
                .await?;
                true
            }
            Some(c) if c == from => {
                sqlx::query("UPDATE forward_cursors SET seq = $1, updated_at = $2 WHERE name = $3")
                    .bind(to)
                    .bind(now_rfc3339())
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
                true
            }
            _ => false,
        };
        tx.commit().await?;
        Ok(moved)
    }

    async fn audit_anchor(&self) -> StoreResult<Option<AuditAnchor>> {
        let row = sqlx::query(
            "SELECT seq, hash, pruned_at, signature FROM audit_anchors ORDER BY seq DESC LIMIT 1",
        )
        .fetch_optional(&self.shared.pool)
        .await?;
        row.map(|r| {
            Ok(AuditAnchor {
                seq: r.try_get("seq")?,
                hash: r.try_get("hash")?,
                pruned_at: r.try_get("pruned_at")?,
                signature: r.try_get("signature")?,
            })
        })
        .transpose()
    }

    async fn audit_head(&self) -> StoreResult<Option<(i64, String)>> {
        Ok(
            sqlx::query_as("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&self.shared.pool)
                .await?,
        )
    }

    async fn audit_hash_at(&self, seq: i64) -> StoreResult<Option<String>> {
        Ok(sqlx::query_scalar("SELECT hash FROM audit WHERE seq = $1")
            .bind(seq)
            .fetch_optional(&self.shared.pool)
            .await?)
    }

    async fn prune_audit(
        &self,
        before: &str,
        by: &str,
        key: Option<&crate::audit::checkpoint::CheckpointKey>,
    ) -> StoreResult<i64> {
        let (_w, mut tx) = self.shared.write_tx().await?;
        let last: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM audit WHERE at < $1 ORDER BY seq DESC LIMIT 1")
                .bind(before)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((seq, hash)) = last else {
            return Ok(0);
        };
        // The one place rows leave the audit table: the append-only trigger is lifted for this
        // transaction only.
        if self.shared.postgres {
            sqlx::query("ALTER TABLE audit DISABLE TRIGGER audit_no_delete")
                .execute(&mut *tx)
                .await?;
        } else {
            sqlx::query("DROP TRIGGER audit_no_delete")
                .execute(&mut *tx)
                .await?;
        }
        let deleted = sqlx::query("DELETE FROM audit WHERE seq <= $1")
            .bind(seq)
            .execute(&mut *tx)
            .await?
            .rows_affected() as i64;
        if self.shared.postgres {
            sqlx::query("ALTER TABLE audit ENABLE TRIGGER audit_no_delete")
                .execute(&mut *tx)
                .await?;
        } else {
            sqlx::query("CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END")
                .execute(&mut *tx)
                .await?;
        }
        let pruned_at = now_rfc3339();
        sqlx::query(
            "INSERT INTO audit_anchors (seq, hash, pruned_at, pruned_by, signature) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(seq)
        .bind(&hash)
        .bind(&pruned_at)
        .bind(by)
        .bind(key.map(|k| k.sign_anchor(seq, &hash, &pruned_at)))
        .execute(&mut *tx)
        .await?;
        let e = AuditEvent::new("audit.pruned", format!("admin:{by}")).data(
            json!({"before": before, "records": deleted, "anchor_seq": seq, "anchor_hash": hash}),
        );
        append_audit_tx(&mut tx, vec![e]).await?;
        tx.commit().await?;
        Ok(deleted)
    }
}

/// One action's end, inside a write transaction: its state, the chain's next step (or its
/// successors cancelled), and its audit records. Whether the claim was still this worker's.
async fn finish_in_tx(
    tx: &mut AnyConnection,
    id: &str,
    worker: &str,
    outcome: &ActionOutcome,
    mut audit: Vec<AuditEvent>,
) -> StoreResult<bool> {
    let now = now_rfc3339();
    let updated = match outcome {
            ActionOutcome::Done { state, user_id, result, error, .. } => sqlx::query(
                "UPDATE actions SET state = $1, user_id = COALESCE($2, user_id), result = $3, last_error = $4, claimed_by = NULL, claim_expires_at = NULL, updated_at = $5, finished_at = $6
                 WHERE id = $7 AND state = 'running' AND claimed_by = $8",
            )
            .bind(state.as_str())
            .bind(user_id)
            .bind(result.to_string())
            .bind(error)
            .bind(&now)
            .bind(&now)
            .bind(id)
            .bind(worker)
            .execute(&mut *tx)
            .await?,
            ActionOutcome::Retry { not_before, user_id, error } => sqlx::query(
                "UPDATE actions SET state = 'ready', not_before = $1, user_id = COALESCE($2, user_id), last_error = $3, claimed_by = NULL, claim_expires_at = NULL, updated_at = $4
                 WHERE id = $5 AND state = 'running' AND claimed_by = $6",
            )
            .bind(not_before)
            .bind(user_id)
            .bind(error)
            .bind(&now)
            .bind(id)
            .bind(worker)
            .execute(&mut *tx)
            .await?,
        };
    let ours = updated.rows_affected() == 1;
    if ours
        && let ActionOutcome::Done {
            continue_chain,
            state,
            ..
        } = outcome
    {
        let action = load_action(tx, id)
            .await?
            .ok_or_else(|| corrupt("finished action vanished"))?;
        if *continue_chain {
            advance(tx, &action, &now, &mut audit).await?;
        } else {
            cancel_successors(
                tx,
                &action,
                &format!("previous step {}", state.as_str()),
                &now,
                &mut audit,
            )
            .await?;
        }
    }
    // Audit what happened even when the claim was lost: the API calls were still made.
    append_audit_tx(tx, audit).await?;
    Ok(ours)
}

/// One claim inside a write transaction: the next due action (or `only`), with the
/// blast-radius limits checked in the same transaction.
async fn claim_in_tx(
    tx: &mut AnyConnection,
    worker: &str,
    now: &str,
    claim_until: &str,
    policy: &LimitPolicy,
    only: Option<&str>,
) -> StoreResult<Claim> {
    let row = sqlx::query(concat!(
        "SELECT * FROM actions WHERE (",
        claimable!(),
        ") AND ($2 IS NULL OR id = $2) ORDER BY not_before, id LIMIT 1"
    ))
    .bind(now)
    .bind(only)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(Claim::Empty);
    };
    let mut action = match action_from_row(&row) {
        Ok(a) => a,
        Err(e) => {
            let id: String = row.try_get("id")?;
            let error = e.to_string();
            sqlx::query("UPDATE actions SET state = 'failed', last_error = $1, claimed_by = NULL, claim_expires_at = NULL, updated_at = $2, finished_at = $3 WHERE id = $4")
                .bind(&error)
                .bind(now)
                .bind(now)
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            let event = AuditEvent::new("action.failed", "system")
                .action(&id)
                .data(json!({"error": error, "why": "the stored action does not decode"}));
            append_audit_tx(tx, vec![event]).await?;
            return Ok(Claim::Unreadable { id, error });
        }
    };
    let reclaimed = action.state == ActionState::Running;
    let mut audit = vec![];
    // Blast-radius limits, in the claim's transaction so two workers cannot both take
    // the last slot: the store counts, `decisions::limits` decides.
    if limits::applies(
        action.kind == ActionKind::Suspend,
        action.mode == Mode::Enforce,
        action.limit_override,
        reclaimed,
    ) {
        let global = match policy.global {
            None => None,
            Some((max, per)) => {
                // The window starts at the last admin reset if that is more recent.
                let last_reset: Option<String> = sqlx::query_scalar(
                    "SELECT MAX(reset_at) FROM limit_trips WHERE scope = 'global'",
                )
                .fetch_one(&mut *tx)
                .await?;
                let since =
                    shift_time(now, -(per.as_secs() as i64)).max(last_reset.unwrap_or_default());
                let tripped: Option<i64> = sqlx::query_scalar("SELECT id FROM limit_trips WHERE scope = 'global' AND reset_at IS NULL AND tripped_at >= $1 LIMIT 1")
                    .bind(&since)
                    .fetch_optional(&mut *tx)
                    .await?;
                let count = suspensions_since(tx, &since, None).await?;
                Some(limits::GlobalWindow {
                    max,
                    per,
                    count,
                    tripped: tripped.is_some(),
                })
            }
        };
        let playbook_limit = action.step.as_ref().and_then(|s| s.limit);
        let playbook = match playbook_limit {
            None => None,
            Some(l) => {
                let since = shift_time(now, -(l.per.as_secs() as i64));
                let count = suspensions_since(tx, &since, action.playbook.as_deref()).await?;
                Some(limits::PlaybookWindow {
                    max: l.max as i64,
                    per: l.per,
                    count,
                })
            }
        };
        let held = match limits::decide(global, playbook) {
            limits::LimitDecision::Allow { .. } => None,
            limits::LimitDecision::Hold {
                scope,
                trip,
                reason,
            } => {
                match scope {
                    limits::LimitScope::Global if trip => {
                        sqlx::query(
                            "INSERT INTO limit_trips (scope, tripped_at) VALUES ('global', $1)",
                        )
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                        let g = global.expect("a global hold has a global window");
                        audit.push(AuditEvent::new("limit.tripped", "system").data(json!({"scope": "global", "max": g.max, "per_secs": g.per.as_secs(), "count": g.count, "reason": reason})));
                    }
                    limits::LimitScope::Playbook => {
                        let p = playbook.expect("a playbook hold has a playbook window");
                        audit.push(action_event(
                            &action,
                            "limit.hit",
                            json!({"scope": "playbook", "max": p.max, "per_secs": p.per.as_secs(), "count": p.count, "reason": reason}),
                        ));
                    }
                    limits::LimitScope::Global => {}
                }
                // A playbook's limit notifies each time; the global one when it trips.
                let notify = trip || scope == limits::LimitScope::Playbook;
                Some((scope.as_str().to_owned(), notify))
            }
        };
        if let Some((scope, tripped_now)) = held {
            let req = ApprovalRequest {
                approvers: policy.approvers.clone(),
                quorum: 1,
                timeout_secs: policy.approval_timeout_secs,
                on_timeout: OnTimeout::Deny,
                escalate_after_secs: None,
                escalate_to: None,
                cancel_on_resolve: true,
                reason: scope.clone(),
            };
            sqlx::query(
                "UPDATE actions SET state = 'pending_approval', updated_at = $1 WHERE id = $2",
            )
            .bind(now)
            .bind(&action.id)
            .execute(&mut *tx)
            .await?;
            let approval_id = insert_approval(tx, &action, &req, now).await?;
            audit.push(action_event(
                &action,
                "limit.held",
                json!({"scope": scope, "approval_id": approval_id}),
            ));
            audit.push(action_event(
                &action,
                "approval.requested",
                json!({"approval_id": approval_id, "approvers": req.approvers, "quorum": 1, "reason": scope, "expires_in_secs": req.timeout_secs}),
            ));
            append_audit_tx(tx, audit).await?;
            action.state = ActionState::PendingApproval;
            return Ok(Claim::Limited {
                action,
                approval_id,
                scope,
                tripped_now,
            });
        }
    }
    sqlx::query(
        "UPDATE actions SET state = 'running', claimed_by = $1, claim_expires_at = $2, attempts = attempts + 1, updated_at = $3, started_at = COALESCE(started_at, $4) WHERE id = $5",
    )
    .bind(worker)
    .bind(claim_until)
    .bind(now)
    .bind(now)
    .bind(&action.id)
    .execute(&mut *tx)
    .await?;
    audit.push(action_event(
        &action,
        if reclaimed { "action.reclaimed" } else { "action.claimed" },
        json!({"worker": worker, "attempt": action.attempts + 1, "previous_worker": action.claimed_by}),
    ));
    append_audit_tx(tx, audit).await?;
    action.state = ActionState::Running;
    action.attempts += 1;
    action.claimed_by = Some(worker.into());
    action.claim_expires_at = Some(claim_until.into());
    Ok(Claim::Claimed(action))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot;

    fn request(
        id: &str,
    ) -> (
        IntakeRequest,
        oneshot::Receiver<Result<InsertOutcome, String>>,
    ) {
        let alert = NewAlert {
            id: id.into(),
            source: "generic".into(),
            fingerprint: id.into(),
            correlation: id.into(),
            received_at: now_rfc3339(),
            status: "firing".into(),
            alert: "{}".into(),
            settled: None,
            plan: None,
            subjects: vec![],
        };
        IntakeRequest::new_for_test(alert, "")
    }

    /// Callers on two runtimes' threads and one outside any runtime, answered from a thread of
    /// the store's: each gets its own outcome, whether the batch succeeded or failed.
    #[test]
    fn every_caller_gets_its_own_answer_wherever_it_waits() {
        let on_runtime = |ids: &'static [&'static str]| {
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let made: Vec<_> =
                    rt.block_on(async { ids.iter().map(|id| request(id)).collect() });
                (rt, made)
            })
            .join()
            .unwrap()
        };
        for failed in [false, true] {
            let (rt_a, a) = on_runtime(&["a1", "a2", "a3"]);
            let (rt_b, b) = on_runtime(&["b1", "b2"]);
            let outside: Vec<_> = vec![request("c1")];
            let mut batch = vec![];
            let mut waiting = vec![];
            // One batch, callers of both runtimes and outside any, as the writer takes them.
            for (req, answer) in a.into_iter().chain(b).chain(outside) {
                waiting.push((req.alert.id.clone(), answer));
                batch.push(req);
            }
            let result = if failed {
                Err("disk full".to_owned())
            } else {
                Ok(batch
                    .iter()
                    .map(|r| InsertOutcome::Duplicate {
                        original: format!("of-{}", r.alert.id),
                    })
                    .collect())
            };
            std::thread::spawn(move || answer(batch, result))
                .join()
                .unwrap();
            for (id, answer) in waiting {
                let rt = if id.starts_with('a') { &rt_a } else { &rt_b };
                let got = rt.block_on(answer).unwrap();
                let expected = if failed {
                    Err("disk full".to_owned())
                } else {
                    Ok(InsertOutcome::Duplicate {
                        original: format!("of-{id}"),
                    })
                };
                assert_eq!(got, expected, "{id}");
            }
        }
    }
}

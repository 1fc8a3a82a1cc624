use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqliteConnection, SqlitePool};

use super::*;
use crate::audit::{GENESIS_HASH, chain_hash};
use crate::domain::{new_id, now_rfc3339};

/// The embedded store. SQLite allows one writer at a time, so writes queue on one async
/// mutex (no busy-retry storms); reads run in parallel on the pool (WAL mode).
pub struct SqliteStore {
    pool: SqlitePool,
    writer: tokio::sync::Mutex<()>,
}

impl SqliteStore {
    pub async fn open(path: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit is on disk before intake answers 202, even across power loss.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        let store = Self {
            pool,
            writer: tokio::sync::Mutex::new(()),
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> StoreResult<()> {
        let _w = self.writer.lock().await;
        let mut conn = self.pool.acquire().await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
        )
        .execute(&mut *conn)
        .await?;
        for (version, name, sql) in super::migrations::SQLITE {
            let done: Option<i64> =
                sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = ?")
                    .bind(version)
                    .fetch_optional(&mut *conn)
                    .await?;
            if done.is_some() {
                continue;
            }
            let mut tx = self.pool.begin().await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::Migration(format!("{version} {name}: {e}")))?;
            sqlx::query(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            )
            .bind(version)
            .bind(name)
            .bind(now_rfc3339())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// The pool, for tests that need to reach under the trait (e.g. to tamper with a row).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

async fn append_audit_tx(conn: &mut SqliteConnection, events: Vec<AuditEvent>) -> StoreResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    let last: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await?;
    let (mut seq, mut prev) = last.unwrap_or((0, GENESIS_HASH.to_owned()));
    for event in events {
        seq += 1;
        let id = new_id("aud");
        let at = now_rfc3339();
        let hash = chain_hash(&prev, seq, &id, &at, &event);
        sqlx::query(
            "INSERT INTO audit (seq, id, at, kind, actor, alert_id, action_id, playbook, subject, data, prev_hash, hash)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(seq)
        .bind(&id)
        .bind(&at)
        .bind(&event.kind)
        .bind(&event.actor)
        .bind(&event.alert_id)
        .bind(&event.action_id)
        .bind(&event.playbook)
        .bind(&event.subject)
        .bind(event.data.to_string())
        .bind(&prev)
        .bind(&hash)
        .execute(&mut *conn)
        .await?;
        prev = hash;
    }
    Ok(())
}

/// Inserts actions; an open action for the same target and kind absorbs the new one.
async fn insert_actions_tx(
    conn: &mut SqliteConnection,
    plan: &mut PlanRecord,
) -> StoreResult<Vec<String>> {
    let mut created = Vec::new();
    let now = now_rfc3339();
    for a in &plan.actions {
        let open: Option<String> = sqlx::query_scalar(
            "SELECT id FROM actions WHERE target = ? AND kind = ? AND state IN ('ready', 'running') LIMIT 1",
        )
        .bind(&a.target)
        .bind(&a.kind)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(existing) = open {
            let mut e = AuditEvent::new("action.attached", "system")
                .action(&existing)
                .subject(&a.target)
                .data(serde_json::json!({"kind": a.kind, "reason": "an open action for this user and kind exists"}));
            e.alert_id = a.alert_id.clone();
            e.playbook = a.playbook.clone();
            plan.audit.push(e);
            continue;
        }
        sqlx::query(
            "INSERT INTO actions (id, alert_id, playbook, kind, target, mode, reason, state, attempts, not_before, deadline_at, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, 'ready', 0, ?, ?, ?, ?)",
        )
        .bind(&a.id)
        .bind(&a.alert_id)
        .bind(&a.playbook)
        .bind(&a.kind)
        .bind(&a.target)
        .bind(&a.mode)
        .bind(&a.reason)
        .bind(&a.not_before)
        .bind(&a.deadline_at)
        .bind(&now)
        .bind(&now)
        .execute(&mut *conn)
        .await?;
        let mut e = AuditEvent::new("action.queued", "system")
            .action(&a.id)
            .subject(&a.target)
            .data(serde_json::json!({"kind": a.kind, "mode": a.mode, "reason": a.reason, "not_before": a.not_before}));
        e.alert_id = a.alert_id.clone();
        e.playbook = a.playbook.clone();
        plan.audit.push(e);
        created.push(a.id.clone());
    }
    Ok(created)
}

fn alert_from_row(row: &SqliteRow) -> StoreResult<StoredAlert> {
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
        alert: serde_json::from_str(&alert).map_err(|e| StoreError::Corrupt(e.to_string()))?,
    })
}

fn action_from_row(row: &SqliteRow) -> StoreResult<Action> {
    let state: String = row.try_get("state")?;
    let result: Option<String> = row.try_get("result")?;
    Ok(Action {
        id: row.try_get("id")?,
        alert_id: row.try_get("alert_id")?,
        playbook: row.try_get("playbook")?,
        kind: row.try_get("kind")?,
        target: row.try_get("target")?,
        mode: row.try_get("mode")?,
        reason: row.try_get("reason")?,
        state: ActionState::parse(&state)?,
        attempts: row.try_get("attempts")?,
        not_before: row.try_get("not_before")?,
        deadline_at: row.try_get("deadline_at")?,
        claimed_by: row.try_get("claimed_by")?,
        claim_expires_at: row.try_get("claim_expires_at")?,
        user_id: row.try_get("user_id")?,
        last_error: row.try_get("last_error")?,
        result: result
            .map(|r| serde_json::from_str(&r))
            .transpose()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn audit_from_row(row: &SqliteRow) -> StoreResult<AuditRecord> {
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
            data: serde_json::from_str(&data).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        },
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn insert_alert(
        &self,
        alert: &NewAlert,
        dedup_since: &str,
        mut audit: AuditEvent,
    ) -> StoreResult<InsertOutcome> {
        let _w = self.writer.lock().await;
        let mut tx = self.pool.begin().await?;
        let original: Option<String> = sqlx::query_scalar(
            "SELECT id FROM alerts WHERE source = ? AND fingerprint = ? AND received_at >= ? AND state != 'duplicate'
             ORDER BY received_at LIMIT 1",
        )
        .bind(&alert.source)
        .bind(&alert.fingerprint)
        .bind(dedup_since)
        .fetch_optional(&mut *tx)
        .await?;
        let (state, outcome) = match &original {
            Some(o) => (
                AlertState::Duplicate,
                InsertOutcome::Duplicate {
                    original: o.clone(),
                },
            ),
            None => (AlertState::Received, InsertOutcome::Inserted),
        };
        sqlx::query(
            "INSERT INTO alerts (id, source, fingerprint, received_at, status, state, duplicate_of, alert) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&alert.id)
        .bind(&alert.source)
        .bind(&alert.fingerprint)
        .bind(&alert.received_at)
        .bind(&alert.status)
        .bind(state.as_str())
        .bind(&original)
        .bind(alert.alert.to_string())
        .execute(&mut *tx)
        .await?;
        if let Some(o) = &original {
            audit.kind = "alert.duplicate".into();
            if let serde_json::Value::Object(m) = &mut audit.data {
                m.insert("duplicate_of".into(), o.clone().into());
            }
        }
        append_audit_tx(&mut tx, vec![audit]).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    async fn get_alert(&self, id: &str) -> StoreResult<Option<StoredAlert>> {
        let row = sqlx::query("SELECT * FROM alerts WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(alert_from_row).transpose()
    }

    async fn unevaluated_alerts(&self, limit: i64) -> StoreResult<Vec<StoredAlert>> {
        let rows = sqlx::query(
            "SELECT * FROM alerts WHERE state = 'received' ORDER BY received_at, id LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(alert_from_row).collect()
    }

    async fn record_plan(&self, alert_id: &str, mut plan: PlanRecord) -> StoreResult<Vec<String>> {
        let _w = self.writer.lock().await;
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE alerts SET state = 'evaluated' WHERE id = ? AND state = 'received'",
        )
        .bind(alert_id)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            // Already evaluated (by another engine pass): the plan must not be applied twice.
            return Ok(vec![]);
        }
        let created = insert_actions_tx(&mut tx, &mut plan).await?;
        append_audit_tx(&mut tx, plan.audit).await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn enqueue_actions(&self, mut plan: PlanRecord) -> StoreResult<Vec<String>> {
        let _w = self.writer.lock().await;
        let mut tx = self.pool.begin().await?;
        let created = insert_actions_tx(&mut tx, &mut plan).await?;
        append_audit_tx(&mut tx, plan.audit).await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn claim_action(
        &self,
        worker: &str,
        now: &str,
        claim_until: &str,
    ) -> StoreResult<Option<Action>> {
        let _w = self.writer.lock().await;
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "SELECT * FROM actions
             WHERE (state = 'ready' AND not_before <= ?1) OR (state = 'running' AND claim_expires_at < ?1)
             ORDER BY not_before, id LIMIT 1",
        )
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut action = action_from_row(&row)?;
        let reclaimed = action.state == ActionState::Running;
        sqlx::query(
            "UPDATE actions SET state = 'running', claimed_by = ?, claim_expires_at = ?, attempts = attempts + 1, updated_at = ? WHERE id = ?",
        )
        .bind(worker)
        .bind(claim_until)
        .bind(now)
        .bind(&action.id)
        .execute(&mut *tx)
        .await?;
        let mut e = AuditEvent::new(if reclaimed { "action.reclaimed" } else { "action.claimed" }, "system")
            .action(&action.id)
            .subject(&action.target)
            .data(serde_json::json!({"worker": worker, "attempt": action.attempts + 1, "previous_worker": action.claimed_by}));
        e.alert_id = action.alert_id.clone();
        e.playbook = action.playbook.clone();
        append_audit_tx(&mut tx, vec![e]).await?;
        tx.commit().await?;
        action.state = ActionState::Running;
        action.attempts += 1;
        action.claimed_by = Some(worker.into());
        action.claim_expires_at = Some(claim_until.into());
        Ok(Some(action))
    }

    async fn finish_action(
        &self,
        id: &str,
        worker: &str,
        outcome: ActionOutcome,
        audit: Vec<AuditEvent>,
    ) -> StoreResult<bool> {
        let _w = self.writer.lock().await;
        let mut tx = self.pool.begin().await?;
        let now = now_rfc3339();
        let updated = match &outcome {
            ActionOutcome::Done { state, user_id, result, error } => sqlx::query(
                "UPDATE actions SET state = ?, user_id = COALESCE(?, user_id), result = ?, last_error = ?, claimed_by = NULL, claim_expires_at = NULL, updated_at = ?
                 WHERE id = ? AND state = 'running' AND claimed_by = ?",
            )
            .bind(state.as_str())
            .bind(user_id)
            .bind(result.to_string())
            .bind(error)
            .bind(&now)
            .bind(id)
            .bind(worker)
            .execute(&mut *tx)
            .await?,
            ActionOutcome::Retry { not_before, user_id, error } => sqlx::query(
                "UPDATE actions SET state = 'ready', not_before = ?, user_id = COALESCE(?, user_id), last_error = ?, claimed_by = NULL, claim_expires_at = NULL, updated_at = ?
                 WHERE id = ? AND state = 'running' AND claimed_by = ?",
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
        // Audit what happened even when the claim was lost: the API calls were still made.
        append_audit_tx(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(updated.rows_affected() == 1)
    }

    async fn get_action(&self, id: &str) -> StoreResult<Option<Action>> {
        let row = sqlx::query("SELECT * FROM actions WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(action_from_row).transpose()
    }

    async fn list_actions(&self, alert_id: Option<&str>) -> StoreResult<Vec<Action>> {
        let rows = sqlx::query(
            "SELECT * FROM actions WHERE ?1 IS NULL OR alert_id = ?1 ORDER BY created_at, id",
        )
        .bind(alert_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(action_from_row).collect()
    }

    async fn append_audit(&self, events: Vec<AuditEvent>) -> StoreResult<()> {
        let _w = self.writer.lock().await;
        let mut tx = self.pool.begin().await?;
        append_audit_tx(&mut tx, events).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn query_audit(&self, q: &AuditQuery) -> StoreResult<Vec<AuditRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM audit WHERE seq > ?1
               AND (?2 IS NULL OR kind = ?2 OR kind LIKE ?2 || '.%')
               AND (?3 IS NULL OR alert_id = ?3)
               AND (?4 IS NULL OR action_id = ?4)
               AND (?5 IS NULL OR subject = ?5)
               AND (?6 IS NULL OR playbook = ?6)
               AND (?7 IS NULL OR actor = ?7)
               AND (?8 IS NULL OR at >= ?8)
               AND (?9 IS NULL OR at < ?9)
             ORDER BY seq LIMIT ?10",
        )
        .bind(q.after_seq.unwrap_or(0))
        .bind(&q.kind)
        .bind(&q.alert_id)
        .bind(&q.action_id)
        .bind(&q.subject)
        .bind(&q.playbook)
        .bind(&q.actor)
        .bind(&q.since)
        .bind(&q.until)
        .bind(q.limit.unwrap_or(100).clamp(1, 1000))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(audit_from_row).collect()
    }

    async fn audit_chain(&self, after_seq: i64, limit: i64) -> StoreResult<Vec<AuditRecord>> {
        let rows = sqlx::query("SELECT * FROM audit WHERE seq > ? ORDER BY seq LIMIT ?")
            .bind(after_seq)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(audit_from_row).collect()
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

//! The Events API's side of the store: kept events, feed cursors, the activity frozen into
//! actions, and the proof recorded after them. Queries shared by both backends.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::core::Shared;
use super::sql::{action_from_row, append_audit_tx};
use super::{Action, StoreError, StoreResult, StoredEvent, Verification};
use crate::audit::AuditEvent;
use crate::domain::now_rfc3339;

fn event_from_row(row: &AnyRow) -> StoreResult<StoredEvent> {
    let facts: String = row.try_get("facts")?;
    let item: String = row.try_get("item")?;
    let uuid: String = row.try_get("uuid")?;
    Ok(StoredEvent {
        facts: serde_json::from_str(&facts)
            .map_err(|e| StoreError::Corrupt(format!("event {uuid}: facts: {e}")))?,
        item: serde_json::from_str(&item)
            .map_err(|e| StoreError::Corrupt(format!("event {uuid}: item: {e}")))?,
        ts: row.try_get("ts")?,
        received_at: row.try_get("received_at")?,
    })
}

pub(super) async fn event_cursor(shared: &Shared, feed: &str) -> StoreResult<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT cursor FROM event_cursors WHERE feed = $1")
            .bind(feed)
            .fetch_optional(&shared.pool)
            .await?,
    )
}

pub(super) async fn known_events(
    shared: &Shared,
    feed: &str,
    uuids: &[String],
) -> StoreResult<Vec<String>> {
    let mut known = vec![];
    for chunk in uuids.chunks(500) {
        let marks: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "SELECT uuid FROM events WHERE feed = $1 AND uuid IN ({})",
            marks.join(", ")
        );
        let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql)).bind(feed);
        for u in chunk {
            q = q.bind(u);
        }
        known.extend(q.fetch_all(&shared.pool).await?);
    }
    Ok(known)
}

pub(super) async fn commit_event_page(
    shared: &Shared,
    feed: &str,
    from: Option<&str>,
    to: &str,
    events: &[StoredEvent],
) -> StoreResult<bool> {
    let (_w, mut tx) = shared.write_tx().await?;
    let current: Option<String> =
        sqlx::query_scalar("SELECT cursor FROM event_cursors WHERE feed = $1")
            .bind(feed)
            .fetch_optional(&mut *tx)
            .await?;
    if current.as_deref() != from {
        return Ok(false);
    }
    for e in events {
        let f = &e.facts;
        sqlx::query(
            "INSERT INTO events (feed, uuid, ts, user_key, user_email, object_key, facts, item, received_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (feed, uuid) DO NOTHING",
        )
        .bind(f.feed.as_str())
        .bind(&f.uuid)
        .bind(&e.ts)
        .bind(e.user_key())
        .bind(e.user_email())
        .bind(f.object.as_ref().and_then(|o| o.uuid.clone()))
        .bind(serde_json::to_string(f).expect("facts serialise"))
        .bind(serde_json::to_string(&e.item).expect("JSON serialises"))
        .bind(&e.received_at)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "INSERT INTO event_cursors (feed, cursor, updated_at) VALUES ($1, $2, $3)
         ON CONFLICT (feed) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
    )
    .bind(feed)
    .bind(to)
    .bind(now_rfc3339())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn user_events(
    shared: &Shared,
    names: &[String],
    feed: &str,
    since: &str,
    limit: i64,
) -> StoreResult<Vec<StoredEvent>> {
    let mut out: Vec<StoredEvent> = vec![];
    for name in names {
        let rows = sqlx::query(
            "SELECT * FROM events WHERE feed = $1 AND ts >= $2 AND (user_key = $3 OR user_email = $3)
             ORDER BY ts DESC LIMIT $4",
        )
        .bind(feed)
        .bind(since)
        .bind(name)
        .bind(limit)
        .fetch_all(&shared.pool)
        .await?;
        for r in &rows {
            let e = event_from_row(r)?;
            if !out.iter().any(|o| o.facts.uuid == e.facts.uuid) {
                out.push(e);
            }
        }
    }
    out.sort_by(|a, b| b.ts.cmp(&a.ts));
    out.truncate(limit.max(0) as usize);
    Ok(out)
}

pub(super) async fn events_since(
    shared: &Shared,
    since: &str,
    limit: i64,
) -> StoreResult<Vec<StoredEvent>> {
    let rows = sqlx::query("SELECT * FROM events WHERE ts >= $1 ORDER BY ts DESC LIMIT $2")
        .bind(since)
        .bind(limit)
        .fetch_all(&shared.pool)
        .await?;
    let mut out = rows
        .iter()
        .map(event_from_row)
        .collect::<StoreResult<Vec<_>>>()?;
    out.reverse();
    Ok(out)
}

pub(super) async fn audit_events_on(
    shared: &Shared,
    object: &str,
    since: &str,
) -> StoreResult<Vec<StoredEvent>> {
    let rows = sqlx::query(
        "SELECT * FROM events WHERE feed = 'auditevents' AND object_key = $1 AND ts >= $2 ORDER BY ts",
    )
    .bind(object)
    .bind(since)
    .fetch_all(&shared.pool)
    .await?;
    rows.iter().map(event_from_row).collect()
}

/// Inserts a row that is written once (`ON CONFLICT DO NOTHING`) and, only if this call wrote
/// it, its audit record, in one transaction. Whether it was written.
async fn insert_once(
    shared: &Shared,
    insert: sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments>,
    audit: AuditEvent,
) -> StoreResult<bool> {
    let (_w, mut tx) = shared.write_tx().await?;
    let done = insert.execute(&mut *tx).await?.rows_affected() > 0;
    if done {
        append_audit_tx(&mut tx, vec![audit]).await?;
    }
    tx.commit().await?;
    Ok(done)
}

pub(super) async fn record_action_context(
    shared: &Shared,
    action_id: &str,
    context: &serde_json::Value,
    audit: AuditEvent,
) -> StoreResult<bool> {
    let insert = sqlx::query(
        "INSERT INTO action_context (action_id, context, created_at) VALUES ($1, $2, $3)
         ON CONFLICT (action_id) DO NOTHING",
    )
    .bind(action_id)
    .bind(serde_json::to_string(context).expect("JSON serialises"))
    .bind(now_rfc3339());
    insert_once(shared, insert, audit).await
}

pub(super) async fn action_context(
    shared: &Shared,
    action_id: &str,
) -> StoreResult<Option<serde_json::Value>> {
    let text: Option<String> =
        sqlx::query_scalar("SELECT context FROM action_context WHERE action_id = $1")
            .bind(action_id)
            .fetch_optional(&shared.pool)
            .await?;
    text.map(|t| {
        serde_json::from_str(&t)
            .map_err(|e| StoreError::Corrupt(format!("context of {action_id}: {e}")))
    })
    .transpose()
}

pub(super) async fn unverified_actions(shared: &Shared, since: &str) -> StoreResult<Vec<Action>> {
    let rows = sqlx::query(
        "SELECT a.* FROM actions a LEFT JOIN action_verifications v ON v.action_id = a.id
         WHERE a.state = 'succeeded' AND a.kind IN ('suspend', 'reactivate') AND a.user_id IS NOT NULL
           AND a.finished_at >= $1 AND v.action_id IS NULL
         ORDER BY a.finished_at LIMIT 500",
    )
    .bind(since)
    .fetch_all(&shared.pool)
    .await?;
    rows.iter().map(action_from_row).collect()
}

pub(super) async fn record_verification(
    shared: &Shared,
    v: &Verification,
    audit: AuditEvent,
) -> StoreResult<bool> {
    let insert = sqlx::query(
        "INSERT INTO action_verifications (action_id, outcome, event_uuid, recorded_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (action_id) DO NOTHING",
    )
    .bind(&v.action_id)
    .bind(&v.outcome)
    .bind(v.event_uuid.clone())
    .bind(&v.recorded_at);
    insert_once(shared, insert, audit).await
}

pub(super) async fn verification(
    shared: &Shared,
    action_id: &str,
) -> StoreResult<Option<Verification>> {
    let row = sqlx::query("SELECT * FROM action_verifications WHERE action_id = $1")
        .bind(action_id)
        .fetch_optional(&shared.pool)
        .await?;
    row.map(|r| {
        Ok(Verification {
            action_id: r.try_get("action_id")?,
            outcome: r.try_get("outcome")?,
            event_uuid: r.try_get("event_uuid")?,
            recorded_at: r.try_get("recorded_at")?,
        })
    })
    .transpose()
}

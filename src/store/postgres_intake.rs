//! PostgreSQL's intake: a task commits queued alert inserts in batches, one transaction each
//! (one de-duplication query, one multi-row insert of alerts, one chained audit append), under
//! the cluster-wide writer lock. Builds on `core` (batching, the de-duplication decision, audit
//! chaining) and the sqlx audit append; never on the SQLite intake.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::core::*;
use super::sql::append_prepared_tx;
use super::{InsertOutcome, StoreResult};

/// Starts the batching task; inserts are sent to it.
pub(super) fn spawn(shared: Arc<Shared>) -> mpsc::Sender<IntakeRequest> {
    let (intake, rx) = mpsc::channel(INTAKE_QUEUE);
    tokio::spawn(intake_batcher(shared, rx));
    intake
}

/// Commits queued intake inserts in batches.
async fn intake_batcher(shared: Arc<Shared>, mut rx: mpsc::Receiver<IntakeRequest>) {
    while let Some(first) = rx.recv().await {
        let mut batch = fill_batch(first, &mut rx);
        let result = insert_batch(&shared, &mut batch).await;
        answer(batch, result.map_err(|e| e.to_string()));
    }
}

/// One transaction for a batch: one de-duplication query, one multi-row insert of alerts, one
/// of audit records.
async fn insert_batch(
    shared: &Shared,
    batch: &mut [IntakeRequest],
) -> StoreResult<Vec<InsertOutcome>> {
    let (_w, mut tx) = shared.write_tx().await?;
    // Until ANALYZE has run (autovacuum may be off, or not yet come round) PostgreSQL guesses
    // that a list of hundreds of correlations matches a third of the table: it scanned all of
    // it for every batch, or, with the index, judged the query costly enough to JIT-compile it
    // and to start parallel workers (processes) for it, every batch. Each made intake slower
    // as the table grew. Each correlation matches one alert or a few: the
    // index, in this process, uncompiled, is always the right plan.
    sqlx::query(
        "SELECT set_config('enable_seqscan', 'off', true), set_config('jit', 'off', true), \
         set_config('max_parallel_workers_per_gather', '0', true)",
    )
    .execute(&mut *tx)
    .await?;
    let oldest = batch
        .iter()
        .map(|r| r.dedup_since.as_str())
        .min()
        .unwrap_or_default()
        .to_owned();
    let list: Vec<String> = (0..batch.len()).map(|i| format!("${}", i + 2)).collect();
    let sql = format!(
        "SELECT source, fingerprint, id, received_at FROM alerts WHERE state != 'duplicate' AND received_at >= $1 AND correlation IN ({}) ORDER BY received_at",
        list.join(", ")
    );
    let mut q = sqlx::query_as::<_, (String, String, String, String)>(sqlx::AssertSqlSafe(sql))
        .bind(&oldest);
    // By correlation, the index's first column; other fingerprints of it (the alert's other
    // status) come back too and match nothing in decide_batch.
    for r in batch.iter() {
        q = q.bind(&r.alert.correlation);
    }
    let found = q.fetch_all(&mut *tx).await?;
    let Decided {
        rows,
        outcomes,
        audits,
    } = decide_batch(batch, found);
    for chunk in rows.chunks(300) {
        let sql = format!(
            "INSERT INTO alerts (id, source, fingerprint, correlation, received_at, status, state, duplicate_of, alert, plan) VALUES {}",
            values_clause(1, chunk.len(), 10)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (a, state, original) in chunk {
            q = q
                .bind(&a.id)
                .bind(&a.source)
                .bind(&a.fingerprint)
                .bind(&a.correlation)
                .bind(&a.received_at)
                .bind(&a.status)
                .bind(state.as_str())
                .bind(original.clone())
                .bind(&a.alert)
                .bind(&a.plan);
        }
        q.execute(&mut *tx).await?;
    }
    let names: Vec<(&str, &str)> = rows
        .iter()
        .flat_map(|(a, _, _)| a.subjects.iter().map(|n| (n.as_str(), a.id.as_str())))
        .collect();
    for chunk in names.chunks(1000) {
        let sql = format!(
            "INSERT INTO alert_subjects (subject, alert_id) VALUES {} ON CONFLICT DO NOTHING",
            values_clause(1, chunk.len(), 2)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (name, id) in chunk {
            q = q.bind(*name).bind(*id);
        }
        q.execute(&mut *tx).await?;
    }
    append_prepared_tx(&mut tx, audits).await?;
    tx.commit().await?;
    Ok(outcomes)
}

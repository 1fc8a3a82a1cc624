//! What both stores share, and the logic both intake paths run: the writer lock (in process,
//! and PostgreSQL's advisory lock), intake requests and their batching and answers, the pure
//! de-duplication decision for a batch, the pure chaining of audit records and the audit
//! append's statements. The backends' intakes (`sqlite_intake`, a rusqlite thread;
//! `postgres_intake`, a sqlx task) and the sqlx store (`sql`, the queries both dialects share)
//! build on this module; the intakes never on each other.

use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

use super::*;
use crate::audit::{GENESIS_HASH, PreparedEvent};
use crate::domain::new_id;

pub(super) struct Shared {
    pub(super) pool: AnyPool,
    pub(super) writer: tokio::sync::Mutex<()>,
    pub(super) postgres: bool,
    /// SQLite: alerts the intake thread's de-duplication map dropped within their window
    /// (a flood past its capacity), published after each batch.
    pub(super) dedup_forgotten: std::sync::atomic::AtomicU64,
}

/// Key of the advisory lock that serialises writers on PostgreSQL.
const WRITE_LOCK: i64 = 0x6c6f_636b_6f75;

pub(super) type WriteGuard<'a> = (
    tokio::sync::MutexGuard<'a, ()>,
    sqlx::Transaction<'static, sqlx::Any>,
);

/// Group commit for writes that callers make one at a time but that can share a transaction
/// (claims, finishes): each caller queues its request and takes the writer; the first to get
/// it runs every request queued by then in one transaction (one commit, one fsync) and
/// answers each; the others find their answer when their turn comes and leave at once.
pub(super) struct GroupCommit<R, T> {
    queue: std::sync::Mutex<Vec<(R, tokio::sync::oneshot::Sender<StoreResult<T>>)>>,
}

impl<R, T> Default for GroupCommit<R, T> {
    fn default() -> Self {
        Self {
            queue: std::sync::Mutex::new(Vec::new()),
        }
    }
}

impl<R, T> GroupCommit<R, T> {
    /// `each` does one request's work inside the shared transaction; an error fails the
    /// whole batch (every caller gets it; nothing of the batch is committed).
    pub(super) async fn run(
        &self,
        shared: &Shared,
        request: R,
        each: impl for<'c> Fn(
            &'c mut sqlx::AnyConnection,
            &'c R,
        ) -> futures::future::BoxFuture<'c, StoreResult<T>>,
    ) -> StoreResult<T> {
        let (done, mut answer) = tokio::sync::oneshot::channel();
        self.lock().push((request, done));
        let guard = shared.writer.lock().await;
        if let Ok(r) = answer.try_recv() {
            return r;
        }
        let batch = std::mem::take(&mut *self.lock());
        let result: StoreResult<Vec<T>> = async {
            let (_w, mut tx) = shared.write_tx_under(guard).await?;
            let mut out = Vec::with_capacity(batch.len());
            for (r, _) in &batch {
                out.push(each(&mut tx, r).await?);
            }
            tx.commit().await?;
            Ok(out)
        }
        .await;
        match result {
            Ok(out) => {
                for ((_, done), t) in batch.into_iter().zip(out) {
                    let _ = done.send(Ok(t));
                }
            }
            Err(e) => {
                let message = e.to_string();
                for (_, done) in batch {
                    let _ = done.send(Err(StoreError::Database(message.clone())));
                }
            }
        }
        answer.try_recv().unwrap_or_else(|_| {
            Err(StoreError::Database(
                "a queued write was not answered".into(),
            ))
        })
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, Vec<(R, tokio::sync::oneshot::Sender<StoreResult<T>>)>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Shared {
    /// A write transaction: the in-process writer lock, and on PostgreSQL the cluster-wide one.
    pub(super) async fn write_tx(&self) -> StoreResult<WriteGuard<'_>> {
        let guard = self.writer.lock().await;
        self.write_tx_under(guard).await
    }

    /// The same, for a caller that already holds the in-process writer lock.
    pub(super) async fn write_tx_under<'a>(
        &'a self,
        guard: tokio::sync::MutexGuard<'a, ()>,
    ) -> StoreResult<WriteGuard<'a>> {
        let mut tx = self.pool.begin().await?;
        if self.postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(WRITE_LOCK)
                .execute(&mut *tx)
                .await?;
        }
        Ok((guard, tx))
    }
}

pub(super) struct IntakeRequest {
    pub(super) alert: NewAlert,
    pub(super) dedup_since: String,
    /// The `alert.received` record, serialised by the caller (the writer re-serialises it
    /// only for a duplicate, whose record differs).
    pub(super) audit: Option<PreparedEvent>,
    /// The alert's settled plan (taken from `alert.settled`), ready to chain.
    pub(super) plan: Option<Vec<PreparedEvent>>,
    pub(super) reply: Reply,
}

/// Where an intake caller waits for its outcome.
pub(super) struct Reply {
    sender: oneshot::Sender<Result<InsertOutcome, String>>,
    /// The caller's thread and runtime. A batch's answers to the callers on one thread are
    /// sent by one task spawned there: each answer sent from a store thread woke the caller's
    /// thread itself, a `write` to its runtime's event fd per alert.
    home: Option<(std::thread::ThreadId, tokio::runtime::Handle)>,
}

impl Reply {
    /// A reply to the calling task, and the receiver it awaits.
    pub(super) fn new() -> (Self, oneshot::Receiver<Result<InsertOutcome, String>>) {
        let (sender, receiver) = oneshot::channel();
        let home = tokio::runtime::Handle::try_current()
            .ok()
            .map(|runtime| (std::thread::current().id(), runtime));
        (Self { sender, home }, receiver)
    }
}

#[cfg(test)]
impl IntakeRequest {
    /// A request as `insert_alert` builds it, and the receiver of its answer.
    pub(super) fn new_for_test(
        alert: NewAlert,
        dedup_since: &str,
    ) -> (Self, oneshot::Receiver<Result<InsertOutcome, String>>) {
        let (reply, answer) = Reply::new();
        let audit = crate::audit::AuditEvent::new("alert.received", "test");
        let request = Self {
            alert,
            dedup_since: dedup_since.to_owned(),
            audit: Some(PreparedEvent::new(audit)),
            plan: None,
            reply,
        };
        (request, answer)
    }
}

/// Most alerts committed in one intake transaction.
const INTAKE_BATCH: usize = 512;
/// Alerts waiting for the intake writer before senders wait too (back-pressure).
pub(super) const INTAKE_QUEUE: usize = 4096;

/// `first` and whatever else is already queued, up to a batch.
pub(super) fn fill_batch(
    first: IntakeRequest,
    queue: &mut mpsc::Receiver<IntakeRequest>,
) -> Vec<IntakeRequest> {
    let mut batch = vec![first];
    while batch.len() < INTAKE_BATCH {
        match queue.try_recv() {
            Ok(r) => batch.push(r),
            Err(_) => break,
        }
    }
    batch
}

/// Answers every caller of a batch: its outcome, or the batch's error (nothing of a failed
/// batch was committed, so nothing of it was acknowledged).
pub(super) fn answer(batch: Vec<IntakeRequest>, result: Result<Vec<InsertOutcome>, String>) {
    let outcomes: Vec<Result<InsertOutcome, String>> = match result {
        Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
        Err(msg) => vec![Err(msg); batch.len()],
    };
    type Answers = Vec<(Reply, Result<InsertOutcome, String>)>;
    let send_all = |answers: Answers| {
        for (reply, outcome) in answers {
            let _ = reply.sender.send(outcome);
        }
    };
    // By the caller's thread: a handful of HTTP workers, so a short list.
    let mut by_thread: Vec<(std::thread::ThreadId, tokio::runtime::Handle, Answers)> = vec![];
    for (r, outcome) in batch.into_iter().zip(outcomes) {
        let mut reply = r.reply;
        match reply.home.take() {
            None => {
                let _ = reply.sender.send(outcome);
            }
            Some((thread, runtime)) => match by_thread.iter_mut().find(|(t, ..)| *t == thread) {
                Some((.., answers)) => answers.push((reply, outcome)),
                None => by_thread.push((thread, runtime, vec![(reply, outcome)])),
            },
        }
    }
    for (_, runtime, answers) in by_thread {
        if answers.len() == 1 {
            // Sending it wakes its thread once anyway.
            send_all(answers);
        } else {
            // A runtime that is shutting down drops the task, and with it the answers: their
            // callers, on that runtime, are being dropped too.
            drop(runtime.spawn(async move { send_all(answers) }));
        }
    }
}

/// A batch's de-duplication, decided in memory.
pub(super) struct Decided<'a> {
    /// Each alert with the state it is stored in and the alert it duplicates.
    pub(super) rows: Vec<(&'a NewAlert, AlertState, Option<String>)>,
    pub(super) outcomes: Vec<InsertOutcome>,
    pub(super) audits: Vec<PreparedEvent>,
}

/// De-duplicates a batch against `found`, stored alerts that may share a fingerprint with it
/// (source, fingerprint, id, received_at; oldest first). A re-delivery inside the batch is a
/// duplicate of its first copy. Takes the batch's audit events and plans.
pub(super) fn decide_batch(
    batch: &mut [IntakeRequest],
    found: Vec<(String, String, String, String)>,
) -> Decided<'_> {
    use std::collections::HashMap;
    // (source, fingerprint) → (first id, received_at)
    let mut seen: HashMap<(String, String), (String, String)> = HashMap::new();
    for (source, fp, id, at) in found {
        seen.entry((source, fp)).or_insert((id, at));
    }
    let mut decided = Decided {
        rows: Vec::with_capacity(batch.len()),
        outcomes: Vec::with_capacity(batch.len()),
        audits: Vec::with_capacity(batch.len()),
    };
    for r in batch {
        let key = (r.alert.source.clone(), r.alert.fingerprint.clone());
        let original = seen
            .get(&key)
            .filter(|(_, at)| at.as_str() >= r.dedup_since.as_str())
            .map(|(id, _)| id.clone());
        let mut audit = r.audit.take().expect("each request is decided once");
        let plan = r.plan.take();
        let state = match &original {
            Some(o) => {
                let mut event = audit.event;
                event.kind = "alert.duplicate".into();
                // Rare enough to read the data back from its text.
                event.data = serde_json::from_str(&audit.data).unwrap_or_default();
                if let serde_json::Value::Object(m) = &mut event.data {
                    m.insert("duplicate_of".into(), o.clone().into());
                    // A duplicate gets no plan: the one intake folded in is dropped with it.
                    m.remove("plan");
                }
                audit = PreparedEvent::new(event);
                decided.outcomes.push(InsertOutcome::Duplicate {
                    original: o.clone(),
                });
                AlertState::Duplicate
            }
            None => {
                seen.insert(key, (r.alert.id.clone(), r.alert.received_at.clone()));
                decided.outcomes.push(InsertOutcome::Inserted);
                if plan.is_some() {
                    AlertState::Evaluated
                } else {
                    AlertState::Received
                }
            }
        };
        decided.audits.push(audit);
        // A duplicate's plan is dropped: a re-delivery produces no second plan.
        if original.is_none() {
            decided.audits.extend(plan.into_iter().flatten());
        }
        decided.rows.push((&r.alert, state, original));
    }
    decided
}

/// An audit record linked into the chain, ready to insert.
pub(super) struct Chained {
    pub(super) seq: i64,
    pub(super) id: String,
    pub(super) event: PreparedEvent,
    pub(super) prev_hash: String,
    pub(super) hash: String,
}

/// Links `events` after `last` (the chain's tail: seq and hash; `None` for an empty chain).
pub(super) fn chain_records(
    last: Option<(i64, String)>,
    at: &str,
    events: Vec<PreparedEvent>,
) -> Vec<Chained> {
    let (mut seq, mut prev) = last.unwrap_or((0, GENESIS_HASH.to_owned()));
    events
        .into_iter()
        .map(|event| {
            seq += 1;
            let id = new_id("aud");
            let hash = event.chain_hash(&prev, seq, &id, at);
            Chained {
                seq,
                prev_hash: std::mem::replace(&mut prev, hash.clone()),
                id,
                event,
                hash,
            }
        })
        .collect()
}

/// `($1, $2, …), (…)` for `rows` rows of `cols` columns, numbered from `$start`.
pub(super) fn values_clause(start: usize, rows: usize, cols: usize) -> String {
    (0..rows)
        .map(|r| {
            let cells: Vec<String> = (0..cols)
                .map(|c| format!("${}", start + r * cols + c))
                .collect();
            format!("({})", cells.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The audit chain's tail, and the retention anchor it continues from once everything before
/// was pruned: the statements both audit appends (sqlx and the SQLite intake thread) run.
pub(super) const AUDIT_TAIL: &str = "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1";
pub(super) const ANCHOR_TAIL: &str =
    "SELECT seq, hash FROM audit_anchors ORDER BY seq DESC LIMIT 1";

/// The insert of `rows` chained audit records, 12 parameters each in this order: seq, id, at,
/// kind, actor, alert_id, action_id, playbook, subject, data, prev_hash, hash.
pub(super) fn audit_insert(rows: usize) -> String {
    format!(
        "INSERT INTO audit (seq, id, at, kind, actor, alert_id, action_id, playbook, subject, data, prev_hash, hash) VALUES {}",
        values_clause(1, rows, 12)
    )
}

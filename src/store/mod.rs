//! Persistence behind one trait. SQLite is the embedded default.
//!
//! Invariants: an alert is committed before intake answers; every state change of an action
//! commits together with its audit records; audit rows are only ever inserted.

mod core;
mod events;
mod migrations;
mod postgres_intake;
mod recent;
mod sql;
mod sqlite_intake;
mod types;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::audit::{AuditEvent, AuditRecord, PreparedEvent};

pub use sql::{SqlStore, SqliteStore};
pub use types::*;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("migration failed: {0}")]
    Migration(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        Self::Database(e.to_string())
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Database(e.to_string())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// An alert as intake hands it to the store.
#[derive(Debug)]
pub struct NewAlert {
    pub id: String,
    pub source: String,
    pub fingerprint: String,
    pub received_at: String,
    pub status: String,
    /// The same alert whatever its status (fingerprint without the status): a resolved alert
    /// finds its firing one by it.
    pub correlation: String,
    /// The canonical alert, as JSON text (serialised by the caller, off the writer's path).
    pub alert: String,
    /// When evaluation at intake found nothing to do: the plan's audit records. The alert is
    /// then stored `evaluated` with them, in the same transaction; otherwise (`None`) it is
    /// stored `received` and the planner takes it.
    pub settled: Option<Vec<PreparedEvent>>,
    /// Otherwise, the plan intake made (`StoredPlan` as JSON): the planner carries it out
    /// rather than evaluating the alert again.
    pub plan: Option<String>,
    /// Every name its subjects have (e-mails lower-cased, 1Password ids): the search index.
    pub subjects: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsertOutcome {
    Inserted,
    /// Same fingerprint seen within the window: stored as a duplicate of `original`.
    Duplicate {
        original: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// Stored, not yet evaluated by the engine (re-evaluated after a crash).
    Received,
    Evaluated,
    Duplicate,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Evaluated => "evaluated",
            Self::Duplicate => "duplicate",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredAlert {
    pub id: String,
    pub source: String,
    pub fingerprint: String,
    pub received_at: String,
    pub status: String,
    pub state: AlertState,
    pub duplicate_of: Option<String>,
    pub correlation: String,
    pub alert: serde_json::Value,
    /// The plan intake made (JSON), for an alert stored `received`.
    #[serde(skip)]
    pub plan: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
pub struct AuditQuery {
    pub after_seq: Option<i64>,
    pub limit: Option<i64>,
    pub kind: Option<String>,
    pub alert_id: Option<String>,
    pub action_id: Option<String>,
    pub subject: Option<String>,
    pub playbook: Option<String>,
    pub actor: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    /// Newest first, records before `after_seq` (the console's browsing order); not a query
    /// parameter of the API.
    #[serde(skip)]
    pub newest_first: bool,
}

/// Which alerts to list, newest first.
#[derive(Debug, Default, Clone)]
pub struct AlertQuery {
    /// Alerts received before this id (ids sort by time): the next page.
    pub before_id: Option<String>,
    pub source: Option<String>,
    pub state: Option<String>,
    /// Text the alert's JSON contains (a title word; a scan).
    pub text: Option<String>,
    /// One of the names of a subject (an e-mail or a 1Password id; by index).
    pub subject: Option<String>,
    pub limit: i64,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores the alert (a duplicate of a recent one is stored as such), with its audit record.
    async fn insert_alert(
        &self,
        alert: NewAlert,
        dedup_since: &str,
        audit: PreparedEvent,
    ) -> StoreResult<InsertOutcome>;
    async fn get_alert(&self, id: &str) -> StoreResult<Option<StoredAlert>>;
    /// Alerts stored but not yet evaluated, oldest first.
    async fn unevaluated_alerts(&self, limit: i64) -> StoreResult<Vec<StoredAlert>>;
    /// Commits plans, each: its chains (a chain whose first step matches an open action for
    /// the same target and kind attaches to it instead), its alert marked evaluated,
    /// cancellations for a resolved alert, and the audit records. One transaction for the
    /// batch. Returns the action ids created.
    async fn record_plans(&self, plans: Vec<(String, PlanRecord)>) -> StoreResult<Vec<String>>;
    async fn record_plan(&self, alert_id: &str, plan: PlanRecord) -> StoreResult<Vec<String>> {
        self.record_plans(vec![(alert_id.to_owned(), plan)]).await
    }
    /// Queues chains outside any alert (manual requests). With `supersede`, open scheduled or
    /// waiting actions on the same target are cancelled first (an analyst acted in between).
    async fn enqueue(
        &self,
        chains: Vec<NewChain>,
        supersede: bool,
        audit: Vec<AuditEvent>,
    ) -> StoreResult<Vec<String>>;
    /// Atomically claims the oldest due action (or one whose claim expired), or only the
    /// action `only` if it is due, checking the blast-radius limits in the same transaction.
    async fn claim_action(
        &self,
        worker: &str,
        now: &str,
        claim_until: &str,
        limits: &LimitPolicy,
        only: Option<&str>,
    ) -> StoreResult<Claim>;
    /// Records how a claimed action ended and moves its chain on, if the claim is still ours.
    async fn finish_action(
        &self,
        id: &str,
        worker: &str,
        outcome: ActionOutcome,
        audit: Vec<AuditEvent>,
    ) -> StoreResult<bool>;
    async fn get_action(&self, id: &str) -> StoreResult<Option<Action>>;
    /// Extends a claim the worker still holds (its lease) to `until`; false if it is no
    /// longer the worker's.
    async fn renew_claim(&self, id: &str, worker: &str, until: &str) -> StoreResult<bool>;
    /// Running actions and who claimed them (to release the claims of a dead predecessor).
    async fn running_claims(&self) -> StoreResult<Vec<(String, String)>>;
    /// Ends the leases of these claims now: any worker may take the actions again.
    async fn expire_claims(&self, ids: &[String], now: &str) -> StoreResult<()>;
    /// The alerts that asked for an action: the one that created it and each that attached.
    async fn action_requests(&self, action_id: &str) -> StoreResult<Vec<ActionRequest>>;
    async fn list_actions(&self, alert_id: Option<&str>) -> StoreResult<Vec<Action>>;
    /// The newest actions on a user, by any of their names (target or resolved id).
    async fn actions_for_user(&self, names: &[String], limit: i64) -> StoreResult<Vec<Action>>;
    async fn list_alerts(&self, q: &AlertQuery) -> StoreResult<Vec<StoredAlert>>;
    /// Stores a new suppression with its audit record.
    async fn create_suppression(&self, s: &Suppression, audit: AuditEvent) -> StoreResult<()>;
    /// Suppressions in force at `now` (or every one, newest first, with `all`).
    async fn list_suppressions(&self, now: &str, all: bool) -> StoreResult<Vec<Suppression>>;
    async fn get_suppression(&self, id: &str) -> StoreResult<Option<Suppression>>;
    /// Ends a suppression now; false if it was not in force.
    async fn remove_suppression(&self, id: &str, by: &str, now: &str) -> StoreResult<bool>;
    /// Records (once, on any replica) the suppressions whose expiry has passed; returns them.
    async fn record_expired_suppressions(&self, now: &str) -> StoreResult<Vec<Suppression>>;
    /// Counts of actions per (kind, state), for metrics.
    async fn action_counts(&self) -> StoreResult<Vec<(String, String, i64)>>;
    /// Alerts forgotten by de-duplication before their window ended (SQLite's in-memory
    /// window past its capacity; a re-delivery of one is taken as new), since the start.
    fn dedup_forgotten(&self) -> u64 {
        0
    }
    async fn list_approvals(&self, state: Option<ApprovalState>) -> StoreResult<Vec<Approval>>;
    async fn get_approval(&self, id: &str) -> StoreResult<Option<Approval>>;
    /// Applies one approver's decision atomically: quorum, four-eyes, binding and
    /// decided-once are checked inside the transaction.
    async fn decide_approval(
        &self,
        id: &str,
        approver: &Approver,
        approve: bool,
        reason: Option<String>,
        now: &str,
    ) -> Result<DecisionOutcome, DecideError>;
    /// Resolves pending approvals past their expiry per their `on_timeout`; returns them.
    async fn expire_approvals(&self, now: &str) -> StoreResult<Vec<Approval>>;
    /// Marks approvals whose escalation is due as escalated; returns them.
    async fn due_escalations(&self, now: &str) -> StoreResult<Vec<Approval>>;
    /// Ends a global-limit trip (admin reset). Returns whether one was active.
    async fn reset_limits(&self, by: &str, now: &str) -> StoreResult<bool>;
    async fn append_audit(&self, events: Vec<AuditEvent>) -> StoreResult<()>;
    async fn query_audit(&self, q: &AuditQuery) -> StoreResult<Vec<AuditRecord>>;
    /// Every record in order, for verification and export.
    async fn audit_chain(&self, after_seq: i64, limit: i64) -> StoreResult<Vec<AuditRecord>>;
    async fn ping(&self) -> StoreResult<()>;
    /// The sandbox fake's users as last kept (each as JSON), none if never kept.
    async fn sandbox_users(&self) -> StoreResult<Vec<String>>;
    /// Keeps one sandbox user (JSON) under its id.
    async fn keep_sandbox_user(&self, id: &str, seed_json: &str) -> StoreResult<()>;
    /// Remembers a signed request's replay key until `expires_at`; false if it was already
    /// remembered (a replay, on this replica or another).
    async fn remember_signature(
        &self,
        source: &str,
        replay_key: &str,
        now: &str,
        expires_at: &str,
    ) -> StoreResult<bool>;
    /// Where the forwarder `name` got to (0: nothing sent yet).
    async fn forward_cursor(&self, name: &str) -> StoreResult<i64>;
    /// Moves the cursor from `from` to `to`; false if another replica moved it first.
    async fn advance_forward_cursor(&self, name: &str, from: i64, to: i64) -> StoreResult<bool>;
    /// The retention anchor: the seq and hash of the last record removed by `prune_audit`.
    async fn audit_anchor(&self) -> StoreResult<Option<AuditAnchor>>;
    /// The chain's last record: (seq, hash).
    async fn audit_head(&self) -> StoreResult<Option<(i64, String)>>;
    /// The hash of the record `seq`, if it exists.
    async fn audit_hash_at(&self, seq: i64) -> StoreResult<Option<String>>;
    /// The Events API cursor kept for `feed`.
    async fn event_cursor(&self, feed: &str) -> StoreResult<Option<String>>;
    /// Which of these uuids of `feed` are kept already.
    async fn known_events(&self, feed: &str, uuids: &[String]) -> StoreResult<Vec<String>>;
    /// Keeps a page's events and moves the feed's cursor from `from` to `to`, in one
    /// transaction; false, and nothing kept, if another replica moved the cursor first.
    async fn commit_event_page(
        &self,
        feed: &str,
        from: Option<&str>,
        to: &str,
        events: &[StoredEvent],
    ) -> StoreResult<bool>;
    /// A user's events of `feed` (matched by any of `names`) since `since`, newest first.
    async fn user_events(
        &self,
        names: &[String],
        feed: &str,
        since: &str,
        limit: i64,
    ) -> StoreResult<Vec<StoredEvent>>;
    /// The newest `limit` events since `since`, oldest first.
    async fn events_since(&self, since: &str, limit: i64) -> StoreResult<Vec<StoredEvent>>;
    /// Audit events whose object is the user `object` (a 1Password id), since `since`.
    async fn audit_events_on(&self, object: &str, since: &str) -> StoreResult<Vec<StoredEvent>>;
    /// Freezes the activity shown with an action (and its approval), once, with its record.
    async fn record_action_context(
        &self,
        action_id: &str,
        context: &serde_json::Value,
        audit: AuditEvent,
    ) -> StoreResult<bool>;
    async fn action_context(&self, action_id: &str) -> StoreResult<Option<serde_json::Value>>;
    /// Suspensions and reactivations that succeeded since `since` and have no proof recorded.
    async fn unverified_actions(&self, since: &str) -> StoreResult<Vec<Action>>;
    /// Records an action's proof (or its absence), once, with its audit record.
    async fn record_verification(&self, v: &Verification, audit: AuditEvent) -> StoreResult<bool>;
    async fn verification(&self, action_id: &str) -> StoreResult<Option<Verification>>;
    /// Retention (an explicit admin command): removes records older than `before`, keeps the
    /// chain verifiable from an anchor, and records the pruning itself. Returns how many.
    async fn prune_audit(
        &self,
        before: &str,
        by: &str,
        key: Option<&crate::audit::checkpoint::CheckpointKey>,
    ) -> StoreResult<i64>;
}

/// What a walk of the whole audit chain found.
#[derive(Debug, Clone, Serialize)]
pub struct ChainReport {
    pub records: u64,
    /// The hash of the last record (the genesis or anchor hash for an empty chain).
    pub head: String,
    /// A retention anchor exists but no checkpoint key was given to check its signature.
    pub anchor_unverified: Option<i64>,
}

/// Walks the stored audit chain from its start (or the retention anchor, whose signature
/// `key` must verify) and checks every link. An error says where it breaks.
pub async fn verify_chain(
    store: &dyn Store,
    key: Option<&crate::audit::checkpoint::CheckpointKey>,
) -> Result<ChainReport, String> {
    let anchor = store.audit_anchor().await.map_err(|e| e.to_string())?;
    let mut anchor_unverified = None;
    if let Some(a) = &anchor {
        match key {
            Some(k) if !k.verify_anchor(a) => {
                return Err(format!(
                    "the retention anchor at seq {} is not signed by the checkpoint key",
                    a.seq
                ));
            }
            Some(_) => {}
            None => anchor_unverified = Some(a.seq),
        }
    }
    let (mut after, mut head) = anchor
        .map(|a| (a.seq, a.hash))
        .unwrap_or((0, crate::audit::GENESIS_HASH.to_owned()));
    let mut records = 0;
    loop {
        let batch = store
            .audit_chain(after, 1000)
            .await
            .map_err(|e| e.to_string())?;
        let Some(last) = batch.last() else { break };
        after = last.seq;
        let (n, h) = crate::audit::verify(&head, &batch).map_err(|e| e.to_string())?;
        records += n;
        head = h;
    }
    Ok(ChainReport {
        records,
        head,
        anchor_unverified,
    })
}

/// PostgreSQL: calls `on_due` whenever any replica makes an action due (`LISTEN` on the
/// channel the store notifies on commit), reconnecting after a lost connection, until
/// `shutdown`. The workers' poll stays as the fallback. SQLite: returns at once (one process;
/// it wakes its workers directly).
pub async fn listen_for_due_actions(
    url: &str,
    on_due: impl Fn() + Send,
    shutdown: tokio_util::sync::CancellationToken,
) {
    if !(url.starts_with("postgres:") || url.starts_with("postgresql:")) {
        return;
    }
    loop {
        match sqlx::postgres::PgListener::connect(url).await {
            Ok(mut listener) => match listener.listen(sql::ACTIONS_DUE_CHANNEL).await {
                Ok(()) => loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        n = listener.recv() => match n {
                            Ok(_) => on_due(),
                            Err(e) => {
                                tracing::warn!(error = %e, "lost the LISTEN connection; reconnecting (the poll covers the gap)");
                                break;
                            }
                        }
                    }
                },
                Err(e) => tracing::warn!(error = %e, "LISTEN failed; workers fall back to polling"),
            },
            Err(e) => {
                tracing::warn!(error = %e, "no LISTEN connection; workers fall back to polling")
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
    }
}

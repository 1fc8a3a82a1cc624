//! Persistence behind one trait. SQLite is the embedded default.
//!
//! Invariants: an alert is committed before intake answers; every state change of an action
//! commits together with its audit records; audit rows are only ever inserted.

mod migrations;
mod sqlite;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::audit::{AuditEvent, AuditRecord};

pub use sqlite::SqliteStore;

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

pub type StoreResult<T> = Result<T, StoreError>;

/// An alert as intake hands it to the store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewAlert {
    pub id: String,
    pub source: String,
    pub fingerprint: String,
    pub received_at: String,
    pub status: String,
    /// The canonical alert, as JSON.
    pub alert: serde_json::Value,
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
    pub alert: serde_json::Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionState {
    Ready,
    Running,
    Succeeded,
    Failed,
    Skipped,
}

impl ActionState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }
    pub fn parse(s: &str) -> StoreResult<Self> {
        Ok(match s {
            "ready" => Self::Ready,
            "running" => Self::Running,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "skipped" => Self::Skipped,
            other => return Err(StoreError::Corrupt(format!("action state {other:?}"))),
        })
    }
    pub fn is_open(self) -> bool {
        matches!(self, Self::Ready | Self::Running)
    }
}

/// An action the engine planned.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewAction {
    pub id: String,
    pub alert_id: Option<String>,
    pub playbook: Option<String>,
    /// `suspend` or `reactivate`.
    pub kind: String,
    /// The target as planned: a 1Password user id or an e-mail.
    pub target: String,
    /// `enforce` or `dry_run`.
    pub mode: String,
    pub reason: String,
    pub not_before: String,
    pub deadline_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Action {
    pub id: String,
    pub alert_id: Option<String>,
    pub playbook: Option<String>,
    pub kind: String,
    pub target: String,
    pub mode: String,
    pub reason: String,
    pub state: ActionState,
    pub attempts: i64,
    pub not_before: String,
    pub deadline_at: String,
    pub claimed_by: Option<String>,
    pub claim_expires_at: Option<String>,
    pub user_id: Option<String>,
    pub last_error: Option<String>,
    pub result: Option<serde_json::Value>,
    pub created_at: String,
    pub updated_at: String,
}

/// What the engine decided for one alert, committed at once.
#[derive(Debug, Default)]
pub struct PlanRecord {
    pub actions: Vec<NewAction>,
    pub audit: Vec<AuditEvent>,
}

/// How an action ended (or that it goes back to the queue).
#[derive(Debug, Clone)]
pub enum ActionOutcome {
    Done {
        state: ActionState,
        user_id: Option<String>,
        result: serde_json::Value,
        error: Option<String>,
    },
    Retry {
        not_before: String,
        user_id: Option<String>,
        error: String,
    },
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
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores the alert (a duplicate of a recent one is stored as such), with its audit record.
    async fn insert_alert(
        &self,
        alert: &NewAlert,
        dedup_since: &str,
        audit: AuditEvent,
    ) -> StoreResult<InsertOutcome>;
    async fn get_alert(&self, id: &str) -> StoreResult<Option<StoredAlert>>;
    /// Alerts stored but not yet evaluated, oldest first.
    async fn unevaluated_alerts(&self, limit: i64) -> StoreResult<Vec<StoredAlert>>;
    /// Commits the plan: new actions (an open action for the same target and kind absorbs a
    /// new one), the alert marked evaluated, and the audit records. Returns the actions created.
    async fn record_plan(&self, alert_id: &str, plan: PlanRecord) -> StoreResult<Vec<String>>;
    /// Enqueues actions outside any alert (operator CLI, manual API), with their audit records.
    async fn enqueue_actions(&self, plan: PlanRecord) -> StoreResult<Vec<String>>;
    /// Atomically claims the oldest ready action, or one whose claim expired.
    async fn claim_action(
        &self,
        worker: &str,
        now: &str,
        claim_until: &str,
    ) -> StoreResult<Option<Action>>;
    /// Records how a claimed action ended, with its audit records, if the claim is still ours.
    async fn finish_action(
        &self,
        id: &str,
        worker: &str,
        outcome: ActionOutcome,
        audit: Vec<AuditEvent>,
    ) -> StoreResult<bool>;
    async fn get_action(&self, id: &str) -> StoreResult<Option<Action>>;
    async fn list_actions(&self, alert_id: Option<&str>) -> StoreResult<Vec<Action>>;
    async fn append_audit(&self, events: Vec<AuditEvent>) -> StoreResult<()>;
    async fn query_audit(&self, q: &AuditQuery) -> StoreResult<Vec<AuditRecord>>;
    /// Every record in order, for verification and export.
    async fn audit_chain(&self, after_seq: i64, limit: i64) -> StoreResult<Vec<AuditRecord>>;
    async fn ping(&self) -> StoreResult<()>;
}

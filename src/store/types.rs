//! Actions, chains, approvals and limits as the store keeps them.

use serde::{Deserialize, Serialize};

pub use crate::decisions::suppress::Suppression;

use super::{StoreError, StoreResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionState {
    /// Waiting for the previous step of its chain.
    Waiting,
    PendingApproval,
    /// Due at `not_before` (in the future when created).
    Scheduled,
    /// Due now.
    Ready,
    Running,
    Succeeded,
    Failed,
    Skipped,
    Denied,
    Expired,
    Cancelled,
}

impl ActionState {
    pub const ALL: [ActionState; 11] = [
        Self::Waiting,
        Self::PendingApproval,
        Self::Scheduled,
        Self::Ready,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::Skipped,
        Self::Denied,
        Self::Expired,
        Self::Cancelled,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::PendingApproval => "pending_approval",
            Self::Scheduled => "scheduled",
            Self::Ready => "ready",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
            Self::Denied => "denied",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
        }
    }
    pub fn parse(s: &str) -> StoreResult<Self> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| StoreError::Corrupt(format!("action state {s:?}")))
    }
    pub fn is_open(self) -> bool {
        matches!(
            self,
            Self::Waiting | Self::PendingApproval | Self::Scheduled | Self::Ready | Self::Running
        )
    }
}

pub use crate::playbooks::{Mode, OnTimeout};

/// What an action does. Stored as its snake_case name; an unknown name in a row is an error
/// naming the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Suspend,
    Reactivate,
    GetUser,
    ListUsers,
    Notify,
}

impl ActionKind {
    pub const ALL: [ActionKind; 5] = [
        Self::Suspend,
        Self::Reactivate,
        Self::GetUser,
        Self::ListUsers,
        Self::Notify,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Suspend => "suspend",
            Self::Reactivate => "reactivate",
            Self::GetUser => "get_user",
            Self::ListUsers => "list_users",
            Self::Notify => "notify",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
    /// The kind of a playbook step.
    pub fn of(step: &crate::playbooks::StepAction) -> Self {
        use crate::playbooks::StepAction as S;
        match step {
            S::Suspend => Self::Suspend,
            S::Reactivate => Self::Reactivate,
            S::GetUser => Self::GetUser,
            S::ListUsers { .. } => Self::ListUsers,
            S::Notify { .. } => Self::Notify,
        }
    }
}

impl std::fmt::Display for ActionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who asked for an action: a playbook, or a person (analyst over HTTP, operator at the CLI).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Playbook,
    Manual,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Playbook => "playbook",
            Self::Manual => "manual",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Playbook, Self::Manual]
            .into_iter()
            .find(|o| o.as_str() == s)
    }
}

/// Reads a typed column: an unknown value is an error naming the row and the column.
pub(crate) fn parse_column<T>(
    id: &str,
    column: &str,
    value: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> StoreResult<T> {
    parse(value)
        .ok_or_else(|| StoreError::Corrupt(format!("action {id}: unknown {column} {value:?}")))
}

/// Who must approve a step, as the store keeps it until the step comes due.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ApprovalRequest {
    pub approvers: Vec<String>,
    pub quorum: i64,
    pub timeout_secs: i64,
    pub on_timeout: OnTimeout,
    pub escalate_after_secs: Option<i64>,
    pub escalate_to: Option<String>,
    pub cancel_on_resolve: bool,
    /// `playbook`, `manual`, `global_limit`, `playbook_limit`.
    pub reason: String,
}

/// One step as the planner or a manual request queues it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewStep {
    pub id: String,
    /// `suspend`, `reactivate`, `get_user`, `list_users`, `notify`.
    pub kind: ActionKind,
    /// Everything the worker needs: the step action, `require_state`, `limit`.
    pub params: serde_json::Value,
    pub approval: Option<ApprovalRequest>,
    pub delay_secs: i64,
}

pub use crate::audit::AuditAnchor;

/// An alert that asked for an action; a resolved one has withdrawn its request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ActionRequest {
    pub alert_id: String,
    pub resolved_at: Option<String>,
}

/// The ordered steps for one target (a plan holds several).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewChain {
    pub id: String,
    pub alert_id: Option<String>,
    pub playbook: Option<String>,
    /// A 1Password user id or an e-mail, or `*` for account-wide steps.
    pub target: String,
    /// Every name of the target known when it was planned (normalised e-mail, user id),
    /// `target` among them: open actions, attachment and supersession match on any of them,
    /// so one user under two names is one user.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// The target's 1Password id, when known at planning (stored before the worker resolves
    /// it, so that a later request by id finds this chain).
    #[serde(default)]
    pub user_id: Option<String>,
    pub mode: Mode,
    pub reason: String,
    pub origin: Origin,
    pub requested_by: Option<String>,
    /// Transient failures are retried until this long after the step becomes due.
    pub deadline_secs: i64,
    pub steps: Vec<NewStep>,
}

/// What a step does and the guards it carries, decoded once from the row's `params`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepParams {
    pub action: crate::playbooks::StepAction,
    #[serde(default)]
    pub require_state: Option<crate::playbooks::RequireState>,
    #[serde(default)]
    pub limit: Option<crate::playbooks::Limit>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Action {
    pub id: String,
    pub chain_id: String,
    pub step_index: i64,
    pub predecessor: Option<String>,
    pub alert_id: Option<String>,
    pub playbook: Option<String>,
    pub kind: ActionKind,
    pub target: String,
    /// The row's `params` as stored (what the approval's binding hash covers).
    pub params: serde_json::Value,
    /// The same, typed: a row whose params do not decode is an error naming it.
    #[serde(skip)]
    pub step: Option<StepParams>,
    pub approval: Option<ApprovalRequest>,
    pub mode: Mode,
    pub reason: String,
    pub origin: Origin,
    pub requested_by: Option<String>,
    pub state: ActionState,
    pub attempts: i64,
    pub delay_secs: i64,
    pub deadline_secs: i64,
    pub not_before: String,
    pub deadline_at: String,
    pub claimed_by: Option<String>,
    pub claim_expires_at: Option<String>,
    pub user_id: Option<String>,
    pub last_error: Option<String>,
    pub result: Option<serde_json::Value>,
    /// An approver waived the blast-radius limits for this action.
    pub limit_override: bool,
    pub created_at: String,
    pub updated_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

impl Action {
    /// An audit record about this action: its id, target, alert and playbook filled in.
    pub fn audit_event(&self, kind: &str, actor: impl Into<String>) -> crate::audit::AuditEvent {
        let mut e = crate::audit::AuditEvent::new(kind, actor)
            .action(&self.id)
            .subject(&self.target);
        e.alert_id = self.alert_id.clone();
        e.playbook = self.playbook.clone();
        e
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Decision {
    pub approver: String,
    /// Every name the approver's token gave (`email` and `sub`): four-eyes and quorum
    /// compare these, so one person counts once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identities: Vec<String>,
    /// `approve` or `deny`.
    pub decision: String,
    pub reason: Option<String>,
    pub at: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalState {
    Pending,
    Approved,
    Denied,
    Expired,
    Cancelled,
}

impl ApprovalState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
        }
    }
    pub fn parse(s: &str) -> StoreResult<Self> {
        Ok(match s {
            "pending" => Self::Pending,
            "approved" => Self::Approved,
            "denied" => Self::Denied,
            "expired" => Self::Expired,
            "cancelled" => Self::Cancelled,
            other => return Err(StoreError::Corrupt(format!("approval state {other:?}"))),
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Approval {
    pub id: String,
    pub action_id: String,
    pub state: ApprovalState,
    pub request: ApprovalRequest,
    pub binding_hash: String,
    pub requested_by: Option<String>,
    pub decisions: Vec<Decision>,
    pub created_at: String,
    pub expires_at: String,
    pub escalate_at: Option<String>,
    pub escalated: bool,
    pub decided_at: Option<String>,
}

/// How a claimed action ended (or that it goes back to the queue).
#[derive(Debug, Clone)]
pub enum ActionOutcome {
    Done {
        state: ActionState,
        user_id: Option<String>,
        result: serde_json::Value,
        error: Option<String>,
        /// Whether the chain goes on to the next step (after a success, or a dry run).
        continue_chain: bool,
    },
    Retry {
        not_before: String,
        user_id: Option<String>,
        error: String,
    },
}

/// Blast-radius limits, checked inside the claim transaction.
#[derive(Debug, Clone, Default)]
pub struct LimitPolicy {
    /// At most this many suspensions per window across the service (all replicas).
    pub global: Option<(i64, std::time::Duration)>,
    /// Roles that approve actions held by a limit.
    pub approvers: Vec<String>,
    pub approval_timeout_secs: i64,
}

#[derive(Debug)]
pub enum Claim {
    Empty,
    Claimed(Action),
    /// A limit held the action back: it now waits for approval.
    Limited {
        action: Action,
        approval_id: String,
        scope: String,
        tripped_now: bool,
    },
    /// The due row did not decode (an unknown kind, mode, origin or step): it was failed,
    /// audited, so that one bad row cannot hold up the queue behind it.
    Unreadable {
        id: String,
        error: String,
    },
}

/// The outcome of a decision that the store applied.
#[derive(Debug, Clone, PartialEq)]
pub enum DecisionOutcome {
    /// Counted; more approvals are needed.
    Recorded {
        approvals: i64,
        quorum: i64,
    },
    Approved,
    Denied,
}

#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    #[error("no such approval")]
    NotFound,
    #[error("the approval was already decided ({0})")]
    AlreadyDecided(String),
    #[error("this approver already decided on this approval")]
    DuplicateApprover,
    #[error("the requester of an action cannot approve it (four-eyes)")]
    SelfApproval,
    #[error("the approver lacks a role allowed to decide (needs one of: {0})")]
    NotAnApprover(String),
    #[error("the action no longer matches what the approval shows")]
    BindingMismatch,
    #[error("the approval expired at {0}")]
    Expired(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who decides, with the roles the token granted.
#[derive(Debug, Clone)]
pub struct Approver {
    pub id: String,
    /// Every name the token gives this person (see `Identity::aliases`); `id` among them.
    pub aliases: Vec<String>,
    pub roles: Vec<String>,
}

impl Approver {
    /// Whether `name` is one of this approver's names (e-mails compare case-insensitively).
    pub fn is(&self, name: &str) -> bool {
        let name = name.trim();
        std::iter::once(&self.id)
            .chain(&self.aliases)
            .any(|a| a == name || a.eq_ignore_ascii_case(name))
    }
}

/// What binds an approval to exactly one action: a hash of what the approver is shown.
pub fn binding_hash(a: &Action) -> String {
    use sha2::{Digest, Sha256};
    let bound = serde_json::json!({
        "action": a.id,
        "kind": a.kind,
        "target": a.target,
        "playbook": a.playbook,
        "alert": a.alert_id,
        "params": a.params,
        "mode": a.mode,
    });
    hex::encode(Sha256::digest(bound.to_string().as_bytes()))
}

/// The pure part of a decision: given the approval as stored and who decides, the new state.
pub fn apply_decision(
    approval: &Approval,
    action: &Action,
    approver: &Approver,
    approve: bool,
    now: &str,
) -> Result<Option<ApprovalState>, DecideError> {
    if approval.state != ApprovalState::Pending {
        return Err(DecideError::AlreadyDecided(approval.state.as_str().into()));
    }
    // Refused at once, not left for the scheduler's next pass to expire.
    if approval.expires_at.as_str() <= now {
        return Err(DecideError::Expired(approval.expires_at.clone()));
    }
    if binding_hash(action) != approval.binding_hash {
        return Err(DecideError::BindingMismatch);
    }
    if approval
        .requested_by
        .as_deref()
        .is_some_and(|r| approver.is(r))
    {
        return Err(DecideError::SelfApproval);
    }
    if !approver
        .roles
        .iter()
        .any(|r| approval.request.approvers.contains(r))
    {
        return Err(DecideError::NotAnApprover(
            approval.request.approvers.join(", "),
        ));
    }
    if approval
        .decisions
        .iter()
        .any(|d| approver.is(&d.approver) || d.identities.iter().any(|i| approver.is(i)))
    {
        return Err(DecideError::DuplicateApprover);
    }
    if !approve {
        return Ok(Some(ApprovalState::Denied));
    }
    let approvals = approval
        .decisions
        .iter()
        .filter(|d| d.decision == "approve")
        .count() as i64
        + 1;
    Ok((approvals >= approval.request.quorum).then_some(ApprovalState::Approved))
}

/// Whether a new chain whose first step is `first` must replace the open action `existing`
/// of the same kind on the same user instead of attaching to it: attaching must never weaken
/// what the later request asked for. An immediate enforced step supersedes one still waiting
/// for an approval, a delay or its predecessor, or a dry run; anything else attaches.
/// Returns the reason, for the audit.
pub fn supersedes(mode: Mode, first: &NewStep, existing: &Action) -> Option<String> {
    let immediate = mode == Mode::Enforce && first.approval.is_none() && first.delay_secs == 0;
    if !immediate || matches!(existing.state, ActionState::Running) {
        return None;
    }
    if existing.mode != Mode::Enforce {
        return Some(format!(
            "an enforced {} replaces the open dry run {}",
            first.kind, existing.id
        ));
    }
    let waiting_for = match existing.state {
        ActionState::PendingApproval => "an approval",
        ActionState::Scheduled => "its delay",
        ActionState::Waiting => "an earlier step",
        _ => return None,
    };
    Some(format!(
        "a later request asks for an immediate {}; {} was waiting for {waiting_for}",
        first.kind, existing.id
    ))
}

/// What the engine decided for one alert, committed at once.
#[derive(Debug, Default)]
pub struct PlanRecord {
    pub chains: Vec<NewChain>,
    /// Serialised by the planner (on intake's HTTP workers for most alerts), not the writer.
    pub audit: Vec<crate::audit::PreparedEvent>,
    /// For a resolved alert: cancel pending approvals of the firing alert with this correlation.
    pub cancel_correlation: Option<String>,
    /// The alert was held for a human instead of planned (why): the planner notifies.
    pub held: Option<String>,
    /// Protected accounts the alert was about (target, why): never changed, but the
    /// `protected_subject` channel is told.
    pub protected: Vec<(String, String)>,
}

/// A `PlanRecord` as stored with its alert (JSON): each audit record's data stays the exact
/// text it was prepared with, so the chain hashes what intake serialised.
#[derive(Serialize, Deserialize)]
struct StoredPlan {
    chains: Vec<NewChain>,
    audit: Vec<StoredPlanEvent>,
    cancel_correlation: Option<String>,
    held: Option<String>,
    #[serde(default)]
    protected: Vec<(String, String)>,
}

#[derive(Serialize, Deserialize)]
struct StoredPlanEvent {
    event: crate::audit::AuditEvent,
    data: String,
}

impl PlanRecord {
    pub fn to_json(&self) -> String {
        serde_json::to_string(&StoredPlan {
            chains: self.chains.clone(),
            audit: self
                .audit
                .iter()
                .map(|e| StoredPlanEvent {
                    event: e.event.clone(),
                    data: e.data.clone(),
                })
                .collect(),
            cancel_correlation: self.cancel_correlation.clone(),
            held: self.held.clone(),
            protected: self.protected.clone(),
        })
        .expect("plans serialise")
    }

    pub fn from_json(text: &str) -> Result<Self, String> {
        let p: StoredPlan = serde_json::from_str(text).map_err(|e| e.to_string())?;
        Ok(Self {
            chains: p.chains,
            audit: p
                .audit
                .into_iter()
                .map(|e| crate::audit::PreparedEvent::with_data(e.event, e.data))
                .collect(),
            cancel_correlation: p.cancel_correlation,
            held: p.held,
            protected: p.protected,
        })
    }

    /// Nothing to do but record the decision: no chain to start, nothing to cancel. Intake
    /// stores such an alert already evaluated, with these records, in its own transaction.
    pub fn is_settled(&self) -> bool {
        self.chains.is_empty()
            && self.cancel_correlation.is_none()
            && self.held.is_none()
            && self.protected.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action() -> Action {
        serde_json::from_value(serde_json::json!({
            "id": "act_1", "chain_id": "chn_1", "step_index": 0, "predecessor": null,
            "alert_id": null, "playbook": null, "kind": "suspend", "target": "a@example.com",
            "params": {}, "approval": null, "mode": "enforce", "reason": "r", "origin": "manual",
            "requested_by": "Ana@Example.com", "state": "pending_approval", "attempts": 0,
            "delay_secs": 0, "deadline_secs": 60, "not_before": "t", "deadline_at": "t",
            "claimed_by": null, "claim_expires_at": null, "user_id": null, "last_error": null,
            "result": null, "limit_override": false, "created_at": "t", "updated_at": "t",
            "started_at": null, "finished_at": null
        }))
        .unwrap()
    }

    fn approval(a: &Action, decisions: Vec<Decision>) -> Approval {
        serde_json::from_value(serde_json::json!({
            "id": "apr_1", "action_id": a.id, "state": "pending",
            "request": {"approvers": ["secops"], "quorum": 2, "timeout_secs": 60,
                        "on_timeout": "deny", "escalate_after_secs": null, "escalate_to": null,
                        "cancel_on_resolve": false, "reason": "manual"},
            "binding_hash": binding_hash(a), "requested_by": "Ana@Example.com",
            "decisions": decisions, "created_at": "2026-01-01T00:00:00.000000Z",
            "expires_at": "2026-01-01T01:00:00.000000Z", "escalate_at": null, "escalated": false,
            "decided_at": null
        }))
        .unwrap()
    }

    fn approver(id: &str, aliases: &[&str]) -> Approver {
        Approver {
            id: id.into(),
            aliases: aliases.iter().map(|s| s.to_string()).collect(),
            roles: vec!["secops".into()],
        }
    }

    const BEFORE: &str = "2026-01-01T00:30:00.000000Z";

    #[test]
    fn the_stricter_request_wins() {
        let step = |approval: bool, delay: i64| NewStep {
            id: "act_2".into(),
            kind: ActionKind::Suspend,
            params: serde_json::json!({}),
            approval: approval.then(|| action_with_approval().approval.unwrap()),
            delay_secs: delay,
        };
        let mut existing = action();
        for (state, mode, new_mode, approval, delay, wins) in [
            (
                ActionState::PendingApproval,
                "enforce",
                "enforce",
                false,
                0,
                true,
            ),
            (ActionState::Scheduled, "enforce", "enforce", false, 0, true),
            (ActionState::Waiting, "enforce", "enforce", false, 0, true),
            (
                ActionState::PendingApproval,
                "dry_run",
                "enforce",
                false,
                0,
                true,
            ),
            (
                ActionState::PendingApproval,
                "enforce",
                "enforce",
                true,
                0,
                false,
            ),
            (
                ActionState::PendingApproval,
                "enforce",
                "enforce",
                false,
                60,
                false,
            ),
            (
                ActionState::PendingApproval,
                "enforce",
                "dry_run",
                false,
                0,
                false,
            ),
            (ActionState::Ready, "enforce", "enforce", false, 0, false),
            (ActionState::Running, "enforce", "enforce", false, 0, false),
            (ActionState::Running, "dry_run", "enforce", false, 0, false),
        ] {
            existing.state = state;
            existing.mode = Mode::parse(mode).unwrap();
            let got = supersedes(
                Mode::parse(new_mode).unwrap(),
                &step(approval, delay),
                &existing,
            );
            assert_eq!(
                got.is_some(),
                wins,
                "{state:?} {mode} <- {new_mode} {approval} {delay}: {got:?}"
            );
        }
    }

    fn action_with_approval() -> Action {
        let mut a = action();
        a.approval = Some(approval(&a, vec![]).request);
        a
    }

    #[test]
    fn decisions_compare_every_name_of_a_person_and_refuse_after_expiry() {
        let a = action();
        let empty = approval(&a, vec![]);
        let ana = approver("ana@example.com", &["ana@example.com", "okta|ana"]);
        assert!(matches!(
            apply_decision(&empty, &a, &ana, true, BEFORE),
            Err(DecideError::SelfApproval)
        ));
        let bob = approver("bob@example.com", &["bob@example.com", "okta|bob"]);
        assert_eq!(
            apply_decision(&empty, &a, &bob, true, BEFORE).unwrap(),
            None
        );
        assert!(matches!(
            apply_decision(&empty, &a, &bob, true, "2026-01-01T01:00:00.000000Z"),
            Err(DecideError::Expired(_))
        ));
        let decided = approval(
            &a,
            vec![Decision {
                approver: "bob@example.com".into(),
                identities: vec!["bob@example.com".into(), "okta|bob".into()],
                decision: "approve".into(),
                reason: None,
                at: "t".into(),
            }],
        );
        for same in [
            approver("okta|bob", &["okta|bob"]),
            approver("BOB@example.com", &["BOB@example.com"]),
        ] {
            assert!(matches!(
                apply_decision(&decided, &a, &same, true, BEFORE),
                Err(DecideError::DuplicateApprover)
            ));
        }
        let carol = approver("carol@example.com", &["carol@example.com"]);
        assert_eq!(
            apply_decision(&decided, &a, &carol, true, BEFORE).unwrap(),
            Some(ApprovalState::Approved)
        );
    }
}

/// An Events API event as kept: its facts, the item as sent, and its time in lockout's fixed
/// format (text order is time order).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredEvent {
    pub facts: crate::events_api::EventFacts,
    pub item: serde_json::Value,
    pub ts: String,
    pub received_at: String,
}

impl StoredEvent {
    /// The user it is about: the 1Password id, else the lower-cased e-mail.
    pub fn user_key(&self) -> Option<String> {
        let u = self.facts.user.as_ref()?;
        u.uuid.clone().or_else(|| self.user_email())
    }

    pub fn user_email(&self) -> Option<String> {
        self.facts
            .user
            .as_ref()?
            .email
            .as_deref()
            .map(crate::domain::normalise_email)
    }
}

/// Whether 1Password's audit log showed an action lockout made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verification {
    pub action_id: String,
    /// `verified` or `unverified`.
    pub outcome: String,
    pub event_uuid: Option<String>,
    pub recorded_at: String,
}

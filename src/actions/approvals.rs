//! One decision on an approval, whoever makes it and however (the API, the console, a Slack
//! button): the same rules (`store::apply_decision`, inside the store's transaction), the same
//! count, and the workers woken when it lets an action run.

use crate::approvals::Identity;
use crate::context::AppContext;
use crate::domain::now_rfc3339;
use crate::store::{Approver, DecideError, DecisionOutcome};

pub async fn decide(
    ctx: &AppContext,
    who: &Identity,
    approval_id: &str,
    approve: bool,
    reason: Option<String>,
) -> Result<DecisionOutcome, DecideError> {
    let approver = Approver {
        id: who.id.clone(),
        aliases: who.aliases.clone(),
        roles: who.roles.clone(),
    };
    let outcome = ctx
        .store
        .decide_approval(approval_id, &approver, approve, reason, &now_rfc3339())
        .await?;
    ctx.actions_waiting.notify_waiters();
    let counted = match &outcome {
        DecisionOutcome::Recorded { .. } => "recorded",
        DecisionOutcome::Approved => "approved",
        DecisionOutcome::Denied => "denied",
    };
    ctx.metrics
        .inc("lockout_approvals_total", &[("outcome", counted)]);
    Ok(outcome)
}

//! Manual actions: an analyst (over HTTP) or an operator (the CLI) asks lockout to suspend or
//! reactivate a user. One path for both: the same protected list (on every name the user
//! goes by), the same chain, limits, approvals and audit as a playbook's step.

use serde_json::json;

use super::approval_request;
use crate::audit::AuditEvent;
use crate::context::AppContext;
use crate::domain::{Email, UserRef, new_id};
use crate::playbooks::{ApprovalSpec, OnTimeout, StepAction};
use crate::store::{ActionState, NewChain, NewStep, StoreError};
use crate::users_api::CallLog;

/// Who asks: `analyst:<token identity>` or `operator:<login>` in the audit.
pub struct Requester {
    pub actor: String,
    pub id: String,
    pub roles: Vec<String>,
}

pub struct ManualRequest {
    pub target: UserRef,
    pub step: StepAction,
    pub reason: String,
    pub approval_required: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ManualError {
    #[error("the reason holds a NUL character")]
    NulInReason,
    #[error("a reason is required")]
    ReasonRequired,
    #[error("{target} is protected by guard {guard}")]
    Protected { target: String, guard: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What became of the request.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ManualQueued {
    /// `None` when it attached to an open action of the same kind on the user.
    pub action_id: Option<String>,
    pub state: Option<ActionState>,
    pub approval_id: Option<String>,
    pub attached: bool,
}

/// Checks, audits and queues a manual action. It supersedes what was scheduled for the user
/// (e.g. a delayed reactivation): a person acted in between.
pub async fn request(
    ctx: &AppContext,
    who: &Requester,
    req: ManualRequest,
) -> Result<ManualQueued, ManualError> {
    // PostgreSQL text cannot hold NUL: refused on both stores alike.
    if req.reason.contains('\0') {
        return Err(ManualError::NulInReason);
    }
    if req.reason.trim().is_empty() {
        return Err(ManualError::ReasonRequired);
    }
    let target = &req.target;
    // The user under every name lockout knows: a manual suspend by e-mail supersedes what
    // a playbook scheduled against the same user's id, and a guard on either name holds.
    let log = CallLog::default();
    let (aliases, known) = ctx.known_names(target, &log, true).await;
    let mut audit: Vec<AuditEvent> = log
        .take()
        .into_iter()
        .map(|c| {
            AuditEvent::new("api.call", who.actor.clone())
                .subject(target.to_string())
                .data(serde_json::to_value(c).expect("calls serialise"))
        })
        .collect();
    let user_id = known.as_ref().map(|u| u.id.to_string());
    let known_email = known.as_ref().and_then(|u| Email::parse(&u.email).ok());
    let protected = ctx
        .globally_protected(&target.to_string(), known_email.as_ref())
        .or_else(|| {
            user_id
                .as_deref()
                .and_then(|id| ctx.globally_protected(id, known_email.as_ref()))
        });
    let kind = req.step.kind();
    if let Some(guard) = protected {
        audit.push(
            AuditEvent::new("guard.protected", who.actor.clone())
                .subject(target)
                .data(
                    json!({"reason": format!("protected by global guard {guard}"), "kind": kind}),
                ),
        );
        ctx.store.append_audit(audit).await?;
        return Err(ManualError::Protected {
            target: target.to_string(),
            guard,
        });
    }
    let approval = req.approval_required.then(|| {
        approval_request(
            &ApprovalSpec {
                approvers: ctx.manual_approvers.clone(),
                quorum: 1,
                timeout: ctx.approval_timeout,
                on_timeout: OnTimeout::Deny,
                escalate: None,
                cancel_on_resolve: false,
            },
            "manual",
        )
    });
    let action_id = new_id("act");
    let chain = NewChain {
        id: new_id("chn"),
        alert_id: None,
        playbook: None,
        target: target.to_string(),
        aliases,
        user_id: user_id.clone(),
        mode: crate::playbooks::Mode::Enforce,
        reason: req.reason.clone(),
        origin: crate::store::Origin::Manual,
        requested_by: Some(who.id.clone()),
        deadline_secs: ctx.worker.action_deadline.as_secs() as i64,
        steps: vec![NewStep {
            id: action_id.clone(),
            kind: crate::store::ActionKind::of(&req.step),
            params: json!({"action": req.step}),
            approval,
            delay_secs: 0,
        }],
    };
    audit.push(
        AuditEvent::new(&format!("manual.{kind}"), who.actor.clone())
            .action(&action_id)
            .subject(target)
            .data(json!({"reason": req.reason, "approval_required": req.approval_required, "roles": who.roles, "user_id": user_id})),
    );
    let created = ctx.store.enqueue(vec![chain], true, audit).await?;
    ctx.actions_waiting.notify_waiters();
    let id = created.first().cloned();
    let action = match &id {
        Some(id) => ctx.store.get_action(id).await?,
        None => None,
    };
    if let Some(a) = &action {
        super::feeds::freeze_context(ctx, a).await?;
    }
    let approval_id = match &action {
        Some(a) if a.approval.is_some() => ctx
            .store
            .list_approvals(None)
            .await?
            .into_iter()
            .find(|x| x.action_id == a.id)
            .map(|x| x.id),
        _ => None,
    };
    Ok(ManualQueued {
        attached: id.is_none(),
        action_id: id,
        state: action.as_ref().map(|a| a.state),
        approval_id,
    })
}

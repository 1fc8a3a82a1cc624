use std::sync::Arc;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::audit::AuditEvent;
use crate::context::AppContext;
use crate::domain::{Email, UserRef, format_time};
use crate::store::{Action, ActionOutcome, ActionState, StoreError};
use crate::users_api::{CallLog, User, UserState, UsersApiError};
use tracing::Instrument;

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Ran,
    Empty,
}

/// Claims and runs one action. The worker loop is a thin wrapper; tests call this directly
/// to step the queue without sleeping.
pub async fn try_run_next(ctx: &AppContext, worker: &str) -> Result<Outcome, StoreError> {
    let now = time::OffsetDateTime::now_utc();
    let claim_until = format_time(now + ctx.worker.claim_ttl);
    let Some(action) = ctx
        .store
        .claim_action(worker, &format_time(now), &claim_until)
        .await?
    else {
        return Ok(Outcome::Empty);
    };
    let span = tracing::info_span!("action", action_id = %action.id, kind = %action.kind, target = %action.target);
    let log = CallLog::default();
    let (outcome, mut audit) = execute(ctx, &action, &log).instrument(span).await;
    // API calls first, then the outcome: the order they happened in.
    let mut events: Vec<AuditEvent> = log
        .take()
        .into_iter()
        .map(|call| {
            event(&action, "api.call").data(serde_json::to_value(call).expect("calls serialise"))
        })
        .collect();
    events.append(&mut audit);
    let ours = ctx
        .store
        .finish_action(&action.id, worker, outcome, events)
        .await?;
    if !ours {
        tracing::warn!(action_id = %action.id, "claim was lost before the action finished; another worker owns it now");
    }
    Ok(Outcome::Ran)
}

fn event(action: &Action, kind: &str) -> AuditEvent {
    let actor = action
        .playbook
        .as_ref()
        .map(|p| format!("playbook:{p}"))
        .unwrap_or_else(|| "system".into());
    let mut e = AuditEvent::new(kind, actor)
        .action(&action.id)
        .subject(&action.target);
    e.alert_id = action.alert_id.clone();
    e.playbook = action.playbook.clone();
    e
}

fn done(
    state: ActionState,
    user: Option<&User>,
    result: serde_json::Value,
    error: Option<String>,
) -> ActionOutcome {
    ActionOutcome::Done {
        state,
        user_id: user.map(|u| u.id.to_string()),
        result,
        error,
    }
}

async fn resolve(ctx: &AppContext, target: &UserRef, log: &CallLog) -> Result<User, UsersApiError> {
    match target {
        UserRef::Id(id) => ctx.users.get_user(id, log).await,
        UserRef::Email(email) => match ctx.directory.find_by_email(email, log).await? {
            // Read the current state fresh: the directory may be minutes old.
            Some(u) => ctx.users.get_user(&u.id, log).await,
            None => Err(UsersApiError::NotFound {
                message: format!("no 1Password user has the e-mail {email}"),
            }),
        },
    }
}

async fn execute(
    ctx: &AppContext,
    action: &Action,
    log: &CallLog,
) -> (ActionOutcome, Vec<AuditEvent>) {
    let target = match UserRef::parse(&action.target) {
        Ok(t) => t,
        Err(e) => {
            let msg = e.to_string();
            return (
                done(ActionState::Failed, None, json!({}), Some(msg.clone())),
                vec![event(action, "action.failed").data(json!({"error": msg}))],
            );
        }
    };
    let user = match resolve(ctx, &target, log).await {
        Ok(u) => u,
        Err(e) => return failure(ctx, action, None, e),
    };
    let email = Email::parse(&user.email).ok();
    // Guards are checked again here, on the resolved user: an e-mail in an alert may turn
    // out to belong to a protected id.
    if let Some(pb) = action.playbook.as_ref().and_then(|name| {
        ctx.playbooks()
            .playbooks
            .iter()
            .find(|p| &p.name == name)
            .cloned()
    }) && let Some(p) = pb
        .protected
        .iter()
        .find(|p| p.covers(Some(user.id.as_str()), email.as_ref()))
    {
        let reason = format!("protected by guard {p:?}");
        return (
            done(
                ActionState::Skipped,
                Some(&user),
                json!({"skipped": "protected", "reason": reason}),
                None,
            ),
            vec![
                event(action, "guard.protected")
                    .data(json!({"user_id": user.id, "reason": reason})),
            ],
        );
    }
    let (wanted, call_name) = match action.kind.as_str() {
        "suspend" => (UserState::Suspended, "suspend"),
        "reactivate" => (UserState::Active, "reactivate"),
        other => {
            let msg = format!("unknown action kind {other:?}");
            return (
                done(
                    ActionState::Failed,
                    Some(&user),
                    json!({}),
                    Some(msg.clone()),
                ),
                vec![event(action, "action.failed").data(json!({"error": msg}))],
            );
        }
    };
    if user.state == wanted {
        let why = format!("already {}", wanted.as_str().to_lowercase());
        return (
            done(
                ActionState::Skipped,
                Some(&user),
                json!({"skipped": why, "user": user}),
                None,
            ),
            vec![event(action, "action.skipped").data(json!({"reason": why, "user_id": user.id}))],
        );
    }
    if action.mode == "dry_run" {
        return (
            done(
                ActionState::Skipped,
                Some(&user),
                json!({"dry_run": true, "would": call_name, "user": user}),
                None,
            ),
            vec![
                event(action, "action.dry_run")
                    .data(json!({"would": call_name, "user_id": user.id, "state": user.state})),
            ],
        );
    }
    let result = match wanted {
        UserState::Suspended => ctx.users.suspend_user(&user.id, log).await,
        _ => ctx.users.reactivate_user(&user.id, log).await,
    };
    match result {
        Ok(after) => {
            ctx.directory.note(&after).await;
            tracing::info!(user_id = %after.id, state = after.state.as_str(), "action succeeded");
            (
                done(
                    ActionState::Succeeded,
                    Some(&after),
                    json!({"user": after}),
                    None,
                ),
                vec![
                    event(action, "action.succeeded").data(
                        json!({"kind": action.kind, "user_id": after.id, "state": after.state}),
                    ),
                ],
            )
        }
        Err(e) => failure(ctx, action, Some(&user), e),
    }
}

/// Permanent failures end the action; transient ones go back to the queue until the deadline.
fn failure(
    ctx: &AppContext,
    action: &Action,
    user: Option<&User>,
    e: UsersApiError,
) -> (ActionOutcome, Vec<AuditEvent>) {
    let now = time::OffsetDateTime::now_utc();
    let past_deadline = format_time(now) >= action.deadline_at;
    if e.is_permanent() || past_deadline {
        tracing::warn!(error = %e, "action failed");
        let why = if past_deadline && !e.is_permanent() {
            "deadline passed"
        } else {
            "permanent"
        };
        return (
            done(ActionState::Failed, user, json!({"error_kind": e.kind()}), Some(e.to_string())),
            vec![event(action, "action.failed").data(json!({"error": e.to_string(), "error_kind": e.kind(), "why": why, "attempts": action.attempts}))],
        );
    }
    let factor = 1u32 << (action.attempts.clamp(1, 6) - 1) as u32;
    let delay = (ctx.worker.requeue_delay * factor).min(std::time::Duration::from_secs(300));
    let not_before = format_time(now + delay);
    (
        ActionOutcome::Retry {
            not_before: not_before.clone(),
            user_id: user.map(|u| u.id.to_string()),
            error: e.to_string(),
        },
        vec![event(action, "action.retry").data(json!({"error": e.to_string(), "error_kind": e.kind(), "not_before": not_before, "attempts": action.attempts}))],
    )
}

/// `n` workers that run actions until shutdown. A worker finishes the action it holds.
pub async fn run_workers(
    ctx: Arc<AppContext>,
    n: usize,
    name: String,
    shutdown: CancellationToken,
) {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n.max(1) {
        let ctx = ctx.clone();
        let shutdown = shutdown.clone();
        let worker = format!("{name}/{i}");
        tasks.spawn(async move {
            loop {
                if shutdown.is_cancelled() {
                    return;
                }
                match try_run_next(&ctx, &worker).await {
                    Ok(Outcome::Ran) => continue,
                    Ok(Outcome::Empty) => {}
                    Err(e) => {
                        tracing::error!(error = %e, worker, "worker could not reach the store")
                    }
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = ctx.actions_waiting.notified() => {}
                    _ = tokio::time::sleep(ctx.worker.poll_interval) => {}
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

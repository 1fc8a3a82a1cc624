use std::sync::Arc;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::audit::AuditEvent;
use crate::context::AppContext;
use crate::decisions::step::{
    Change, ReadPlan, ResolvedUser, SkipKind, StepDecision, decide as decide_step, read_first,
};
use crate::domain::{Email, UserRef, format_time};
use crate::playbooks::{RequireState, StepAction};
use crate::store::{Action, ActionOutcome, ActionState, Claim, StoreError};
use crate::users_api::{CallLog, StateFilter, User, UsersApiError};

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Ran,
    Empty,
}

/// Claims and runs one action. The worker loop is a thin wrapper; tests call this directly
/// to step the queue without sleeping.
pub async fn try_run_next(ctx: &AppContext, worker: &str) -> Result<Outcome, StoreError> {
    try_run(ctx, worker, None).await
}

/// Runs the action `id` if it is due (the CLI runs the manual action it queued, not others').
pub async fn try_run_action(
    ctx: &AppContext,
    worker: &str,
    id: &str,
) -> Result<Outcome, StoreError> {
    try_run(ctx, worker, Some(id)).await
}

async fn try_run(
    ctx: &AppContext,
    worker: &str,
    only: Option<&str>,
) -> Result<Outcome, StoreError> {
    let now = time::OffsetDateTime::now_utc();
    let claim_until = format_time(now + ctx.worker.claim_ttl);
    let action = match ctx
        .store
        .claim_action(worker, &format_time(now), &claim_until, &ctx.limits, only)
        .await?
    {
        Claim::Empty => return Ok(Outcome::Empty),
        Claim::Unreadable { id, error } => {
            tracing::error!(action_id = %id, %error, "a stored action does not decode; failed it");
            return Ok(Outcome::Ran);
        }
        Claim::Limited {
            action,
            scope,
            tripped_now,
            approval_id,
        } => {
            if tripped_now {
                ctx.notify_event("limit_tripped", &format!("lockout: the {scope} blast-radius limit tripped; suspensions now wait for approval ({})", approval_id), json!({"scope": scope, "action_id": action.id, "approval_id": approval_id})).await;
            }
            return Ok(Outcome::Ran);
        }
        Claim::Claimed(a) => a,
    };
    ctx.failpoint("after_claim");
    let span = tracing::info_span!("action", action_id = %action.id, kind = %action.kind, target = %action.target);
    let log = CallLog::default();
    // The claim is a lease, renewed while the action runs: a live worker keeps it however
    // long the API takes, a dead one's lapses within one lease.
    let renewing = async {
        let every = (ctx.worker.claim_ttl / 3).max(std::time::Duration::from_millis(100));
        loop {
            tokio::time::sleep(every).await;
            let until = format_time(time::OffsetDateTime::now_utc() + ctx.worker.claim_ttl);
            match ctx.store.renew_claim(&action.id, worker, &until).await {
                Ok(true) => {}
                // Lost (another worker took it): the run finishes, and its finish is refused.
                Ok(false) => break,
                Err(e) => {
                    tracing::warn!(error = %e, action_id = %action.id, "could not renew the claim")
                }
            }
        }
        std::future::pending::<()>().await
    };
    let (outcome, mut audit) = tokio::select! {
        done = execute(ctx, &action, &log).instrument(span) => done,
        () = renewing => unreachable!("renewal never completes"),
    };
    ctx.failpoint("before_commit");
    // API calls first, then the outcome: the order they happened in.
    let calls = log.take();
    ctx.record_calls(&calls);
    let outcome_name = match &outcome {
        ActionOutcome::Done { state, .. } => state.as_str(),
        ActionOutcome::Retry { .. } => "retry",
    };
    ctx.metrics.inc(
        "lockout_actions_total",
        &[("kind", action.kind.as_str()), ("outcome", outcome_name)],
    );
    let mut events: Vec<AuditEvent> = calls
        .into_iter()
        .map(|call| {
            event(&action, "api.call").data(serde_json::to_value(call).expect("calls serialise"))
        })
        .collect();
    events.append(&mut audit);
    let failed = matches!(
        outcome,
        ActionOutcome::Done {
            state: ActionState::Failed,
            ..
        }
    );
    let ours = ctx
        .store
        .finish_action(&action.id, worker, outcome, events)
        .await?;
    if !ours {
        tracing::warn!(action_id = %action.id, "claim was lost before the action finished; another worker owns it now");
    }
    if failed {
        let error = ctx
            .store
            .get_action(&action.id)
            .await?
            .and_then(|a| a.last_error)
            .unwrap_or_default();
        ctx.notify_event("action_failed", &format!("lockout: {} of {} failed: {error}", action.kind, action.target), json!({"action_id": action.id, "kind": action.kind, "target": action.target, "error": error})).await;
    }
    Ok(Outcome::Ran)
}

fn event(action: &Action, kind: &str) -> AuditEvent {
    let actor = match (action.origin, &action.playbook, &action.requested_by) {
        // An operator at the CLI is recorded as `operator:<login>` already.
        (crate::store::Origin::Manual, _, Some(by)) if by.starts_with("operator:") => by.clone(),
        (crate::store::Origin::Manual, _, Some(by)) => format!("analyst:{by}"),
        (_, Some(p), _) => format!("playbook:{p}"),
        _ => "system".into(),
    };
    action.audit_event(kind, actor)
}

fn done(
    state: ActionState,
    user: Option<&User>,
    result: Value,
    error: Option<String>,
    continue_chain: bool,
) -> ActionOutcome {
    ActionOutcome::Done {
        state,
        user_id: user.map(|u| u.id.to_string()),
        result,
        error,
        continue_chain,
    }
}

fn fail(action: &Action, user: Option<&User>, msg: String) -> (ActionOutcome, Vec<AuditEvent>) {
    (
        done(
            ActionState::Failed,
            user,
            json!({}),
            Some(msg.clone()),
            false,
        ),
        vec![event(action, "action.failed").data(json!({"error": msg, "why": "permanent"}))],
    )
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
    let Some(params) = &action.step else {
        return fail(action, None, "the action's step was not decoded".into());
    };
    let step: StepAction = params.action.clone();
    // Steps about the account, not a user.
    match &step {
        StepAction::ListUsers { state } => return list_users(ctx, action, *state, log).await,
        StepAction::Notify { to, message } if action.target == "*" => {
            return notify(ctx, action, to, message, None).await;
        }
        _ => {}
    }
    let target = match UserRef::parse(&action.target) {
        Ok(t) => t,
        Err(e) => return fail(action, None, e.to_string()),
    };
    let guards = guards_for(ctx, action);
    let guards: Vec<&crate::playbooks::ProtectedPattern> = guards.iter().collect();
    let required: Option<RequireState> = params.require_state;
    let dry_run = action.mode == crate::playbooks::Mode::DryRun;
    // One round trip where one is enough: the directory's view of the user decides whether
    // the change needs a read first.
    if let Some(change) = change_of(&step) {
        let cached = match &target {
            UserRef::Id(id) => ctx.directory.cached_by_id(id).await,
            UserRef::Email(e) => ctx.directory.find_by_email(e, log).await.ok().flatten(),
        };
        let email = cached.as_ref().and_then(|u| Email::parse(&u.email).ok());
        let known = cached.as_ref().map(|u| ResolvedUser {
            id: u.id.as_str(),
            email: email.as_ref(),
            state: &u.state,
        });
        if let (ReadPlan::Skip { why }, Some(u)) = (
            read_first(
                change,
                known.as_ref(),
                &guards,
                required,
                dry_run,
                action.attempts > 1,
            ),
            &cached,
        ) {
            return act(ctx, action, change, u, None, Some(why), log).await;
        }
    }
    let user = match resolve(ctx, &target, log).await {
        Ok(u) => u,
        Err(e) => return failure(ctx, action, None, e),
    };
    let change = match &step {
        StepAction::Suspend => Change::Suspend,
        StepAction::Reactivate => Change::Reactivate,
        StepAction::GetUser => {
            return (
                done(
                    ActionState::Succeeded,
                    Some(&user),
                    json!({"user": user}),
                    None,
                    true,
                ),
                vec![
                    event(action, "action.succeeded")
                        .data(json!({"kind": "get_user", "user": user})),
                ],
            );
        }
        StepAction::Notify { to, message } => {
            return notify(ctx, action, to, message, Some(&user)).await;
        }
        StepAction::ListUsers { .. } => unreachable!("handled above"),
    };
    // Guards are checked again here, on the resolved user: an e-mail in an alert may turn
    // out to belong to a protected id.
    let email = Email::parse(&user.email).ok();
    let resolved = ResolvedUser {
        id: user.id.as_str(),
        email: email.as_ref(),
        state: &user.state,
    };
    let verb = change.verb();
    let reason = match decide_step(change, &resolved, &guards, required, dry_run) {
        StepDecision::Act { reason } => reason,
        StepDecision::Skip { kind, reason } => {
            let (record, continue_chain, data) = match kind {
                SkipKind::Protected => (
                    "guard.protected",
                    false,
                    json!({"user_id": user.id, "reason": reason}),
                ),
                SkipKind::UnknownState => (
                    "action.skipped",
                    false,
                    json!({"reason": reason, "user_id": user.id, "state": user.state, "unknown_state": true}),
                ),
                SkipKind::AlreadyThere => (
                    "action.skipped",
                    false,
                    json!({"reason": reason, "user_id": user.id}),
                ),
                SkipKind::StateRequirement => (
                    "guard.require_state",
                    false,
                    json!({"reason": reason, "user_id": user.id}),
                ),
                SkipKind::DryRun => (
                    "action.dry_run",
                    true,
                    json!({"would": verb, "user_id": user.id, "state": user.state, "reason": reason}),
                ),
            };
            let result = match kind {
                SkipKind::Protected => json!({"skipped": "protected", "reason": reason}),
                SkipKind::DryRun => json!({"dry_run": true, "would": verb, "user": user}),
                SkipKind::StateRequirement => json!({"skipped": reason}),
                SkipKind::UnknownState | SkipKind::AlreadyThere => {
                    json!({"skipped": reason, "user": user})
                }
            };
            return (
                done(
                    ActionState::Skipped,
                    Some(&user),
                    result,
                    None,
                    continue_chain,
                ),
                vec![event(action, record).data(data)],
            );
        }
    };
    act(ctx, action, change, &user, Some(reason), None, log).await
}

/// The playbook's protected list and the service's.
fn guards_for(ctx: &AppContext, action: &Action) -> Vec<crate::playbooks::ProtectedPattern> {
    let playbook = action.playbook.as_ref().and_then(|name| {
        ctx.playbooks()
            .playbooks
            .iter()
            .find(|p| &p.name == name)
            .cloned()
    });
    playbook
        .iter()
        .flat_map(|pb| pb.protected.iter())
        .chain(ctx.protected.iter())
        .cloned()
        .collect()
}

fn change_of(step: &StepAction) -> Option<Change> {
    match step {
        StepAction::Suspend => Some(Change::Suspend),
        StepAction::Reactivate => Some(Change::Reactivate),
        _ => None,
    }
}

/// Calls `:suspend` or `:reactivate`. `reason` is the step decision's, on a fresh read;
/// `read_skipped` says why no read was made (the state is then the answer's).
async fn act(
    ctx: &AppContext,
    action: &Action,
    change: Change,
    user: &User,
    reason: Option<String>,
    read_skipped: Option<String>,
    log: &CallLog,
) -> (ActionOutcome, Vec<AuditEvent>) {
    tracing::debug!(?reason, ?read_skipped, "acting");
    let result = match change {
        Change::Suspend => ctx.users.suspend_user(&user.id, log).await,
        Change::Reactivate => ctx.users.reactivate_user(&user.id, log).await,
    };
    ctx.failpoint("after_call");
    match result {
        Ok(after) => {
            ctx.directory.note(&after).await;
            tracing::info!(user_id = %after.id, state = after.state.as_str(), "action succeeded");
            let mut data = json!({"kind": action.kind, "user_id": after.id, "state": after.state});
            if let Some(why) = read_skipped {
                data["read_skipped"] = json!(why);
            }
            (
                done(
                    ActionState::Succeeded,
                    Some(&after),
                    json!({"user": after}),
                    None,
                    true,
                ),
                vec![event(action, "action.succeeded").data(data)],
            )
        }
        Err(e) => failure(ctx, action, Some(user), e),
    }
}

async fn list_users(
    ctx: &AppContext,
    action: &Action,
    state: Option<StateFilter>,
    log: &CallLog,
) -> (ActionOutcome, Vec<AuditEvent>) {
    match ctx.users.list_all_users(state, log).await {
        Ok(users) => {
            let summary = json!({"count": users.len(), "filter": state, "ids": users.iter().map(|u| u.id.to_string()).collect::<Vec<_>>()});
            (
                done(ActionState::Succeeded, None, summary.clone(), None, true),
                vec![
                    event(action, "action.succeeded")
                        .data(json!({"kind": "list_users", "result": summary})),
                ],
            )
        }
        Err(e) => failure(ctx, action, None, e),
    }
}

async fn notify(
    ctx: &AppContext,
    action: &Action,
    to: &str,
    message: &str,
    user: Option<&User>,
) -> (ActionOutcome, Vec<AuditEvent>) {
    let alert = match &action.alert_id {
        Some(id) => ctx
            .store
            .get_alert(id)
            .await
            .ok()
            .flatten()
            .map(|a| a.alert)
            .unwrap_or(Value::Null),
        None => Value::Null,
    };
    let context = json!({
        "alert": alert,
        "user": user,
        "playbook": {"name": action.playbook},
        "action": {"id": action.id, "kind": action.kind, "target": action.target, "mode": action.mode, "reason": action.reason},
    });
    let text = match crate::playbooks::template::render(message, &context) {
        Ok(t) => t,
        Err(e) => return fail(action, user, format!("notify template: {e}")),
    };
    if action.mode == crate::playbooks::Mode::DryRun {
        return (
            done(
                ActionState::Skipped,
                user,
                json!({"dry_run": true, "would": "notify", "to": to, "text": text}),
                None,
                true,
            ),
            vec![
                event(action, "action.dry_run")
                    .data(json!({"would": "notify", "to": to, "text": text})),
            ],
        );
    }
    match ctx
        .notifier
        .send(
            to,
            "playbook_notify",
            &text,
            &json!({"action_id": action.id, "alert_id": action.alert_id}),
        )
        .await
    {
        Ok(attempts) => (
            done(
                ActionState::Succeeded,
                user,
                json!({"to": to, "attempts": attempts}),
                None,
                true,
            ),
            vec![
                event(action, "notify.sent")
                    .data(json!({"to": to, "attempts": attempts, "text": text})),
            ],
        ),
        Err(e) => {
            let now = time::OffsetDateTime::now_utc();
            if format_time(now) >= action.deadline_at {
                (
                    done(
                        ActionState::Failed,
                        user,
                        json!({}),
                        Some(e.to_string()),
                        false,
                    ),
                    vec![
                        event(action, "notify.failed")
                            .data(json!({"to": to, "error": e.to_string()})),
                    ],
                )
            } else {
                let not_before = format_time(now + ctx.worker.requeue_delay);
                (
                    ActionOutcome::Retry {
                        not_before,
                        user_id: user.map(|u| u.id.to_string()),
                        error: e.to_string(),
                    },
                    vec![
                        event(action, "notify.failed")
                            .data(json!({"to": to, "error": e.to_string(), "will_retry": true})),
                    ],
                )
            }
        }
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
            done(ActionState::Failed, user, json!({"error_kind": e.kind()}), Some(e.to_string()), false),
            vec![event(action, "action.failed").data(json!({"error": e.to_string(), "error_kind": e.kind(), "why": why, "attempts": action.attempts}))],
        );
    }
    let factor = 1u32 << (action.attempts.clamp(1, 6) - 1) as u32;
    let delay = (ctx.worker.requeue_delay * factor).min(std::time::Duration::from_secs(300));
    let not_before = format_time(now + delay);
    (
        ActionOutcome::Retry { not_before: not_before.clone(), user_id: user.map(|u| u.id.to_string()), error: e.to_string() },
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
    // When the last poll (by any worker) found nothing: idle workers share one poll per
    // interval instead of each polling the store. New actions wake them all anyway.
    let found_nothing = Arc::new(std::sync::Mutex::new(None::<tokio::time::Instant>));
    for i in 0..n.max(1) {
        let ctx = ctx.clone();
        let shutdown = shutdown.clone();
        let worker = format!("{name}/{i}");
        let found_nothing = found_nothing.clone();
        tasks.spawn(async move {
            let mut woken = true;
            loop {
                if shutdown.is_cancelled() {
                    return;
                }
                let last = *found_nothing.lock().expect("not poisoned");
                let polled_lately = last.is_some_and(|at| at.elapsed() < ctx.worker.poll_interval);
                if woken || !polled_lately {
                    match try_run_next(&ctx, &worker).await {
                        Ok(Outcome::Ran) => continue,
                        Ok(Outcome::Empty) => {
                            *found_nothing.lock().expect("not poisoned") =
                                Some(tokio::time::Instant::now());
                        }
                        Err(e) => {
                            tracing::error!(error = %e, worker, "worker could not reach the store")
                        }
                    }
                }
                woken = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = ctx.actions_waiting.notified() => true,
                    _ = tokio::time::sleep(ctx.worker.poll_interval) => false,
                };
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

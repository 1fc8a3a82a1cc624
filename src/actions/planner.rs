use std::time::Duration;

use serde_json::json;

use crate::alerts::{Alert, AlertStatus};
use crate::audit::{AuditEvent, PreparedEvent};
use crate::context::AppContext;
use crate::domain::{UserRef, new_id};
use crate::playbooks::{ApprovalSpec, Plan, PlannedChain, PlaybookSet, Skip, evaluate};
use crate::store::{ApprovalRequest, NewChain, NewStep, PlanRecord, StoreError, StoredAlert};
use crate::users_api::CallLog;

/// Evaluates every stored alert not yet evaluated (new ones, and any left by a crash), a batch
/// at a time: evaluation is pure, and each batch of plans is committed in one transaction.
pub async fn plan_pending(ctx: &AppContext) -> Result<usize, StoreError> {
    let mut total = 0;
    loop {
        let batch = ctx.store.unevaluated_alerts(256).await?;
        if batch.is_empty() {
            return Ok(total);
        }
        let playbooks = ctx.playbooks();
        let suppressions = ctx.suppressions().await?;
        let mut plans = Vec::with_capacity(batch.len());
        let mut lookups = Lookups::default();
        for stored in &batch {
            let (alert, mut record) = plan_record(ctx, &playbooks, &suppressions, stored)?;
            name_targets(ctx, &alert, &mut record, &mut lookups).await;
            plans.push((stored.id.clone(), record));
        }
        total += batch.len();
        ctx.metrics
            .add("lockout_plans_total", &[], batch.len() as u64);
        let held: Vec<(String, String)> = plans
            .iter()
            .filter_map(|(id, r)| r.held.clone().map(|why| (id.clone(), why)))
            .collect();
        let protected: Vec<(String, Vec<(String, String)>)> = plans
            .iter()
            .filter(|(_, r)| !r.protected.is_empty())
            .map(|(id, r)| (id.clone(), r.protected.clone()))
            .collect();
        let created = ctx.store.record_plans(plans).await?;
        for (alert_id, subjects) in protected {
            notify_protected(ctx, &alert_id, &subjects).await;
        }
        for (alert_id, why) in held {
            ctx.notify_event(
                "alert_held",
                &format!("lockout: alert {alert_id} was held for a human: {why}"),
                json!({"alert_id": alert_id, "reason": why}),
            )
            .await;
        }
        if !created.is_empty() {
            ctx.actions_waiting.notify_waiters();
        }
    }
}

pub fn approval_request(a: &ApprovalSpec, reason: &str) -> ApprovalRequest {
    ApprovalRequest {
        approvers: a.approvers.clone(),
        quorum: a.quorum as i64,
        timeout_secs: a.timeout.as_secs() as i64,
        on_timeout: a.on_timeout,
        escalate_after_secs: a.escalate.as_ref().map(|e| e.after.as_secs() as i64),
        escalate_to: a.escalate.as_ref().map(|e| e.to.clone()),
        cancel_on_resolve: a.cancel_on_resolve,
        reason: reason.into(),
    }
}

/// The store's form of a planned chain.
pub fn new_chain(c: &PlannedChain, alert_id: Option<&str>, deadline: Duration) -> NewChain {
    NewChain {
        id: new_id("chn"),
        alert_id: alert_id.map(str::to_owned),
        playbook: Some(c.playbook.clone()),
        target: c.target.as_ref().map(|t| t.to_string()).unwrap_or_else(|| "*".into()),
        aliases: vec![],
        user_id: match &c.target {
            Some(crate::domain::UserRef::Id(id)) => Some(id.to_string()),
            _ => None,
        },
        mode: c.mode,
        reason: c.reason.clone(),
        origin: crate::store::Origin::Playbook,
        requested_by: None,
        deadline_secs: deadline.as_secs() as i64,
        steps: c
            .steps
            .iter()
            .map(|s| NewStep {
                id: new_id("act"),
                kind: crate::store::ActionKind::of(&s.action),
                params: json!({"action": s.action, "require_state": c.require_state, "limit": c.limit}),
                approval: s.approval.as_ref().map(|a| approval_request(a, "playbook")),
                delay_secs: s.delay.as_secs() as i64,
            })
            .collect(),
    }
}

/// Whether the directory may be asked during one planning pass: after one failure the rest
/// of the pass uses what is cached, so an unreachable API cannot stall planning per alert.
#[derive(Default)]
struct Lookups {
    failed: bool,
}

/// How long one planning pass waits for the directory before going on without it.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Gives each chain every name its target goes by (normalised e-mail and 1Password id), so
/// that the store sees one user under two names as one; and refuses, audited, a chain whose
/// alert names a user by an e-mail and an id that belong to two different users.
async fn name_targets(
    ctx: &AppContext,
    alert: &Alert,
    record: &mut PlanRecord,
    lookups: &mut Lookups,
) {
    if record.chains.iter().all(|c| c.target == "*") {
        return;
    }
    let log = CallLog::default();
    let mut conflicts: Vec<(String, String, String)> = vec![];
    for s in &alert.subjects {
        if let (Some(email), Some(id)) = (&s.email, &s.user_id) {
            let (_, user, timed_out) =
                lookup(ctx, UserRef::Email(email.clone()), &log, lookups.failed).await;
            lookups.failed |= timed_out;
            if let Some(u) = user
                && &u.id != id
            {
                conflicts.push((email.to_string(), id.to_string(), u.id.to_string()));
            }
        }
    }
    let mut kept = Vec::with_capacity(record.chains.len());
    for mut chain in std::mem::take(&mut record.chains) {
        if let Some((email, id, owner)) = conflicts
            .iter()
            .find(|(e, i, _)| chain.target == *e || chain.target == *i)
        {
            let mut e = AuditEvent::new("plan.identity_conflict", "system")
                .alert(&alert.id)
                .subject(&chain.target)
                .data(json!({
                    "reason": format!("the alert names {email} and {id}, but {email} is 1Password user {owner}: refusing to act on either"),
                    "email": email, "user_id": id, "email_owner": owner, "kind": chain.steps.first().map(|s| s.kind),
                }));
            e.playbook = chain.playbook.clone();
            record.audit.push(PreparedEvent::new(e));
            continue;
        }
        if let Ok(target) = UserRef::parse(&chain.target) {
            let (aliases, user, timed_out) = lookup(ctx, target, &log, lookups.failed).await;
            lookups.failed |= timed_out;
            chain.aliases = aliases;
            if let Some(u) = user {
                chain.user_id = Some(u.id.to_string());
            }
        }
        kept.push(chain);
    }
    record.chains = kept;
    for call in log.take() {
        record.audit.push(PreparedEvent::new(
            AuditEvent::new("api.call", "system")
                .alert(&alert.id)
                .data(serde_json::to_value(call).expect("calls serialise")),
        ));
    }
}

/// `AppContext::known_names`, bounded in time; after a failure (`failed`) e-mails are not
/// looked up. The last value says whether this look-up timed out.
async fn lookup(
    ctx: &AppContext,
    target: UserRef,
    log: &CallLog,
    failed: bool,
) -> (Vec<String>, Option<crate::users_api::User>, bool) {
    if failed && matches!(target, UserRef::Email(_)) {
        return (vec![target.to_string()], None, false);
    }
    match tokio::time::timeout(LOOKUP_TIMEOUT, ctx.known_names(&target, log, false)).await {
        Ok((names, user)) => (names, user, false),
        Err(_) => (vec![target.to_string()], None, true),
    }
}

/// Tells the `protected_subject` channel that protected accounts were the subject of an alert:
/// the accounts an operations guide says to watch most.
async fn notify_protected(ctx: &AppContext, alert_id: &str, subjects: &[(String, String)]) {
    for (target, why) in subjects {
        ctx.notify_event(
            "protected_subject",
            &format!("lockout: protected account {target} was the subject of alert {alert_id}; nothing about it was changed ({why})"),
            json!({"alert_id": alert_id, "target": target, "reason": why}),
        )
        .await;
    }
}

/// Plans one stored alert and commits it.
pub async fn plan_alert(ctx: &AppContext, stored: &StoredAlert) -> Result<(), StoreError> {
    let suppressions = ctx.suppressions().await?;
    let (alert, mut record) = plan_record(ctx, &ctx.playbooks(), &suppressions, stored)?;
    name_targets(ctx, &alert, &mut record, &mut Lookups::default()).await;
    let protected = record.protected.clone();
    let created = ctx.store.record_plan(&stored.id, record).await?;
    notify_protected(ctx, &stored.id, &protected).await;
    if !created.is_empty() {
        ctx.actions_waiting.notify_waiters();
    }
    Ok(())
}

/// What the engine decides for a stored alert, ready to commit. No I/O.
fn plan_record(
    ctx: &AppContext,
    playbooks: &PlaybookSet,
    suppressions: &[crate::store::Suppression],
    stored: &StoredAlert,
) -> Result<(Alert, PlanRecord), StoreError> {
    let alert: Alert = serde_json::from_value(stored.alert.clone())
        .map_err(|e| StoreError::Corrupt(format!("alert {}: {e}", stored.id)))?;
    // Intake evaluated it already: carry that plan out. (An alert stored without one, by an
    // older version or a test, is evaluated here.)
    let record = match &stored.plan {
        Some(plan) => PlanRecord::from_json(plan)
            .map_err(|e| StoreError::Corrupt(format!("alert {}: its plan: {e}", stored.id)))?,
        None => decide(ctx, playbooks, suppressions, &alert, &stored.correlation),
    };
    Ok((alert, record))
}

/// What the engine decides for an alert: pure, so intake can run it before storing the
/// alert and the planner again after a crash, with the same result for the same playbooks.
pub fn decide(
    ctx: &AppContext,
    playbooks: &PlaybookSet,
    suppressions: &[crate::store::Suppression],
    alert: &Alert,
    correlation: &str,
) -> PlanRecord {
    let mut record = PlanRecord::default();
    // Invariant 7: lockout's own actions come back as alerts. Never remediate on them.
    if let Some(why) = super::loops::self_inflicted(alert, &ctx.self_actors) {
        record.audit.push(PreparedEvent::new(
            AuditEvent::new("plan.loop_prevented", "system")
                .alert(&alert.id)
                .data(json!({"reason": why})),
        ));
        return record;
    }
    // One alert naming thousands of users would queue thousands of actions ahead of every
    // other alert's: past the cap it is kept, audited and shown to a human, not planned.
    if alert.subjects.len() > ctx.max_subjects_per_alert {
        let why = format!(
            "the alert names {} users, more than guards.max_subjects_per_alert ({}): held for a human, nothing planned",
            alert.subjects.len(),
            ctx.max_subjects_per_alert
        );
        record.audit.push(PreparedEvent::new(
            AuditEvent::new("plan.held", "system")
                .alert(&alert.id)
                .data(json!({"reason": why, "subjects": alert.subjects.len(), "max": ctx.max_subjects_per_alert})),
        ));
        record.held = Some(why);
        return record;
    }
    let plan = evaluate(playbooks, alert);
    // Shadow playbooks: their would-be verdict beside the live one, recorded when either
    // matched (the comparison `GET /v1/playbooks/{name}/shadow` reads). They never act.
    for v in crate::playbooks::evaluate_shadows(playbooks, alert, &plan) {
        if v.shadow_matched || v.live_matched {
            record.audit.push(PreparedEvent::new(
                AuditEvent::new("shadow.verdict", format!("playbook:{}", v.shadow))
                    .alert(&alert.id)
                    .playbook(&v.shadow)
                    .data(serde_json::to_value(&v).expect("verdicts serialise")),
            ));
        }
    }
    // Playbooks whose `on` did not match are listed by name only (their conditions are in
    // the playbook): that is most playbooks for most alerts, and this record is written for
    // every alert. Every other skip keeps its reason.
    let (not_matched, skipped): (Vec<_>, Vec<_>) =
        plan.skipped.iter().partition(|s| s.kind == "no_match");
    let not_matched: Vec<&str> = not_matched.iter().map(|s| &*s.playbook).collect();
    record.audit.push(plan_made(
        &alert.id,
        &plan,
        &skipped,
        &not_matched,
        playbooks.playbooks.len(),
    ));
    for s in plan.skipped.iter().filter(|s| s.kind == "protected") {
        record.protected.push((
            s.target.clone().unwrap_or_default(),
            format!("playbook {}: {}", s.playbook, s.reason),
        ));
        let mut e = AuditEvent::new("guard.protected", format!("playbook:{}", s.playbook))
            .alert(&alert.id)
            .playbook(&s.playbook)
            .data(json!({"reason": s.reason}));
        e.subject = s.target.clone();
        record.audit.push(PreparedEvent::new(e));
    }
    for c in &plan.chains {
        let target = c.target.as_ref().map(|t| t.to_string());
        // A suppression in force when the alert arrived holds the match back: recorded as
        // suppressed, with the suppression's id, never dropped silently.
        if let Some(s) = crate::decisions::suppress::matching(
            suppressions,
            &alert.received_at,
            alert,
            &c.playbook,
            c.target.as_ref(),
        ) {
            let mut e = AuditEvent::new("guard.suppressed", format!("playbook:{}", c.playbook))
                .alert(&alert.id)
                .playbook(&c.playbook)
                .data(json!({
                    "suppression_id": s.id, "reason": format!("suppressed by {} ({}), by {} until {}", s.id, s.reason, s.author, s.expires_at),
                    "would": c.steps.iter().map(|s| s.action.kind()).collect::<Vec<_>>(),
                }));
            e.subject = target;
            record.audit.push(PreparedEvent::new(e));
            continue;
        }
        if let Some(p) = target
            .as_deref()
            .and_then(|t| ctx.globally_protected(t, None))
        {
            let kept: Vec<_> = c
                .steps
                .iter()
                .filter(|s| !s.action.changes_state())
                .cloned()
                .collect();
            let why = if kept.is_empty() {
                format!("protected by global guard {p}")
            } else {
                format!(
                    "protected by global guard {p}: its state-changing steps are dropped, the others run"
                )
            };
            record.protected.push((
                target.clone().unwrap_or_default(),
                format!("playbook {}: {why}", c.playbook),
            ));
            let mut e = AuditEvent::new("guard.protected", format!("playbook:{}", c.playbook))
                .alert(&alert.id)
                .playbook(&c.playbook)
                .data(json!({"reason": why}));
            e.subject = target;
            record.audit.push(PreparedEvent::new(e));
            if !kept.is_empty() {
                let mut notify_only = c.clone();
                notify_only.steps = kept;
                record.chains.push(new_chain(
                    &notify_only,
                    Some(&alert.id),
                    ctx.worker.action_deadline,
                ));
            }
            continue;
        }
        record
            .chains
            .push(new_chain(c, Some(&alert.id), ctx.worker.action_deadline));
    }
    if alert.status == AlertStatus::Resolved {
        record.cancel_correlation = Some(correlation.to_owned());
    }
    record
}

/// The planner task: runs at start (crash recovery) and whenever intake stores an alert.
pub async fn run_planner(
    ctx: std::sync::Arc<AppContext>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        if let Err(e) = plan_pending(&ctx).await {
            tracing::error!(error = %e, "planning failed; will retry");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ctx.alerts_waiting.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

/// The `plan.made` record: which playbooks matched, the chains they start, why others did not.
fn plan_made(
    alert_id: &str,
    plan: &Plan,
    skipped: &[&Skip],
    not_matched: &[&str],
    playbooks_loaded: usize,
) -> PreparedEvent {
    let made = AuditEvent::new("plan.made", "system").alert(alert_id);
    if plan.chains.is_empty() && skipped.is_empty() {
        // Most alerts: nothing to do. Serialised straight from the plan, keys sorted as
        // `PreparedEvent::with_data` requires (unit test: the same text as the `Value`).
        #[derive(serde::Serialize)]
        struct NothingToDo<'a> {
            chains: [(); 0],
            matched: &'a [String],
            not_matched: &'a [&'a str],
            playbooks_loaded: usize,
            skipped: [(); 0],
        }
        let data = NothingToDo {
            chains: [],
            matched: &plan.matched,
            not_matched,
            playbooks_loaded,
            skipped: [],
        };
        return PreparedEvent::with_data(
            made,
            serde_json::to_string(&data).expect("plans serialise"),
        );
    }
    PreparedEvent::new(made.data(json!({
        "matched": plan.matched,
        "chains": plan.chains,
        "skipped": skipped,
        "not_matched": not_matched,
        "playbooks_loaded": playbooks_loaded,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_with_nothing_to_do_is_written_as_its_value_would_be() {
        let plan = Plan {
            matched: vec!["dry \"run\"".into()],
            ..Default::default()
        };
        let not_matched = ["a", "b\u{e9}"];
        let fast = plan_made("alr_1", &plan, &[], &not_matched, 3);
        let slow = AuditEvent::new("plan.made", "system")
            .alert("alr_1")
            .data(json!({
                "matched": plan.matched,
                "chains": plan.chains,
                "skipped": Vec::<Skip>::new(),
                "not_matched": not_matched,
                "playbooks_loaded": 3,
            }));
        let slow = PreparedEvent::new(slow);
        assert_eq!(fast.data, slow.data);
        assert_eq!(
            fast.chain_hash("h", 1, "aud_1", "t"),
            slow.chain_hash("h", 1, "aud_1", "t")
        );
    }
}

use std::time::Duration;

use serde_json::json;

use crate::alerts::Alert;
use crate::audit::AuditEvent;
use crate::context::AppContext;
use crate::domain::{format_time, new_id};
use crate::playbooks::evaluate;
use crate::store::{NewAction, PlanRecord, StoreError, StoredAlert};

/// Evaluates every stored alert not yet evaluated (new ones, and any left by a crash).
pub async fn plan_pending(ctx: &AppContext) -> Result<usize, StoreError> {
    let mut total = 0;
    loop {
        let batch = ctx.store.unevaluated_alerts(100).await?;
        if batch.is_empty() {
            return Ok(total);
        }
        for stored in &batch {
            plan_alert(ctx, stored).await?;
            total += 1;
        }
    }
}

pub async fn plan_alert(ctx: &AppContext, stored: &StoredAlert) -> Result<(), StoreError> {
    let alert: Alert = serde_json::from_value(stored.alert.clone())
        .map_err(|e| StoreError::Corrupt(format!("alert {}: {e}", stored.id)))?;
    let playbooks = ctx.playbooks();
    let plan = evaluate(&playbooks, &alert);
    let now = time::OffsetDateTime::now_utc();
    let mut record = PlanRecord::default();
    record.audit.push(
        AuditEvent::new("plan.made", "system")
            .alert(&alert.id)
            .data(json!({
                "matched": plan.matched,
                "actions": plan.actions,
                "skipped": plan.skipped,
                "playbooks_loaded": playbooks.playbooks.len(),
            })),
    );
    for s in plan.skipped.iter().filter(|s| s.kind == "protected") {
        let mut e = AuditEvent::new("guard.protected", format!("playbook:{}", s.playbook))
            .alert(&alert.id)
            .playbook(&s.playbook)
            .data(json!({"reason": s.reason}));
        e.subject = s.target.clone();
        record.audit.push(e);
    }
    for a in &plan.actions {
        let not_before = now + a.delay;
        record.actions.push(NewAction {
            id: new_id("act"),
            alert_id: Some(alert.id.clone()),
            playbook: Some(a.playbook.clone()),
            kind: a.kind.as_str().into(),
            target: a.target.to_string(),
            mode: a.mode.as_str().into(),
            reason: a.reason.clone(),
            not_before: format_time(not_before),
            deadline_at: format_time(not_before + ctx.worker.action_deadline),
        });
    }
    let created = ctx.store.record_plan(&alert.id, record).await?;
    if !created.is_empty() {
        ctx.actions_waiting.notify_waiters();
    }
    Ok(())
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

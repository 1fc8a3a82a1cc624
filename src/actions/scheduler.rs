//! Time-driven work: approvals that expire, escalations that fall due, and announcing new
//! pending approvals to the configured notify targets.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::context::AppContext;
use crate::domain::now_rfc3339;
use crate::store::{ApprovalState, StoreError};

/// One pass. Returns how many approvals it expired.
pub async fn tick(ctx: &AppContext, announced: &mut HashSet<String>) -> Result<usize, StoreError> {
    let now = now_rfc3339();
    // Expired suppressions stop applying by themselves (checked per alert); this records it.
    if !ctx
        .store
        .record_expired_suppressions(&now)
        .await?
        .is_empty()
    {
        ctx.forget_suppressions().await;
    }
    let expired = ctx.store.expire_approvals(&now).await?;
    if !expired.is_empty() {
        ctx.metrics.add(
            "lockout_approvals_total",
            &[("outcome", "expired")],
            expired.len() as u64,
        );
        ctx.actions_waiting.notify_waiters();
    }
    for a in ctx.store.due_escalations(&now).await? {
        if let Some(to) = &a.request.escalate_to {
            let text = format!(
                "lockout: approval {} is still pending (needs {} of [{}])",
                a.id,
                a.request.quorum,
                a.request.approvers.join(", ")
            );
            ctx.send_audited(
                to,
                "approval_escalated",
                &text,
                json!({"approval_id": a.id, "action_id": a.action_id}),
            )
            .await;
        }
    }
    for a in ctx
        .store
        .list_approvals(Some(ApprovalState::Pending))
        .await?
    {
        if announced.insert(a.id.clone()) {
            let action = ctx.store.get_action(&a.action_id).await?;
            // The target's recent activity, frozen now: what the approver sees and the audit keeps.
            if let Some(x) = &action {
                super::feeds::freeze_context(ctx, x).await?;
            }
            let will = match &action {
                Some(x) => format!("{} {}", x.kind.as_str(), x.target),
                None => format!("action {}", a.action_id),
            };
            let link = ctx
                .console_url
                .as_deref()
                .map(|base| format!("{}/console/approvals/{}", base.trim_end_matches('/'), a.id));
            let text = format!(
                "lockout: approval {} to {} needs {} of [{}] (reason: {}){}",
                a.id,
                will,
                a.request.quorum,
                a.request.approvers.join(", "),
                a.request.reason,
                link.as_deref().map(|l| format!(" {l}")).unwrap_or_default()
            );
            let blocks = crate::notify::slack_approval_blocks(
                &a.id,
                &will,
                &a.request.reason,
                a.request.quorum,
                link.as_deref(),
            );
            ctx.notify_event(
                "approval_pending",
                &text,
                json!({"approval_id": a.id, "action_id": a.action_id, "expires_at": a.expires_at, "will": will, "link": link, "slack_blocks": blocks}),
            )
            .await;
        }
    }
    Ok(expired.len())
}

pub async fn run_scheduler(ctx: Arc<AppContext>, every: Duration, shutdown: CancellationToken) {
    let mut announced = HashSet::new();
    loop {
        if let Err(e) = tick(&ctx, &mut announced).await {
            tracing::error!(error = %e, "scheduler pass failed");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

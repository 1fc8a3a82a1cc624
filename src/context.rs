//! The running service's shared state, built once by `startup` and handed to every part.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::alerts::Source;
use crate::approvals::JwtVerifier;
use crate::audit::AuditEvent;
use crate::config::NotificationSettings;
use crate::domain::{Email, UserRef};
use crate::notify::Notifier;
use crate::playbooks::{LoadContext, PlaybookSet, ProtectedPattern};
use crate::store::{LimitPolicy, Store};
use crate::users_api::{Directory, UsersApiClient};

pub struct WorkerTuning {
    pub poll_interval: Duration,
    pub claim_ttl: Duration,
    pub action_deadline: Duration,
    pub requeue_delay: Duration,
    /// Test-only crash points (`after_claim`, `after_call`, `before_commit`): the process
    /// aborts there, as a power cut would. Set with `worker.danger_failpoint`.
    pub failpoint: Option<String>,
}

/// How long a replica may apply the suppressions it last read: one created or removed on
/// another replica takes effect here within this. Expiry needs no refresh (checked per alert).
pub const SUPPRESSIONS_TTL: Duration = Duration::from_secs(1);

/// Everything the service holds while it runs. Built once by `startup`.
pub struct AppContext {
    /// `approvals.admin_roles`: people whose JWTs may use the admin endpoints.
    pub admin_roles: Vec<String>,
    /// `guards.max_suppression_secs`.
    pub max_suppression: Duration,
    /// The suppressions in force, as last read from the store (every replica reads them
    /// again after `SUPPRESSIONS_TTL`; this one at once after it changes one).
    pub suppression_cache:
        tokio::sync::Mutex<Option<(std::time::Instant, Arc<Vec<crate::store::Suppression>>)>>,
    /// `console.public_url`: links in notifications point there.
    pub console_url: Option<String>,
    /// Slack interactions: the signing secret and who each Slack user is.
    pub slack: Option<crate::config::SlackSettings>,
    /// The audit checkpoint key (verifies a retention anchor), if configured.
    pub checkpoint_key: Option<crate::audit::checkpoint::CheckpointKey>,
    pub store: Arc<dyn Store>,
    pub users: UsersApiClient,
    pub directory: Directory,
    pub playbooks: LivePlaybooks,
    pub playbook_dir: PathBuf,
    pub load_context: LoadContext,
    pub sources: HashMap<String, Source>,
    pub worker: WorkerTuning,
    pub limits: LimitPolicy,
    pub protected: Vec<ProtectedPattern>,
    /// 1Password identities of lockout's own OAuth application (loop prevention).
    pub self_actors: Vec<String>,
    pub notifier: Notifier,
    pub notifications: NotificationSettings,
    pub jwt: JwtVerifier,
    pub analyst_roles: Vec<String>,
    pub manual_approvers: Vec<String>,
    pub approval_timeout: Duration,
    /// Wakes the planner when an alert was stored.
    pub alerts_waiting: Notify,
    /// Wakes the workers when actions were queued.
    pub actions_waiting: Notify,
    pub sandbox: bool,
    pub metrics: crate::metrics::Metrics,
    /// Refused intake requests, written to the audit aggregated per interval.
    pub refusals: crate::audit::refusals::RefusalLog,
    pub refusal_interval: Duration,
    /// The last failed Users API readiness check and when (answered from memory a while).
    pub readiness: std::sync::Mutex<Option<(std::time::Instant, String)>>,
    /// More subjects than this in one alert: held for a human, not planned.
    pub max_subjects_per_alert: usize,
    /// The Events API (feeds, health, history), when configured or in the sandbox.
    pub events: Option<Arc<crate::events_api::EventsRuntime>>,
    /// The sandbox's fake (to script its event stream); none in live mode.
    pub sandbox_fake: Option<crate::sandbox::FakeHandle>,
}

/// The live playbook set: read as a cheap snapshot, swapped whole on reload.
pub struct LivePlaybooks(RwLock<Arc<PlaybookSet>>);

impl LivePlaybooks {
    pub fn new(set: PlaybookSet) -> Self {
        Self(RwLock::new(Arc::new(set)))
    }
}

impl AppContext {
    /// The live playbook set (a cheap snapshot; reloads swap it whole).
    pub fn playbooks(&self) -> Arc<PlaybookSet> {
        self.playbooks
            .0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn replace_playbooks(&self, set: PlaybookSet) {
        *self.playbooks.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(set);
    }

    /// Reloads the playbook folder. A folder with any error leaves the running set untouched;
    /// either way the outcome is audited.
    pub async fn reload_playbooks(
        &self,
        actor: &str,
    ) -> Result<usize, Vec<crate::playbooks::LoadError>> {
        let result = crate::playbooks::load_dir(&self.playbook_dir, &self.load_context);
        let event = match &result {
            Ok(set) => AuditEvent::new("playbooks.reloaded", actor).data(json!({
                "playbooks": set.playbooks.iter().map(|p| json!({"name": p.name, "hash": p.hash})).collect::<Vec<_>>()
            })),
            Err(errors) => {
                tracing::error!(errors = ?errors.iter().map(|e| e.to_string()).collect::<Vec<_>>(), "playbook reload refused; the running set stays");
                AuditEvent::new("playbooks.reload_failed", actor).data(json!({"errors": errors.iter().map(|e| e.to_string()).collect::<Vec<_>>()}))
            }
        };
        if let Err(e) = self.store.append_audit(vec![event]).await {
            tracing::error!(error = %e, "could not audit a playbook reload");
        }
        let set = result?;
        let n = set.playbooks.len();
        self.replace_playbooks(set);
        Ok(n)
    }

    /// The global guard that covers this user, if any. `target` is an id or an e-mail.
    /// The suppressions in force (read from the store at most every `SUPPRESSIONS_TTL`).
    pub async fn suppressions(
        &self,
    ) -> Result<Arc<Vec<crate::store::Suppression>>, crate::store::StoreError> {
        let mut cache = self.suppression_cache.lock().await;
        if let Some((at, list)) = cache.as_ref()
            && at.elapsed() < SUPPRESSIONS_TTL
        {
            return Ok(list.clone());
        }
        let list = Arc::new(
            self.store
                .list_suppressions(&crate::domain::now_rfc3339(), false)
                .await?,
        );
        *cache = Some((std::time::Instant::now(), list.clone()));
        Ok(list)
    }

    /// After this replica created or removed a suppression: read them again at once.
    pub async fn forget_suppressions(&self) {
        *self.suppression_cache.lock().await = None;
    }

    /// Whether a role may see approvals (who is about to be suspended and why): approver and
    /// analyst roles.
    pub fn reads_approvals(&self, role: &str) -> bool {
        let role = role.to_owned();
        self.analyst_roles.contains(&role)
            || self.manual_approvers.contains(&role)
            || self.limits.approvers.contains(&role)
            || self
                .playbooks()
                .playbooks
                .iter()
                .any(|p| p.approver_roles().any(|a| *a == role))
    }

    pub fn globally_protected(&self, target: &str, email: Option<&Email>) -> Option<String> {
        let (id, parsed_email) = match UserRef::parse(target) {
            Ok(UserRef::Id(id)) => (Some(id.to_string()), None),
            Ok(UserRef::Email(e)) => (None, Some(e)),
            Err(_) => (None, None),
        };
        let email = email.cloned().or(parsed_email);
        self.protected
            .iter()
            .find(|p| p.covers(id.as_deref(), email.as_ref()))
            .map(|p| p.to_string())
    }

    /// Every name lockout knows for a user (normalised e-mail and 1Password id), looked up
    /// through the directory (an e-mail) or its cache (an id), so that one user named two ways
    /// is one user to the store. `None` for the id when it is not known (a look-up error is
    /// logged: the caller still has the name it was given).
    /// With `fetch_ids`, an id the directory has not cached is read from the API (a person's
    /// request, where the guard must see the user's e-mail before anything is queued).
    pub async fn known_names(
        &self,
        target: &UserRef,
        log: &crate::users_api::CallLog,
        fetch_ids: bool,
    ) -> (Vec<String>, Option<crate::users_api::User>) {
        let user = match target {
            UserRef::Email(e) => match self.directory.find_by_email(e, log).await {
                Ok(u) => u,
                Err(err) => {
                    tracing::warn!(error = %err, "directory look-up failed; matching by the e-mail alone");
                    None
                }
            },
            UserRef::Id(id) => match self.directory.cached_by_id(id).await {
                Some(u) => Some(u),
                None if fetch_ids => self.users.get_user(id, log).await.ok(),
                None => None,
            },
        };
        let mut names = vec![target.to_string()];
        if let Some(u) = &user {
            names.push(u.id.to_string());
            names.push(crate::domain::normalise_email(&u.email));
        }
        names.sort();
        names.dedup();
        (names, user)
    }

    /// Writes the refusals counted since the last flush to the audit (one record per source
    /// and reason).
    pub async fn flush_refusals(&self) {
        let records = self.refusals.drain(self.refusal_interval.as_secs());
        if records.is_empty() {
            return;
        }
        if let Err(e) = self.store.append_audit(records).await {
            tracing::error!(error = %e, "could not audit refused requests");
        }
    }

    /// Counts Users API calls and their latency.
    pub fn record_calls(&self, calls: &[crate::users_api::ApiCall]) {
        for c in calls {
            let status = c
                .status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "error".into());
            self.metrics.inc(
                "lockout_users_api_calls_total",
                &[("operation", &c.operation), ("status", &status)],
            );
            self.metrics.observe(
                "lockout_users_api_call_duration_seconds",
                &[("operation", &c.operation)],
                c.latency_ms as f64 / 1000.0,
            );
        }
    }

    /// Crashes the process at a named point when configured to (crash-safety tests).
    pub fn failpoint(&self, name: &str) {
        if self.worker.failpoint.as_deref() == Some(name) {
            eprintln!("failpoint {name}: aborting");
            std::process::abort();
        }
    }

    /// Sends to one target and audits the outcome (success or failure).
    pub async fn send_audited(&self, target: &str, event: &str, text: &str, data: Value) {
        let result = self.notifier.send(target, event, text, &data).await;
        let e = match &result {
            Ok(attempts) => AuditEvent::new("notify.sent", "system")
                .data(json!({"to": target, "event": event, "attempts": attempts, "data": data})),
            Err(err) => {
                tracing::warn!(target, event, error = %err, "notification failed");
                AuditEvent::new("notify.failed", "system").data(
                    json!({"to": target, "event": event, "error": err.to_string(), "data": data}),
                )
            }
        };
        if let Err(err) = self.store.append_audit(vec![e]).await {
            tracing::error!(error = %err, "could not audit a notification");
        }
    }

    /// Notifies every target configured for a service event (`approval_pending`,
    /// `action_failed`, `limit_tripped`).
    pub async fn notify_event(&self, event: &str, text: &str, data: Value) {
        let targets = match event {
            "approval_pending" => &self.notifications.approval_pending,
            "action_failed" => &self.notifications.action_failed,
            "limit_tripped" => &self.notifications.limit_tripped,
            "alert_held" => &self.notifications.alert_held,
            "protected_subject" => &self.notifications.protected_subject,
            "feed_unhealthy" | "feed_recovered" => &self.notifications.feed_unhealthy,
            "action_unverified" => &self.notifications.action_unverified,
            _ => return,
        };
        for t in targets {
            self.send_audited(t, event, text, data.clone()).await;
        }
    }
}

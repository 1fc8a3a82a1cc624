//! The running service's shared state, built once by `startup` and handed to every part.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::Notify;

use crate::alerts::SourceAuthenticator;
use crate::config::{FieldMappings, SourceFormat};
use crate::playbooks::PlaybookSet;
use crate::store::Store;
use crate::users_api::{Directory, UsersApiClient};

/// A configured alert source, ready to authenticate and parse requests.
#[derive(Debug)]
pub struct Source {
    pub name: String,
    pub format: SourceFormat,
    pub auth: SourceAuthenticator,
    pub mappings: FieldMappings,
    pub default_severity: Option<crate::alerts::Severity>,
    pub dedup_window: Duration,
}

pub struct WorkerTuning {
    pub poll_interval: Duration,
    pub claim_ttl: Duration,
    pub action_deadline: Duration,
    pub requeue_delay: Duration,
}

pub struct AppContext {
    pub store: Arc<dyn Store>,
    pub users: UsersApiClient,
    pub directory: Directory,
    playbooks: RwLock<Arc<PlaybookSet>>,
    pub sources: HashMap<String, Source>,
    pub worker: WorkerTuning,
    /// Wakes the planner when an alert was stored.
    pub alerts_waiting: Notify,
    /// Wakes the workers when actions were queued.
    pub actions_waiting: Notify,
    pub sandbox: bool,
}

impl AppContext {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn Store>,
        users: UsersApiClient,
        directory: Directory,
        playbooks: PlaybookSet,
        sources: HashMap<String, Source>,
        worker: WorkerTuning,
        sandbox: bool,
    ) -> Self {
        Self {
            store,
            users,
            directory,
            playbooks: RwLock::new(Arc::new(playbooks)),
            sources,
            worker,
            alerts_waiting: Notify::new(),
            actions_waiting: Notify::new(),
            sandbox,
        }
    }

    /// The live playbook set (a cheap snapshot; reloads swap it whole).
    pub fn playbooks(&self) -> Arc<PlaybookSet> {
        self.playbooks
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn replace_playbooks(&self, set: PlaybookSet) {
        *self.playbooks.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(set);
    }
}

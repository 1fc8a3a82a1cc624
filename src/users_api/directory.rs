//! E-mail → user look-up. The API has no search by e-mail, so the whole directory is paged
//! once and cached: refreshed when older than the TTL, and on a miss at most once per
//! `miss_refresh_interval`, so an alert storm about unknown addresses cannot page the account
//! over and over.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{CallLog, User, UsersApiClient, UsersApiError};
use crate::domain::Email;

pub struct Directory {
    client: UsersApiClient,
    ttl: Duration,
    miss_refresh_interval: Duration,
    state: tokio::sync::Mutex<State>,
    refreshes: AtomicU64,
}

#[derive(Default)]
struct State {
    by_email: HashMap<String, User>,
    fetched_at: Option<Instant>,
}

impl Directory {
    pub fn new(client: UsersApiClient, ttl: Duration, miss_refresh_interval: Duration) -> Self {
        Self {
            client,
            ttl,
            miss_refresh_interval,
            state: Default::default(),
            refreshes: 0.into(),
        }
    }

    /// How many times the directory was paged (for metrics and tests).
    pub fn refreshes(&self) -> u64 {
        self.refreshes.load(Ordering::Relaxed)
    }

    pub async fn find_by_email(
        &self,
        email: &Email,
        log: &CallLog,
    ) -> Result<Option<User>, UsersApiError> {
        // The lock is held across a refresh: concurrent look-ups wait for the one refresh.
        let mut state = self.state.lock().await;
        let age = state.fetched_at.map(|t| t.elapsed());
        let stale = age.is_none_or(|a| a >= self.ttl);
        let miss_worth_refreshing = !state.by_email.contains_key(email.as_str())
            && age.is_some_and(|a| a >= self.miss_refresh_interval);
        if stale || miss_worth_refreshing {
            self.refresh(&mut state, log).await?;
        }
        Ok(state.by_email.get(email.as_str()).cloned())
    }

    /// The cached user with this id, if the directory was paged (no request).
    pub async fn cached_by_id(&self, id: &crate::domain::UserId) -> Option<User> {
        let state = self.state.lock().await;
        state.by_email.values().find(|u| &u.id == id).cloned()
    }

    /// Keep the cache in step with a state change lockout itself made.
    pub async fn note(&self, user: &User) {
        let mut state = self.state.lock().await;
        if state.fetched_at.is_some() {
            state
                .by_email
                .insert(crate::domain::normalise_email(&user.email), user.clone());
        }
    }

    async fn refresh(&self, state: &mut State, log: &CallLog) -> Result<(), UsersApiError> {
        let users = self.client.list_all_users(None, log).await?;
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        state.by_email = users
            .into_iter()
            .map(|u| (crate::domain::normalise_email(&u.email), u))
            .collect();
        state.fetched_at = Some(Instant::now());
        Ok(())
    }
}

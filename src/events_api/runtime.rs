//! What the running service holds about the Events API: the client, the policy, what the
//! token may read, each feed's health, and each user's recent events (the windows' history).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::{EventFacts, EventsClient, Feed, FeedPolicy, Introspection};

/// One feed's health, as `/readyz`, the metrics and the alarm read it.
#[derive(Debug, Clone)]
pub struct FeedHealth {
    pub last_ok_at: Option<OffsetDateTime>,
    /// When the newest new event arrived (lockout's clock).
    pub last_event_at: Option<OffsetDateTime>,
    /// The newest event's own timestamp: how far behind 1Password lockout reads.
    pub newest_event_time: Option<OffsetDateTime>,
    pub last_error: Option<String>,
    pub errors_total: u64,
    pub events_total: u64,
    /// Whether the alarm was raised (and not yet cleared).
    pub alarmed: bool,
    pub started_at: OffsetDateTime,
}

impl FeedHealth {
    pub fn new(now: OffsetDateTime) -> Self {
        Self {
            last_ok_at: None,
            last_event_at: None,
            newest_event_time: None,
            last_error: None,
            errors_total: 0,
            events_total: 0,
            alarmed: false,
            started_at: now,
        }
    }

    /// As `/readyz` shows it.
    pub fn to_json(&self, now: OffsetDateTime, silence: Duration) -> Value {
        let t = |t: Option<OffsetDateTime>| t.map(crate::domain::format_time);
        json!({
            "status": match self.problem(now, silence) { None => "ok".to_owned(), Some(p) => p },
            "last_ok_at": t(self.last_ok_at),
            "last_event_at": t(self.last_event_at),
            "newest_event_time": t(self.newest_event_time),
            "last_error": self.last_error,
            "errors_total": self.errors_total,
            "events_total": self.events_total,
        })
    }

    /// Why the feed is unhealthy at `now`, if it is: its last poll failed and none succeeded
    /// for `silence`, or no event arrived for `silence`. Pure.
    pub fn problem(&self, now: OffsetDateTime, silence: Duration) -> Option<String> {
        let since_ok = now - self.last_ok_at.unwrap_or(self.started_at);
        if let Some(e) = &self.last_error
            && (since_ok >= silence || e.starts_with("unauthorized"))
        {
            return Some(format!("failing: {e}"));
        }
        let quiet = now - self.last_event_at.unwrap_or(self.started_at);
        (quiet >= silence).then(|| format!("no event for {}s", quiet.whole_seconds()))
    }
}

pub struct EventsRuntime {
    pub client: EventsClient,
    pub policy: FeedPolicy,
    pub introspection: Mutex<Option<Result<Introspection, String>>>,
    pub health: Mutex<BTreeMap<Feed, FeedHealth>>,
    /// Each user's recent events (by 1Password id, else e-mail), for windows.
    history: Mutex<HashMap<String, VecDeque<EventFacts>>>,
    /// How much history windows need (the longest window declared, at least an hour).
    pub keep: Mutex<Duration>,
}

impl EventsRuntime {
    pub fn new(client: EventsClient, policy: FeedPolicy) -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            health: Mutex::new(
                policy
                    .feeds
                    .iter()
                    .map(|f| (*f, FeedHealth::new(now)))
                    .collect(),
            ),
            client,
            policy,
            introspection: Mutex::new(None),
            history: Mutex::new(HashMap::new()),
            keep: Mutex::new(Duration::from_secs(3600)),
        }
    }

    pub fn health_of(&self, feed: Feed) -> FeedHealth {
        let h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        h.get(&feed)
            .cloned()
            .unwrap_or_else(|| FeedHealth::new(OffsetDateTime::now_utc()))
    }

    pub fn update_health(&self, feed: Feed, f: impl FnOnce(&mut FeedHealth)) {
        let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        f(h.entry(feed)
            .or_insert_with(|| FeedHealth::new(OffsetDateTime::now_utc())));
    }

    fn key(e: &EventFacts) -> Option<String> {
        let u = e.user.as_ref()?;
        u.uuid
            .clone()
            .or_else(|| u.email.as_deref().map(crate::domain::normalise_email))
    }

    /// The user's recent events (for windows).
    pub fn history_of(&self, e: &EventFacts) -> Vec<EventFacts> {
        let Some(k) = Self::key(e) else {
            return vec![];
        };
        let h = self.history.lock().unwrap_or_else(|p| p.into_inner());
        h.get(&k)
            .map(|q| q.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Adds events to their users' histories, dropping what no window reaches any more.
    pub fn remember(&self, events: impl IntoIterator<Item = EventFacts>) {
        let keep = *self.keep.lock().unwrap_or_else(|p| p.into_inner());
        let cutoff = OffsetDateTime::now_utc() - keep;
        let mut h = self.history.lock().unwrap_or_else(|p| p.into_inner());
        for e in events {
            let Some(k) = Self::key(&e) else { continue };
            let q = h.entry(k).or_default();
            q.push_back(e);
            while q.front().is_some_and(|f| f.at().is_none_or(|t| t < cutoff)) {
                q.pop_front();
            }
            // A bound per user: a flood about one user cannot take the memory.
            while q.len() > 10_000 {
                q.pop_front();
            }
        }
        if h.len() > 200_000 {
            h.retain(|_, q| {
                q.back()
                    .and_then(EventFacts::at)
                    .is_some_and(|t| t >= cutoff)
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_feed_is_unhealthy_when_it_fails_or_stays_silent_and_recovers() {
        let t0 = OffsetDateTime::now_utc();
        let silence = Duration::from_secs(60);
        let mut h = FeedHealth::new(t0);
        assert_eq!(h.problem(t0 + Duration::from_secs(30), silence), None);
        assert!(
            h.problem(t0 + Duration::from_secs(61), silence)
                .unwrap()
                .starts_with("no event")
        );
        h.last_event_at = Some(t0 + Duration::from_secs(61));
        h.last_ok_at = h.last_event_at;
        assert_eq!(h.problem(t0 + Duration::from_secs(62), silence), None);
        h.last_error = Some("server error (500)".into());
        assert_eq!(
            h.problem(t0 + Duration::from_secs(70), silence),
            None,
            "one failure is not an alarm"
        );
        assert!(
            h.problem(t0 + Duration::from_secs(130), silence)
                .unwrap()
                .starts_with("failing")
        );
        h.last_error = Some("unauthorized (401)".into());
        assert!(
            h.problem(t0 + Duration::from_secs(62), silence).is_some(),
            "a refused token is at once"
        );
    }
}

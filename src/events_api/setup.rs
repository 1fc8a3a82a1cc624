//! `events_api` settings parsed into what the poller runs on.

use std::time::Duration;

use secrecy::SecretString;

use super::{EventsConfig, Feed};
use crate::config::{ConfigError, EventsApiSettings, read_secret_file};
use crate::users_api::RetryPolicy;

/// How the feeds are read and used.
#[derive(Debug, Clone)]
pub struct FeedPolicy {
    pub feeds: Vec<Feed>,
    /// The `1password_events` source that turns new events into alerts.
    pub source: Option<String>,
    pub poll_interval: Duration,
    pub page_limit: u32,
    pub start_lookback: Duration,
    pub silence_alarm: Duration,
    pub context_window: Duration,
    pub context_max_events: u32,
    pub verify_window: Duration,
}

/// The parsed section: the client's configuration (none: the sandbox's fake, which startup
/// knows the address of) and the policy.
#[derive(Debug, Clone)]
pub struct EventsSetup {
    pub client: Option<EventsConfig>,
    pub policy: FeedPolicy,
}

impl EventsSetup {
    pub fn from_settings(s: &EventsApiSettings, sandbox: bool) -> Result<Self, ConfigError> {
        let invalid = |key: &str, e: String| ConfigError::Invalid(format!("events_api.{key}: {e}"));
        let feeds = s
            .feeds
            .iter()
            .map(|f| Feed::parse(f).map_err(|e| invalid("feeds", e)))
            .collect::<Result<Vec<_>, _>>()?;
        if feeds.is_empty() {
            return Err(invalid("feeds", "name at least one feed".into()));
        }
        if !(1..=1000).contains(&s.page_limit) {
            return Err(invalid(
                "page_limit",
                format!("{} is outside 1–1000, the API's limits", s.page_limit),
            ));
        }
        if s.poll_interval_secs == 0 {
            return Err(invalid("poll_interval_secs", "must be at least 1".into()));
        }
        let token = match (&s.token, &s.token_file) {
            (Some(t), None) => Some(t.clone()),
            (None, Some(p)) => Some(SecretString::from(read_secret_file(p)?)),
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "token",
                    "give token or token_file, not both".into(),
                ));
            }
            (None, None) => None,
        };
        let client = match token {
            None if sandbox && s.base_url.is_none() && s.region.is_none() => None,
            None => {
                return Err(invalid(
                    "token_file",
                    "the bearer token of an Events Reporting integration is required (token_file or token)".into(),
                ));
            }
            Some(token) => {
                let base_url =
                    EventsConfig::base_url_for(s.base_url.as_deref(), s.region.as_deref(), &token)
                        .map_err(|e| invalid("base_url", e))?;
                if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
                    return Err(invalid(
                        "base_url",
                        format!("not an http(s) URL: {base_url:?}"),
                    ));
                }
                Some(EventsConfig {
                    base_url,
                    token,
                    timeout: Duration::from_millis(s.timeout_ms),
                    retry: RetryPolicy::from_settings(&s.retry),
                })
            }
        };
        Ok(Self {
            client,
            policy: FeedPolicy {
                feeds,
                source: s.source.clone(),
                poll_interval: Duration::from_secs(s.poll_interval_secs),
                page_limit: s.page_limit,
                start_lookback: Duration::from_secs(s.start_lookback_secs),
                silence_alarm: Duration::from_secs(s.silence_alarm_secs.max(1)),
                context_window: Duration::from_secs(s.context_window_secs),
                context_max_events: s.context_max_events,
                verify_window: Duration::from_secs(s.verify_window_secs),
            },
        })
    }
}

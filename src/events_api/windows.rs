//! Windowed facts over a user's recent events, declared by playbooks (`on.windows`) and
//! computed for each event the direct source turns into an alert (`alert.windows.<name>`).
//! Pure: the history is handed in.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::{EventFacts, Feed};

/// The fields a window's filter may name.
pub const FILTER_FIELDS: &[&str] = &[
    "feed",
    "category",
    "type",
    "action",
    "object_type",
    "country",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowKind {
    /// How many of the user's events match, this one included.
    Count,
    /// How many distinct countries the matching events came from.
    DistinctCountries,
    /// On a successful sign-in: the failed sign-ins since the user's previous success within
    /// the window (0 for any other event).
    FailuresBeforeSuccess,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowSpec {
    pub kind: WindowKind,
    pub within: Duration,
    /// Field → accepted values; every field must match.
    pub filter: BTreeMap<String, Vec<String>>,
}

impl WindowSpec {
    /// Checks a filter as a playbook wrote it: known fields, and known feeds.
    pub fn new(
        kind: WindowKind,
        within: Duration,
        filter: BTreeMap<String, Vec<String>>,
    ) -> Result<Self, String> {
        if within.is_zero() {
            return Err("within must be longer than zero".into());
        }
        if within > Duration::from_secs(30 * 86400) {
            return Err(
                "within is at most 30d (lockout keeps a month of a user's events in mind)".into(),
            );
        }
        for (field, values) in &filter {
            if !FILTER_FIELDS.contains(&field.as_str()) {
                return Err(format!(
                    "unknown filter field {field:?} (one of: {})",
                    FILTER_FIELDS.join(", ")
                ));
            }
            if values.is_empty() {
                return Err(format!("filter field {field:?} lists no value"));
            }
            if field == "feed" {
                for v in values {
                    Feed::parse(v)?;
                }
            }
        }
        Ok(Self {
            kind,
            within,
            filter,
        })
    }

    fn matches(&self, e: &EventFacts) -> bool {
        self.filter.iter().all(|(field, values)| {
            e.field(field)
                .is_some_and(|v| values.iter().any(|x| x == v))
        })
    }

    /// The window's value for `event`, over `history` (the same user's events, in any order,
    /// `event` itself possibly among them).
    pub fn compute(&self, history: &[EventFacts], event: &EventFacts) -> i64 {
        let Some(at) = event.at() else { return 0 };
        let since = at - self.within;
        let mut seen = BTreeSet::new();
        let mut in_window: Vec<&EventFacts> = std::iter::once(event)
            .chain(history.iter())
            .filter(|e| seen.insert((e.feed, e.uuid.as_str())))
            .filter(|e| e.at().is_some_and(|t| t >= since && t <= at))
            .collect();
        match self.kind {
            WindowKind::Count => in_window.iter().filter(|e| self.matches(e)).count() as i64,
            WindowKind::DistinctCountries => in_window
                .iter()
                .filter(|e| self.matches(e))
                .filter_map(|e| e.country.as_deref())
                .filter(|c| !c.is_empty())
                .collect::<BTreeSet<_>>()
                .len() as i64,
            WindowKind::FailuresBeforeSuccess => {
                if !event.is_successful_sign_in() {
                    return 0;
                }
                in_window.sort_by_key(|e| e.at());
                let mut failures = 0;
                for e in in_window {
                    if e.uuid == event.uuid {
                        break;
                    }
                    if e.is_successful_sign_in() {
                        failures = 0;
                    } else if e.is_failed_sign_in() {
                        failures += 1;
                    }
                }
                failures
            }
        }
    }
}

/// Every declared window's value for `event`.
pub fn compute_all(
    specs: &BTreeMap<String, WindowSpec>,
    history: &[EventFacts],
    event: &EventFacts,
) -> BTreeMap<String, i64> {
    specs
        .iter()
        .map(|(name, spec)| (name.clone(), spec.compute(history, event)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn signin(uuid: &str, at: &str, category: &str, country: &str) -> EventFacts {
        EventFacts::read(
            Feed::SignInAttempts,
            &json!({"uuid": uuid, "timestamp": at, "category": category, "country": country,
                    "target_user": {"uuid": "U", "email": "u@example.com"}}),
        )
    }

    fn spec(kind: WindowKind, mins: u64, filter: &[(&str, &[&str])]) -> WindowSpec {
        WindowSpec::new(
            kind,
            Duration::from_secs(mins * 60),
            filter
                .iter()
                .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn windows_count_what_matches_within_the_window_only() {
        let h = vec![
            signin("1", "2026-01-01T09:00:00Z", "credentials_failed", "CA"),
            signin("2", "2026-01-01T09:55:00Z", "credentials_failed", "CA"),
            signin("3", "2026-01-01T09:58:00Z", "mfa_failed", "BR"),
            signin("4", "2026-01-01T09:59:00Z", "success", "CA"),
        ];
        let now = signin("5", "2026-01-01T10:00:00Z", "credentials_failed", "BR");
        let failed = spec(
            WindowKind::Count,
            10,
            &[("category", &["credentials_failed", "mfa_failed"])],
        );
        assert_eq!(failed.compute(&h, &now), 3, "2, 3 and 5; 1 is too old");
        assert_eq!(
            failed.compute(&[h.clone(), vec![now.clone()]].concat(), &now),
            3,
            "counted once"
        );
        let countries = spec(
            WindowKind::DistinctCountries,
            10,
            &[("feed", &["signinattempts"])],
        );
        assert_eq!(countries.compute(&h, &now), 2);
        let fbs = spec(WindowKind::FailuresBeforeSuccess, 15, &[]);
        assert_eq!(fbs.compute(&h, &now), 0, "not a success");
        let ok = signin("6", "2026-01-01T10:01:00Z", "success", "BR");
        let h2 = [h.clone(), vec![now.clone()]].concat();
        assert_eq!(
            fbs.compute(&h2, &ok),
            1,
            "the failures since the success at 09:59"
        );
        let first_ok = signin("7", "2026-01-01T09:58:30Z", "success", "BR");
        assert_eq!(fbs.compute(&h, &first_ok), 2, "2 and 3, before it");
    }

    #[test]
    fn a_filter_names_known_fields_and_feeds() {
        let f = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), vec![v.to_owned()])]);
        let d = Duration::from_secs(60);
        assert!(WindowSpec::new(WindowKind::Count, d, f("categroy", "x")).is_err());
        assert!(WindowSpec::new(WindowKind::Count, d, f("feed", "signins")).is_err());
        assert!(
            WindowSpec::new(WindowKind::Count, Duration::ZERO, f("feed", "itemusages")).is_err()
        );
        assert!(WindowSpec::new(WindowKind::Count, d, f("feed", "itemusages")).is_ok());
    }
}

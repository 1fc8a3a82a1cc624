//! Suppressions, for the API and the CLI alike: an analyst holds back matches (a user, a
//! playbook, a source, labels) for a while, with a reason; created, removed and expired
//! suppressions are audited. The planner applies them (`decisions::suppress`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::domain::{format_time, new_id};
use crate::store::{Store, StoreError, Suppression};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSuppression {
    /// An e-mail, an e-mail glob (`*@contractor.example.com`) or a 1Password id.
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub playbook: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub reason: String,
    /// How long it lasts from now (required). JSON's `3600.0` is read as 3600.
    #[serde(default, deserialize_with = "whole_seconds")]
    pub expires_in_secs: Option<u64>,
}

/// A whole number of seconds, written as an integer or as a number with no fraction.
fn whole_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let n: Option<serde_json::Number> = Option::deserialize(d)?;
    n.map(|n| {
        n.as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 1e15)
                    .map(|f| f as u64)
            })
            .ok_or_else(|| {
                serde::de::Error::custom("expires_in_secs must be a whole number of seconds")
            })
    })
    .transpose()
}

#[derive(Debug, thiserror::Error)]
pub enum SuppressionError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks a request against the rules (a reason; an expiry in the future, at most `max` away;
/// at least one matcher) and makes the suppression. Pure.
pub fn validate(
    req: NewSuppression,
    author: &str,
    now: time::OffsetDateTime,
    max: Duration,
) -> Result<Suppression, String> {
    let clean = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let (user, playbook, source) = (clean(req.user), clean(req.playbook), clean(req.source));
    if user.is_none() && playbook.is_none() && source.is_none() && req.labels.is_empty() {
        return Err("give at least one of user, playbook, source or labels: a suppression of everything is a switch-off".into());
    }
    let reason = req.reason.trim().to_owned();
    if reason.is_empty() {
        return Err("a reason is required".into());
    }
    if [&reason]
        .into_iter()
        .chain(user.iter())
        .chain(playbook.iter())
        .chain(source.iter())
        .any(|s| s.contains('\0'))
    {
        return Err("a field holds a NUL character".into());
    }
    let Some(secs) = req.expires_in_secs else {
        return Err("an expiry is required (expires_in_secs)".into());
    };
    // Far beyond any maximum, but no overflow.
    let expires = now + Duration::from_secs(secs.min(100 * 365 * 86400));
    if expires <= now {
        return Err("the expiry is not in the future".into());
    }
    if expires - now > max {
        return Err(format!(
            "the expiry is more than {} s away (guards.max_suppression_secs)",
            max.as_secs()
        ));
    }
    Ok(Suppression {
        id: new_id("sup"),
        user,
        playbook,
        source,
        labels: req.labels,
        reason,
        author: author.to_owned(),
        created_at: format_time(now),
        expires_at: format_time(expires),
        removed_at: None,
        removed_by: None,
    })
}

/// Validates and stores a suppression, audited as `suppression.created` by `author`.
pub async fn create(
    store: &dyn Store,
    author: &str,
    req: NewSuppression,
    max: Duration,
) -> Result<Suppression, SuppressionError> {
    let s = validate(req, author, time::OffsetDateTime::now_utc(), max)
        .map_err(SuppressionError::Invalid)?;
    store
        .create_suppression(&s, s.audit_event("suppression.created", author))
        .await?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_suppression_needs_a_matcher_a_reason_and_a_bounded_expiry() {
        let now = time::macros::datetime!(2026-12-07 12:00 UTC);
        let week = Duration::from_secs(7 * 86400);
        let ok = NewSuppression {
            user: Some("*@contractor.example.com".into()),
            reason: "pentest PT-12".into(),
            expires_in_secs: Some(3600),
            ..Default::default()
        };
        let s = validate(ok.clone(), "ana@example.com", now, week).unwrap();
        assert_eq!(s.expires_at, "2026-12-07T13:00:00.000000Z");
        assert_eq!(s.author, "ana@example.com");
        let refused = [
            NewSuppression {
                user: None,
                ..ok.clone()
            },
            NewSuppression {
                reason: " ".into(),
                ..ok.clone()
            },
            NewSuppression {
                expires_in_secs: None,
                ..ok.clone()
            },
            NewSuppression {
                expires_in_secs: Some(8 * 86400),
                ..ok.clone()
            },
            NewSuppression {
                expires_in_secs: Some(0),
                ..ok.clone()
            },
        ];
        for (i, r) in refused.into_iter().enumerate() {
            assert!(validate(r, "a", now, week).is_err(), "row {i}");
        }
    }
}

//! Whether a suppression holds back a playbook's match: every matcher it gives (user,
//! playbook, source, labels) must match, and it must be in force. Pure; the planner records a
//! held-back match as suppressed, with the suppression's id, never drops it silently.

use serde::{Deserialize, Serialize};

use crate::alerts::Alert;
use crate::domain::UserRef;

/// A suppression: matches (a user, a playbook, a source, labels: every one given must match)
/// that are recorded as suppressed instead of acted on, until `expires_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suppression {
    pub id: String,
    /// An e-mail, an e-mail glob (`*@contractor.example.com`) or a 1Password id.
    pub user: Option<String>,
    pub playbook: Option<String>,
    pub source: Option<String>,
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    pub reason: String,
    pub author: String,
    pub created_at: String,
    pub expires_at: String,
    pub removed_at: Option<String>,
    pub removed_by: Option<String>,
}

impl Suppression {
    pub fn in_force(&self, now: &str) -> bool {
        self.removed_at.is_none() && self.expires_at.as_str() > now
    }

    pub fn audit_event(&self, kind: &str, actor: &str) -> crate::audit::AuditEvent {
        crate::audit::AuditEvent::new(kind, actor).data(serde_json::json!({
            "suppression_id": self.id, "user": self.user, "playbook": self.playbook,
            "source": self.source, "labels": self.labels, "reason": self.reason,
            "author": self.author, "expires_at": self.expires_at,
        }))
    }
}

/// The first suppression in force at `now` that holds back `playbook`'s chain for `target`.
pub fn matching<'a>(
    suppressions: &'a [Suppression],
    now: &str,
    alert: &Alert,
    playbook: &str,
    target: Option<&UserRef>,
) -> Option<&'a Suppression> {
    suppressions.iter().find(|s| {
        s.in_force(now)
            && s.playbook.as_deref().is_none_or(|p| p == playbook)
            && s.source.as_deref().is_none_or(|src| src == alert.source)
            && s.labels.iter().all(|(k, v)| alert.labels.get(k) == Some(v))
            && s.user.as_deref().is_none_or(|u| user_matches(u, target))
    })
}

/// An e-mail (any case), an e-mail glob with `*` (`*@contractor.example.com`), or an id.
pub fn user_matches(pattern: &str, target: Option<&UserRef>) -> bool {
    let Some(target) = target else {
        return false;
    };
    let name = target.to_string().to_lowercase();
    let pattern = pattern.trim().to_lowercase();
    glob(&pattern, &name)
}

/// `*` matches any run of characters; everything else matches itself.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || !text.ends_with(last) || text.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn suppression(
        user: Option<&str>,
        playbook: Option<&str>,
        labels: &[(&str, &str)],
        expires: &str,
    ) -> Suppression {
        Suppression {
            id: "sup_1".into(),
            user: user.map(str::to_owned),
            playbook: playbook.map(str::to_owned),
            source: None,
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            reason: "pentest".into(),
            author: "ana@example.com".into(),
            created_at: "2026-12-07T00:00:00Z".into(),
            expires_at: expires.into(),
            removed_at: None,
            removed_by: None,
        }
    }

    fn alert(labels: &[(&str, &str)]) -> Alert {
        serde_json::from_value(serde_json::json!({
            "id": "alr_1", "source": "splunk", "format": "generic", "received_at": "2026-12-07T00:00:00Z",
            "fingerprint": "f", "status": "firing", "title": "t", "severity": "high",
            "occurred_at": null, "subjects": [], "source_ip": null,
            "labels": labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<BTreeMap<_, _>>(),
            "raw": null,
        }))
        .unwrap()
    }

    #[test]
    fn every_given_matcher_must_match_and_only_while_in_force() {
        let now = "2026-12-07T12:00:00Z";
        let later = "2026-12-08T00:00:00Z";
        let bob = UserRef::parse("bob@example.com").unwrap();
        let ann = UserRef::parse("ann@contractor.example.com").unwrap();
        let id = UserRef::parse("A3K7MZQ2XJRVHBKWH7WLSPU4TE").unwrap();
        let table: [(Suppression, Alert, &str, Option<&UserRef>, bool); 11] = [
            (
                suppression(Some("bob@example.com"), None, &[], later),
                alert(&[]),
                "p",
                Some(&bob),
                true,
            ),
            (
                suppression(Some("BOB@Example.com"), None, &[], later),
                alert(&[]),
                "p",
                Some(&bob),
                true,
            ),
            (
                suppression(Some("bob@example.com"), None, &[], later),
                alert(&[]),
                "p",
                Some(&ann),
                false,
            ),
            (
                suppression(Some("*@contractor.example.com"), None, &[], later),
                alert(&[]),
                "p",
                Some(&ann),
                true,
            ),
            (
                suppression(Some("*@contractor.example.com"), None, &[], later),
                alert(&[]),
                "p",
                Some(&bob),
                false,
            ),
            (
                suppression(Some("A3K7MZQ2XJRVHBKWH7WLSPU4TE"), None, &[], later),
                alert(&[]),
                "p",
                Some(&id),
                true,
            ),
            (
                suppression(Some("bob@example.com"), None, &[], later),
                alert(&[]),
                "p",
                None,
                false,
            ),
            (
                suppression(None, Some("p"), &[], later),
                alert(&[]),
                "p",
                None,
                true,
            ),
            (
                suppression(None, Some("p"), &[], later),
                alert(&[]),
                "q",
                Some(&bob),
                false,
            ),
            (
                suppression(None, None, &[("env", "test")], later),
                alert(&[("env", "test"), ("x", "y")]),
                "p",
                Some(&bob),
                true,
            ),
            (
                suppression(None, None, &[("env", "test")], now),
                alert(&[("env", "test")]),
                "p",
                Some(&bob),
                false,
            ),
        ];
        for (i, (s, a, playbook, target, want)) in table.iter().enumerate() {
            let got = matching(std::slice::from_ref(s), now, a, playbook, *target).is_some();
            assert_eq!(got, *want, "row {i}");
        }
        let mut removed = suppression(None, Some("p"), &[], later);
        removed.removed_at = Some(now.into());
        assert!(matching(&[removed], now, &alert(&[]), "p", None).is_none());
    }

    #[test]
    fn globs() {
        assert!(glob("*@x.com", "a@x.com"));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*b*c", "axxc"));
        assert!(!glob("*@x.com", "a@x.com.evil"));
        assert!(glob("*", "anything"));
        assert!(!glob("ab*ba", "aba"));
    }
}

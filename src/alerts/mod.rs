//! Alert intake: source formats, authentication, normalisation into one [`Alert`], fingerprints.

mod auth;
pub(crate) mod extract;
mod formats;
pub mod mapping;
mod source;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::{Email, UserId, UserRef};

pub use auth::{AuthError, HmacAlgorithm, HmacEncoding, HmacSpec, SourceAuthenticator};
pub use source::{FieldMappings, Source, SourceFormat};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

impl AlertStatus {
    pub fn parse(s: &str) -> Self {
        match s.trim().to_ascii_lowercase().as_str() {
            "resolved" | "ok" | "closed" | "recovered" | "inactive" | "normal" => Self::Resolved,
            _ => Self::Firing,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Firing => "firing",
            Self::Resolved => "resolved",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Self::Info,
        Self::Low,
        Self::Medium,
        Self::High,
        Self::Critical,
    ];

    /// A severity written in the settings: exactly one of the five names.
    pub fn from_setting(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| {
                format!("unknown severity {s:?} (one of: info, low, medium, high, critical)")
            })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }

    /// Maps the many spellings senders use. Unknown values are `info`, never something that
    /// could make a high-severity rule fire by accident.
    pub fn parse(s: &str) -> Self {
        match s.trim().to_ascii_lowercase().as_str() {
            "critical" | "crit" | "p1" | "sev1" | "emergency" | "fatal" => Self::Critical,
            "high" | "error" | "err" | "p2" | "sev2" | "major" => Self::High,
            "medium" | "moderate" | "warning" | "warn" | "p3" | "sev3" => Self::Medium,
            "low" | "minor" | "p4" | "sev4" => Self::Low,
            _ => Self::Info,
        }
    }
}

/// Someone an alert is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    pub email: Option<Email>,
    pub user_id: Option<UserId>,
    pub name: Option<String>,
}

impl Subject {
    /// The best handle on the user: the 1Password id when known, else the e-mail.
    pub fn user_ref(&self) -> Option<UserRef> {
        self.user_id
            .clone()
            .map(UserRef::Id)
            .or_else(|| self.email.clone().map(UserRef::Email))
    }
}

/// The canonical alert every format maps into.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Alert {
    pub id: String,
    pub source: String,
    pub format: SourceFormat,
    pub received_at: String,
    pub fingerprint: String,
    pub status: AlertStatus,
    pub title: String,
    pub severity: Severity,
    pub occurred_at: Option<String>,
    pub subjects: Vec<Subject>,
    pub source_ip: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// Facts over the user's recent 1Password events (`on.windows` of the playbooks), set by
    /// the `1password_events` source; empty for other alerts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub windows: BTreeMap<String, i64>,
    pub raw: serde_json::Value,
}

/// An alert as a format parser reads it, before intake gives it an id and a time.
#[derive(Debug, Clone)]
pub struct ParsedAlert {
    /// The sender's own id for this alert, when it has one (the de-duplication key).
    pub native_id: Option<String>,
    pub status: AlertStatus,
    pub title: String,
    pub severity: Severity,
    pub occurred_at: Option<String>,
    pub subjects: Vec<Subject>,
    pub source_ip: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub raw: serde_json::Value,
}

impl ParsedAlert {
    /// The sender's id when there is one, else a hash of the normalised content. The status is
    /// part of it: a `resolved` notification is news, not a re-delivery of the `firing` one.
    pub fn fingerprint(&self, source: &str) -> String {
        let mut h = Sha256::new();
        h.update(source.as_bytes());
        h.update(b"\0");
        h.update(self.status.as_str().as_bytes());
        h.update(b"\0");
        match &self.native_id {
            Some(id) => {
                h.update(b"id\0");
                h.update(id.as_bytes());
            }
            None => {
                let content = serde_json::json!({
                    "status": self.status,
                    "title": self.title,
                    "severity": self.severity,
                    "occurred_at": self.occurred_at,
                    "subjects": self.subjects,
                    "labels": self.labels,
                });
                h.update(b"content\0");
                h.update(content.to_string().as_bytes());
            }
        }
        crate::domain::to_hex(&h.finalize()[..16])
    }

    /// The same alert whatever its status: how a `resolved` notification finds its `firing` one.
    pub fn correlation(&self, source: &str) -> String {
        let key = match &self.native_id {
            Some(id) => format!("{source}\0id\0{id}"),
            None => {
                let content = serde_json::json!({"title": self.title, "subjects": self.subjects, "labels": self.labels});
                format!("{source}\0content\0{content}")
            }
        };
        short_hash(&key)
    }

    pub fn into_alert(
        self,
        id: String,
        source: &str,
        format: SourceFormat,
        received_at: String,
    ) -> Alert {
        let fingerprint = self.fingerprint(source);
        Alert {
            id,
            source: source.into(),
            format,
            received_at,
            fingerprint,
            status: self.status,
            title: self.title,
            severity: self.severity,
            occurred_at: self.occurred_at,
            subjects: self.subjects,
            source_ip: self.source_ip,
            labels: self.labels,
            windows: BTreeMap::new(),
            raw: self.raw,
        }
    }
}

/// Why a payload was refused. Each maps to one HTTP status in `http`.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ParseError {
    #[error("body is not valid JSON: {message} at line {line}, column {column}")]
    NotJson {
        message: String,
        line: usize,
        column: usize,
    },
    #[error("payload does not have the shape of a {format} alert: {message}")]
    Shape {
        format: &'static str,
        message: String,
    },
}

/// Parses a request body of `format` into one or more alerts, then applies the source's
/// overrides (JSON pointers relative to each alert's raw object) and default severity.
pub fn parse(
    format: SourceFormat,
    mappings: &FieldMappings,
    default_severity: Option<Severity>,
    body: &[u8],
) -> Result<Vec<ParsedAlert>, ParseError> {
    let mut alerts = match format {
        SourceFormat::Generic => return formats::generic::parse(mappings, read_json(body)?),
        SourceFormat::Alertmanager | SourceFormat::Grafana => {
            match formats::alertmanager::parse_body(body, format.as_str()) {
                Some(parsed) => parsed?,
                None => formats::alertmanager::parse(read_json(body)?, format.as_str())?,
            }
        }
        SourceFormat::Splunk => formats::splunk::parse(read_json(body)?)?,
        SourceFormat::Datadog => formats::datadog::parse(read_json(body)?)?,
        SourceFormat::Elastic => formats::elastic::parse(read_json(body)?)?,
        SourceFormat::Sentinel => formats::sentinel::parse(read_json(body)?)?,
        SourceFormat::Panther => formats::panther::parse(read_json(body)?)?,
        SourceFormat::Sumologic => formats::sumologic::parse(read_json(body)?)?,
        SourceFormat::OnePasswordEvents => formats::onepassword::parse(read_json(body)?)?,
    };
    for a in &mut alerts {
        apply_overrides(a, mappings, default_severity);
    }
    Ok(alerts)
}

/// The body as JSON, or where it stops being JSON.
fn read_json(body: &[u8]) -> Result<serde_json::Value, ParseError> {
    serde_json::from_slice(body).map_err(|e| ParseError::NotJson {
        message: e
            .to_string()
            .split(" at line")
            .next()
            .unwrap_or_default()
            .to_owned(),
        line: e.line(),
        column: e.column(),
    })
}

fn apply_overrides(a: &mut ParsedAlert, m: &FieldMappings, default_severity: Option<Severity>) {
    let at = |p: &Option<String>| p.as_deref().and_then(|p| mapping::lookup(&a.raw, p));
    if let Some(v) = at(&m.id) {
        a.native_id = Some(v);
    }
    if let Some(v) = at(&m.title) {
        a.title = v;
    }
    match at(&m.severity) {
        Some(v) => a.severity = Severity::parse(&v),
        None => {
            if let (Some(d), Severity::Info) = (default_severity, a.severity) {
                a.severity = d;
            }
        }
    }
    if let Some(v) = at(&m.status) {
        a.status = AlertStatus::parse(&v);
    }
    if let Some(v) = at(&m.occurred_at) {
        a.occurred_at = Some(v);
    }
    if let Some(v) = at(&m.source_ip) {
        a.source_ip = Some(v);
    }
    let email = at(&m.subject_email).and_then(|e| Email::parse(&e).ok());
    let user_id = at(&m.subject_user_id).and_then(|e| UserId::parse(&e).ok());
    if email.is_some() || user_id.is_some() {
        a.subjects = vec![Subject {
            email,
            user_id,
            name: at(&m.subject_name),
        }];
    }
}

/// A short stable hash, for building ids out of content.
pub(crate) fn short_hash(s: &str) -> String {
    crate::domain::to_hex(&Sha256::digest(s.as_bytes())[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_names_match_their_serialised_form() {
        for s in [
            Severity::Info,
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }
}

#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    use super::*;

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            ".{0,12}".prop_map(serde_json::Value::from),
            prop_oneof![
                Just("alice@example.com"),
                Just("A3K7MZQ2XJRVHBKWH7WLSPU4TE"),
                Just("firing"),
                Just("resolved")
            ]
            .prop_map(serde_json::Value::from),
        ];
        let keys = prop_oneof![
            Just("alerts".to_string()),
            Just("labels".to_string()),
            Just("result".to_string()),
            Just("title".to_string()),
            Just("object".to_string()),
            Just("properties".to_string()),
            Just("relatedEntities".to_string()),
            Just("alertContext".to_string()),
            Just("user".to_string()),
            Just("email".to_string()),
            Just("results".to_string()),
            "[a-z_]{1,8}",
        ];
        leaf.prop_recursive(5, 64, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(serde_json::Value::from),
                prop::collection::btree_map(keys.clone(), inner, 0..6)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            for f in SourceFormat::ALL {
                let _ = parse(f, &FieldMappings::default(), None, &bytes);
            }
        }

        #[test]
        fn random_json_never_panics(v in json_value()) {
            let body = v.to_string();
            for f in SourceFormat::ALL {
                let _ = parse(f, &FieldMappings::default(), None, body.as_bytes());
            }
        }

        /// Alertmanager's envelope read straight from the body gives what reading the body as
        /// a `Value` gives, whenever it answers at all.
        #[test]
        fn the_alertmanager_envelope_reads_as_the_value_does(
            status in prop::option::of(json_value()),
            alerts in prop::collection::vec(json_value(), 0..4),
            extra in json_value(),
            spaced in any::<bool>(),
        ) {
            let mut envelope = serde_json::json!({"alerts": alerts, "groupLabels": extra});
            if let Some(s) = status {
                envelope["status"] = s;
            }
            let body = if spaced {
                serde_json::to_string_pretty(&envelope).unwrap()
            } else {
                envelope.to_string()
            };
            for body in [body.clone(), format!("[{body}]"), format!(" {body}")] {
                let value = serde_json::from_str(&body).unwrap();
                if let Some(fast) = formats::alertmanager::parse_body(body.as_bytes(), "alertmanager") {
                    let general = formats::alertmanager::parse(value, "alertmanager");
                    prop_assert_eq!(format!("{fast:?}"), format!("{general:?}"));
                }
            }
        }
    }

    #[test]
    fn the_alertmanager_envelope_leaves_what_is_not_a_webhook_to_the_general_path() {
        let one = r#"{"status":"firing","labels":{"alertname":"A"}}"#;
        for body in [
            format!("[\"firing\", [{one}]]"),
            r#"{"alerts": []}"#.to_string(),
            format!(r#"{{"alerts": [{one}], "alerts": [{one}]}}"#),
            r#"{"alerts": {}}"#.to_string(),
            format!(r#"{{"alerts": [{one}]}} x"#),
        ] {
            assert!(
                formats::alertmanager::parse_body(body.as_bytes(), "alertmanager").is_none(),
                "{body}"
            );
        }
        let repeated = format!(
            r#"{{"alerts": [{one}], "alerts": [{}]}}"#,
            one.replace("\"A\"", "\"B\"")
        );
        let parsed = parse(
            SourceFormat::Alertmanager,
            &FieldMappings::default(),
            None,
            repeated.as_bytes(),
        )
        .unwrap();
        assert_eq!(
            parsed[0].title, "B",
            "the last of a repeated field, as serde_json's Value keeps it"
        );
    }
}

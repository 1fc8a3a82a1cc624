//! Alert intake: source formats, authentication, normalisation into one [`Alert`], fingerprints.

mod auth;
mod generic;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::SourceFormat;
use crate::domain::{Email, UserId, UserRef};

pub use auth::{AuthError, SourceAuthenticator};

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
    /// The sender's id when there is one, else a hash of the normalised content.
    pub fn fingerprint(&self, source: &str) -> String {
        let mut h = Sha256::new();
        h.update(source.as_bytes());
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
        hex::encode(&h.finalize()[..16])
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

/// Parses a request body of `format` into one or more alerts.
pub fn parse(
    format: SourceFormat,
    mappings: &crate::config::FieldMappings,
    body: &[u8],
) -> Result<Vec<ParsedAlert>, ParseError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ParseError::NotJson {
            message: e
                .to_string()
                .split(" at line")
                .next()
                .unwrap_or_default()
                .to_owned(),
            line: e.line(),
            column: e.column(),
        })?;
    match format {
        SourceFormat::Generic => generic::parse(mappings, value),
    }
}

/// Reads a string (or a number, as text) at a JSON pointer.
pub(crate) fn string_at(v: &serde_json::Value, pointer: &str) -> Option<String> {
    if pointer.is_empty() {
        return None;
    }
    match v.pointer(pointer)? {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

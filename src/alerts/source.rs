//! How a source's payloads are read: its format, and where the canonical alert's fields sit
//! when the format's own reading is overridden. Named in the settings, owned here.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Severity, SourceAuthenticator};
use crate::config::{ConfigError, SourceAuth, SourceSettings};

/// A configured alert source, parsed once from its settings: ready to authenticate and parse
/// requests.
#[derive(Debug)]
pub struct Source {
    pub name: String,
    pub format: SourceFormat,
    pub auth: SourceAuthenticator,
    pub mappings: FieldMappings,
    pub default_severity: Option<Severity>,
    pub dedup_window: Duration,
}

impl Source {
    /// Parses `sources.<name>` (its name checked by the settings' validation): an unknown
    /// format, severity or mapping field, a mapping that does not compile, or an authenticated
    /// source without a secret is an error naming the key.
    pub fn from_settings(name: &str, s: &SourceSettings) -> Result<Self, ConfigError> {
        let invalid =
            |key: &str, e: String| ConfigError::Invalid(format!("sources.{name}.{key}: {e}"));
        let format = s.format.parse().map_err(|e| invalid("format", e))?;
        let default_severity = match &s.default_severity {
            None => None,
            Some(v) => Some(Severity::from_setting(v).map_err(|e| invalid("default_severity", e))?),
        };
        let mappings = FieldMappings::from_settings(&s.mappings)
            .map_err(|(field, e)| invalid(&format!("mappings.{field}"), e))?;
        if !matches!(s.auth, SourceAuth::None) && s.auth.secrets()?.is_empty() {
            return Err(invalid(
                "auth",
                "at least one token, password or secret is required".into(),
            ));
        }
        Ok(Self {
            name: name.to_owned(),
            format,
            auth: SourceAuthenticator::from_settings(&s.auth)?,
            mappings,
            default_severity,
            dedup_window: Duration::from_secs(s.dedup_window_secs),
        })
    }
}

/// How a source's payloads are read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceFormat {
    #[default]
    Generic,
    Splunk,
    Datadog,
    Elastic,
    Sentinel,
    Alertmanager,
    Grafana,
    Panther,
    Sumologic,
    /// Items of the 1Password Events API (sign-in attempts, item usages, audit events), as
    /// the `events_api` poller feeds them or a SIEM forwards them.
    #[serde(rename = "1password_events")]
    OnePasswordEvents,
}

impl SourceFormat {
    pub const ALL: [SourceFormat; 10] = [
        Self::Generic,
        Self::Splunk,
        Self::Datadog,
        Self::Elastic,
        Self::Sentinel,
        Self::Alertmanager,
        Self::Grafana,
        Self::Panther,
        Self::Sumologic,
        Self::OnePasswordEvents,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Generic => "generic",
            Self::Splunk => "splunk",
            Self::Datadog => "datadog",
            Self::Elastic => "elastic",
            Self::Sentinel => "sentinel",
            Self::Alertmanager => "alertmanager",
            Self::Grafana => "grafana",
            Self::Panther => "panther",
            Self::Sumologic => "sumologic",
            Self::OnePasswordEvents => "1password_events",
        }
    }
}

impl std::str::FromStr for SourceFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| format!("unknown format {s:?} (one of: generic, splunk, datadog, elastic, sentinel, alertmanager, grafana, panther, sumologic, 1password_events)"))
    }
}

/// JSON pointers (relative to each alert in the payload) that override where a format finds a
/// field. For `generic` they are the whole mapping, with the defaults shown in README.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FieldMappings {
    pub id: Option<String>,
    pub title: Option<String>,
    pub severity: Option<String>,
    pub status: Option<String>,
    pub subject_email: Option<String>,
    pub subject_user_id: Option<String>,
    pub subject_name: Option<String>,
    pub source_ip: Option<String>,
    pub occurred_at: Option<String>,
}

impl FieldMappings {
    pub const FIELDS: [&'static str; 9] = [
        "id",
        "title",
        "severity",
        "status",
        "subject_email",
        "subject_user_id",
        "subject_name",
        "source_ip",
        "occurred_at",
    ];

    /// The mappings a source's settings give, by field name, each checked (a JSON pointer or
    /// CEL that compiles). An error names the field.
    pub fn from_settings(by_field: &BTreeMap<String, String>) -> Result<Self, (String, String)> {
        let mut m = Self::default();
        for (field, mapping) in by_field {
            super::mapping::check(mapping).map_err(|e| (field.clone(), e))?;
            let slot = match field.as_str() {
                "id" => &mut m.id,
                "title" => &mut m.title,
                "severity" => &mut m.severity,
                "status" => &mut m.status,
                "subject_email" => &mut m.subject_email,
                "subject_user_id" => &mut m.subject_user_id,
                "subject_name" => &mut m.subject_name,
                "source_ip" => &mut m.source_ip,
                "occurred_at" => &mut m.occurred_at,
                _ => {
                    return Err((
                        field.clone(),
                        format!("unknown field (one of: {})", Self::FIELDS.join(", ")),
                    ));
                }
            };
            *slot = Some(mapping.clone());
        }
        Ok(m)
    }
}

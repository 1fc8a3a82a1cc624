//! How a source's payloads are read: its format, and where the canonical alert's fields sit
//! when the format's own reading is overridden. Named in the settings, owned here.

use serde::{Deserialize, Serialize};

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
}

impl SourceFormat {
    pub const ALL: [SourceFormat; 9] = [
        Self::Generic,
        Self::Splunk,
        Self::Datadog,
        Self::Elastic,
        Self::Sentinel,
        Self::Alertmanager,
        Self::Grafana,
        Self::Panther,
        Self::Sumologic,
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
        }
    }
}

impl std::str::FromStr for SourceFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| format!("unknown format {s:?} (one of: generic, splunk, datadog, elastic, sentinel, alertmanager, grafana, panther, sumologic)"))
    }
}

/// JSON pointers (relative to each alert in the payload) that override where a format finds a
/// field. For `generic` they are the whole mapping, with the defaults shown in README.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
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

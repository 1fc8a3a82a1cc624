//! Sumo Logic webhook connection: a user-templated body where every variable is quoted, so
//! `{{ResultsJson}}` arrives as an escaped JSON *string*: it is parsed a second time.

use serde_json::Value;

use crate::alerts::extract::{
    ONEPASSWORD_EMAILS, ONEPASSWORD_IDS, first_str, labels, must_be_object, shape, subject,
};
use crate::alerts::{AlertStatus, ParseError, ParsedAlert, Severity};

const F: &str = "sumologic";

pub fn parse(value: Value) -> Result<Vec<ParsedAlert>, ParseError> {
    must_be_object(&value, F)?;
    let title = first_str(
        &value,
        &[
            "/alert_name",
            "/name",
            "/Name",
            "/title",
            "/search_name",
            "/SearchName",
        ],
    )
    .ok_or_else(|| shape(F, "missing field \"alert_name\" (the monitor name)"))?;
    let trigger =
        first_str(&value, &["/trigger_type", "/TriggerType", "/triggerType"]).unwrap_or_default();
    let status = if trigger.starts_with("Resolved") || trigger == "Normal" {
        AlertStatus::Resolved
    } else {
        AlertStatus::Firing
    };
    let severity = match trigger.as_str() {
        "Critical" => Severity::Critical,
        "Warning" => Severity::Medium,
        "MissingData" => Severity::Low,
        _ => first_str(&value, &["/severity"])
            .map(|s| Severity::parse(&s))
            .unwrap_or(Severity::Info),
    };
    let mut subjects = subject(&value, ONEPASSWORD_EMAILS, ONEPASSWORD_IDS, &[]);
    let results = ["results", "ResultsJson", "results_json", "resultsJson"]
        .iter()
        .find_map(|k| value.get(*k))
        .and_then(|r| match r {
            Value::String(s) => serde_json::from_str::<Value>(s).ok(),
            other => Some(other.clone()),
        });
    let first_row = results.as_ref().and_then(|r| match r {
        Value::Array(rows) => rows.first().cloned(),
        Value::Object(_) => Some(r.clone()),
        _ => None,
    });
    if let Some(row) = &first_row {
        let from_row = subject(row, ONEPASSWORD_EMAILS, ONEPASSWORD_IDS, &[]);
        match (subjects.first_mut(), from_row.into_iter().next()) {
            // The row may add the id to the e-mail the template put at the top.
            (Some(s), Some(r)) if s.user_id.is_none() && s.email == r.email => {
                s.user_id = r.user_id
            }
            (None, Some(r)) => subjects.push(r),
            _ => {}
        }
    }
    let mut raw = value.clone();
    if let (Some(r), Value::Object(m)) = (&results, &mut raw) {
        m.insert("results_parsed".into(), r.clone());
    }
    Ok(vec![ParsedAlert {
        native_id: first_str(&value, &["/monitor_id", "/Id", "/id"]).map(|id| {
            format!(
                "{id}@{}",
                first_str(&value, &["/trigger_time", "/TriggerTime"]).unwrap_or_default()
            )
        }),
        status,
        severity,
        occurred_at: first_str(&value, &["/trigger_time", "/TriggerTime"]),
        subjects,
        source_ip: first_row
            .as_ref()
            .and_then(|r| first_str(r, &["/src_ip", "/client_ip", "/ip_address"])),
        labels: labels(first_row.as_ref()),
        title,
        raw,
    }])
}

//! Prometheus Alertmanager webhook v4 and Grafana-managed alerting webhook v1: many alerts per
//! request, identity in each alert's labels (or annotations).

use serde::Deserialize;
use serde_json::Value;

use crate::alerts::extract::{array, labels, must_be_object, object, str_at, subject_of, text};
use crate::alerts::{AlertStatus, ParseError, ParsedAlert, Severity};

/// Where each alert names its user, in order of preference: labels, then annotations.
const EMAIL_LABELS: &[&str] = &[
    "user_email",
    "email",
    "target_user_email",
    "user",
    "usr_email",
];
const EMAIL_ANNOTATIONS: &[&str] = &["user_email", "email", "user"];
const ID_LABELS: &[&str] = &["user_uuid", "user_id", "target_user_uuid"];
const ID_ANNOTATIONS: &[&str] = &["user_uuid"];

/// What intake reads of the webhook's envelope. The rest (receiver, group and common labels
/// and annotations, which repeat what each alert carries) is skipped, not built as a `Value`
/// and dropped.
#[derive(Deserialize)]
struct Envelope {
    status: Option<Value>,
    alerts: Vec<Value>,
}

/// Reads the body straight into its envelope. `None` for anything but a JSON object with a
/// non-empty `alerts` array (and for a repeated field): the general path, `parse`, then reads
/// it as a `Value` and says what is wrong, or takes the last of the repeats, as it always did.
pub fn parse_body(
    body: &[u8],
    format: &'static str,
) -> Option<Result<Vec<ParsedAlert>, ParseError>> {
    // serde reads a struct from an array too; only an object is a webhook.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return None;
    }
    let envelope: Envelope = serde_json::from_slice(body).ok()?;
    if envelope.alerts.is_empty() {
        return None;
    }
    let group_status = envelope.status.as_ref().and_then(text);
    Some(parse_alerts(envelope.alerts, group_status, format))
}

pub fn parse(mut value: Value, format: &'static str) -> Result<Vec<ParsedAlert>, ParseError> {
    must_be_object(&value, format)?;
    let alerts = array(&value, "alerts", format)?;
    if alerts.is_empty() {
        return Err(crate::alerts::extract::shape(
            format,
            "field \"alerts\" is empty",
        ));
    }
    let group_status = str_at(&value, "/status");
    // Each alert is moved out of the payload to become its alert's raw record (not copied).
    let alerts = value
        .get_mut("alerts")
        .and_then(Value::as_array_mut)
        .map(std::mem::take)
        .unwrap_or_default();
    parse_alerts(alerts, group_status, format)
}

fn parse_alerts(
    alerts: Vec<Value>,
    group_status: Option<String>,
    format: &'static str,
) -> Result<Vec<ParsedAlert>, ParseError> {
    alerts
        .into_iter()
        .enumerate()
        .map(|(i, raw)| {
            let a = &raw;
            // Looked up in the two maps directly, not through a dozen JSON pointers that each
            // walk from the top.
            let labels_of = object(a, "labels", format).map_err(|e| prefix(e, i))?;
            let annotations = a.get("annotations");
            let label = |key: &str| labels_of.get(key).and_then(text);
            let annotation = |key: &str| annotations.and_then(|m| m.get(key)).and_then(text);
            let status = a
                .get("status")
                .and_then(text)
                .or(group_status.clone())
                .map(|s| AlertStatus::parse(&s))
                .unwrap_or(AlertStatus::Firing);
            let fingerprint = a.get("fingerprint").and_then(text);
            let starts = a.get("startsAt").and_then(text);
            Ok(ParsedAlert {
                // Alertmanager re-sends the same alert in every group notification: the
                // fingerprint and start time identify it across re-sends.
                native_id: fingerprint
                    .map(|f| format!("{f}@{}", starts.clone().unwrap_or_default())),
                status,
                title: label("alertname")
                    .or_else(|| annotation("summary"))
                    .unwrap_or_else(|| "(unnamed alert)".into()),
                severity: label("severity")
                    .map(|s| Severity::parse(&s))
                    .unwrap_or(Severity::Info),
                occurred_at: starts,
                subjects: subject_of(
                    EMAIL_LABELS
                        .iter()
                        .map(|k| label(k))
                        .chain(EMAIL_ANNOTATIONS.iter().map(|k| annotation(k))),
                    ID_LABELS
                        .iter()
                        .map(|k| label(k))
                        .chain(ID_ANNOTATIONS.iter().map(|k| annotation(k))),
                    label("user_name").or_else(|| annotation("user_name")),
                ),
                source_ip: ["source_ip", "ip", "client_ip"].into_iter().find_map(label),
                labels: labels(Some(labels_of)),
                raw,
            })
        })
        .collect()
}

fn prefix(e: ParseError, i: usize) -> ParseError {
    match e {
        ParseError::Shape { format, message } => ParseError::Shape {
            format,
            message: format!("alerts[{i}]: {message}"),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn one(alert: Value) -> ParsedAlert {
        parse(
            json!({"status": "firing", "alerts": [alert]}),
            "alertmanager",
        )
        .unwrap()
        .remove(0)
    }

    /// Labels before annotations, and the first valid value of each in the documented order.
    #[test]
    fn the_user_is_read_from_labels_first_then_annotations() {
        let a = one(json!({
            "labels": {"alertname": "A", "user_email": "not an e-mail", "user": "u@example.com", "user_id": "short"},
            "annotations": {"email": "ann@example.com", "user_uuid": "IR7VJHJ36JHINBFAD7V2T5MP3E", "user_name": "Ann"},
        }));
        let s = &a.subjects[0];
        assert_eq!(s.email.as_ref().unwrap().as_str(), "u@example.com");
        assert_eq!(
            s.user_id.as_ref().unwrap().as_str(),
            "IR7VJHJ36JHINBFAD7V2T5MP3E"
        );
        assert_eq!(s.name.as_deref(), Some("Ann"));
        let b = one(json!({
            "labels": {"severity": "critical", "ip": 7},
            "annotations": {"summary": " Summed up ", "user": "ann@example.com"},
            "status": "resolved",
        }));
        assert_eq!(b.title, "Summed up");
        assert_eq!(b.severity, Severity::Critical);
        assert_eq!(b.source_ip.as_deref(), Some("7"));
        assert_eq!(b.status, AlertStatus::Resolved);
        assert_eq!(
            b.subjects[0].email.as_ref().unwrap().as_str(),
            "ann@example.com"
        );
        let none = one(json!({"labels": {}, "annotations": "not an object"}));
        assert!(none.subjects.is_empty());
        assert_eq!(none.title, "(unnamed alert)");
    }
}

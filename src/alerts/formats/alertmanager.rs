//! Prometheus Alertmanager webhook v4 and Grafana-managed alerting webhook v1: many alerts per
//! request, identity in each alert's labels (or annotations).

use serde::Deserialize;
use serde_json::Value;

use crate::alerts::extract::{array, first_str, labels, must_be_object, object, str_at, subject};
use crate::alerts::{AlertStatus, ParseError, ParsedAlert, Severity};

const EMAIL_KEYS: &[&str] = &[
    "/labels/user_email",
    "/labels/email",
    "/labels/target_user_email",
    "/labels/user",
    "/labels/usr_email",
    "/annotations/user_email",
    "/annotations/email",
    "/annotations/user",
];
const ID_KEYS: &[&str] = &[
    "/labels/user_uuid",
    "/labels/user_id",
    "/labels/target_user_uuid",
    "/annotations/user_uuid",
];

/// What intake reads of the webhook's envelope. The rest (receiver, group and common labels
/// and annotations, which repeat what each alert carries) is skipped, not built: it was a
/// third of the parsing (BENCHMARKS.md).
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
    let group_status = envelope.status.as_ref().and_then(|s| str_at(s, ""));
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
            object(a, "labels", format).map_err(|e| prefix(e, i))?;
            let status = str_at(a, "/status")
                .or(group_status.clone())
                .map(|s| AlertStatus::parse(&s))
                .unwrap_or(AlertStatus::Firing);
            let fingerprint = str_at(a, "/fingerprint");
            let starts = str_at(a, "/startsAt");
            Ok(ParsedAlert {
                // Alertmanager re-sends the same alert in every group notification: the
                // fingerprint and start time identify it across re-sends.
                native_id: fingerprint
                    .map(|f| format!("{f}@{}", starts.clone().unwrap_or_default())),
                status,
                title: first_str(a, &["/labels/alertname", "/annotations/summary"])
                    .unwrap_or_else(|| "(unnamed alert)".into()),
                severity: str_at(a, "/labels/severity")
                    .map(|s| Severity::parse(&s))
                    .unwrap_or(Severity::Info),
                occurred_at: starts,
                subjects: subject(
                    a,
                    EMAIL_KEYS,
                    ID_KEYS,
                    &["/labels/user_name", "/annotations/user_name"],
                ),
                source_ip: first_str(a, &["/labels/source_ip", "/labels/ip", "/labels/client_ip"]),
                labels: labels(a.get("labels")),
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

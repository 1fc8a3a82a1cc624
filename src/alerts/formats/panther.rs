//! Panther custom webhook destination: `{id, alertId, title, name, severity, createdAt,
//! alertContext{…}, …}`. Identity is whatever the rule's `alert_context()` returns.

use serde_json::Value;

use crate::alerts::extract::{
    ONEPASSWORD_EMAILS, ONEPASSWORD_IDS, first_str, labels, must_be_object, refs, shape, subject,
    under,
};
use crate::alerts::{AlertStatus, ParseError, ParsedAlert, Severity};

const F: &str = "panther";

pub fn parse(value: Value) -> Result<Vec<ParsedAlert>, ParseError> {
    must_be_object(&value, F)?;
    let title = first_str(&value, &["/name", "/title"])
        .ok_or_else(|| shape(F, "missing field \"title\""))?;
    // Re-sends from the UI prefix the title; the alert id is the same.
    let title = title
        .strip_prefix("[Re-sent]: ")
        .unwrap_or(&title)
        .to_owned();
    let ctx = value.get("alertContext").cloned().unwrap_or(Value::Null);
    let emails = under("/alertContext", ONEPASSWORD_EMAILS);
    let ids = under("/alertContext", ONEPASSWORD_IDS);
    Ok(vec![ParsedAlert {
        native_id: first_str(&value, &["/alertId"]),
        status: AlertStatus::Firing,
        severity: first_str(&value, &["/severity"])
            .map(|s| Severity::parse(&s))
            .unwrap_or(Severity::Info),
        occurred_at: first_str(&value, &["/createdAt"]),
        subjects: subject(&value, &refs(&emails), &refs(&ids), &["/alertContext/user"]),
        source_ip: first_str(&ctx, &["/ip_address", "/source_ip", "/client/ip_address"]),
        labels: labels(Some(&ctx)),
        title,
        raw: value,
    }])
}

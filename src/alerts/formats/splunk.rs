//! Splunk webhook alert action: `{sid, search_name, app, owner, results_link, result}`, where
//! `result` is the first result row with literal dotted keys (`target_user.email`).

use serde_json::Value;

use crate::alerts::extract::{
    ONEPASSWORD_EMAILS, ONEPASSWORD_IDS, ONEPASSWORD_NAMES, first_str, labels, must_be_object,
    object, refs, str_at, subject, under,
};
use crate::alerts::{AlertStatus, ParseError, ParsedAlert, Severity};

const F: &str = "splunk";

pub fn parse(value: Value) -> Result<Vec<ParsedAlert>, ParseError> {
    must_be_object(&value, F)?;
    let result = object(&value, "result", F)?;
    let sid = str_at(&value, "/sid");
    let mut emails = under("/result", ONEPASSWORD_EMAILS);
    emails.extend([
        "/result/src_user".into(),
        "/result/actor_details.email".into(),
    ]);
    let ids = under("/result", ONEPASSWORD_IDS);
    let names = under("/result", ONEPASSWORD_NAMES);
    Ok(vec![ParsedAlert {
        // The same search job can alert once per result row ("for each result").
        native_id: sid.map(|s| format!("{s}/{}", crate::alerts::short_hash(&result.to_string()))),
        status: AlertStatus::Firing,
        title: first_str(&value, &["/search_name"]).unwrap_or_else(|| "Splunk alert".into()),
        severity: first_str(result, &["/severity", "/urgency"])
            .map(|s| Severity::parse(&s))
            .unwrap_or(Severity::Info),
        occurred_at: first_str(result, &["/_time", "/timestamp"]),
        subjects: subject(&value, &refs(&emails), &refs(&ids), &refs(&names)),
        source_ip: first_str(
            result,
            &[
                "/src",
                "/src_ip",
                "/client.ip_address",
                "/client/ip_address",
                "/ip_address",
            ],
        ),
        labels: labels(Some(result)),
        raw: value,
    }])
}

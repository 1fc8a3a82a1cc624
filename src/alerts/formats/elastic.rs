//! Elastic Security via the Kibana webhook connector: either `{rule, alerts: [ECS alert docs]}`
//! (the summary action rendered with `{{context.alerts}}`) or a single alert document (per-alert
//! action). ECS: `user.email`, `user.id`, `source.ip`, `kibana.alert.rule.name`,
//! `kibana.alert.severity`, `kibana.alert.uuid`. Beware: for 1Password *audit* events ECS puts
//! the actor in `user.*`.

use serde_json::Value;

use crate::alerts::extract::{first_str, labels, must_be_object, shape, str_at, subject};
use crate::alerts::{AlertStatus, ParseError, ParsedAlert, Severity};

const F: &str = "elastic";

pub fn parse(value: Value) -> Result<Vec<ParsedAlert>, ParseError> {
    must_be_object(&value, F)?;
    let docs: Vec<Value> = match value.get("alerts") {
        Some(Value::Array(a)) if !a.is_empty() => a.clone(),
        Some(Value::Array(_)) => return Err(shape(F, "field \"alerts\" is empty")),
        Some(_) => return Err(shape(F, "field \"alerts\" must be an array")),
        None => vec![value.clone()],
    };
    let rule_name = first_str(&value, &["/rule/name", "/context/rule/name"]);
    let rule_severity = first_str(&value, &["/rule/severity", "/context/rule/severity"]);
    docs.into_iter()
        .enumerate()
        .map(|(i, d)| {
            if !d.is_object() {
                return Err(shape(F, format!("alerts[{i}] must be an object")));
            }
            let title = first_str(&d, &["/kibana/alert/rule/name", "/kibana.alert.rule.name", "/signal/rule/name", "/rule/name"])
                .or(rule_name.clone())
                .ok_or_else(|| shape(F, format!("alerts[{i}]: missing field \"kibana.alert.rule.name\" (and no \"rule.name\")")))?;
            let status = match first_str(&d, &["/kibana/alert/status", "/kibana.alert.status"]).as_deref() {
                Some("recovered") | Some("untracked") => AlertStatus::Resolved,
                _ => AlertStatus::Firing,
            };
            Ok(ParsedAlert {
                native_id: first_str(&d, &["/kibana/alert/uuid", "/kibana.alert.uuid", "/_id", "/signal/id"]),
                status,
                severity: first_str(&d, &["/kibana/alert/severity", "/kibana.alert.severity", "/signal/rule/severity"])
                    .or(rule_severity.clone())
                    .map(|s| Severity::parse(&s))
                    .unwrap_or(Severity::Info),
                occurred_at: first_str(&d, &["/kibana/alert/original_time", "/@timestamp"]),
                subjects: subject(&d, &["/user/email", "/user.email", "/user/name"], &["/user/id", "/user.id"], &["/user/full_name"]),
                source_ip: str_at(&d, "/source/ip").or_else(|| str_at(&d, "/source.ip")),
                labels: labels(d.get("labels")),
                title,
                raw: d,
            })
        })
        .collect()
}

//! Datadog webhooks: a user-templated body. Reads the default payload (`id`, `title`, `body`,
//! `date`, …) and the Cloud SIEM signal variables as they are usually spliced in
//! (`signal_id`, `rule_name`, `severity`, `group_by`, `attributes.usr`, `attributes.network`).

use serde_json::Value;

use crate::alerts::extract::{first_str, labels, must_be_object, shape, subject};
use crate::alerts::{AlertStatus, ParseError, ParsedAlert, Severity};

const F: &str = "datadog";

pub fn parse(value: Value) -> Result<Vec<ParsedAlert>, ParseError> {
    must_be_object(&value, F)?;
    let title = first_str(
        &value,
        &["/title", "/rule_name", "/event_title", "/alert_title"],
    )
    .ok_or_else(|| shape(F, "missing field \"title\" (or \"rule_name\")"))?;
    let transition = first_str(&value, &["/alert_transition", "/transition", "/status"]);
    let status = match transition.as_deref() {
        Some("Recovered") | Some("recovered") | Some("resolved") | Some("OK") => {
            AlertStatus::Resolved
        }
        _ if title.starts_with("[Recovered") => AlertStatus::Resolved,
        _ => AlertStatus::Firing,
    };
    // The default payload carries the monitor group only in the title:
    // "[Triggered on {usr.email:alice@example.com}] …".
    let group = title_group(&title);
    let mut l = labels(value.get("tags_map"));
    l.extend(labels(Some(&value)));
    Ok(vec![ParsedAlert {
        native_id: first_str(
            &value,
            &["/signal_id", "/alert_cycle_key", "/aggreg_key", "/id"],
        ),
        status,
        severity: first_str(&value, &["/severity", "/priority", "/alert_priority"])
            .map(|s| Severity::parse(&s))
            .unwrap_or(Severity::Info),
        occurred_at: first_str(&value, &["/date", "/last_updated"]),
        subjects: subject(
            &value,
            &[
                "/attributes/usr/email",
                "/group_by/@usr.email",
                "/group_by/@usr.name",
                "/usr/email",
                "/user_email",
                "/attributes/target_user/email",
            ],
            &[
                "/attributes/usr/id",
                "/group_by/@usr.id",
                "/usr/id",
                "/user_uuid",
                "/attributes/target_user/uuid",
            ],
            &["/attributes/usr/name"],
        )
        .into_iter()
        .chain(subject(
            &group,
            &["/usr.email", "/@usr.email", "/user.email", "/email"],
            &["/usr.id", "/@usr.id"],
            &[],
        ))
        .take(1)
        .collect(),
        source_ip: first_str(
            &value,
            &[
                "/attributes/network/client/ip",
                "/network/client/ip",
                "/source_ip",
            ],
        ),
        title: strip_group(&title).to_owned(),
        labels: l,
        raw: value,
    }])
}

/// `{k:v,k2:v2}` from a monitor title, as an object.
fn title_group(title: &str) -> Value {
    let mut map = serde_json::Map::new();
    if let (Some(start), Some(end)) = (title.find('{'), title.find('}'))
        && start < end
    {
        for pair in title[start + 1..end].split(',') {
            if let Some((k, v)) = pair.split_once(':') {
                map.insert(k.trim().to_owned(), Value::String(v.trim().to_owned()));
            }
        }
    }
    Value::Object(map)
}

/// The monitor name without the "[Triggered on {…}] " prefix.
fn strip_group(title: &str) -> &str {
    if title.starts_with('[')
        && let Some(i) = title.find("] ")
    {
        return &title[i + 2..];
    }
    title
}

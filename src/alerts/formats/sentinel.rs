//! Microsoft Sentinel through a Logic App (incident trigger body, `@{triggerBody()}`), or the
//! ARM incident itself. Identity: `relatedEntities[kind=Account]` → `accountName@upnSuffix`
//! or `aadUserId`; IPs from `relatedEntities[kind=Ip]`.

use serde_json::Value;

use crate::alerts::extract::{first_str, labels, must_be_object, shape, str_at};
use crate::alerts::{AlertStatus, ParseError, ParsedAlert, Severity, Subject};
use crate::domain::{Email, UserId};

const F: &str = "sentinel";

pub fn parse(value: Value) -> Result<Vec<ParsedAlert>, ParseError> {
    must_be_object(&value, F)?;
    let props = value
        .pointer("/object/properties")
        .or_else(|| value.get("properties"))
        .ok_or_else(|| shape(F, "missing field \"object.properties\" (the incident)"))?;
    let title = str_at(props, "/title")
        .ok_or_else(|| shape(F, "missing field \"object.properties.title\""))?;
    let entities = props
        .get("relatedEntities")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut subjects = vec![];
    let mut source_ip = None;
    for e in &entities {
        let kind = str_at(e, "/kind").unwrap_or_default();
        let p = e.get("properties").cloned().unwrap_or(Value::Null);
        if kind.eq_ignore_ascii_case("account") {
            let upn = match (str_at(&p, "/accountName"), str_at(&p, "/upnSuffix")) {
                (Some(n), Some(s)) => Some(format!("{n}@{s}")),
                (Some(n), None) if n.contains('@') => Some(n),
                _ => first_str(
                    &p,
                    &["/additionalData/UserPrincipalName", "/userPrincipalName"],
                ),
            };
            let email = upn.and_then(|u| Email::parse(&u).ok());
            let user_id = first_str(
                &p,
                &[
                    "/onePasswordUserUuid",
                    "/additionalData/OnePasswordUserUuid",
                ],
            )
            .and_then(|u| UserId::parse(&u).ok());
            if email.is_some() || user_id.is_some() {
                subjects.push(Subject {
                    email,
                    user_id,
                    name: first_str(&p, &["/friendlyName", "/displayName"]),
                });
            }
        } else if kind.eq_ignore_ascii_case("ip") && source_ip.is_none() {
            source_ip = str_at(&p, "/address");
        }
    }
    let status = match str_at(props, "/status").as_deref() {
        Some("Closed") => AlertStatus::Resolved,
        _ => AlertStatus::Firing,
    };
    let mut l = labels(props.get("additionalData"));
    if let Some(n) = str_at(props, "/incidentNumber") {
        l.insert("incident_number".into(), n);
    }
    Ok(vec![ParsedAlert {
        // Each automation run has its own event id; an incident update is a new event.
        native_id: first_str(&value, &["/eventUniqueId"])
            .or_else(|| first_str(&value, &["/object/name", "/name"])),
        status,
        severity: str_at(props, "/severity")
            .map(|s| Severity::parse(&s))
            .unwrap_or(Severity::Info),
        occurred_at: first_str(props, &["/firstActivityTimeUtc", "/createdTimeUtc"]),
        subjects,
        source_ip,
        labels: l,
        title,
        raw: value,
    }])
}

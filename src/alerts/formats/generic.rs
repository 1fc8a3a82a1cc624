//! `generic`: any JSON object (or array of objects). Defaults: `/id`, `/title`, `/severity`,
//! `/status`, `/user/email`, `/user/id`, `/source_ip`, `/timestamp`, `labels`; a source's
//! `mappings` override them.

use serde_json::Value;

use crate::alerts::FieldMappings;
use crate::alerts::Subject;
use crate::alerts::extract::{labels, shape};
use crate::alerts::mapping::lookup as str_at;
use crate::alerts::{AlertStatus, ParseError, ParsedAlert, Severity};
use crate::domain::{Email, UserId};

const F: &str = "generic";

pub fn parse(m: &FieldMappings, value: Value) -> Result<Vec<ParsedAlert>, ParseError> {
    match value {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(shape(F, "the array holds no alerts"));
            }
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    one(m, item).map_err(|e| match e {
                        ParseError::Shape { format, message } => ParseError::Shape {
                            format,
                            message: format!("[{i}]: {message}"),
                        },
                        other => other,
                    })
                })
                .collect()
        }
        other => Ok(vec![one(m, other)?]),
    }
}

fn one(m: &FieldMappings, v: Value) -> Result<ParsedAlert, ParseError> {
    if !v.is_object() {
        return Err(shape(F, "expected a JSON object"));
    }
    let p = |o: &Option<String>, d: &'static str| o.clone().unwrap_or_else(|| d.to_owned());
    let title_ptr = p(&m.title, "/title");
    let title = str_at(&v, &title_ptr)
        .ok_or_else(|| shape(F, format!("missing field {title_ptr} (the alert title)")))?;
    Ok(ParsedAlert {
        native_id: str_at(&v, &p(&m.id, "/id")),
        status: str_at(&v, &p(&m.status, "/status"))
            .map(|s| AlertStatus::parse(&s))
            .unwrap_or(AlertStatus::Firing),
        severity: str_at(&v, &p(&m.severity, "/severity"))
            .map(|s| Severity::parse(&s))
            .unwrap_or(Severity::Info),
        title,
        occurred_at: str_at(&v, &p(&m.occurred_at, "/timestamp")),
        subjects: {
            let email =
                str_at(&v, &p(&m.subject_email, "/user/email")).and_then(|e| Email::parse(&e).ok());
            let user_id =
                str_at(&v, &p(&m.subject_user_id, "/user/id")).and_then(|u| UserId::parse(&u).ok());
            if email.is_some() || user_id.is_some() {
                vec![Subject {
                    email,
                    user_id,
                    name: str_at(&v, &p(&m.subject_name, "/user/name")),
                }]
            } else {
                vec![]
            }
        },
        source_ip: str_at(&v, &p(&m.source_ip, "/source_ip")),
        labels: labels(v.get("labels")),
        raw: v,
    })
}

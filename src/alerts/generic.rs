//! `generic`: any JSON object (or array of objects); the source's JSON-pointer mappings say
//! where each field sits.

use std::collections::BTreeMap;

use super::{AlertStatus, ParseError, ParsedAlert, Severity, Subject, string_at};
use crate::config::FieldMappings;
use crate::domain::{Email, UserId};

pub fn parse(m: &FieldMappings, value: serde_json::Value) -> Result<Vec<ParsedAlert>, ParseError> {
    match value {
        serde_json::Value::Array(items) => {
            if items.is_empty() {
                return Err(shape("the array holds no alerts"));
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

fn shape(message: &str) -> ParseError {
    ParseError::Shape {
        format: "generic",
        message: message.into(),
    }
}

fn one(m: &FieldMappings, v: serde_json::Value) -> Result<ParsedAlert, ParseError> {
    if !v.is_object() {
        return Err(shape("expected a JSON object"));
    }
    let email = string_at(&v, &m.subject_email).and_then(|s| Email::parse(&s).ok());
    let user_id = string_at(&v, &m.subject_user_id).and_then(|s| UserId::parse(&s).ok());
    let subjects = if email.is_some() || user_id.is_some() {
        vec![Subject {
            email,
            user_id,
            name: None,
        }]
    } else {
        vec![]
    };
    let title = string_at(&v, &m.title)
        .ok_or_else(|| shape(&format!("missing field {} (the alert title)", m.title)))?;
    let labels: BTreeMap<String, String> = v
        .get("labels")
        .and_then(|l| l.as_object())
        .map(|l| {
            l.iter()
                .filter_map(|(k, val)| match val {
                    serde_json::Value::String(s) => Some((k.clone(), s.clone())),
                    serde_json::Value::Number(n) => Some((k.clone(), n.to_string())),
                    serde_json::Value::Bool(b) => Some((k.clone(), b.to_string())),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(ParsedAlert {
        native_id: string_at(&v, &m.id),
        status: string_at(&v, &m.status)
            .map(|s| AlertStatus::parse(&s))
            .unwrap_or(AlertStatus::Firing),
        severity: string_at(&v, &m.severity)
            .map(|s| Severity::parse(&s))
            .unwrap_or(Severity::Info),
        title,
        occurred_at: string_at(&v, &m.occurred_at),
        subjects,
        source_ip: string_at(&v, &m.source_ip),
        labels,
        raw: v,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_default_mappings() {
        let v = serde_json::json!({"id": "a1", "title": "Brute force", "severity": "HIGH",
            "user": {"email": "Alice@Example.com"}, "labels": {"team": "sec"}});
        let a = &parse(&FieldMappings::default(), v).unwrap()[0];
        assert_eq!(a.title, "Brute force");
        assert_eq!(a.severity, Severity::High);
        assert_eq!(
            a.subjects[0].email.as_ref().unwrap().as_str(),
            "alice@example.com"
        );
        assert_eq!(a.native_id.as_deref(), Some("a1"));
        assert_eq!(a.labels["team"], "sec");
    }

    #[test]
    fn a_missing_title_names_the_field() {
        let err = parse(&FieldMappings::default(), serde_json::json!({"user": {}})).unwrap_err();
        assert!(err.to_string().contains("/title"), "{err}");
    }
}

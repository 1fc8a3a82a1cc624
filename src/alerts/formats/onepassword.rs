//! 1Password Events API items: one item, a list of items, or a page (`{"items": [...]}`).
//! Each item is one alert about the user it names (the sign-in's target, the item's user, the
//! audit event's actor); its `uuid` is the de-duplication key. A field or value this version
//! does not know is kept (`raw`) and listed in the `unknown` label, never refused.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::alerts::extract::subject_of;
use crate::alerts::{AlertStatus, ParseError, ParsedAlert, Severity};
use crate::events_api::{EventFacts, Feed};

const F: &str = "1password_events";

pub fn parse(value: Value) -> Result<Vec<ParsedAlert>, ParseError> {
    let items = match value {
        Value::Array(items) => items,
        Value::Object(mut o) if o.get("items").is_some_and(Value::is_array) => {
            match o.remove("items") {
                Some(Value::Array(items)) => items,
                _ => unreachable!("checked to be an array"),
            }
        }
        v @ Value::Object(_) => vec![v],
        _ => {
            return Err(ParseError::Shape {
                format: F,
                message: "expected an Events API item, a list of items, or a page with items"
                    .into(),
            });
        }
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let feed = Feed::of_item(&item).ok_or_else(|| ParseError::Shape {
                format: F,
                message: format!(
                    "item {i} is none of a sign-in attempt (target_user), an item usage (item_uuid) or an audit event (actor_uuid, object_type)"
                ),
            })?;
            Ok(from_event(&EventFacts::read(feed, &item), item))
        })
        .collect()
}

/// The alert an event becomes.
pub fn from_event(e: &EventFacts, raw: Value) -> ParsedAlert {
    let who = e.user.clone().unwrap_or_default();
    let mut labels = BTreeMap::new();
    let mut put = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            labels.insert(k.to_owned(), v.clone());
        }
    };
    put("feed", &Some(e.feed.as_str().to_owned()));
    put("category", &e.category);
    put("type", &e.r#type);
    put("action", &e.action);
    put("object_type", &e.object_type);
    put("country", &e.country);
    put("actor_uuid", &who.uuid);
    if let Some(o) = &e.object {
        put("object_uuid", &o.uuid);
        put("object_email", &o.email);
    }
    if !e.unknown.is_empty() {
        put("unknown", &Some(e.unknown.join(",")));
    }
    let what = match e.feed {
        Feed::SignInAttempts => format!(
            "sign-in attempt: {} ({})",
            e.category.as_deref().unwrap_or("?"),
            e.r#type.as_deref().unwrap_or("?")
        ),
        Feed::ItemUsages => format!("item usage: {}", e.action.as_deref().unwrap_or("?")),
        Feed::AuditEvents => format!(
            "audit event: {} {}",
            e.action.as_deref().unwrap_or("?"),
            e.object_type.as_deref().unwrap_or("?")
        ),
    };
    let name = who.email.clone().or(who.uuid.clone()).unwrap_or_default();
    ParsedAlert {
        native_id: Some(format!("{}/{}", e.feed.as_str(), e.uuid)),
        status: AlertStatus::Firing,
        title: format!("1Password {what} {name}").trim_end().to_owned(),
        severity: Severity::Info,
        occurred_at: Some(e.timestamp.clone()).filter(|t| !t.is_empty()),
        subjects: subject_of([who.email.clone()], [who.uuid.clone()], who.name.clone()),
        source_ip: e.ip.clone(),
        labels,
        raw,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_item_of_a_page_is_an_alert_about_its_user() {
        let page = json!({"cursor": "c", "has_more": false, "items": [
            {"uuid": "S1", "timestamp": "2026-01-01T00:00:00Z", "category": "credentials_failed", "type": "password_secret_bad", "country": "BR",
             "target_user": {"uuid": "A3K7MZQ2XJRVHBKWH7WLSPU4TE", "email": "alice@example.com"}, "client": {"ip_address": "192.0.2.1"}},
            {"uuid": "A1", "timestamp": "2026-01-01T00:00:01Z", "actor_uuid": "A3K7MZQ2XJRVHBKWH7WLSPU4TE", "action": "disblmfa", "object_type": "mfa2", "brand_new": 1}
        ]});
        let alerts = parse(page).unwrap();
        assert_eq!(alerts.len(), 2);
        assert_eq!(
            alerts[0].subjects[0].email.as_ref().unwrap().as_str(),
            "alice@example.com"
        );
        assert_eq!(alerts[0].labels["category"], "credentials_failed");
        assert_eq!(alerts[0].source_ip.as_deref(), Some("192.0.2.1"));
        assert_eq!(alerts[0].native_id.as_deref(), Some("signinattempts/S1"));
        assert_eq!(
            alerts[1].labels["unknown"],
            "field:brand_new,object_type=mfa2"
        );
        assert!(parse(json!([{"nothing": 1}])).is_err());
    }
}

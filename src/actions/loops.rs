//! Invariant 7: lockout's own actions come back as alerts (each suspension lands in the
//! 1Password audit log, flows through the SIEM, and may fire rules). Such alerts never lead
//! to a new remediation.
//!
//! A SIEM forwards the event in many shapes: the Events API's names (`action`,
//! `object_type`, `actor_uuid`, `actor_details`), ECS (`event.action`,
//! `onepassword.object_type`, `user.id` for the actor), as nested objects or dotted keys, in
//! any letter case, at any depth, inside arrays, or as JSON text inside a string. Each object
//! is read with its descendants flattened into lower-case dotted paths, so every shape reads
//! the same. Identities are matched by id and e-mail only, never by a display name (a user can
//! rename themselves to lockout's name).

use std::collections::HashMap;

use serde_json::Value;

use crate::alerts::Alert;

/// How much of a payload the guard reads: enough for any real alert, bounded for a hostile one.
const MAX_NODES: usize = 50_000;
const MAX_DEPTH: usize = 64;

/// Why this alert describes something lockout did, if it does.
pub fn self_inflicted(alert: &Alert, self_actors: &[String]) -> Option<String> {
    let mut budget = MAX_NODES;
    visit(&alert.raw, 0, self_actors, &mut budget)
}

fn visit(v: &Value, depth: usize, self_actors: &[String], budget: &mut usize) -> Option<String> {
    if depth > MAX_DEPTH || *budget == 0 {
        return None;
    }
    *budget -= 1;
    match v {
        Value::Object(m) => {
            let mut flat = HashMap::new();
            flatten(m, "", 0, &mut flat);
            if let Some(why) = judge(&flat, self_actors) {
                return Some(why);
            }
            m.values()
                .find_map(|x| visit(x, depth + 1, self_actors, budget))
        }
        Value::Array(items) => items
            .iter()
            .find_map(|x| visit(x, depth + 1, self_actors, budget)),
        Value::String(s) => {
            let t = s.trim_start();
            if (t.starts_with('{') || t.starts_with('[')) && s.len() <= 1024 * 1024 {
                let inner: Value = serde_json::from_str(s).ok()?;
                visit(&inner, depth + 1, self_actors, budget)
            } else {
                None
            }
        }
        _ => None,
    }
}

/// An object's scalar descendants (through nested objects, not arrays) by lower-case dotted
/// path: `{"event": {"Action": "x"}}` and `{"EVENT.action": "x"}` both give `event.action`.
fn flatten<'a>(
    m: &'a serde_json::Map<String, Value>,
    prefix: &str,
    depth: usize,
    out: &mut HashMap<String, &'a Value>,
) {
    if depth > 4 {
        return;
    }
    for (k, v) in m {
        let key = if prefix.is_empty() {
            k.to_ascii_lowercase()
        } else {
            format!("{prefix}.{}", k.to_ascii_lowercase())
        };
        match v {
            Value::Object(inner) => flatten(inner, &key, depth + 1, out),
            other => {
                out.entry(key).or_insert(other);
            }
        }
    }
}

fn text<'a>(flat: &HashMap<String, &'a Value>, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .find_map(|k| flat.get(*k).and_then(|v| v.as_str()))
}

fn judge(flat: &HashMap<String, &Value>, self_actors: &[String]) -> Option<String> {
    // The actor is lockout's own OAuth application (by id or e-mail, never by name).
    let mut actor_keys = vec![
        "actor_uuid",
        "actor_email",
        "actor_details.uuid",
        "actor_details.email",
        "actor.uuid",
        "actor.id",
        "actor.email",
        "onepassword.actor_uuid",
        "onepassword.actor_details.uuid",
        "onepassword.actor_details.email",
    ];
    let ecs_event = flat.contains_key("event.action");
    if ecs_event {
        // In the ECS mapping of audit events, `user.*` is the actor.
        actor_keys.extend(["user.id", "user.email"]);
    }
    for key in actor_keys {
        if let Some(id) = flat.get(key).and_then(|v| v.as_str())
            && self_actors
                .iter()
                .any(|s| s.trim().eq_ignore_ascii_case(id.trim()))
        {
            return Some(format!(
                "the event's actor {id:?} ({key}) is lockout's own OAuth application"
            ));
        }
    }
    // A user-state change event: suspensions and reactivations are what lockout does; acting
    // on the report of one would loop.
    let action = text(flat, &["action", "event.action", "onepassword.action"])?;
    let object = text(
        flat,
        &[
            "object_type",
            "onepassword.object_type",
            "event.object_type",
        ],
    );
    let action = action.trim().to_ascii_lowercase();
    let is_user = object.is_some_and(|o| o.trim().eq_ignore_ascii_case("user"));
    if is_user && matches!(action.as_str(), "suspend" | "reactive" | "reactivate") {
        return Some(format!("the alert reports a user {action} event"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const APP: &str = "LOCKOUTAPPUUID7ZQ2XJRVHBKWH";

    fn check(raw: Value) -> Option<String> {
        let mut alert: Alert = serde_json::from_value(json!({
            "id": "alr_1", "source": "s", "format": "generic", "received_at": "t",
            "fingerprint": "f", "status": "firing", "title": "t", "severity": "high",
            "occurred_at": null, "subjects": [], "source_ip": null, "labels": {}, "raw": null
        }))
        .unwrap();
        alert.raw = raw;
        self_inflicted(&alert, &[APP.into(), "lockout@example.com".into()])
    }

    #[test]
    fn lockouts_own_suspension_is_recognised_in_every_shape() {
        let deep = (0..12).fold(
            json!({"action": "suspend", "object_type": "user"}),
            |acc, i| json!({ format!("level{i}"): acc }),
        );
        let shapes = [
            json!({"action": "suspend", "object_type": "user"}),
            json!({"ACTION": "Suspend", "Object_Type": "USER"}),
            json!({"event": {"action": "reactive"}, "onepassword": {"object_type": "user"}}),
            json!({"event.action": "suspend", "onepassword.object_type": "user"}),
            json!({"Event.Action": "SUSPEND", "onepassword": {"Object_Type": "User"}}),
            deep,
            json!({"alerts": [{"x": 1}, {"events": [{"action": "suspend", "object_type": "user"}]}]}),
            json!({"message": "{\"action\":\"suspend\",\"object_type\":\"user\"}"}),
            json!({"result": {"_raw": "[{\"event\": {\"action\": \"reactivate\"}, \"onepassword\": {\"object_type\": \"user\"}}]"}}),
            json!({"actor_uuid": APP.to_lowercase(), "action": "export"}),
            json!({"actor_details": {"uuid": APP, "name": "lockout"}}),
            json!({"onepassword": {"actor_details": {"email": "LOCKOUT@example.com"}}}),
            json!({"event": {"action": "export"}, "user": {"id": APP}}),
            json!({"Actor": {"Email": "lockout@example.com"}}),
        ];
        for raw in shapes {
            assert!(check(raw.clone()).is_some(), "not recognised: {raw}");
        }
    }

    #[test]
    fn display_names_and_other_events_are_not_lockout() {
        for raw in [
            json!({"actor_details": {"name": "lockout", "uuid": "SOMEONEELSE0000000000000000"}}),
            json!({"actor": "Lockout"}),
            json!({"action": "suspend", "object_type": "vault"}),
            json!({"action": "signin", "object_type": "user"}),
            json!({"user": {"id": APP}}),
            json!({"message": "not json {"}),
        ] {
            assert_eq!(check(raw.clone()), None, "{raw}");
        }
    }

    #[test]
    fn a_hostile_payload_is_read_within_a_bound() {
        let mut v = json!("end");
        for _ in 0..1_000 {
            v = json!([v]);
        }
        assert_eq!(check(v), None);
    }
}

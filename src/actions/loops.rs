//! Invariant 7: lockout's own actions come back as alerts (each suspension lands in the
//! 1Password audit log, flows through the SIEM, and may fire rules). Such alerts never lead
//! to a new remediation.

use serde_json::Value;

use crate::alerts::Alert;

/// Why this alert describes something lockout did, if it does.
pub fn self_inflicted(alert: &Alert, self_actors: &[String]) -> Option<String> {
    find(&alert.raw, 0, self_actors)
}

fn find(v: &Value, depth: usize, self_actors: &[String]) -> Option<String> {
    if depth > 4 {
        return None;
    }
    match v {
        Value::Object(m) => {
            // 1Password audit event (Events API names, or ECS): the actor is lockout's app.
            for key in ["actor_uuid", "actor_details", "actor", "actor_email"] {
                if let Some(a) = m.get(key) {
                    let ids = [
                        a.as_str(),
                        a.get("uuid").and_then(Value::as_str),
                        a.get("email").and_then(Value::as_str),
                        a.get("name").and_then(Value::as_str),
                    ];
                    if let Some(id) = ids
                        .into_iter()
                        .flatten()
                        .find(|id| self_actors.iter().any(|s| s.eq_ignore_ascii_case(id)))
                    {
                        return Some(format!(
                            "the event's actor {id:?} is lockout's own OAuth application"
                        ));
                    }
                }
            }
            // A user-state change event: suspensions and reactivations are what lockout does;
            // acting on the report of one would loop.
            let action = m.get("action").and_then(Value::as_str);
            let object = m.get("object_type").and_then(Value::as_str);
            if let (Some(a @ ("suspend" | "reactive" | "reactivate")), Some("user")) =
                (action, object)
            {
                return Some(format!("the alert reports a user {a} event"));
            }
            m.values().find_map(|x| find(x, depth + 1, self_actors))
        }
        Value::Array(items) => items
            .iter()
            .take(50)
            .find_map(|x| find(x, depth + 1, self_actors)),
        _ => None,
    }
}

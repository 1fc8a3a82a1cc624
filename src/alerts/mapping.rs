//! Where a source says a field sits: a JSON pointer (`/result/user`) or a CEL expression over
//! the alert's payload (`cel: payload.result['user'] + '@example.com'`). CEL programs are
//! compiled once and cached; `check` validates a mapping at start-up.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use serde_json::Value;

static PROGRAMS: LazyLock<Mutex<HashMap<String, Arc<cel::Program>>>> =
    LazyLock::new(Default::default);

fn program(expr: &str) -> Result<Arc<cel::Program>, String> {
    let mut cache = PROGRAMS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(p) = cache.get(expr) {
        return Ok(p.clone());
    }
    let p = Arc::new(cel::Program::compile(expr).map_err(|e| {
        format!(
            "CEL does not compile: {}",
            e.to_string().lines().next().unwrap_or_default()
        )
    })?);
    let refs = p.references();
    if let Some(v) = refs.variables().into_iter().find(|v| *v != "payload") {
        return Err(format!("unknown variable {v:?} (mappings see `payload`)"));
    }
    cache.insert(expr.to_owned(), p.clone());
    Ok(p)
}

/// Validates a mapping (config check at start-up).
pub fn check(mapping: &str) -> Result<(), String> {
    match mapping.strip_prefix("cel:") {
        Some(expr) => program(expr.trim()).map(|_| ()),
        None if mapping.is_empty() || mapping.starts_with('/') => Ok(()),
        None => Err(format!(
            "{mapping:?} is neither a JSON pointer (starting with /) nor cel: EXPRESSION"
        )),
    }
}

/// The value a mapping reads from `payload`: a non-empty string (numbers as text), or none.
pub fn lookup(payload: &Value, mapping: &str) -> Option<String> {
    let Some(expr) = mapping.strip_prefix("cel:") else {
        return super::extract::str_at(payload, mapping);
    };
    let program = program(expr.trim()).ok()?;
    let ctx = crate::expr::variable_context("payload", cel::to_value(payload).ok()?);
    match program.execute(&ctx).ok()? {
        cel::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        cel::Value::Int(i) => Some(i.to_string()),
        cel::Value::UInt(u) => Some(u.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_and_cel_expressions() {
        let v = serde_json::json!({"result": {"user": "alice", "n": 3}, "list": [{"email": "b@example.com"}]});
        assert_eq!(lookup(&v, "/result/user").as_deref(), Some("alice"));
        assert_eq!(
            lookup(&v, "cel: payload.result.user + '@example.com'").as_deref(),
            Some("alice@example.com")
        );
        assert_eq!(
            lookup(&v, "cel: payload.list[0].email").as_deref(),
            Some("b@example.com")
        );
        assert_eq!(lookup(&v, "cel: payload.result.n").as_deref(), Some("3"));
        assert_eq!(lookup(&v, "cel: payload.missing"), None);
        assert!(check("cel: payload.result.user").is_ok());
        assert!(check("cel: alert.title").unwrap_err().contains("payload"));
        assert!(check("cel: payload.(").is_err());
        assert!(check("result.user").is_err());
    }
}

//! Why each playbook did or did not match an alert, in words a person can check: the first
//! part of `on.when` that was false and the values of the alert it read
//! (`alert.severity == 'high'` saw `alert.severity = "medium"`). Pure; run on demand (the API's
//! and the console's alert pages, `lockout playbooks test`), never on intake's hot path.

use serde::Serialize;

use super::engine::alert_value;
use super::{CelExpr, Playbook, PlaybookSet};
use crate::alerts::Alert;

/// One playbook's verdict on one alert.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Verdict {
    pub playbook: String,
    /// `matched`, `not_matched`, `disabled`, `error`.
    pub verdict: &'static str,
    /// What decided it, for a person.
    pub because: String,
    /// The part of `on.when` that was false, when that decided it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
    /// The alert's values that part read.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub saw: Vec<(String, serde_json::Value)>,
}

/// Every playbook's verdict on `alert`.
pub fn explain(set: &PlaybookSet, alert: &Alert) -> Vec<Verdict> {
    let ctx = super::variable_context("alert", alert_value(alert));
    set.playbooks
        .iter()
        .map(|pb| explain_one(pb, alert, &ctx))
        .collect()
}

fn verdict(pb: &Playbook, verdict: &'static str, because: String) -> Verdict {
    Verdict {
        playbook: pb.name.clone(),
        verdict,
        because,
        failed: None,
        saw: vec![],
    }
}

fn explain_one(pb: &Playbook, alert: &Alert, ctx: &cel::Context<'static, 'static>) -> Verdict {
    if !pb.enabled {
        return verdict(pb, "disabled", "the playbook is disabled".into());
    }
    if !pb.sources.is_empty() && !pb.sources.contains(&alert.source) {
        return verdict(
            pb,
            "not_matched",
            format!(
                "on.sources is {:?}; the alert came from {:?}",
                pb.sources, alert.source
            ),
        );
    }
    if let Some(s) = pb.status
        && s != alert.status
    {
        return verdict(
            pb,
            "not_matched",
            format!(
                "on.status is {}; the alert is {}",
                s.as_str(),
                alert.status.as_str()
            ),
        );
    }
    let Some(when) = &pb.when else {
        return verdict(
            pb,
            "matched",
            "no on.when: every alert of its sources and status".into(),
        );
    };
    match when.eval(ctx) {
        Ok(cel::Value::Bool(true)) => {
            verdict(pb, "matched", format!("on.when is true: {}", when.display))
        }
        Ok(cel::Value::Bool(false)) => {
            let (failed, saw) = first_false_part(when, ctx);
            let shown: Vec<String> = saw.iter().map(|(k, v)| format!("{k} = {v}")).collect();
            Verdict {
                playbook: pb.name.clone(),
                verdict: "not_matched",
                because: if shown.is_empty() {
                    format!("{failed} is false")
                } else {
                    format!("{failed} is false: saw {}", shown.join(", "))
                },
                failed: Some(failed),
                saw,
            }
        }
        Ok(other) => verdict(
            pb,
            "error",
            format!("on.when gave {other:?}, not true or false"),
        ),
        Err(e) => verdict(pb, "error", format!("on.when failed: {e}")),
    }
}

/// The first conjunct (top-level `&&`) of `when` that is not true, and the `alert.…` values it
/// reads; the whole expression when it has no conjuncts.
fn first_false_part(
    when: &CelExpr,
    ctx: &cel::Context<'static, 'static>,
) -> (String, Vec<(String, serde_json::Value)>) {
    let parts = conjuncts(&when.display);
    let failed = parts
        .iter()
        .find(|p| {
            !matches!(
                cel::Program::compile(p)
                    .ok()
                    .and_then(|prog| prog.execute(ctx).ok()),
                Some(cel::Value::Bool(true))
            )
        })
        .cloned()
        .unwrap_or_else(|| when.display.clone());
    let mut saw = vec![];
    for path in alert_paths(&failed) {
        if saw.iter().any(|(p, _)| p == &path) {
            continue;
        }
        if let Some(v) = cel::Program::compile(&path)
            .ok()
            .and_then(|prog| prog.execute(ctx).ok())
            .map(|v| to_json(&v))
        {
            saw.push((path, v));
        }
    }
    (failed, saw)
}

/// A CEL value as JSON, to show what an expression saw.
fn to_json(v: &cel::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        cel::Value::Null => J::Null,
        cel::Value::Bool(b) => J::Bool(*b),
        cel::Value::Int(i) => J::from(*i),
        cel::Value::UInt(u) => J::from(*u),
        cel::Value::Float(f) => J::from(*f),
        cel::Value::String(s) => J::String(s.to_string()),
        cel::Value::List(items) => J::Array(items.iter().map(to_json).collect()),
        cel::Value::Map(m) => J::Object(
            m.map
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        cel::objects::Key::String(s) => s.to_string(),
                        cel::objects::Key::Int(i) => i.to_string(),
                        cel::objects::Key::Uint(u) => u.to_string(),
                        cel::objects::Key::Bool(b) => b.to_string(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        other => J::String(format!("{other:?}")),
    }
}

/// Splits at the top-level `&&`s (outside brackets and quotes).
fn conjuncts(expr: &str) -> Vec<String> {
    let (mut parts, mut depth, mut quote, mut start) = (vec![], 0i32, None, 0);
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i] as char;
        match quote {
            Some(_) if c == '\\' => i += 1,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '\'' | '"' => quote = Some(c),
                '(' | '[' | '{' => depth += 1,
                ')' | ']' | '}' => depth -= 1,
                '&' if depth == 0 && bytes.get(i + 1) == Some(&b'&') => {
                    parts.push(expr[start..i].trim().to_owned());
                    start = i + 2;
                    i += 1;
                }
                _ => {}
            },
        }
        i += 1;
    }
    parts.push(expr[start..].trim().to_owned());
    parts.retain(|p| !p.is_empty());
    // One conjunct wrapped in parentheses explains nothing more than the whole.
    parts
}

/// The `alert.a.b` / `alert.labels['k']` paths an expression reads, in order.
fn alert_paths(expr: &str) -> Vec<String> {
    let mut out = vec![];
    let mut rest = expr;
    while let Some(at) = rest.find("alert.") {
        let before_ok = at == 0
            || !rest[..at]
                .chars()
                .last()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.');
        let tail = &rest[at..];
        let mut end = 0;
        let chars: Vec<char> = tail.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c.is_alphanumeric() || c == '_' || c == '.' {
                i += 1;
            } else if c == '[' {
                // An index with a quoted key: alert.labels['k'].
                match tail[i..].find(']') {
                    Some(close) if tail[i + 1..].starts_with(['\'', '"']) => i += close + 1,
                    _ => break,
                }
            } else {
                break;
            }
            end = i;
        }
        let mut path: String = tail[..end].trim_end_matches('.').to_owned();
        // A method call (`alert.title.contains(…)`) reads the value before it.
        if tail[end..].starts_with('(')
            && let Some(dot) = path.rfind('.')
        {
            path.truncate(dot);
        }
        if before_ok && path.len() > "alert.".len() {
            out.push(path);
        }
        rest = &rest[at + end.max(6)..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conjuncts_split_only_at_the_top_level() {
        assert_eq!(
            conjuncts(
                "alert.severity == 'high' && (a || b && c) && alert.title.contains('x && y')"
            ),
            [
                "alert.severity == 'high'",
                "(a || b && c)",
                "alert.title.contains('x && y')"
            ]
        );
        assert_eq!(conjuncts("a"), ["a"]);
    }

    #[test]
    fn paths_are_found_with_their_indexes_and_without_method_names() {
        assert_eq!(
            alert_paths(
                "alert.labels['rule'] == 'x' && alert.title.contains('y') && size(alert.subjects) > 1"
            ),
            ["alert.labels['rule']", "alert.title", "alert.subjects"]
        );
        assert_eq!(alert_paths("myalert.x == 1"), Vec::<String>::new());
    }
}

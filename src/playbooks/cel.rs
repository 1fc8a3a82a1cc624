//! CEL expressions in playbooks: compiled once at load, checked against the alert's fields so
//! that a typo (`alert.subjetcs`) is a load error rather than a condition that is silently false.

use cel::common::ast::{EntryExpr, Expr};

use cel::{Context, IdedExpr, Program, Value};

/// The fields of `alert` that expressions may read.
pub const ALERT_FIELDS: &[&str] = &[
    "id",
    "source",
    "format",
    "received_at",
    "fingerprint",
    "status",
    "title",
    "severity",
    "occurred_at",
    "subjects",
    "source_ip",
    "labels",
    "windows",
    "raw",
];
const SUBJECT_FIELDS: &[&str] = &["email", "user_id", "name"];

pub struct CelExpr {
    pub source: String,
    /// The source on one line, for skip reasons.
    pub display: String,
    program: Program,
    /// Terms of a top-level `&&` that can be checked without the interpreter: when one fails,
    /// the whole condition is false (or would error), so evaluation can stop early.
    guards: Vec<Guard>,
}

/// A conjunct of the condition that Rust can check directly on the alert.
#[derive(Debug, Clone, PartialEq)]
enum Guard {
    /// `alert.labels.K == 'V'`, `alert.labels.K in ['V', 'W']`
    LabelIn(String, Vec<String>),
    /// `alert.F == 'V'`, `alert.F in ['V', 'W']` for a string field F (source, title, status,
    /// severity)
    FieldIn(&'static str, Vec<String>),
}

impl std::fmt::Debug for CelExpr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CelExpr({:?})", self.source)
    }
}

impl CelExpr {
    pub fn compile(source: &str) -> Result<Self, String> {
        let program = Program::compile(source).map_err(|e| {
            format!(
                "CEL does not compile: {}",
                e.to_string().lines().next().unwrap_or_default()
            )
        })?;
        let mut problems = vec![];
        check(program.expression(), &mut vec![], &mut problems);
        let refs = program.references();
        for v in refs.variables() {
            if v != "alert" && !is_bound_somewhere(program.expression(), v) {
                problems.push(format!("unknown variable {v:?} (expressions see `alert`)"));
            }
        }
        if let Some(p) = problems.into_iter().next() {
            return Err(p);
        }
        let mut guards = vec![];
        collect_guards(program.expression(), &mut guards);
        Ok(Self {
            source: source.into(),
            display: source.split_whitespace().collect::<Vec<_>>().join(" "),
            program,
            guards,
        })
    }

    pub fn eval(&self, ctx: &Context) -> Result<Value, String> {
        self.program.execute(ctx).map_err(|e| e.to_string())
    }
}

impl CelExpr {
    /// False when a guard already rules the alert out (the condition cannot be true).
    pub fn may_match(&self, alert: &crate::alerts::Alert) -> bool {
        self.guards.iter().all(|g| match g {
            Guard::LabelIn(k, list) => alert.labels.get(k).is_some_and(|x| list.contains(x)),
            Guard::FieldIn(f, list) => {
                string_field(alert, f).is_some_and(|x| list.iter().any(|l| l == x))
            }
        })
    }
}

/// The string fields guards compare, as CEL sees them.
const STRING_FIELDS: [&str; 4] = ["source", "title", "status", "severity"];

fn string_field<'a>(alert: &'a crate::alerts::Alert, field: &str) -> Option<&'a str> {
    match field {
        "source" => Some(&alert.source),
        "title" => Some(&alert.title),
        "status" => Some(alert.status.as_str()),
        "severity" => Some(alert.severity.as_str()),
        _ => None,
    }
}

fn string_literal(e: &IdedExpr) -> Option<String> {
    match &e.expr {
        Expr::Literal(cel::common::ast::LiteralValue::String(s)) => Some(s.inner().to_owned()),
        _ => None,
    }
}

/// `alert.F` → F
fn alert_field(e: &IdedExpr) -> Option<&str> {
    match &e.expr {
        Expr::Select(s)
            if matches!(&s.operand.expr, Expr::Ident(id) if id == "alert") && !s.test =>
        {
            Some(&s.field)
        }
        _ => None,
    }
}

/// `alert.labels.K` → K
fn label_key(e: &IdedExpr) -> Option<&str> {
    match &e.expr {
        Expr::Select(s) if alert_field(&s.operand) == Some("labels") && !s.test => Some(&s.field),
        _ => None,
    }
}

/// `alert.labels.K` or a string field of the alert, compared with `values`.
fn guard_on(operand: &IdedExpr, values: Vec<String>) -> Option<Guard> {
    if let Some(k) = label_key(operand) {
        return Some(Guard::LabelIn(k.to_owned(), values));
    }
    let field = alert_field(operand)?;
    let field = STRING_FIELDS.iter().find(|n| **n == field)?;
    Some(Guard::FieldIn(field, values))
}

fn collect_guards(e: &IdedExpr, out: &mut Vec<Guard>) {
    let Expr::Call(c) = &e.expr else { return };
    match c.func_name.as_str() {
        "_&&_" => c.args.iter().for_each(|a| collect_guards(a, out)),
        "_==_" if c.args.len() == 2 => {
            let (a, b) = (&c.args[0], &c.args[1]);
            for (x, y) in [(a, b), (b, a)] {
                if let Some(guard) = string_literal(y).and_then(|v| guard_on(x, vec![v])) {
                    out.push(guard);
                    return;
                }
            }
        }
        "@in" if c.args.len() == 2 => {
            if let Expr::List(l) = &c.args[1].expr {
                let values: Option<Vec<String>> = l.elements.iter().map(string_literal).collect();
                if let Some(guard) = values.and_then(|v| guard_on(&c.args[0], v)) {
                    out.push(guard);
                }
            }
        }
        _ => {}
    }
}

pub use crate::expr::variable_context;

fn is_bound_somewhere(e: &IdedExpr, name: &str) -> bool {
    match &e.expr {
        Expr::Comprehension(c) => {
            c.iter_var == name
                || c.iter_var2.as_deref() == Some(name)
                || c.accu_var == name
                || [
                    &c.iter_range,
                    &c.accu_init,
                    &c.loop_cond,
                    &c.loop_step,
                    &c.result,
                ]
                .iter()
                .any(|x| is_bound_somewhere(x, name))
        }
        Expr::Call(c) => {
            c.target
                .as_deref()
                .is_some_and(|t| is_bound_somewhere(t, name))
                || c.args.iter().any(|a| is_bound_somewhere(a, name))
        }
        Expr::Select(s) => is_bound_somewhere(&s.operand, name),
        Expr::List(l) => l.elements.iter().any(|x| is_bound_somewhere(x, name)),
        Expr::Map(m) => m.entries.iter().any(|en| match &en.expr {
            EntryExpr::MapEntry(me) => {
                is_bound_somewhere(&me.key, name) || is_bound_somewhere(&me.value, name)
            }
            EntryExpr::StructField(sf) => is_bound_somewhere(&sf.value, name),
        }),
        _ => false,
    }
}

/// Walks the expression; `subject_vars` are comprehension variables known to range over
/// `alert.subjects`.
fn check(e: &IdedExpr, subject_vars: &mut Vec<String>, problems: &mut Vec<String>) {
    match &e.expr {
        Expr::Select(s) => {
            match &s.operand.expr {
                Expr::Ident(id) if id == "alert" && !ALERT_FIELDS.contains(&s.field.as_str()) => {
                    problems.push(format!(
                        "alert has no field {:?} (fields: {})",
                        s.field,
                        ALERT_FIELDS.join(", ")
                    ));
                }
                Expr::Ident(id)
                    if subject_vars.contains(id) && !SUBJECT_FIELDS.contains(&s.field.as_str()) =>
                {
                    problems.push(format!(
                        "a subject has no field {:?} (fields: {})",
                        s.field,
                        SUBJECT_FIELDS.join(", ")
                    ));
                }
                Expr::Call(c)
                    if c.func_name == "_[_]"
                        && is_alert_subjects(c.args.first())
                        && !SUBJECT_FIELDS.contains(&s.field.as_str()) =>
                {
                    problems.push(format!(
                        "a subject has no field {:?} (fields: {})",
                        s.field,
                        SUBJECT_FIELDS.join(", ")
                    ));
                }
                _ => {}
            }
            check(&s.operand, subject_vars, problems);
        }
        Expr::Call(c) => {
            if let Some(t) = &c.target {
                check(t, subject_vars, problems);
            }
            for a in &c.args {
                check(a, subject_vars, problems);
            }
        }
        Expr::Comprehension(c) => {
            check(&c.iter_range, subject_vars, problems);
            let over_subjects = is_alert_subjects(Some(&c.iter_range));
            if over_subjects {
                subject_vars.push(c.iter_var.clone());
            }
            for x in [&c.accu_init, &c.loop_cond, &c.loop_step, &c.result] {
                check(x, subject_vars, problems);
            }
            if over_subjects {
                subject_vars.pop();
            }
        }
        Expr::List(l) => l
            .elements
            .iter()
            .for_each(|x| check(x, subject_vars, problems)),
        Expr::Map(m) => m.entries.iter().for_each(|en| match &en.expr {
            EntryExpr::MapEntry(me) => {
                check(&me.key, subject_vars, problems);
                check(&me.value, subject_vars, problems);
            }
            EntryExpr::StructField(sf) => check(&sf.value, subject_vars, problems),
        }),
        _ => {}
    }
}

fn is_alert_subjects(e: Option<&IdedExpr>) -> bool {
    matches!(e.map(|e| &e.expr), Some(Expr::Select(s))
        if s.field == "subjects" && matches!(&s.operand.expr, Expr::Ident(id) if id == "alert"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_are_taken_from_the_top_level_conjunction_only() {
        let e = CelExpr::compile("alert.severity in ['high'] && alert.labels.detection == 'x' && (alert.source == 'a' || alert.title == 'b')").unwrap();
        assert_eq!(
            e.guards,
            vec![
                Guard::FieldIn("severity", vec!["high".into()]),
                Guard::LabelIn("detection".into(), vec!["x".into()])
            ]
        );
        let e =
            CelExpr::compile("alert.labels.detection == 'x' || alert.severity in ['low']").unwrap();
        assert!(e.guards.is_empty(), "a disjunction guards nothing");
    }

    #[test]
    fn typos_in_field_names_are_load_errors() {
        assert!(CelExpr::compile("alert.severity == 'high'").is_ok());
        let e = CelExpr::compile("size(alert.subjetcs) > 0").unwrap_err();
        assert!(e.contains("subjetcs"), "{e}");
        let e = CelExpr::compile("alert.subjects.exists(s, s.emial == 'x')").unwrap_err();
        assert!(e.contains("emial"), "{e}");
        let e = CelExpr::compile("alert.subjects[0].mail").unwrap_err();
        assert!(e.contains("mail"), "{e}");
        assert!(CelExpr::compile("alert.subjects.map(s, s.email)").is_ok());
        let e = CelExpr::compile("alrt.title == 'x'").unwrap_err();
        assert!(e.contains("alrt"), "{e}");
        assert!(CelExpr::compile("alert.title ==").is_err());
    }
}

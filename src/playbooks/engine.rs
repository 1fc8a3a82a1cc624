//! Evaluation: an alert and the live playbooks in, a plan out. No I/O.

use std::time::Duration;

use serde::Serialize;

use super::schema::{ActionKind, Mode, Playbook, PlaybookSet};
use crate::alerts::Alert;
use crate::domain::UserRef;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PlannedAction {
    pub playbook: String,
    pub kind: ActionKind,
    pub target: UserRef,
    pub mode: Mode,
    #[serde(with = "secs")]
    pub delay: Duration,
    pub reason: String,
}

mod secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
}

/// Why a playbook (or one of its targets) did not lead to an action.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Skip {
    pub playbook: String,
    /// `no_match`, `condition_error`, `target_error`, `no_target`, `protected`, `disabled`.
    pub kind: String,
    pub target: Option<String>,
    pub reason: String,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Plan {
    pub matched: Vec<String>,
    pub actions: Vec<PlannedAction>,
    pub skipped: Vec<Skip>,
}

/// The alert as CEL sees it: the canonical alert's JSON.
pub fn alert_value(alert: &Alert) -> cel::Value {
    let json = serde_json::to_value(alert).expect("alerts serialise");
    cel::to_value(json).expect("JSON converts to CEL")
}

pub fn evaluate(set: &PlaybookSet, alert: &Alert) -> Plan {
    let value = alert_value(alert);
    let mut plan = Plan::default();
    for pb in &set.playbooks {
        evaluate_one(pb, alert, &value, &mut plan);
    }
    // Two playbooks that would act on the same user the same way become one action.
    let mut seen = std::collections::HashSet::new();
    plan.actions
        .retain(|a| seen.insert((a.kind, a.target.clone(), a.delay, a.mode)));
    plan
}

fn skip(plan: &mut Plan, pb: &Playbook, kind: &str, target: Option<String>, reason: String) {
    plan.skipped.push(Skip {
        playbook: pb.name.clone(),
        kind: kind.into(),
        target,
        reason,
    });
}

fn evaluate_one(pb: &Playbook, alert: &Alert, value: &cel::Value, plan: &mut Plan) {
    if !pb.enabled {
        return skip(plan, pb, "disabled", None, "playbook is disabled".into());
    }
    if !pb.sources.is_empty() && !pb.sources.iter().any(|s| s == &alert.source) {
        return skip(
            plan,
            pb,
            "no_match",
            None,
            format!("source {} not in on.sources", alert.source),
        );
    }
    if pb.status.is_some_and(|s| s != alert.status) {
        return skip(
            plan,
            pb,
            "no_match",
            None,
            format!("status is {}", alert.status.as_str()),
        );
    }
    if let Some(when) = &pb.when {
        match when.eval(value) {
            Ok(cel::Value::Bool(true)) => {}
            Ok(cel::Value::Bool(false)) => {
                return skip(
                    plan,
                    pb,
                    "no_match",
                    None,
                    format!("on.when is false: {}", when.source),
                );
            }
            Ok(other) => {
                return skip(
                    plan,
                    pb,
                    "condition_error",
                    None,
                    format!("on.when gave {other:?}, not a bool"),
                );
            }
            Err(e) => {
                return skip(
                    plan,
                    pb,
                    "condition_error",
                    None,
                    format!("on.when failed: {e}"),
                );
            }
        }
    }
    let targets = match targets(pb, alert, value) {
        Ok(t) => t,
        Err(e) => return skip(plan, pb, "target_error", None, e),
    };
    if targets.is_empty() {
        return skip(
            plan,
            pb,
            "no_target",
            None,
            "the alert names no user".into(),
        );
    }
    plan.matched.push(pb.name.clone());
    for target in targets {
        let (id, email) = match &target {
            UserRef::Id(id) => (Some(id.as_str()), None),
            UserRef::Email(e) => (None, Some(e)),
        };
        if let Some(p) = pb.protected.iter().find(|p| p.covers(id, email)) {
            skip(
                plan,
                pb,
                "protected",
                Some(target.to_string()),
                format!("protected by guard {p:?}"),
            );
            continue;
        }
        for step in &pb.steps {
            plan.actions.push(PlannedAction {
                playbook: pb.name.clone(),
                kind: step.kind,
                target: target.clone(),
                mode: pb.mode,
                delay: step.after.unwrap_or_default(),
                reason: format!("playbook {} matched alert {:?}", pb.name, alert.title),
            });
        }
    }
}

/// The users a playbook acts on: its `target` expression (a string or list of strings), or by
/// default every subject of the alert.
fn targets(pb: &Playbook, alert: &Alert, value: &cel::Value) -> Result<Vec<UserRef>, String> {
    let Some(expr) = &pb.target else {
        return Ok(alert.subjects.iter().filter_map(|s| s.user_ref()).collect());
    };
    let parse = |v: &cel::Value| -> Result<Option<UserRef>, String> {
        match v {
            cel::Value::String(s) => UserRef::parse(s)
                .map(Some)
                .map_err(|e| format!("target: {e}")),
            cel::Value::Null => Ok(None),
            other => Err(format!("target gave {other:?}, not a string")),
        }
    };
    let mut out = vec![];
    match expr
        .eval(value)
        .map_err(|e| format!("target failed: {e}"))?
    {
        cel::Value::List(items) => {
            for i in items.iter() {
                out.extend(parse(i)?);
            }
        }
        other => out.extend(parse(&other)?),
    }
    out.dedup();
    Ok(out)
}

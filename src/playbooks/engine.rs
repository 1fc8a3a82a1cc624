//! Evaluation: an alert and the live playbooks in, a plan out. No I/O.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::schema::{
    ApprovalSpec, Limit, Mode, Playbook, PlaybookSet, RequireState, StepAction, secs,
};
use crate::alerts::Alert;
use crate::domain::UserRef;

/// One step of a chain, as it will be queued.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PlannedStep {
    #[serde(flatten)]
    pub action: StepAction,
    #[serde(with = "secs")]
    pub delay: Duration,
    pub approval: Option<ApprovalSpec>,
}

/// The ordered steps one playbook takes for one target user (or for the account).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PlannedChain {
    pub playbook: String,
    pub target: Option<UserRef>,
    pub mode: Mode,
    pub steps: Vec<PlannedStep>,
    pub reason: String,
    pub require_state: Option<RequireState>,
    pub limit: Option<Limit>,
    /// Other playbooks whose identical chain was merged into this one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged_from: Vec<String>,
}

/// Why a playbook (or one of its targets or steps) did not lead to an action.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Skip {
    pub playbook: std::sync::Arc<str>,
    /// `no_match`, `condition_error`, `target_error`, `no_target`, `protected`, `disabled`,
    /// `step_condition`.
    pub kind: String,
    pub target: Option<String>,
    pub reason: std::sync::Arc<str>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub matched: Vec<String>,
    pub chains: Vec<PlannedChain>,
    pub skipped: Vec<Skip>,
}

/// The alert as CEL sees it: the canonical alert's JSON.
/// The alert as CEL sees it, `raw` left as null.
struct AlertWithoutRaw<'a>(&'a Alert);

impl Serialize for AlertWithoutRaw<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let a = self.0;
        let mut m = s.serialize_map(Some(14))?;
        m.serialize_entry("id", &a.id)?;
        m.serialize_entry("source", &a.source)?;
        m.serialize_entry("format", &a.format)?;
        m.serialize_entry("received_at", &a.received_at)?;
        m.serialize_entry("fingerprint", &a.fingerprint)?;
        m.serialize_entry("status", &a.status)?;
        m.serialize_entry("title", &a.title)?;
        m.serialize_entry("severity", &a.severity)?;
        m.serialize_entry("occurred_at", &a.occurred_at)?;
        m.serialize_entry("subjects", &a.subjects)?;
        m.serialize_entry("source_ip", &a.source_ip)?;
        m.serialize_entry("labels", &a.labels)?;
        m.serialize_entry("windows", &a.windows)?;
        m.serialize_entry("raw", &serde_json::Value::Null)?;
        m.end()
    }
}

pub fn alert_value(alert: &Alert) -> cel::Value {
    cel::to_value(alert).expect("alerts convert to CEL")
}

pub fn evaluate(set: &PlaybookSet, alert: &Alert) -> Plan {
    let value = AlertContext {
        alert,
        reads_raw: set.playbooks.iter().any(|p| p.reads_raw),
        built: std::cell::OnceCell::new(),
    };
    let mut plan = Plan::default();
    for pb in set.playbooks.iter().filter(|p| p.mode != Mode::Shadow) {
        evaluate_one(pb, alert, &value, &mut plan);
    }
    // Two playbooks that would act on the same user the same way become one chain.
    let mut merged: Vec<PlannedChain> = Vec::with_capacity(plan.chains.len());
    for chain in plan.chains.drain(..) {
        match merged
            .iter_mut()
            .find(|c| c.target == chain.target && c.steps == chain.steps && c.mode == chain.mode)
        {
            Some(existing) => existing.merged_from.push(chain.playbook),
            None => merged.push(chain),
        }
    }
    plan.chains = merged;
    plan
}

/// A shadow playbook's would-be verdict on an alert, beside the live one it shadows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShadowVerdict {
    pub shadow: String,
    pub shadows: String,
    pub shadow_matched: bool,
    pub live_matched: bool,
    /// The users the shadow would have acted on, and the steps.
    pub would: Vec<PlannedChain>,
}

/// Every shadow playbook's verdict on `alert`, given the live plan. Pure; acts on nothing.
pub fn evaluate_shadows(set: &PlaybookSet, alert: &Alert, live: &Plan) -> Vec<ShadowVerdict> {
    let shadows: Vec<&Playbook> = set
        .playbooks
        .iter()
        .map(|p| p.as_ref())
        .filter(|p| p.mode == Mode::Shadow)
        .collect();
    if shadows.is_empty() {
        return vec![];
    }
    let value = AlertContext {
        alert,
        reads_raw: shadows.iter().any(|p| p.reads_raw),
        built: std::cell::OnceCell::new(),
    };
    shadows
        .into_iter()
        .map(|pb| {
            let mut plan = Plan::default();
            evaluate_one(pb, alert, &value, &mut plan);
            let shadows = pb.shadows.clone().unwrap_or_default();
            ShadowVerdict {
                shadow: pb.name.clone(),
                live_matched: live.matched.contains(&shadows),
                shadows,
                shadow_matched: plan.matched.contains(&pb.name),
                would: plan.chains,
            }
        })
        .collect()
}

fn skip(
    plan: &mut Plan,
    pb: &Playbook,
    kind: &str,
    target: Option<String>,
    reason: impl Into<std::sync::Arc<str>>,
) {
    plan.skipped.push(Skip {
        playbook: pb.shared_name.clone(),
        kind: kind.into(),
        target,
        reason: reason.into(),
    });
}

/// The alert as CEL sees it, built on first use: an alert that every playbook's sources,
/// status or guards already rule out never pays for the conversion.
struct AlertContext<'a> {
    alert: &'a Alert,
    /// The raw payload is the costliest part to convert; most playbooks never read it.
    reads_raw: bool,
    built: std::cell::OnceCell<cel::Context<'static, 'static>>,
}

impl AlertContext<'_> {
    fn get(&self) -> &cel::Context<'static, 'static> {
        self.built.get_or_init(|| {
            let value = if self.reads_raw {
                alert_value(self.alert)
            } else {
                cel::to_value(AlertWithoutRaw(self.alert)).expect("alerts convert to CEL")
            };
            super::cel::variable_context("alert", value)
        })
    }
}

fn evaluate_one(pb: &Playbook, alert: &Alert, value: &AlertContext<'_>, plan: &mut Plan) {
    if !pb.enabled {
        return skip(plan, pb, "disabled", None, "playbook is disabled");
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
        if !when.may_match(alert) {
            return skip(plan, pb, "no_match", None, pb.when_false.clone());
        }
        match when.eval(value.get()) {
            Ok(cel::Value::Bool(true)) => {}
            Ok(cel::Value::Bool(false)) => {
                return skip(
                    plan,
                    pb,
                    "no_match",
                    None,
                    format!(
                        "on.when is false: {}",
                        when.source.split_whitespace().collect::<Vec<_>>().join(" ")
                    ),
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
    let mut steps = vec![];
    for step in &pb.steps {
        if let Some(w) = &step.when {
            match w.eval(value.get()) {
                Ok(cel::Value::Bool(true)) => {}
                Ok(cel::Value::Bool(false)) => {
                    skip(
                        plan,
                        pb,
                        "step_condition",
                        None,
                        format!("step {} skipped: when is false", step.action.kind()),
                    );
                    continue;
                }
                other => {
                    // A step whose condition cannot be evaluated is not run: fail closed.
                    skip(
                        plan,
                        pb,
                        "condition_error",
                        None,
                        format!("step {} when failed: {other:?}", step.action.kind()),
                    );
                    continue;
                }
            }
        }
        steps.push(PlannedStep {
            action: step.action.clone(),
            delay: step.after,
            approval: step.approval.clone(),
        });
    }
    if steps.is_empty() {
        return;
    }
    let needs_target = steps.iter().any(|s| s.action.needs_target());
    let targets = match targets(pb, alert, value) {
        Ok(t) => t,
        Err(e) => return skip(plan, pb, "target_error", None, e),
    };
    if targets.is_empty() && needs_target {
        return skip(plan, pb, "no_target", None, "the alert names no user");
    }
    plan.matched.push(pb.name.clone());
    let reason = format!("playbook {} matched alert {:?}", pb.name, alert.title);
    let chain = |target: Option<UserRef>| PlannedChain {
        playbook: pb.name.clone(),
        target,
        mode: pb.mode,
        steps: steps.clone(),
        reason: reason.clone(),
        require_state: pb.require_state,
        limit: pb.limit,
        merged_from: vec![],
    };
    if targets.is_empty() {
        plan.chains.push(chain(None));
        return;
    }
    for target in targets {
        let (id, email) = match &target {
            UserRef::Id(id) => (Some(id.as_str()), None),
            UserRef::Email(e) => (None, Some(e)),
        };
        if let Some(p) = pb.protected.iter().find(|p| p.covers(id, email)) {
            // Protected means never changed, not never mentioned: the steps that change
            // nothing (notify, look-ups) still run.
            let kept: Vec<PlannedStep> = steps
                .iter()
                .filter(|s| !s.action.changes_state())
                .cloned()
                .collect();
            skip(
                plan,
                pb,
                "protected",
                Some(target.to_string()),
                if kept.is_empty() {
                    format!("protected by guard {p}")
                } else {
                    format!(
                        "protected by guard {p}: its state-changing steps are dropped, the others run"
                    )
                },
            );
            if !kept.is_empty() {
                let mut c = chain(Some(target));
                c.steps = kept;
                plan.chains.push(c);
            }
            continue;
        }
        plan.chains.push(chain(Some(target)));
    }
}

/// The users a playbook acts on: its `target` expression (a string or list of strings), or by
/// default every subject of the alert.
fn targets(pb: &Playbook, alert: &Alert, value: &AlertContext<'_>) -> Result<Vec<UserRef>, String> {
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
        .eval(value.get())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::{FieldMappings, SourceFormat};
    use crate::playbooks::{LoadContext, load_str};

    #[test]
    fn guards_never_disagree_with_cel() {
        let alerts = [
            alert(r#"{"title":"act now","severity":"high","user":{"email":"a@example.com"}}"#),
            alert(r#"{"title":"Act now","severity":"low","status":"resolved"}"#),
            alert(r#"{"title":"x","severity":"sev1","labels":{"k":"v"}}"#),
        ];
        let exprs = [
            "alert.title == 'act now'",
            "'act now' == alert.title",
            "alert.severity == 'high'",
            "alert.severity == 'critical'",
            "alert.status == 'resolved'",
            "alert.status == 'firing' && alert.title == 'x'",
            "alert.source == 'generic' && alert.severity in ['low', 'critical']",
            "alert.labels.k == 'v'",
            "'k' in alert.labels && alert.labels.k in ['v', 'w']",
            "alert.title in ['x', 'act now']",
        ];
        for text in exprs {
            let expr = super::super::cel::CelExpr::compile(text).unwrap();
            for a in &alerts {
                let context = AlertContext {
                    alert: a,
                    reads_raw: false,
                    built: Default::default(),
                };
                let cel_says = matches!(expr.eval(context.get()), Ok(cel::Value::Bool(true)));
                if !expr.may_match(a) {
                    assert!(
                        !cel_says,
                        "{text}: a guard ruled out what CEL matches ({a:?})"
                    );
                }
            }
        }
    }

    fn alert(body: &str) -> Alert {
        crate::alerts::parse(
            SourceFormat::Generic,
            &FieldMappings::default(),
            None,
            body.as_bytes(),
        )
        .unwrap()
        .remove(0)
        .into_alert(
            "alr_t".into(),
            "generic",
            SourceFormat::Generic,
            "2026-01-01T00:00:00Z".into(),
        )
    }

    fn set(whens: &[&str]) -> PlaybookSet {
        PlaybookSet {
            playbooks: whens
                .iter()
                .enumerate()
                .map(|(i, w)| {
                    std::sync::Arc::new(
                        load_str(
                            "t.yaml",
                            &format!(
                                "name: p{i}\non:\n  when: \"{w}\"\nsteps:\n  - suspend: {{}}\n"
                            ),
                            &LoadContext::default(),
                        )
                        .unwrap(),
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn playbooks_that_read_raw_see_it_and_others_do_not_need_it() {
        let a = alert(
            r#"{"title": "t", "severity": "high", "user": {"email": "a@example.com"}, "vendor": {"rule": "x"}}"#,
        );
        let with_raw = set(&["alert.raw.vendor.rule == 'x'"]);
        assert!(with_raw.playbooks[0].reads_raw);
        assert_eq!(evaluate(&with_raw, &a).matched, vec!["p0".to_string()]);
        let without = set(&["alert.severity == 'high'"]);
        assert!(!without.playbooks[0].reads_raw);
        assert_eq!(evaluate(&without, &a).matched, vec!["p0".to_string()]);
    }

    #[test]
    fn identical_chains_from_two_playbooks_merge() {
        let a = alert(r#"{"title": "t", "severity": "high", "user": {"email": "a@example.com"}}"#);
        let plan = evaluate(
            &set(&["alert.severity == 'high'", "alert.title == 't'"]),
            &a,
        );
        assert_eq!(plan.matched.len(), 2);
        assert_eq!(plan.chains.len(), 1);
        assert_eq!(plan.chains[0].merged_from, vec!["p1".to_string()]);
    }
}

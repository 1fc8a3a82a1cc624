//! Offline playbook testing: run an alert file through intake normalisation and the engine,
//! with a JSON list of users standing in for the directory. No network. Test cases in
//! `playbooks/tests/*.yaml` pair an alert with the plan expected from it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Mode, Plan, PlaybookSet, RequireState, StepAction, evaluate};
use crate::alerts::{self, Alert};
use crate::alerts::{FieldMappings, SourceFormat};
use crate::domain::{Email, UserRef, new_id, now_rfc3339};
use crate::users_api::{User, UserState};

/// Reads an alert file the way intake would, as coming from `source` of `format`.
pub fn read_alert(path: &Path, format: SourceFormat, source: &str) -> Result<Vec<Alert>, String> {
    let body = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let parsed = alerts::parse(format, &FieldMappings::default(), None, &body)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(parsed
        .into_iter()
        .map(|p| p.into_alert(new_id("alr"), source, format, now_rfc3339()))
        .collect())
}

/// A JSON list of Events API items (any feed), read as the poller reads them.
pub fn read_history(path: &Path) -> Result<Vec<crate::events_api::EventFacts>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let items: Vec<serde_json::Value> =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    items
        .iter()
        .map(|i| {
            crate::events_api::Feed::of_item(i)
                .map(|f| crate::events_api::EventFacts::read(f, i))
                .ok_or_else(|| format!("{}: an item of no known feed", path.display()))
        })
        .collect()
}

/// Each event alert's windows over `history`, as the events source computes them.
pub fn with_windows(
    set: &PlaybookSet,
    alerts: &mut [Alert],
    history: &[crate::events_api::EventFacts],
) {
    let specs = set.windows();
    for a in alerts {
        if let Some(feed) = crate::events_api::Feed::of_item(&a.raw) {
            let event = crate::events_api::EventFacts::read(feed, &a.raw);
            a.windows = crate::events_api::windows::compute_all(&specs, history, &event);
        }
    }
}

pub fn read_users(path: &Path) -> Result<Vec<User>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// What a step would do, given the directory.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub playbook: String,
    pub kind: String,
    pub target: Option<String>,
    pub user_id: Option<String>,
    pub delay_secs: u64,
    pub approval: Option<String>,
    pub outcome: String,
}

/// The plan for an alert and, with a directory, what each step would do.
pub fn explain(set: &PlaybookSet, alert: &Alert, users: Option<&[User]>) -> (Plan, Vec<Verdict>) {
    let plan = evaluate(set, alert);
    let mut verdicts = vec![];
    for chain in &plan.chains {
        let user = match (&chain.target, users) {
            (Some(UserRef::Id(id)), Some(us)) => us.iter().find(|u| &u.id == id).cloned(),
            (Some(UserRef::Email(e)), Some(us)) => us
                .iter()
                .find(|u| Email::parse(&u.email).ok().as_ref() == Some(e))
                .cloned(),
            _ => None,
        };
        let pb = set.playbooks.iter().find(|p| p.name == chain.playbook);
        for step in &chain.steps {
            let kind = step.action.kind().to_owned();
            let outcome = if chain.target.is_some()
                && users.is_some()
                && user.is_none()
                && step.action.needs_target()
            {
                "fail: no such user in the directory".to_owned()
            } else if let (Some(u), Some(pb)) = (&user, pb)
                && step.action.changes_state()
                && let Some(p) = pb
                    .protected
                    .iter()
                    .find(|p| p.covers(Some(u.id.as_str()), Email::parse(&u.email).ok().as_ref()))
            {
                format!("skip: protected ({p})")
            } else if let (Some(u), true) = (&user, step.action.changes_state()) {
                let wanted = if step.action == StepAction::Suspend {
                    UserState::Suspended
                } else {
                    UserState::Active
                };
                let required = chain.require_state.map(|r| match r {
                    RequireState::Active => UserState::Active,
                    RequireState::Suspended => UserState::Suspended,
                });
                if u.state == wanted {
                    format!("skip: already {}", wanted.as_str().to_lowercase())
                } else if required.is_some_and(|r| r != u.state) {
                    format!(
                        "skip: require_state {:?} but user is {}",
                        chain.require_state,
                        u.state.as_str()
                    )
                } else if chain.mode == Mode::DryRun {
                    format!("dry_run: would {kind}")
                } else {
                    format!("would {kind}")
                }
            } else if chain.mode == Mode::DryRun && step.action.changes_state() {
                format!("dry_run: would {kind}")
            } else {
                format!("would {kind}")
            };
            verdicts.push(Verdict {
                playbook: chain.playbook.clone(),
                kind,
                target: chain.target.as_ref().map(|t| t.to_string()),
                user_id: user.as_ref().map(|u| u.id.to_string()),
                delay_secs: step.delay.as_secs(),
                approval: step
                    .approval
                    .as_ref()
                    .map(|a| format!("{} of [{}]", a.quorum, a.approvers.join(", "))),
                outcome,
            });
        }
    }
    (plan, verdicts)
}

pub fn table(verdicts: &[Verdict], plan: &Plan) -> String {
    let mut out = format!(
        "{:<28} {:<11} {:<32} {:<8} {:<16} OUTCOME\n",
        "PLAYBOOK", "STEP", "TARGET", "DELAY", "APPROVAL"
    );
    for v in verdicts {
        out += &format!(
            "{:<28} {:<11} {:<32} {:<8} {:<16} {}\n",
            v.playbook,
            v.kind,
            v.target.as_deref().unwrap_or("-"),
            format!("{}s", v.delay_secs),
            v.approval.as_deref().unwrap_or("-"),
            v.outcome
        );
    }
    if verdicts.is_empty() {
        out += "(no actions)\n";
    }
    for s in &plan.skipped {
        out += &format!("skipped {}: {} {}\n", s.playbook, s.kind, s.reason);
    }
    out
}

/// A test case file: an alert and the plan expected from it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    pub name: String,
    /// Alert file, relative to the test case file.
    pub alert: PathBuf,
    #[serde(default)]
    pub format: Option<String>,
    /// The source name playbooks see (default: the format's name).
    #[serde(default)]
    pub source: Option<String>,
    /// JSON list of users standing in for the directory, relative to the test case file.
    #[serde(default)]
    pub users: Option<PathBuf>,
    /// With `format: 1password_events`: a JSON list of the user's earlier Events API items,
    /// over which the playbooks' `on.windows` are computed for the alert's event.
    #[serde(default)]
    pub history: Option<PathBuf>,
    pub expect: Expectation,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    pub actions: Vec<ExpectedAction>,
}

#[derive(Debug, Deserialize, Serialize, PartialEq, Clone)]
#[serde(deny_unknown_fields)]
pub struct ExpectedAction {
    pub playbook: String,
    pub kind: String,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub approval: bool,
    #[serde(default)]
    pub delay: Option<String>,
    /// With `users`: the expected outcome prefix (`would suspend`, `skip: protected`, …).
    #[serde(default)]
    pub outcome: Option<String>,
}

#[derive(Debug)]
pub struct CaseResult {
    pub file: PathBuf,
    pub name: String,
    pub failure: Option<String>,
}

/// Runs every `*.yaml` case in `dir`.
pub fn run_cases(set: &PlaybookSet, dir: &Path) -> Result<Vec<CaseResult>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    Ok(files.into_iter().map(|f| run_case(set, &f)).collect())
}

fn run_case(set: &PlaybookSet, file: &Path) -> CaseResult {
    let fail = |name: String, m: String| CaseResult {
        file: file.to_owned(),
        name,
        failure: Some(m),
    };
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => return fail(String::new(), e.to_string()),
    };
    let case: TestCase = match serde_saphyr::from_str(&text) {
        Ok(c) => c,
        Err(e) => {
            return fail(
                String::new(),
                e.to_string().lines().next().unwrap_or_default().to_owned(),
            );
        }
    };
    let base = file.parent().unwrap_or(Path::new("."));
    let format: SourceFormat = match case.format.as_deref().unwrap_or("generic").parse() {
        Ok(f) => f,
        Err(e) => return fail(case.name, e),
    };
    let source = case
        .source
        .clone()
        .unwrap_or_else(|| format.as_str().to_owned());
    let mut alerts = match read_alert(&base.join(&case.alert), format, &source) {
        Ok(a) => a,
        Err(e) => return fail(case.name, e),
    };
    if format == SourceFormat::OnePasswordEvents {
        let history = match &case.history {
            Some(h) => match read_history(&base.join(h)) {
                Ok(h) => h,
                Err(e) => return fail(case.name, e),
            },
            None => vec![],
        };
        with_windows(set, &mut alerts, &history);
    }
    let users = match &case.users {
        Some(u) => match read_users(&base.join(u)) {
            Ok(u) => Some(u),
            Err(e) => return fail(case.name, e),
        },
        None => None,
    };
    let mut got = vec![];
    for alert in &alerts {
        let (_, verdicts) = explain(set, alert, users.as_deref());
        got.extend(verdicts);
    }
    let got_cmp: Vec<ExpectedAction> = got
        .iter()
        .zip(
            case.expect
                .actions
                .iter()
                .map(Some)
                .chain(std::iter::repeat(None)),
        )
        .map(|(v, want)| ExpectedAction {
            playbook: v.playbook.clone(),
            kind: v.kind.clone(),
            target: v.target.clone(),
            approval: v.approval.is_some(),
            delay: want
                .and_then(|w| w.delay.as_ref())
                .map(|_| format!("{}s", v.delay_secs)),
            outcome: want.and_then(|w| w.outcome.as_ref()).map(|o| {
                if v.outcome.starts_with(o.as_str()) {
                    o.clone()
                } else {
                    v.outcome.clone()
                }
            }),
        })
        .collect();
    let want: Vec<ExpectedAction> = case
        .expect
        .actions
        .iter()
        .map(|w| ExpectedAction {
            delay: w.delay.as_ref().map(|d| {
                super::parse_duration(d)
                    .map(|d| format!("{}s", d.as_secs()))
                    .unwrap_or_else(|e| e)
            }),
            ..w.clone()
        })
        .collect();
    if got_cmp == want {
        CaseResult {
            file: file.to_owned(),
            name: case.name,
            failure: None,
        }
    } else {
        let show = |v: &[ExpectedAction]| serde_json::to_string_pretty(v).unwrap_or_default();
        fail(
            case.name,
            format!(
                "expected actions:\n{}\ngot:\n{}",
                show(&want),
                show(&got_cmp)
            ),
        )
    }
}

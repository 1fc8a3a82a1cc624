use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;
use sha2::{Digest, Sha256};

use super::cel::CelExpr;
use crate::alerts::AlertStatus;
use crate::domain::{Email, UserRef};
use crate::events_api::{WindowKind, WindowSpec};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Enforce,
    /// Plan and audit; call nothing that changes state.
    DryRun,
    /// Evaluated beside the live playbooks on every alert; its would-be verdict is recorded
    /// and compared with the playbook it `shadows`, and it never acts.
    Shadow,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enforce => "enforce",
            Self::DryRun => "dry_run",
            Self::Shadow => "shadow",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Enforce, Self::DryRun, Self::Shadow]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

// ---- the file format (what engineers write) ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlaybookFile {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    mode: Mode,
    /// With `mode: shadow`: the live playbook this one would replace.
    #[serde(default)]
    shadows: Option<String>,
    on: OnFile,
    #[serde(default)]
    target: Option<Spanned<String>>,
    #[serde(default)]
    guards: GuardsFile,
    steps: Vec<Spanned<StepFile>>,
}
fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OnFile {
    #[serde(default)]
    sources: Vec<String>,
    #[serde(default)]
    status: Option<StatusFile>,
    #[serde(default)]
    when: Option<Spanned<String>>,
    /// Facts over the user's recent 1Password events, read as `alert.windows.<name>` (the
    /// `1password_events` source computes them for each event).
    #[serde(default)]
    windows: std::collections::BTreeMap<String, Spanned<WindowFile>>,
}

/// One window: exactly one of `count`, `distinct_countries`, `failures_before_success`
/// (each a filter: field → value or list of values), and `within`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowFile {
    #[serde(default)]
    count: Option<std::collections::BTreeMap<String, OneOrMany>>,
    #[serde(default)]
    distinct_countries: Option<std::collections::BTreeMap<String, OneOrMany>>,
    #[serde(default)]
    failures_before_success: Option<std::collections::BTreeMap<String, OneOrMany>>,
    within: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum StatusFile {
    Firing,
    Resolved,
    Any,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct GuardsFile {
    #[serde(default)]
    protected: Vec<Spanned<String>>,
    #[serde(default)]
    require_state: Option<RequireState>,
    #[serde(default)]
    limit: Option<LimitFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitFile {
    max: u32,
    per: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum StepFile {
    Suspend(ActionStepFile),
    Reactivate(ActionStepFile),
    GetUser(ActionStepFile),
    ListUsers(ListUsersFile),
    Notify(NotifyFile),
    Approval(ApprovalFile),
    /// Delays the next step, e.g. `wait: 10m`.
    Wait(Spanned<String>),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ActionStepFile {
    /// Delay before the step runs, e.g. `4h`, `30m`, `90s`.
    #[serde(default)]
    after: Option<Spanned<String>>,
    #[serde(default)]
    approval: Option<ApprovalFile>,
    #[serde(default)]
    when: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ListUsersFile {
    #[serde(default)]
    state: Option<crate::users_api::StateFilter>,
    #[serde(default)]
    when: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NotifyFile {
    to: Spanned<String>,
    message: Spanned<String>,
    #[serde(default)]
    after: Option<Spanned<String>>,
    #[serde(default)]
    when: Option<Spanned<String>>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct ApprovalFile {
    /// Roles whose members may approve (from the approver token's roles claim).
    approvers: Vec<String>,
    #[serde(default = "one")]
    quorum: u32,
    #[serde(default)]
    timeout: Option<Spanned<String>>,
    #[serde(default)]
    on_timeout: OnTimeout,
    #[serde(default)]
    escalate: Option<EscalateFile>,
    /// Cancel the pending approval when the source resolves the alert (default true).
    #[serde(default = "yes")]
    cancel_on_resolve: bool,
}
fn one() -> u32 {
    1
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct EscalateFile {
    after: Spanned<String>,
    to: Spanned<String>,
}

// ---- the compiled form (what the engine runs) ----

/// A protected-user pattern: an id, an e-mail, or `*@domain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtectedPattern {
    User(UserRef),
    Domain(String),
}

impl std::fmt::Display for ProtectedPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::User(u) => write!(f, "{u}"),
            Self::Domain(d) => write!(f, "*@{d}"),
        }
    }
}

impl ProtectedPattern {
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Some(domain) = s.trim().strip_prefix("*@") {
            if domain.is_empty() || domain.contains('@') {
                return Err(format!(
                    "{s:?} is not a domain pattern (write *@example.com)"
                ));
            }
            return Ok(Self::Domain(domain.to_ascii_lowercase()));
        }
        UserRef::parse(s)
            .map(Self::User)
            .map_err(|e| format!("protected entry: {e}"))
    }

    /// Whether this pattern covers a user known by id and/or e-mail.
    pub fn covers(&self, id: Option<&str>, email: Option<&Email>) -> bool {
        match self {
            Self::User(UserRef::Id(p)) => id == Some(p.as_str()),
            Self::User(UserRef::Email(p)) => email == Some(p),
            Self::Domain(d) => email.is_some_and(|e| e.domain() == d),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RequireState {
    Active,
    Suspended,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnTimeout {
    #[default]
    Deny,
    Approve,
}

/// A blast-radius limit: at most `max` state changes per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limit {
    pub max: u32,
    #[serde(with = "secs")]
    pub per: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Escalation {
    #[serde(with = "secs")]
    pub after: Duration,
    pub to: String,
}

/// Who must approve a step before it runs, and what happens if nobody does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalSpec {
    pub approvers: Vec<String>,
    pub quorum: u32,
    #[serde(with = "secs")]
    pub timeout: Duration,
    pub on_timeout: OnTimeout,
    pub escalate: Option<Escalation>,
    pub cancel_on_resolve: bool,
}

pub(crate) mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

/// What a step does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StepAction {
    Suspend,
    Reactivate,
    GetUser,
    ListUsers {
        state: Option<crate::users_api::StateFilter>,
    },
    Notify {
        to: String,
        message: String,
    },
}

impl StepAction {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Suspend => "suspend",
            Self::Reactivate => "reactivate",
            Self::GetUser => "get_user",
            Self::ListUsers { .. } => "list_users",
            Self::Notify { .. } => "notify",
        }
    }
    /// Whether the step changes a user's state (guards and limits apply).
    pub fn changes_state(&self) -> bool {
        matches!(self, Self::Suspend | Self::Reactivate)
    }
    /// Whether the step acts on the target user (rather than the account).
    pub fn needs_target(&self) -> bool {
        !matches!(self, Self::ListUsers { .. } | Self::Notify { .. })
    }
}

#[derive(Debug)]
pub struct Step {
    pub action: StepAction,
    /// Delay after the previous step finished (or after planning, for the first).
    pub after: Duration,
    pub approval: Option<ApprovalSpec>,
    pub when: Option<CelExpr>,
}

#[derive(Debug)]
pub struct Playbook {
    pub name: String,
    /// The name and the "on.when is false" reason, shared by every skip record.
    pub shared_name: std::sync::Arc<str>,
    pub when_false: std::sync::Arc<str>,
    pub description: String,
    pub enabled: bool,
    pub mode: Mode,
    /// `mode: shadow`: the live playbook it is compared with.
    pub shadows: Option<String>,
    pub sources: Vec<String>,
    /// `None` matches both firing and resolved alerts.
    pub status: Option<AlertStatus>,
    pub when: Option<CelExpr>,
    pub target: Option<CelExpr>,
    pub protected: Vec<ProtectedPattern>,
    pub require_state: Option<RequireState>,
    pub limit: Option<Limit>,
    pub steps: Vec<Step>,
    pub file: PathBuf,
    /// SHA-256 of the file's bytes, to tell which version was live.
    pub hash: String,
    /// Whether an expression may read `alert.raw` (if none does, evaluation leaves it out).
    pub reads_raw: bool,
    /// `on.windows`: what the events source computes into `alert.windows`.
    pub windows: std::collections::BTreeMap<String, WindowSpec>,
}

impl Playbook {
    /// The roles any of this playbook's approval steps names.
    pub fn approver_roles(&self) -> impl Iterator<Item = &String> {
        self.steps
            .iter()
            .filter_map(|s| s.approval.as_ref())
            .flat_map(|a| a.approvers.iter())
    }
}

/// What loading checks playbooks against: names that live in the service's config.
#[derive(Debug, Default, Clone)]
pub struct LoadContext {
    pub notify_targets: std::collections::BTreeSet<String>,
}

/// The playbooks live at one moment; swapped whole on reload.
#[derive(Debug, Default)]
pub struct PlaybookSet {
    pub playbooks: Vec<Arc<Playbook>>,
}

impl PlaybookSet {
    /// Every window the playbooks declare (one meaning per name: `load_dir` checks).
    pub fn windows(&self) -> std::collections::BTreeMap<String, WindowSpec> {
        self.playbooks
            .iter()
            .flat_map(|p| p.windows.iter().map(|(k, v)| (k.clone(), v.clone())))
            .collect()
    }
}

/// `file:line:column: message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoadError {
    pub file: String,
    pub line: u64,
    pub column: u64,
    pub message: String,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 30s, 15m, 4h, 2d)"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => return Err(format!("{s:?} is not a duration (e.g. 30s, 15m, 4h, 2d)")),
    };
    Ok(Duration::from_secs(secs))
}

/// serde-saphyr prefixes `error: line N column M: `; we print the position our own way.
fn strip_position(message: &str) -> &str {
    let m = message.strip_prefix("error: ").unwrap_or(message);
    if m.starts_with("line ")
        && let Some(i) = m.find(": ")
    {
        return &m[i + 2..];
    }
    m
}

/// Parses one playbook file's text. `file` is used in error positions.
pub fn load_str(file: &str, text: &str, ctx: &LoadContext) -> Result<Playbook, Vec<LoadError>> {
    let err_at = |loc: &serde_saphyr::Location, message: String| LoadError {
        file: file.into(),
        line: loc.line(),
        column: loc.column(),
        message,
    };
    let parsed: PlaybookFile = serde_saphyr::from_str(text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((1, 1));
        let message = e.to_string();
        // The crate's message may carry its own position and snippet; keep the first line.
        let message = strip_position(message.lines().next().unwrap_or_default()).to_owned();
        vec![LoadError {
            file: file.into(),
            line,
            column,
            message,
        }]
    })?;
    let mut errors = vec![];
    let cel = |s: &Spanned<String>, what: &str, errors: &mut Vec<LoadError>| match CelExpr::compile(
        &s.value,
    ) {
        Ok(c) => Some(c),
        Err(m) => {
            errors.push(err_at(&s.referenced, format!("{what}: {m}")));
            None
        }
    };
    let duration =
        |s: &Spanned<String>, what: &str, errors: &mut Vec<LoadError>| match parse_duration(
            &s.value,
        ) {
            Ok(d) => d,
            Err(m) => {
                errors.push(err_at(&s.referenced, format!("{what}: {m}")));
                Duration::ZERO
            }
        };
    let when = parsed
        .on
        .when
        .as_ref()
        .and_then(|w| cel(w, "on.when", &mut errors));
    let target = parsed
        .target
        .as_ref()
        .and_then(|t| cel(t, "target", &mut errors));
    let windows = load_windows(&parsed, &err_at, &mut errors);
    let mut protected = vec![];
    for p in &parsed.guards.protected {
        match ProtectedPattern::parse(&p.value) {
            Ok(pp) => protected.push(pp),
            Err(m) => errors.push(err_at(&p.referenced, format!("guards.protected: {m}"))),
        }
    }
    let limit = parsed.guards.limit.as_ref().map(|l| Limit {
        max: l.max,
        per: duration(&l.per, "guards.limit.per", &mut errors),
    });
    let approval_spec =
        |a: &ApprovalFile, errors: &mut Vec<LoadError>, at: &serde_saphyr::Location| {
            if a.approvers.is_empty() {
                errors.push(err_at(
                    at,
                    "approval: approvers must name at least one role".into(),
                ));
            }
            if a.quorum == 0 {
                errors.push(err_at(at, "approval: quorum must be at least 1".into()));
            }
            let escalate = a.escalate.as_ref().map(|e| {
                if !ctx.notify_targets.contains(&e.to.value) {
                    errors.push(err_at(
                        &e.to.referenced,
                        format!(
                            "approval.escalate.to: unknown notify target {:?}",
                            e.to.value
                        ),
                    ));
                }
                Escalation {
                    after: duration(&e.after, "approval.escalate.after", errors),
                    to: e.to.value.clone(),
                }
            });
            ApprovalSpec {
                approvers: a.approvers.clone(),
                quorum: a.quorum,
                timeout: a
                    .timeout
                    .as_ref()
                    .map(|t| duration(t, "approval.timeout", errors))
                    .unwrap_or(Duration::from_secs(3600)),
                on_timeout: a.on_timeout,
                escalate,
                cancel_on_resolve: a.cancel_on_resolve,
            }
        };
    let mut steps: Vec<Step> = vec![];
    // A standalone `approval` or `wait` applies to the step after it.
    let mut pending_gate: Option<(ApprovalSpec, serde_saphyr::Location)> = None;
    let mut pending_wait = Duration::ZERO;
    for spanned in &parsed.steps {
        let at = &spanned.referenced;
        let (action, opts_after, opts_approval, opts_when) = match &spanned.value {
            StepFile::Approval(a) => {
                if pending_gate.is_some() {
                    errors.push(err_at(at, "two approval steps in a row".into()));
                }
                pending_gate = Some((approval_spec(a, &mut errors, at), *at));
                continue;
            }
            StepFile::Wait(w) => {
                pending_wait += duration(w, "wait", &mut errors);
                continue;
            }
            StepFile::Suspend(o) => (StepAction::Suspend, &o.after, o.approval.clone(), &o.when),
            StepFile::Reactivate(o) => (
                StepAction::Reactivate,
                &o.after,
                o.approval.clone(),
                &o.when,
            ),
            StepFile::GetUser(o) => (StepAction::GetUser, &o.after, o.approval.clone(), &o.when),
            StepFile::ListUsers(o) => (
                StepAction::ListUsers { state: o.state },
                &None,
                None,
                &o.when,
            ),
            StepFile::Notify(n) => {
                if !ctx.notify_targets.contains(&n.to.value) {
                    errors.push(err_at(
                        &n.to.referenced,
                        format!(
                            "notify.to: unknown notify target {:?} (configured: {})",
                            n.to.value,
                            ctx.notify_targets
                                .iter()
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
                if let Err(m) = super::template::check(&n.message.value) {
                    errors.push(err_at(
                        &n.message.referenced,
                        format!("notify.message: {m}"),
                    ));
                }
                (
                    StepAction::Notify {
                        to: n.to.value.clone(),
                        message: n.message.value.clone(),
                    },
                    &n.after,
                    None,
                    &n.when,
                )
            }
        };
        let mut approval = opts_approval.map(|a| approval_spec(&a, &mut errors, at));
        if let Some((gate, _)) = pending_gate.take() {
            if approval.is_some() {
                errors.push(err_at(
                    at,
                    "this step has its own approval after an approval step".into(),
                ));
            }
            approval = Some(gate);
        }
        let after = pending_wait
            + opts_after
                .as_ref()
                .map(|a| duration(a, "after", &mut errors))
                .unwrap_or_default();
        pending_wait = Duration::ZERO;
        let when = opts_when.as_ref().and_then(|w| cel(w, "when", &mut errors));
        steps.push(Step {
            action,
            after,
            approval,
            when,
        });
    }
    if let Some((_, at)) = pending_gate {
        errors.push(err_at(
            &at,
            "an approval step must be followed by the step it gates".into(),
        ));
    }
    if parsed.name.trim().is_empty() {
        errors.push(LoadError {
            file: file.into(),
            line: 1,
            column: 1,
            message: "name must not be empty".into(),
        });
    }
    if (parsed.mode == Mode::Shadow) != parsed.shadows.is_some() {
        errors.push(LoadError {
            file: file.into(),
            line: 1,
            column: 1,
            message: "mode: shadow and shadows: <the live playbook it would replace> go together"
                .into(),
        });
    }
    if steps.is_empty() {
        errors.push(LoadError {
            file: file.into(),
            line: 1,
            column: 1,
            message: "steps: a playbook needs at least one step".into(),
        });
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Playbook {
        shared_name: parsed.name.as_str().into(),
        when_false: format!(
            "on.when is false: {}",
            when.as_ref()
                .map(|w| w.display.as_str())
                .unwrap_or_default()
        )
        .into(),
        name: parsed.name,
        description: parsed.description,
        enabled: parsed.enabled,
        mode: parsed.mode,
        shadows: parsed.shadows,
        sources: parsed.on.sources,
        status: match parsed.on.status.unwrap_or(StatusFile::Firing) {
            StatusFile::Firing => Some(AlertStatus::Firing),
            StatusFile::Resolved => Some(AlertStatus::Resolved),
            StatusFile::Any => None,
        },
        when,
        target,
        protected,
        require_state: parsed.guards.require_state,
        limit,
        steps,
        file: PathBuf::from(file),
        hash: hex::encode(Sha256::digest(text.as_bytes())),
        // Conservative: any expression text mentioning `raw` keeps the raw payload in.
        windows,
        reads_raw: [&parsed.on.when, &parsed.target]
            .iter()
            .any(|e| e.as_ref().is_some_and(|x| x.value.contains("raw")))
            || parsed.steps.iter().any(|s| step_mentions_raw(&s.value)),
    })
}

/// `on.windows`, checked: one kind each, a valid duration and filter, and every
/// `alert.windows.<name>` an expression reads declared here (a typo is a load error, not a
/// condition that is never true).
fn load_windows(
    parsed: &PlaybookFile,
    err_at: &dyn Fn(&serde_saphyr::Location, String) -> LoadError,
    errors: &mut Vec<LoadError>,
) -> std::collections::BTreeMap<String, WindowSpec> {
    let mut out = std::collections::BTreeMap::new();
    for (name, w) in &parsed.on.windows {
        let at = &w.referenced;
        let what = format!("on.windows.{name}");
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            errors.push(err_at(
                at,
                format!("{what}: a window's name is lower-case letters, digits and _"),
            ));
            continue;
        }
        let kinds = [
            (WindowKind::Count, &w.value.count),
            (WindowKind::DistinctCountries, &w.value.distinct_countries),
            (
                WindowKind::FailuresBeforeSuccess,
                &w.value.failures_before_success,
            ),
        ];
        let given: Vec<_> = kinds.into_iter().filter(|(_, f)| f.is_some()).collect();
        let [(kind, Some(filter))] = given.as_slice() else {
            errors.push(err_at(
                at,
                format!(
                    "{what}: give exactly one of count, distinct_countries, failures_before_success"
                ),
            ));
            continue;
        };
        let within = match parse_duration(&w.value.within) {
            Ok(d) => d,
            Err(m) => {
                errors.push(err_at(at, format!("{what}.within: {m}")));
                continue;
            }
        };
        let filter = filter
            .iter()
            .map(|(k, v)| {
                let values = match v {
                    OneOrMany::One(s) => vec![s.clone()],
                    OneOrMany::Many(l) => l.clone(),
                };
                (k.clone(), values)
            })
            .collect();
        match WindowSpec::new(kind.clone(), within, filter) {
            Ok(spec) => {
                out.insert(name.clone(), spec);
            }
            Err(m) => errors.push(err_at(at, format!("{what}: {m}"))),
        }
    }
    let mut exprs: Vec<&Spanned<String>> = [&parsed.on.when, &parsed.target]
        .into_iter()
        .flatten()
        .collect();
    for s in &parsed.steps {
        let when = match &s.value {
            StepFile::Suspend(o) | StepFile::Reactivate(o) | StepFile::GetUser(o) => &o.when,
            StepFile::ListUsers(o) => &o.when,
            StepFile::Notify(n) => &n.when,
            StepFile::Approval(_) | StepFile::Wait(_) => &None,
        };
        exprs.extend(when.iter());
    }
    for e in exprs {
        for name in window_references(&e.value) {
            if !parsed.on.windows.contains_key(name) {
                errors.push(err_at(
                    &e.referenced,
                    format!("alert.windows.{name} is not declared under on.windows"),
                ));
            }
        }
    }
    out
}

/// The names `alert.windows.<name>` an expression reads.
fn window_references(expr: &str) -> Vec<&str> {
    let mut names = vec![];
    let mut rest = expr;
    while let Some(i) = rest.find("alert.windows.") {
        let tail = &rest[i + "alert.windows.".len()..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(&tail[..end]);
        rest = &tail[end..];
    }
    names
}

fn step_mentions_raw(step: &StepFile) -> bool {
    let when = match step {
        StepFile::Suspend(o) | StepFile::Reactivate(o) | StepFile::GetUser(o) => &o.when,
        StepFile::ListUsers(o) => &o.when,
        StepFile::Notify(n) => &n.when,
        StepFile::Approval(_) | StepFile::Wait(_) => &None,
    };
    when.as_ref().is_some_and(|w| w.value.contains("raw"))
}

/// Loads every `*.yaml`/`*.yml` directly in `dir` (not `dir/tests/`). Any error fails the
/// whole load, so a half-valid folder never goes live.
pub fn load_dir(dir: &Path, ctx: &LoadContext) -> Result<PlaybookSet, Vec<LoadError>> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        vec![LoadError {
            file: dir.display().to_string(),
            line: 0,
            column: 0,
            message: format!("cannot read playbook folder: {e}"),
        }]
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    paths.sort();
    let mut errors = vec![];
    let mut playbooks: Vec<Arc<Playbook>> = vec![];
    for path in paths {
        let file = path.display().to_string();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                errors.push(LoadError {
                    file,
                    line: 0,
                    column: 0,
                    message: e.to_string(),
                });
                continue;
            }
        };
        match load_str(&file, &text, ctx) {
            Ok(p) => {
                let clash = playbooks.iter().find_map(|q| {
                    p.windows.iter().find_map(|(name, spec)| {
                        q.windows
                            .get(name)
                            .filter(|other| *other != spec)
                            .map(|_| (name.clone(), q.name.clone()))
                    })
                });
                if let Some((window, other)) = clash {
                    errors.push(LoadError {
                        file: file.clone(),
                        line: 1,
                        column: 1,
                        message: format!("on.windows.{window} is declared differently by playbook {other:?}: one name, one meaning (alerts carry one value per name)"),
                    });
                }
                if playbooks.iter().any(|q| q.name == p.name) {
                    errors.push(LoadError {
                        file,
                        line: 1,
                        column: 1,
                        message: format!("duplicate playbook name {:?}", p.name),
                    });
                } else {
                    playbooks.push(Arc::new(p));
                }
            }
            Err(mut es) => errors.append(&mut es),
        }
    }
    if errors.is_empty() {
        Ok(PlaybookSet { playbooks })
    } else {
        Err(errors)
    }
}

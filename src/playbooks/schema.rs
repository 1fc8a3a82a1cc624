use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;
use sha2::{Digest, Sha256};

use super::cel::CelExpr;
use crate::alerts::AlertStatus;
use crate::domain::{Email, UserRef};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Enforce,
    /// Plan and audit; call nothing that changes state.
    DryRun,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enforce => "enforce",
            Self::DryRun => "dry_run",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Suspend,
    Reactivate,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Suspend => "suspend",
            Self::Reactivate => "reactivate",
        }
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
    on: OnFile,
    #[serde(default)]
    target: Option<Spanned<String>>,
    #[serde(default)]
    guards: GuardsFile,
    steps: Vec<StepFile>,
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
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum StepFile {
    Suspend(StepOptions),
    Reactivate(StepOptions),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct StepOptions {
    /// Delay before the step runs, e.g. `4h`, `30m`, `90s`.
    #[serde(default)]
    after: Option<Spanned<String>>,
}

// ---- the compiled form (what the engine runs) ----

/// A protected-user pattern: an id, an e-mail, or `*@domain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtectedPattern {
    User(UserRef),
    Domain(String),
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

#[derive(Debug)]
pub struct Step {
    pub kind: ActionKind,
    pub after: Option<Duration>,
}

#[derive(Debug)]
pub struct Playbook {
    pub name: String,
    pub description: String,
    pub enabled: bool,
    pub mode: Mode,
    pub sources: Vec<String>,
    /// `None` matches both firing and resolved alerts.
    pub status: Option<AlertStatus>,
    pub when: Option<CelExpr>,
    pub target: Option<CelExpr>,
    pub protected: Vec<ProtectedPattern>,
    pub steps: Vec<Step>,
    pub file: PathBuf,
    /// SHA-256 of the file's bytes, to tell which version was live.
    pub hash: String,
}

/// The playbooks live at one moment; swapped whole on reload.
#[derive(Debug, Default)]
pub struct PlaybookSet {
    pub playbooks: Vec<Arc<Playbook>>,
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
pub fn load_str(file: &str, text: &str) -> Result<Playbook, Vec<LoadError>> {
    let err_at = |line: u64, column: u64, message: String| LoadError {
        file: file.into(),
        line,
        column,
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
        vec![err_at(line, column, message)]
    })?;
    let mut errors = vec![];
    let mut compile = |s: &Spanned<String>, what: &str| match CelExpr::compile(&s.value) {
        Ok(c) => Some(c),
        Err(m) => {
            errors.push(err_at(
                s.referenced.line(),
                s.referenced.column(),
                format!("{what}: {m}"),
            ));
            None
        }
    };
    let when = parsed.on.when.as_ref().and_then(|w| compile(w, "on.when"));
    let target = parsed.target.as_ref().and_then(|t| compile(t, "target"));
    let mut protected = vec![];
    for p in &parsed.guards.protected {
        match ProtectedPattern::parse(&p.value) {
            Ok(pp) => protected.push(pp),
            Err(m) => errors.push(err_at(
                p.referenced.line(),
                p.referenced.column(),
                format!("guards.protected: {m}"),
            )),
        }
    }
    let mut steps = vec![];
    for s in &parsed.steps {
        let (kind, opts) = match s {
            StepFile::Suspend(o) => (ActionKind::Suspend, o),
            StepFile::Reactivate(o) => (ActionKind::Reactivate, o),
        };
        let after = match &opts.after {
            None => None,
            Some(a) => match parse_duration(&a.value) {
                Ok(d) => Some(d),
                Err(m) => {
                    errors.push(err_at(
                        a.referenced.line(),
                        a.referenced.column(),
                        format!("after: {m}"),
                    ));
                    None
                }
            },
        };
        steps.push(Step { kind, after });
    }
    if parsed.name.trim().is_empty() {
        errors.push(err_at(1, 1, "name must not be empty".into()));
    }
    if steps.is_empty() {
        errors.push(err_at(
            1,
            1,
            "steps: a playbook needs at least one step".into(),
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Playbook {
        name: parsed.name,
        description: parsed.description,
        enabled: parsed.enabled,
        mode: parsed.mode,
        sources: parsed.on.sources,
        status: match parsed.on.status.unwrap_or(StatusFile::Firing) {
            StatusFile::Firing => Some(AlertStatus::Firing),
            StatusFile::Resolved => Some(AlertStatus::Resolved),
            StatusFile::Any => None,
        },
        when,
        target,
        protected,
        steps,
        file: PathBuf::from(file),
        hash: hex::encode(Sha256::digest(text.as_bytes())),
    })
}

/// Loads every `*.yaml`/`*.yml` directly in `dir` (not `dir/tests/`). Any error fails the
/// whole load, so a half-valid folder never goes live.
pub fn load_dir(dir: &Path) -> Result<PlaybookSet, Vec<LoadError>> {
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
        match load_str(&file, &text) {
            Ok(p) => {
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

//! Playbooks: YAML files that say which alerts lead to which actions on which users.
//!
//! Invariant: loading validates everything (unknown keys, CEL, targets) and reports
//! `file:line:column: message`; evaluation is pure (no I/O) and returns a [`Plan`].

mod cel;
mod engine;
mod schema;

pub use self::cel::{ALERT_FIELDS, CelExpr};
pub use engine::{Plan, PlannedAction, Skip, alert_value, evaluate};
pub use schema::{
    ActionKind, LoadError, Mode, Playbook, PlaybookSet, ProtectedPattern, Step, load_dir, load_str,
};

//! Playbooks: YAML files that say which alerts lead to which actions on which users.
//!
//! Invariant: loading validates everything (unknown keys, CEL, templates, notify targets) and
//! reports `file:line:column: message`; evaluation is pure (no I/O) and returns a [`Plan`].

mod cel;
mod engine;
mod explain;
mod schema;
pub mod template;
pub mod testing;

pub use self::cel::{ALERT_FIELDS, CelExpr, variable_context};
pub use engine::{
    Plan, PlannedChain, PlannedStep, ShadowVerdict, Skip, alert_value, evaluate, evaluate_shadows,
};
pub use explain::{Verdict, explain};
pub use schema::{
    ApprovalSpec, Escalation, Limit, LoadContext, LoadError, Mode, OnTimeout, Playbook,
    PlaybookSet, ProtectedPattern, RequireState, Step, StepAction, load_dir, load_str,
    parse_duration,
};

//! From stored alerts to executed actions: the planner turns each alert into queued actions,
//! the workers claim and run them against the Users API.
//!
//! Invariants: no state-changing call for a protected user or in dry-run; every outcome and
//! every API call is an audit record committed with the action's new state.

mod planner;
mod worker;

pub use planner::{plan_alert, plan_pending, run_planner};
pub use worker::{Outcome, run_workers, try_run_next};

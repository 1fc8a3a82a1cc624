//! From stored alerts to executed actions: the planner turns each alert into queued chains of
//! actions, the workers claim and run them against the Users API, the scheduler expires and
//! escalates approvals.
//!
//! Invariants: no state-changing call for a protected user, in dry-run, past a blast-radius
//! limit or without a required approval; every outcome and every API call is an audit record
//! committed with the action's new state.

pub mod approvals;
pub mod feeds;
pub mod intake;
pub mod loops;
pub mod manual;
mod planner;
mod scheduler;
pub mod suppressions;
mod worker;

pub use planner::{approval_request, decide, new_chain, plan_alert, plan_pending, run_planner};
pub use scheduler::{run_scheduler, tick};
pub use worker::{Outcome, run_workers, try_run_action, try_run_next};

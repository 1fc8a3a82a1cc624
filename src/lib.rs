//! lockout: SIEM alerts in, safe and audited 1Password account remediation out.
//! See ARCHITECTURE.md for the map.

pub mod actions;
pub mod alerts;
pub mod approvals;
pub mod audit;
pub mod config;
pub mod console;
pub mod context;
pub mod decisions;
pub mod domain;
pub mod events_api;
pub mod expr;
pub mod forward;
pub mod http;
pub mod metrics;
pub mod notify;
pub mod playbooks;
pub mod sandbox;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod users_api;

//! Integration tests: one binary, one module per feature. Each test starts the real app on a
//! random port against the fake Users API (also on a random port), with its own SQLite file.

mod actions;
mod alert_reads;
mod alertmanager_real;
mod approvals;
mod audit_ops;
mod browser;
mod cli;
mod console;
mod crash;
mod events;
mod fake_contract;
mod formats;
mod hardening;
mod helpers;
mod identity;
mod intake;
mod jwks;
mod oidc;
mod ops;
mod playbooks;
mod replicas;
mod store_contract;
mod suppressions;
mod throughput;
mod users_api;
mod walking_path;

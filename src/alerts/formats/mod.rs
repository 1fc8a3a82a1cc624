//! One parser per sender. Each reads its sender's documented shape and returns the alerts in it.

pub mod alertmanager;
pub mod datadog;
pub mod elastic;
pub mod generic;
pub mod onepassword;
pub mod panther;
pub mod sentinel;
pub mod splunk;
pub mod sumologic;

//! A faithful fake of the 1Password Users API and its OAuth endpoints, for tests and sandbox mode.
//!
//! It is a test double for a real contract, not a yes-machine: it enforces client
//! authentication, tokens (missing, expired, revoked), per-application permissions, the
//! `filter` and `max_page_size` rules, tamper-proof page tokens, 404s, and the documented
//! refusals (last owner, externally managed admin, SCIM-provisioned accounts). Errors are
//! `google.rpc.Status` bodies. It records every request and takes fault injection.

mod events;
mod server;
mod state;

pub use events::play as play_events;
pub use server::{RunningFake, start};
pub use state::{
    BasicDecoding, FakeClient, FakeConfig, FakeHandle, Keeper, Permission, RecordedRequest, Role,
    SeedUser, sample_users,
};

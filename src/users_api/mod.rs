//! The 1Password Users API client: OAuth 2.0 client credentials, retries, paging, directory cache.
//!
//! Invariant: this is the only module that talks to 1Password. Every HTTP exchange it makes,
//! token requests included, is reported to the caller's [`CallLog`] so it can be audited.

mod client;
mod directory;
mod error;
pub mod limit;
mod token;
mod types;

pub use client::{
    ApiCall, ApiVersion, CallLog, ClientAuth, ClientConfig, RetryPolicy, UsersApiClient,
};
pub use directory::Directory;
pub use error::UsersApiError;
pub use limit::{AdaptiveLimit, LimitSnapshot};
pub use types::{ListUsersResponse, RpcStatus, StateFilter, TokenResponse, User, UserState};

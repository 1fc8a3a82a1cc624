//! The 1Password Events API: a bearer-token client (introspection, the sign-in, item-usage and
//! audit-event feeds with reset and continuing cursors, retries on 429 and 5xx) and the
//! tolerant reading of what it returns into [`EventFacts`].
//!
//! Invariant: a response is never refused for what a newer API adds. Unknown fields and
//! unknown enum values (a new category, action or object type) are kept in the event and
//! listed in [`EventFacts::unknown`]; only a page that is not a page (no `items` array) fails.

mod client;
mod facts;

pub use client::{EventsClient, EventsConfig, EventsError, Introspection, Page, PageRequest};
pub use facts::{EventFacts, EventUser, Feed};
pub mod windows;
pub use windows::{WindowKind, WindowSpec};
mod setup;
pub use setup::{EventsSetup, FeedPolicy};
mod runtime;
pub use runtime::{EventsRuntime, FeedHealth};

//! Humans in the loop: approver authentication (JWT, HS256 or an IdP's JWKS) and the views of
//! pending approvals. The rules of a decision (quorum, four-eyes, decided once, binding) are
//! `store::apply_decision`, applied inside the store's transaction.

mod jwt;

pub use jwt::{AuthError, Identity, JwtVerifier, issue_hs256};

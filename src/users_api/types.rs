//! Wire types of the 1Password Users API, field for field as the contract names them.

use serde::{Deserialize, Serialize};

use crate::domain::UserId;

/// A user's state. A newer API may add states: an unknown one is kept as sent (`Other`),
/// shown as such, and never acted on (not safe: lockout cannot tell what it means).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UserState {
    StateUnspecified,
    Active,
    Suspended,
    Other(String),
}

impl UserState {
    pub fn as_str(&self) -> &str {
        match self {
            Self::StateUnspecified => "STATE_UNSPECIFIED",
            Self::Active => "ACTIVE",
            Self::Suspended => "SUSPENDED",
            Self::Other(s) => s,
        }
    }
    pub fn parse(s: &str) -> Self {
        match s {
            "STATE_UNSPECIFIED" => Self::StateUnspecified,
            "ACTIVE" => Self::Active,
            "SUSPENDED" => Self::Suspended,
            other => Self::Other(other.to_owned()),
        }
    }
    /// Whether lockout knows what this state means well enough to change it.
    pub fn is_known(&self) -> bool {
        matches!(self, Self::Active | Self::Suspended)
    }
}

impl Serialize for UserState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for UserState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(Self::parse(&s))
    }
}

/// The User object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub email: String,
    #[serde(default)]
    pub display_name: String,
    pub state: UserState,
    #[serde(default)]
    pub create_time: String,
    #[serde(default)]
    pub path: String,
    /// Fields a newer API sends that this version does not know: kept and shown, never an
    /// error.
    #[serde(flatten, default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub unknown: serde_json::Map<String, serde_json::Value>,
}

/// `GET …/users` response. The last page's token may be absent or `""`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListUsersResponse {
    #[serde(default)]
    pub results: Vec<User>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// The `filter` query parameter: exactly one of two documented expressions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateFilter {
    Active,
    Suspended,
}

impl StateFilter {
    pub fn expression(self) -> &'static str {
        match self {
            Self::Active => "user.isActive()",
            Self::Suspended => "user.isSuspended()",
        }
    }
    pub fn from_expression(s: &str) -> Option<Self> {
        match s {
            "user.isActive()" => Some(Self::Active),
            "user.isSuspended()" => Some(Self::Suspended),
            _ => None,
        }
    }
    pub fn matches(self, state: &UserState) -> bool {
        matches!(
            (self, state),
            (Self::Active, UserState::Active) | (Self::Suspended, UserState::Suspended)
        )
    }
}

impl std::str::FromStr for StateFilter {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "active" => Ok(Self::Active),
            "suspended" => Ok(Self::Suspended),
            other => Err(format!(
                "unknown state {other:?} (expected active or suspended)"
            )),
        }
    }
}

/// `google.rpc.Status`, the error body of the API.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RpcStatus {
    pub code: i32,
    pub message: String,
    #[serde(default)]
    pub details: Vec<serde_json::Value>,
}

/// OAuth 2.0 token response (RFC 6749 §5.1).
#[derive(Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    #[serde(default)]
    pub token_type: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

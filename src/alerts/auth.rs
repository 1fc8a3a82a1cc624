//! Per-source request authentication. Comparisons are constant-time over SHA-256 digests, so
//! neither content nor length of a secret leaks through timing.

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{ConfigError, SourceAuth};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AuthError {
    /// Deliberately vague: the client learns nothing about which part failed.
    #[error("authentication failed")]
    Failed { reason: &'static str },
}

pub enum SourceAuthenticator {
    Bearer { digests: Vec<[u8; 32]> },
    None,
}

impl std::fmt::Debug for SourceAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bearer { digests } => write!(f, "Bearer({} tokens, [REDACTED])", digests.len()),
            Self::None => write!(f, "None"),
        }
    }
}

fn digest(s: &[u8]) -> [u8; 32] {
    Sha256::digest(s).into()
}

impl SourceAuthenticator {
    pub fn from_config(auth: &SourceAuth) -> Result<Self, ConfigError> {
        Ok(match auth {
            SourceAuth::Bearer { .. } => Self::Bearer {
                digests: auth
                    .bearer_tokens()?
                    .iter()
                    .map(|t: &SecretString| digest(t.expose_secret().as_bytes()))
                    .collect(),
            },
            SourceAuth::None => Self::None,
        })
    }

    pub fn verify(&self, authorization: Option<&str>, _body: &[u8]) -> Result<(), AuthError> {
        match self {
            Self::None => Ok(()),
            Self::Bearer { digests } => {
                let presented = authorization
                    .and_then(|h| {
                        h.strip_prefix("Bearer ")
                            .or_else(|| h.strip_prefix("bearer "))
                    })
                    .ok_or(AuthError::Failed {
                        reason: "missing bearer token",
                    })?;
                let presented = digest(presented.trim().as_bytes());
                // Check every configured token (rotation) without stopping early.
                let ok = digests
                    .iter()
                    .fold(subtle::Choice::from(0), |acc, d| acc | d.ct_eq(&presented));
                if bool::from(ok) {
                    Ok(())
                } else {
                    Err(AuthError::Failed {
                        reason: "wrong bearer token",
                    })
                }
            }
        }
    }
}

//! Anchors for the audit chain outside the database. A hash chain proves that no record was
//! changed *within* it; it cannot show that its tail was cut off, rewritten with recomputed
//! hashes, or that an anchor row was inserted, because whoever can write the database can
//! recompute every hash. A checkpoint is the chain's head (seq, hash, time) signed with a key
//! the database never holds (HMAC-SHA256 over a versioned text), written to the log, to an
//! optional append-only file and with each forwarded batch. `lockout audit verify
//! --checkpoint` checks the chain against one; retention anchors are signed the same way.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::config::{AuditSettings, ConfigError, read_secret_file};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub seq: i64,
    pub hash: String,
    pub at: String,
    pub sig: String,
}

/// The checkpoint key. `Debug` never prints it.
#[derive(Clone)]
pub struct CheckpointKey(SecretString);

impl std::fmt::Debug for CheckpointKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CheckpointKey([REDACTED])")
    }
}

impl CheckpointKey {
    /// The checkpoint key, read from its file, if the settings configure checkpoints.
    pub fn from_settings(settings: &AuditSettings) -> Result<Option<Self>, ConfigError> {
        let Some(c) = &settings.checkpoint else {
            return Ok(None);
        };
        let secret = read_secret_file(&c.key_file)?;
        if secret.trim().len() < 16 {
            return Err(ConfigError::Invalid(
                "audit.checkpoint.key_file: the key must be at least 16 characters".into(),
            ));
        }
        Ok(Some(Self::new(SecretString::from(secret))))
    }
}

impl CheckpointKey {
    pub fn new(secret: SecretString) -> Self {
        Self(secret)
    }

    fn mac(&self, what: &str, seq: i64, hash: &str, at: &str) -> String {
        let mut m = Hmac::<Sha256>::new_from_slice(self.0.expose_secret().as_bytes())
            .expect("any key length");
        m.update(format!("lockout-{what}:v1:{seq}:{hash}:{at}").as_bytes());
        crate::domain::to_hex(&m.finalize().into_bytes())
    }

    pub fn checkpoint(&self, seq: i64, hash: &str, at: &str) -> Checkpoint {
        Checkpoint {
            seq,
            hash: hash.into(),
            at: at.into(),
            sig: self.mac("checkpoint", seq, hash, at),
        }
    }

    pub fn verify(&self, c: &Checkpoint) -> bool {
        let expected = self.mac("checkpoint", c.seq, &c.hash, &c.at);
        bool::from(expected.as_bytes().ct_eq(c.sig.as_bytes()))
    }

    /// The signature of a retention anchor (the last record a prune removed).
    pub fn sign_anchor(&self, seq: i64, hash: &str, pruned_at: &str) -> String {
        self.mac("anchor", seq, hash, pruned_at)
    }

    pub fn verify_anchor(&self, a: &super::AuditAnchor) -> bool {
        let expected = self.sign_anchor(a.seq, &a.hash, &a.pruned_at);
        a.signature
            .as_deref()
            .is_some_and(|s| bool::from(expected.as_bytes().ct_eq(s.as_bytes())))
    }
}

/// Checks the chain's records against a checkpoint: the record at its seq must exist and have
/// its hash. `head` is the chain's last (seq, hash); `at_seq` the hash stored at the
/// checkpoint's seq, if that record exists.
pub fn against(
    c: &Checkpoint,
    head: Option<(i64, &str)>,
    at_seq: Option<&str>,
) -> Result<(), String> {
    match (head, at_seq) {
        (None, _) => Err(format!(
            "the chain is empty, but a checkpoint records seq {} (truncated)",
            c.seq
        )),
        (Some((last, _)), _) if last < c.seq => Err(format!(
            "the chain ends at seq {last}, but a checkpoint of {} records seq {} (truncated)",
            c.at, c.seq
        )),
        (_, None) => Err(format!(
            "record {} is missing, but a checkpoint of {} records it",
            c.seq, c.at
        )),
        (_, Some(h)) if h != c.hash => Err(format!(
            "record {} has hash {h}, but a checkpoint of {} records {} (rewritten)",
            c.seq, c.at, c.hash
        )),
        _ => Ok(()),
    }
}

/// The newest checkpoint in a file of JSON lines (or one JSON object).
pub fn newest_in(text: &str) -> Result<Checkpoint, String> {
    let mut newest: Option<Checkpoint> = None;
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let c: Checkpoint = serde_json::from_str(line.trim())
            .map_err(|e| format!("line {}: not a checkpoint: {e}", i + 1))?;
        if newest.as_ref().is_none_or(|n| c.seq >= n.seq) {
            newest = Some(c);
        }
    }
    newest.ok_or_else(|| "no checkpoint in the file".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_verify_with_their_key_only_and_catch_truncation_and_rewrites() {
        let key = CheckpointKey::new(SecretString::from("k1"));
        let c = key.checkpoint(10, "abc", "2026-12-07T00:00:00.000000Z");
        assert!(key.verify(&c));
        assert!(!CheckpointKey::new(SecretString::from("k2")).verify(&c));
        let mut forged = c.clone();
        forged.seq = 5;
        assert!(!key.verify(&forged));
        assert!(against(&c, Some((12, "x")), Some("abc")).is_ok());
        assert!(
            against(&c, Some((9, "x")), None)
                .unwrap_err()
                .contains("truncated")
        );
        assert!(against(&c, None, None).unwrap_err().contains("truncated"));
        assert!(
            against(&c, Some((12, "x")), Some("abd"))
                .unwrap_err()
                .contains("rewritten")
        );
        assert!(!format!("{key:?}").contains("k1"));
        let text = format!(
            "{}\n{}\n",
            serde_json::to_string(&key.checkpoint(3, "a", "t")).unwrap(),
            serde_json::to_string(&c).unwrap()
        );
        assert_eq!(newest_in(&text).unwrap(), c);
    }
}

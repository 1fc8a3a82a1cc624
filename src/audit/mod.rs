//! The audit trail: append-only records of every decision and every Users API call, chained
//! by SHA-256 so that an edited, removed or reordered row is detected by `verify`.
//!
//! Invariant: the service never updates or deletes audit rows; the store only inserts them,
//! and computes each record's hash from the previous one inside the same write transaction.

pub mod checkpoint;
pub mod refusals;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A retention anchor: the last record a prune removed, from which the chain continues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditAnchor {
    pub seq: i64,
    pub hash: String,
    pub pruned_at: String,
    /// `CheckpointKey::sign_anchor`, when a checkpoint key was configured for the prune.
    pub signature: Option<String>,
}

/// What happened, before the store numbers and chains it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AuditEvent {
    pub kind: String,
    /// `system`, `playbook:<name>`, `approver:<sub>`, `operator:<name>`, `source:<name>`.
    pub actor: String,
    pub alert_id: Option<String>,
    pub action_id: Option<String>,
    pub playbook: Option<String>,
    /// The user concerned (1Password id or e-mail), when there is one.
    pub subject: Option<String>,
    pub data: serde_json::Value,
}

impl AuditEvent {
    pub fn new(kind: &str, actor: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            actor: actor.into(),
            alert_id: None,
            action_id: None,
            playbook: None,
            subject: None,
            data: serde_json::Value::Null,
        }
    }
    pub fn alert(mut self, id: &str) -> Self {
        self.alert_id = Some(id.into());
        self
    }
    pub fn action(mut self, id: &str) -> Self {
        self.action_id = Some(id.into());
        self
    }
    pub fn playbook(mut self, name: &str) -> Self {
        self.playbook = Some(name.into());
        self
    }
    pub fn subject(mut self, s: impl ToString) -> Self {
        self.subject = Some(s.to_string());
        self
    }
    pub fn data(mut self, data: serde_json::Value) -> Self {
        self.data = data;
        self
    }
}

/// A stored record: the event, its place in the chain, and the chain hashes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditRecord {
    pub seq: i64,
    pub id: String,
    pub at: String,
    #[serde(flatten)]
    pub event: AuditEvent,
    pub prev_hash: String,
    pub hash: String,
}

/// The hash of a record: SHA-256 over the previous hash and the record's canonical JSON
/// (serde_json without `preserve_order` writes object keys sorted, so it is canonical).
pub fn chain_hash(prev_hash: &str, seq: i64, id: &str, at: &str, event: &AuditEvent) -> String {
    hash_record(prev_hash, seq, id, at, &[&serialise(event)])
}

fn serialise(event: &AuditEvent) -> Vec<u8> {
    serde_json::to_vec(event).expect("audit events serialise")
}

/// SHA-256 over `prev_hash`, a newline and `{"seq":…,"id":…,"at":…,"event":…}` with the
/// event's JSON as given (in parts, hashed one after the other).
fn hash_record(prev_hash: &str, seq: i64, id: &str, at: &str, event_json: &[&[u8]]) -> String {
    let text = |s: &str| serde_json::to_string(s).expect("strings serialise");
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(b"\n");
    h.update(
        format!(
            "{{\"seq\":{seq},\"id\":{},\"at\":{},\"event\":",
            text(id),
            text(at)
        )
        .as_bytes(),
    );
    for part in event_json {
        h.update(part);
    }
    h.update(b"}");
    crate::domain::to_hex(&h.finalize())
}

/// An event serialised before it is chained: the costly part of its hash and its stored
/// `data`, done by whoever records the event rather than by the single writer that numbers
/// and links records.
#[derive(Debug)]
pub struct PreparedEvent {
    /// The event without its data (`Null`): `data` holds it.
    pub event: AuditEvent,
    /// The event's data as stored (JSON text).
    pub data: String,
    /// The event's JSON up to its data, without the closing brace.
    head: Vec<u8>,
}

impl PreparedEvent {
    /// `data` is serialised once and spliced into the event's JSON: `data` is the last field
    /// of `AuditEvent`, so this is byte for byte what `serialise` writes (unit test below).
    pub fn new(mut event: AuditEvent) -> Self {
        // Not `to_string()`: Display goes through `fmt::Write`, ~2× slower.
        let data = serde_json::to_string(&event.data).expect("audit data serialises");
        // Dropped here, by the caller, not by the single writer.
        event.data = serde_json::Value::Null;
        Self::with_data(event, data)
    }

    /// An event whose data the caller serialised itself, without building a `Value`: `data`
    /// must be a JSON object with its keys in sorted order at every level, as a `Value` map
    /// writes them (verification re-serialises stored data that way). `event.data` is ignored.
    pub fn with_data(event: AuditEvent, data: String) -> Self {
        #[derive(Serialize)]
        struct Head<'a> {
            kind: &'a str,
            actor: &'a str,
            alert_id: &'a Option<String>,
            action_id: &'a Option<String>,
            playbook: &'a Option<String>,
            subject: &'a Option<String>,
        }
        let mut head = Vec::with_capacity(192);
        serde_json::to_writer(
            &mut head,
            &Head {
                kind: &event.kind,
                actor: &event.actor,
                alert_id: &event.alert_id,
                action_id: &event.action_id,
                playbook: &event.playbook,
                subject: &event.subject,
            },
        )
        .expect("audit events serialise");
        head.pop(); // the closing brace: `data` follows
        Self { data, head, event }
    }

    /// The same as [`chain_hash`] of the event.
    pub fn chain_hash(&self, prev_hash: &str, seq: i64, id: &str, at: &str) -> String {
        hash_record(prev_hash, seq, id, at, &self.json_parts())
    }

    /// The event's JSON, in the parts it is kept in: `head`, `data`, and the closing brace.
    fn json_parts(&self) -> [&[u8]; 4] {
        [&self.head, b",\"data\":", self.data.as_bytes(), b"}"]
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("audit record seq {seq}: its hash does not match its content (edited?)")]
    HashMismatch { seq: i64 },
    #[error(
        "audit record seq {seq}: prev_hash does not match the previous record (removed or reordered?)"
    )]
    Broken { seq: i64 },
}

/// Verifies a run of records in sequence order. `anchor` is the hash before the first one.
pub fn verify<'a>(
    anchor: &str,
    records: impl IntoIterator<Item = &'a AuditRecord>,
) -> Result<(u64, String), ChainError> {
    let mut prev = anchor.to_owned();
    let mut count = 0;
    for r in records {
        if r.prev_hash != prev {
            return Err(ChainError::Broken { seq: r.seq });
        }
        if chain_hash(&r.prev_hash, r.seq, &r.id, &r.at, &r.event) != r.hash {
            return Err(ChainError::HashMismatch { seq: r.seq });
        }
        prev = r.hash.clone();
        count += 1;
    }
    Ok((count, prev))
}

/// The columns of a CSV export.
pub const CSV_HEADER: &str =
    "seq,id,at,kind,actor,alert_id,action_id,playbook,subject,data,prev_hash,hash\n";

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// One record as a CSV line (RFC 4180 quoting).
pub fn csv_row(r: &AuditRecord) -> String {
    let e = &r.event;
    let cols = [
        r.seq.to_string(),
        r.id.clone(),
        r.at.clone(),
        e.kind.clone(),
        e.actor.clone(),
        e.alert_id.clone().unwrap_or_default(),
        e.action_id.clone().unwrap_or_default(),
        e.playbook.clone().unwrap_or_default(),
        e.subject.clone().unwrap_or_default(),
        e.data.to_string(),
        r.prev_hash.clone(),
        r.hash.clone(),
    ];
    let mut line = cols
        .iter()
        .map(|c| csv_field(c))
        .collect::<Vec<_>>()
        .join(",");
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<AuditRecord> {
        let mut prev = GENESIS_HASH.to_owned();
        (1..=n)
            .map(|seq| {
                let event = AuditEvent::new("test", "system").data(serde_json::json!({"n": seq}));
                let hash = chain_hash(&prev, seq, &format!("aud_{seq}"), "t", &event);
                let r = AuditRecord {
                    seq,
                    id: format!("aud_{seq}"),
                    at: "t".into(),
                    event,
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                };
                prev = hash;
                r
            })
            .collect()
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert_eq!(verify(GENESIS_HASH, &chain(5)).unwrap().0, 5);
    }

    #[test]
    fn edits_and_removals_are_found() {
        let mut c = chain(5);
        c[2].event.data = serde_json::json!({"n": 99});
        assert_eq!(
            verify(GENESIS_HASH, &c),
            Err(ChainError::HashMismatch { seq: 3 })
        );
        let mut c = chain(5);
        c.remove(1);
        assert_eq!(verify(GENESIS_HASH, &c), Err(ChainError::Broken { seq: 3 }));
    }

    /// Chains written before events were serialised ahead must still verify: the hash is
    /// byte for byte the one of serialising the whole record with serde.
    #[test]
    fn the_record_hash_is_the_hash_of_the_serialised_record() {
        #[derive(Serialize)]
        struct Hashed<'a> {
            seq: i64,
            id: &'a str,
            at: &'a str,
            event: &'a AuditEvent,
        }
        let mut e = AuditEvent::new("alert.received", "source:x \"quoted\" \u{e9}")
            .alert("alr_1")
            .data(serde_json::json!({"z": 1, "a": ["\n", null, 2.5], "m": {"b": true, "a": "é"}}));
        e.subject = Some("alice@example.com".into());
        let bare = AuditEvent::new("x", "system");
        let full = AuditEvent::new("action.succeeded", "playbook:p")
            .alert("alr_2")
            .action("act_1")
            .playbook("p")
            .subject("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
            .data(serde_json::json!("text \u{1F512}"));
        for e in [&bare, &full] {
            let prepared = PreparedEvent::new(e.clone());
            assert_eq!(prepared.json_parts().concat(), serialise(e));
            assert_eq!(prepared.data, e.data.to_string());
        }
        for (seq, id, at) in [(1, "aud_1", "2026-01-01T00:00:00Z"), (42, "a\"b\\c", "t")] {
            let body = serde_json::to_vec(&Hashed {
                seq,
                id,
                at,
                event: &e,
            })
            .unwrap();
            let mut h = Sha256::new();
            h.update(b"prev\n");
            h.update(&body);
            let expected = hex::encode(h.finalize());
            assert_eq!(chain_hash("prev", seq, id, at, &e), expected);
            assert_eq!(
                PreparedEvent::new(e.clone()).chain_hash("prev", seq, id, at),
                expected
            );
        }
    }
}

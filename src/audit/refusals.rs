//! Refused intake requests, aggregated for the audit. Each refusal is counted at once (the
//! metrics, and here); the audit receives one `alert.rejected` record per source and reason
//! per interval, with the count, the first and last time and the last detail. A flood of
//! forged or broken requests therefore costs the chain a few records a minute, and never
//! takes the single writer from legitimate intake. A crash loses at most one interval's
//! aggregate, which the metrics still counted.

use std::sync::Mutex;

use serde_json::json;

use super::AuditEvent;
use crate::domain::now_rfc3339;

#[derive(Debug, Clone, PartialEq)]
struct Tally {
    source: String,
    reason: String,
    count: u64,
    first_at: String,
    last_at: String,
    detail: String,
}

#[derive(Debug, Default)]
pub struct RefusalLog {
    /// In order of first refusal in the interval (few distinct keys: a list is enough).
    tallies: Mutex<Vec<Tally>>,
}

impl RefusalLog {
    /// Counts one refusal. Never the body or a credential: `detail` is the reason's text.
    pub fn note(&self, source: &str, reason: &str, detail: &str) {
        let now = now_rfc3339();
        let detail: String = detail.chars().take(300).collect();
        let mut tallies = self.tallies.lock().unwrap_or_else(|p| p.into_inner());
        match tallies
            .iter_mut()
            .find(|t| t.source == source && t.reason == reason)
        {
            Some(t) => {
                t.count += 1;
                t.last_at = now;
                t.detail = detail;
            }
            None => tallies.push(Tally {
                source: source.into(),
                reason: reason.into(),
                count: 1,
                first_at: now.clone(),
                last_at: now,
                detail,
            }),
        }
    }

    /// The interval's aggregate as audit records, and a fresh interval.
    pub fn drain(&self, interval_secs: u64) -> Vec<AuditEvent> {
        let tallies = std::mem::take(&mut *self.tallies.lock().unwrap_or_else(|p| p.into_inner()));
        tallies
            .into_iter()
            .map(|t| {
                AuditEvent::new("alert.rejected", format!("source:{}", t.source)).data(json!({
                    "reason": t.reason,
                    "count": t.count,
                    "first_at": t.first_at,
                    "last_at": t.last_at,
                    "detail": t.detail,
                    "interval_secs": interval_secs,
                }))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_aggregated_per_source_and_reason_in_first_seen_order() {
        let log = RefusalLog::default();
        for _ in 0..8000 {
            log.note("siem", "unauthenticated", "wrong bearer token");
        }
        log.note("siem", "too_large", "");
        log.note("other", "unauthenticated", "missing authorization header");
        let records = log.drain(60);
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].data["count"], 8000);
        assert_eq!(records[0].data["reason"], "unauthenticated");
        assert_eq!(records[0].actor, "source:siem");
        assert_eq!(records[1].data["reason"], "too_large");
        assert_eq!(records[2].actor, "source:other");
        assert!(log.drain(60).is_empty(), "a new interval starts empty");
    }
}

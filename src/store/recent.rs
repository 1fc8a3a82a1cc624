//! The SQLite store's de-duplication index: the alerts received within the longest
//! de-duplication window, held in memory by the intake thread.
//!
//! Why not a table index: a fingerprint is a hash, so an index keyed by it puts every alert on
//! a random page, and that page (4 KiB) goes to the WAL and then to the database file with
//! each commit: ~40% of what intake wrote per alert, and the lookup was a quarter of the
//! writer's time. The intake thread is the only writer of alerts in its
//! process, and before each batch it reads the rows other processes added (rowid above the
//! last it knows), so this map answers what the index did.
//!
//! Bounded: at most `capacity` entries. Past it (a flood of distinct alerts), the oldest are
//! dropped and the effective window is shorter for them; the intake thread warns.

use std::collections::{HashMap, VecDeque};

/// An alert that duplicates of it are matched against: its row and when it was received
/// (unix microseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Recent {
    pub(super) rowid: i64,
    pub(super) at: i64,
}

/// The map is split by key into this many: a map that grows rehashes all it holds at once, on
/// the writer's path (~200 ms at 230,000 entries, measured); a shard holds 1/64 of them.
const SHARDS: usize = 64;

pub(super) struct RecentAlerts {
    /// By key (see [`key`]), in `SHARDS` maps: the last original of that fingerprint.
    by_key: Vec<HashMap<u128, Recent>>,
    /// Keys in the order they were added, to drop the oldest.
    order: VecDeque<(i64, u128)>,
    /// The longest window asked for so far (microseconds); entries older than it are dropped.
    window: Option<i64>,
    /// The last alerts row this map has seen.
    pub(super) last_rowid: i64,
    capacity: usize,
    /// How many times it was emptied to be read back (a test checks it stays rare).
    pub(super) reloads: u64,
    /// Alerts dropped within their window to stay within capacity, since the start.
    pub(super) forgotten: u64,
}

/// The key of a fingerprint within its source. Fingerprints are 128-bit hashes that cover the
/// source (`alerts::ParsedAlert::fingerprint`), written in hex: the key is that number. Any
/// other text is hashed with its source. A hit is still checked against the stored row.
pub(super) fn key(source: &str, fingerprint: &str) -> u128 {
    if fingerprint.len() == 32
        && let Ok(k) = u128::from_str_radix(fingerprint, 16)
    {
        return k;
    }
    use std::hash::{Hash, Hasher};
    let half = |salt: u8| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (salt, source, fingerprint).hash(&mut h);
        h.finish() as u128
    };
    (half(1) << 64) | half(2)
}

impl RecentAlerts {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            by_key: (0..SHARDS).map(|_| HashMap::new()).collect(),
            order: VecDeque::new(),
            window: None,
            last_rowid: 0,
            capacity,
            reloads: 0,
            forgotten: 0,
        }
    }

    /// True when `window` is longer than any before, so alerts older than what the map holds
    /// must be loaded (the first batch always needs it).
    pub(super) fn needs_reload(&self, window: i64) -> bool {
        self.window.is_none_or(|w| w < window)
    }

    /// Empties the map before a reload for `window`.
    pub(super) fn reset(&mut self, window: i64) {
        self.reloads += 1;
        self.by_key.iter_mut().for_each(HashMap::clear);
        self.order.clear();
        self.window = Some(window);
    }

    /// After a failed reload: the next batch reloads.
    pub(super) fn invalidate(&mut self) {
        self.window = None;
    }

    pub(super) fn window(&self) -> i64 {
        self.window.unwrap_or(0)
    }

    /// The alert a new one with this key duplicates, if one arrived at or after `since`.
    pub(super) fn find(&self, key: u128, since: i64) -> Option<Recent> {
        self.shard(key).get(&key).filter(|r| r.at >= since).copied()
    }

    /// Adds a stored, non-duplicate alert (in rowid order). It replaces an earlier one of the
    /// same key: that one was outside the new one's window (else the new one would be its
    /// duplicate), so it is outside the window of every later copy too. Returns how many
    /// entries were dropped to stay within capacity.
    pub(super) fn add(&mut self, key: u128, recent: Recent, now: i64) -> usize {
        self.last_rowid = self.last_rowid.max(recent.rowid);
        self.shard_mut(key).insert(key, recent);
        self.order.push_back((recent.at, key));
        self.expire(now)
    }

    /// Drops entries older than the window, then the oldest beyond capacity; returns how many
    /// were dropped for capacity.
    pub(super) fn expire(&mut self, now: i64) -> usize {
        let horizon = now - self.window();
        let mut over = 0;
        while let Some(&(at, key)) = self.order.front() {
            let full = self.order.len() > self.capacity;
            if at >= horizon && !full {
                break;
            }
            self.order.pop_front();
            // The key may have been replaced by a newer alert since: keep that one.
            let shard = self.shard_mut(key);
            if shard.get(&key).is_some_and(|r| r.at == at) {
                shard.remove(&key);
                if full && at >= horizon {
                    over += 1;
                }
            }
        }
        self.forgotten += over as u64;
        over
    }

    pub(super) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(super) fn len(&self) -> usize {
        self.by_key.iter().map(HashMap::len).sum()
    }

    fn shard(&self, key: u128) -> &HashMap<u128, Recent> {
        &self.by_key[(key >> 64) as usize % SHARDS]
    }

    fn shard_mut(&mut self, key: u128) -> &mut HashMap<u128, Recent> {
        &mut self.by_key[(key >> 64) as usize % SHARDS]
    }
}

/// The current time in unix microseconds.
pub(super) fn now_micros() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000) as i64
}

/// Unix microseconds of a time this service wrote.
pub(super) fn micros(ts: &str) -> Option<i64> {
    crate::domain::parse_time(ts).map(|t| (t.unix_timestamp_nanos() / 1000) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    #[test]
    fn an_alert_is_found_within_the_window_and_not_after_it() {
        let mut m = RecentAlerts::new(100);
        assert!(m.needs_reload(60 * S));
        m.reset(60 * S);
        assert!(!m.needs_reload(30 * S), "a shorter window needs no reload");
        assert!(m.needs_reload(90 * S));
        let k = key("generic", "0123456789abcdef0123456789abcdef");
        m.add(
            k,
            Recent {
                rowid: 1,
                at: 100 * S,
            },
            100 * S,
        );
        assert_eq!(m.find(k, 50 * S).map(|r| r.rowid), Some(1));
        assert_eq!(m.find(k, 101 * S), None, "received before the window");
        assert_eq!(m.find(key("generic", "x"), 0), None);
        // Past the window it is dropped, and the same fingerprint starts a new original.
        m.add(
            k,
            Recent {
                rowid: 7,
                at: 200 * S,
            },
            200 * S,
        );
        assert_eq!(m.find(k, 0).map(|r| r.rowid), Some(7));
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn a_new_original_replaces_the_one_outside_its_window() {
        let mut m = RecentAlerts::new(100);
        m.reset(60 * S);
        let k = key("s", "f");
        m.add(
            k,
            Recent {
                rowid: 1,
                at: 10 * S,
            },
            10 * S,
        );
        // Stored as new by a request whose window began after 10 s.
        m.add(
            k,
            Recent {
                rowid: 2,
                at: 20 * S,
            },
            20 * S,
        );
        assert_eq!(m.find(k, 15 * S).map(|r| r.rowid), Some(2));
        assert_eq!(m.last_rowid, 2);
        // The first one's expiry leaves the second in place.
        m.expire(71 * S);
        assert_eq!(m.find(k, 15 * S).map(|r| r.rowid), Some(2));
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn past_capacity_the_oldest_are_dropped_and_counted() {
        let mut m = RecentAlerts::new(3);
        m.reset(3600 * S);
        let mut dropped = 0;
        for i in 0..5 {
            dropped += m.add(
                key("s", &i.to_string()),
                Recent {
                    rowid: i,
                    at: i * S,
                },
                5 * S,
            );
        }
        assert_eq!(dropped, 2);
        assert_eq!(m.forgotten, 2);
        assert_eq!(m.len(), 3);
        assert_eq!(m.find(key("s", "0"), 0), None);
        assert_eq!(m.find(key("s", "4"), 0).map(|r| r.rowid), Some(4));
        // The count runs on across reloads, as a metric's should.
        m.reset(3600 * S);
        assert_eq!(m.forgotten, 2);
    }

    #[test]
    fn keys_of_hex_fingerprints_are_their_value_and_others_are_hashed_with_the_source() {
        assert_eq!(key("a", "000000000000000000000000000000ff"), 255);
        assert_ne!(key("a", "not hex"), key("b", "not hex"));
        assert_eq!(key("a", "not hex"), key("a", "not hex"));
    }
}

//! SQLite intake on threads of its own, through rusqlite.
//!
//! Intake is the hot path: every SIEM delivery waits for its alert to be on disk. sqlx runs
//! SQLite on a worker thread and hands every statement and row across a channel, which cost
//! more than the database work itself (measured with perf). Here:
//!
//! - the **intake thread** owns one connection with prepared statements, takes queued alerts
//!   in batches and commits each batch in one transaction, under the store's writer lock like
//!   every other write (so the audit chain stays single). It de-duplicates against the
//!   alerts of the window, which it holds in memory (`recent.rs`), not through an index;
//! - the **sync thread** makes committed batches durable with one `fdatasync` of the WAL file
//!   and only then answers their callers. The intake connection commits with
//!   `synchronous = NORMAL` (WAL frames written, not synced), so the next batch is built
//!   while the previous one reaches the disk. Invariant: a caller is answered only after a
//!   sync of the WAL that began after its batch's commit returned, which is what
//!   `synchronous = FULL` guarantees, without holding the writer through the sync;
//! - the **checkpoint thread** copies the WAL into the database file beside them.

use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tokio::sync::mpsc;

use super::core::{
    ANCHOR_TAIL, AUDIT_TAIL, Decided, INTAKE_QUEUE, IntakeRequest, Shared, answer, audit_insert,
    chain_records, decide_batch, fill_batch,
};
use super::recent::{self, Recent, RecentAlerts};
use super::{InsertOutcome, StoreError, StoreResult};
use crate::audit::PreparedEvent;
use crate::domain::now_rfc3339;

/// Every SQLite connection's settings. WAL: readers do not block the writer. FULL: a commit
/// is on disk before intake answers 202, even across power loss. No automatic checkpoints:
/// SQLite runs those inside a commit, on the acknowledging path; the checkpoint thread does
/// them beside it. The WAL file is cut back to 256 MiB when it starts over: under sustained
/// intake a pass over the log reaches 90–140 MiB before it starts over (`WAL_LIMIT_PAGES`
/// plus what is written while the rest is copied), and cutting it back to 64 MiB at each
/// restart freed those blocks and their cached pages only for the next pass to allocate and
/// zero them again (frames are not page-aligned) and the filesystem to discard them. The
/// same file reused, intake was ~8% faster.
pub(super) const PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = 268435456;";

/// Beyond this many WAL pages (~64 MiB), the checkpoint thread finishes a checkpoint with the
/// writer held, so that the next transaction starts the log over: under sustained intake a
/// checkpoint beside the writer never reaches the end of the log, and the log would grow
/// without bound.
const WAL_LIMIT_PAGES: i64 = 16_384;

/// Pages left to copy below which the last checkpoint of a full log holds the writer.
const WAL_REST_PAGES: i64 = 1_024;

/// How much of the end of the database file the checkpoint thread leaves in the kernel's
/// page cache (see `CacheTrim`).
const CACHED_TAIL_BYTES: u64 = 128 << 20;

/// Checkpoints beside the writer before the rest of a full log is copied with it held, even
/// if more than `WAL_REST_PAGES` are left (a writer faster than the copy).
const CATCH_UP_PASSES: usize = 8;

fn open(path: &str) -> StoreResult<Connection> {
    let conn = Connection::open(path)?;
    conn.execute_batch(PRAGMAS)?;
    Ok(conn)
}

/// A committed batch on its way to the sync thread.
type Committed = (Vec<IntakeRequest>, Result<Vec<InsertOutcome>, String>);

/// Opens the intake and checkpoint connections and starts their threads; they end when the
/// store (the last sender) is dropped.
pub(super) fn spawn(path: &str, shared: Arc<Shared>) -> StoreResult<mpsc::Sender<IntakeRequest>> {
    let conn = open(path)?;
    // Durability comes from the sync thread (see the module's doc).
    conn.execute_batch("PRAGMA synchronous = NORMAL;")?;
    let checkpoints = open(path)?;
    let db_file = std::fs::File::open(path)
        .map_err(|e| StoreError::Database(format!("could not open {path}: {e}")))?;
    let wal = WalFile::new(format!("{path}-wal"));
    let (sender, rx) = mpsc::channel(INTAKE_QUEUE);
    let (nudge, nudges) = std::sync::mpsc::sync_channel(1);
    // Bounded: when syncs fall behind, the intake thread waits instead of piling up batches.
    let (committed, to_sync) = std::sync::mpsc::sync_channel::<Committed>(4);
    let thread = |name: &str| std::thread::Builder::new().name(name.into());
    let failed =
        |e: std::io::Error| StoreError::Database(format!("could not start a store thread: {e}"));
    thread("lockout-intake")
        .spawn({
            let shared = shared.clone();
            move || run(conn, &shared, rx, committed)
        })
        .map_err(failed)?;
    thread("lockout-sync")
        .spawn(move || sync(wal, to_sync, nudge))
        .map_err(failed)?;
    thread("lockout-checkpoint")
        .spawn(move || checkpoint(checkpoints, db_file, nudges, &shared))
        .map_err(failed)?;
    Ok(sender)
}

/// Copies committed WAL pages into the database file beside the writer (PASSIVE: it never
/// blocks it), at most twice a second: pages that every batch touches (the tails of tables
/// and indexes) are then copied once per checkpoint rather than once per batch.
///
/// Then it syncs the database file itself: SQLite syncs it only when a checkpoint reaches the
/// end of the log, and that one would otherwise flush everything copied since the last, with
/// the writer held (measured ~90 ms, every ~0.7 s at full intake). When the log is past
/// `WAL_LIMIT_PAGES`, it checkpoints again at once until what is left is small, then takes
/// the writer lock and checkpoints that rest, which reaches the end: the next transaction
/// starts the log over. The writer waits for a few milliseconds, not for the whole copy.
fn checkpoint(
    conn: Connection,
    db_file: std::fs::File,
    nudges: std::sync::mpsc::Receiver<()>,
    shared: &Shared,
) {
    use std::sync::mpsc::RecvTimeoutError;
    let mut trim = CacheTrim::new(CACHED_TAIL_BYTES);
    // Also every few seconds without a nudge: other writers (the worker, approvals) commit
    // with automatic checkpoints off too.
    while !matches!(
        nudges.recv_timeout(std::time::Duration::from_secs(5)),
        Err(RecvTimeoutError::Disconnected)
    ) {
        match copy_log(&conn, &db_file, &shared.writer, WAL_LIMIT_PAGES) {
            // What was copied is synced: its cached pages are clean and can go.
            Ok(()) => trim.trim(&db_file),
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// Drops the database file's pages from the kernel's page cache once they are more than
/// `keep` bytes behind its end, each range once.
///
/// Intake appends: the file grows by ~1.6 KB per alert, written once by the checkpoint and
/// rarely read again (the hot pages, b-tree roots and inner pages, sit in each connection's
/// own cache). Left cached, that growth takes fresh memory at every checkpoint, and fresh
/// memory is what costs: the checkpoint thread went from ~2.5 to ~7 µs per alert once the
/// file outgrew the memory the machine had already used (a VM's host backs guest memory on
/// first touch). Dropped, the pages written last are reused for the
/// next. A page read again later is read from the disk once and then stays: a range is
/// never dropped twice.
struct CacheTrim {
    keep: u64,
    /// Everything before this offset has been dropped once.
    dropped_until: u64,
}

impl CacheTrim {
    fn new(keep: u64) -> Self {
        Self {
            keep,
            dropped_until: 0,
        }
    }

    /// The range to drop now that the file is `len` bytes long, if any, as (offset, length).
    fn next_range(&mut self, len: u64) -> Option<(u64, std::num::NonZeroU64)> {
        let until = len.saturating_sub(self.keep);
        let length = std::num::NonZeroU64::new(until.saturating_sub(self.dropped_until))?;
        let range = (self.dropped_until, length);
        self.dropped_until = until;
        Some(range)
    }

    fn trim(&mut self, db_file: &std::fs::File) {
        let Ok(len) = db_file.metadata().map(|m| m.len()) else {
            return;
        };
        if let Some((offset, length)) = self.next_range(len) {
            // Advice only: on failure the pages stay cached, as they would without it.
            if let Err(e) =
                rustix::fs::fadvise(db_file, offset, Some(length), rustix::fs::Advice::DontNeed)
            {
                tracing::debug!(error = %e, "could not drop cached database pages");
            }
        }
    }
}

/// Checkpoint passes beside the writer until the log is under `limit` pages or little of it
/// is left to copy (at most `CATCH_UP_PASSES`); in the second case, the rest with the writer
/// held.
fn copy_log(
    conn: &Connection,
    db_file: &std::fs::File,
    writer: &tokio::sync::Mutex<()>,
    limit: i64,
) -> rusqlite::Result<()> {
    for _ in 0..CATCH_UP_PASSES {
        let (log, copied) = passive_checkpoint(conn)?;
        // A failed sync costs only time: SQLite syncs before it reuses the log.
        if let Err(e) = db_file.sync_data() {
            tracing::warn!(error = %e, "could not sync the database file");
        }
        if log <= limit {
            return Ok(());
        }
        if log - copied < WAL_REST_PAGES {
            break;
        }
    }
    let _writer = writer.blocking_lock();
    passive_checkpoint(conn).map(|_| ())
}

/// A PASSIVE checkpoint; returns the log's size and how much of it is now in the database
/// file, in pages.
fn passive_checkpoint(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get(1)?, r.get(2)?))
    })
}

fn run(
    mut conn: Connection,
    shared: &Shared,
    mut rx: mpsc::Receiver<IntakeRequest>,
    committed: std::sync::mpsc::SyncSender<Committed>,
) {
    let mut recent = RecentAlerts::new(RECENT_CAPACITY);
    while let Some(first) = rx.blocking_recv() {
        let mut batch = fill_batch(first, &mut rx);
        let result = {
            let _writer = shared.writer.blocking_lock();
            insert_batch(&mut conn, &mut batch, &mut recent)
        };
        shared
            .dedup_forgotten
            .store(recent.forgotten, std::sync::atomic::Ordering::Relaxed);
        if committed
            .send((batch, result.map_err(|e| e.to_string())))
            .is_err()
        {
            return;
        }
    }
}

/// Syncs the WAL for every batch committed since the last sync, then answers their callers.
fn sync(
    mut wal: WalFile,
    committed: std::sync::mpsc::Receiver<Committed>,
    checkpoint: std::sync::mpsc::SyncSender<()>,
) {
    while let Ok(first) = committed.recv() {
        let mut ready = vec![first];
        ready.extend(committed.try_iter());
        let synced = if ready.iter().any(|(_, r)| r.is_ok()) {
            wal.sync()
        } else {
            Ok(())
        };
        for (batch, result) in ready {
            let result = match &synced {
                Ok(()) => result,
                // Committed but maybe not durable: refuse, the sender retries (and its
                // re-delivery is then recognised as a duplicate).
                Err(e) => Err(format!("could not sync the SQLite WAL: {e}")),
            };
            answer(batch, result);
        }
        // Full means a nudge is already waiting.
        let _ = checkpoint.try_send(());
    }
}

/// The WAL file, reopened when SQLite has replaced it (it deletes the WAL when the last
/// connection closes).
struct WalFile {
    path: String,
    file: Option<(std::fs::File, u64)>,
}

impl WalFile {
    fn new(path: String) -> Self {
        Self { path, file: None }
    }

    fn sync(&mut self) -> std::io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let inode = std::fs::metadata(&self.path)?.ino();
        match &self.file {
            Some((_, open)) if *open == inode => {}
            _ => self.file = Some((std::fs::File::open(&self.path)?, inode)),
        }
        let (file, _) = self.file.as_ref().expect("opened above");
        file.sync_data()
    }
}

/// Alerts the de-duplication map holds at most (~90 bytes each).
const RECENT_CAPACITY: usize = 1_000_000;

/// How far past the window a reload reads back: rows are in rowid order, and their times in
/// that order only nearly (each is stamped before it queues for the writer).
const RELOAD_MARGIN_MICROS: i64 = 3600 * 1_000_000;

fn insert_batch(
    conn: &mut Connection,
    batch: &mut [IntakeRequest],
    recent: &mut RecentAlerts,
) -> StoreResult<Vec<InsertOutcome>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let now = recent::now_micros();
    // Each request's time and window start, in microseconds (the service wrote both; an
    // unreadable start de-duplicates against everything held).
    let times: Vec<(i64, i64)> = batch
        .iter()
        .map(|r| {
            let at = recent::micros(&r.alert.received_at).unwrap_or(now);
            (at, recent::micros(&r.dedup_since).unwrap_or(i64::MIN))
        })
        .collect();
    // The source's window, as the request measured it: not from `now`, which the time spent
    // queued would stretch into a "longer" window, and a reload, every few batches.
    let longest = times
        .iter()
        .map(|(at, since)| at.saturating_sub(*since))
        .max();
    if recent.needs_reload(longest.unwrap_or(0)) {
        if let Err(e) = reload(&tx, recent, now, longest.unwrap_or(0)) {
            recent.invalidate();
            return Err(e);
        }
    } else {
        catch_up(&tx, recent, now)?;
    }
    let mut found = vec![];
    {
        let mut row = tx.prepare_cached(
            "SELECT source, fingerprint, id, received_at, state FROM alerts WHERE rowid = ?1",
        )?;
        for (r, (_, since)) in batch.iter().zip(&times) {
            let a = &r.alert;
            let Some(hit) = recent.find(recent::key(&a.source, &a.fingerprint), *since) else {
                continue;
            };
            let (source, fingerprint, id, at, state): (String, String, String, String, String) =
                row.query_row([hit.rowid], |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                    ))
                })?;
            // The key is a hash: the row decides.
            if source == a.source && fingerprint == a.fingerprint && state != "duplicate" {
                found.push((source, fingerprint, id, at));
            }
        }
    }
    let Decided {
        rows,
        outcomes,
        audits,
    } = decide_batch(batch, found);
    let mut originals = vec![];
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO alerts (id, source, fingerprint, correlation, received_at, status, state, duplicate_of, alert, plan) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        let mut subject = tx.prepare_cached(
            "INSERT INTO alert_subjects (subject, alert_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        )?;
        // `rows` is in the batch's order, as `times` is.
        for ((a, state, original), (at, _)) in rows.into_iter().zip(times) {
            insert.execute(params![
                a.id,
                a.source,
                a.fingerprint,
                a.correlation,
                a.received_at,
                a.status,
                state.as_str(),
                original,
                a.alert,
                a.plan,
            ])?;
            let rowid = tx.last_insert_rowid();
            for name in &a.subjects {
                subject.execute(params![name, a.id])?;
            }
            if original.is_none() {
                originals.push((recent::key(&a.source, &a.fingerprint), Recent { rowid, at }));
            }
        }
    }
    append_audit(&tx, audits)?;
    tx.commit()?;
    // Only what was committed enters the map.
    let mut dropped = 0;
    for (key, r) in originals {
        dropped += recent.add(key, r, now);
    }
    if dropped > 0 {
        warn_shortened(recent, dropped);
    }
    Ok(outcomes)
}

/// Refills the de-duplication map from the table: every alert received within the window,
/// newest first, up to its capacity.
fn reload(
    tx: &rusqlite::Transaction<'_>,
    recent: &mut RecentAlerts,
    now: i64,
    window: i64,
) -> StoreResult<()> {
    recent.reset(window);
    let horizon = now.saturating_sub(recent.window());
    let mut rows = tx.prepare(
        "SELECT rowid, source, fingerprint, received_at, state FROM alerts ORDER BY rowid DESC",
    )?;
    let mut rows = rows.query([])?;
    let mut kept = vec![];
    let mut last = None;
    while let Some(row) = rows.next()? {
        let (key, r, duplicate) = recent_row(row, i64::MIN)?;
        last.get_or_insert(r.rowid);
        if r.at < horizon.saturating_sub(RELOAD_MARGIN_MICROS) || kept.len() >= recent.capacity() {
            break;
        }
        if r.at >= horizon && !duplicate {
            kept.push((key, r));
        }
    }
    // Oldest first, as they were stored: a later original of a fingerprint replaces an earlier
    // one, as it did then.
    for (key, r) in kept.into_iter().rev() {
        recent.add(key, r, now);
    }
    recent.last_rowid = last.unwrap_or(0);
    Ok(())
}

/// Adds the alerts other processes stored since the last batch (the map's rows are this
/// thread's own and those it has read).
fn catch_up(
    tx: &rusqlite::Transaction<'_>,
    recent: &mut RecentAlerts,
    now: i64,
) -> StoreResult<()> {
    let newest: Option<i64> = tx
        .prepare_cached("SELECT max(rowid) FROM alerts")?
        .query_row([], |r| r.get(0))?;
    if newest.unwrap_or(0) <= recent.last_rowid {
        return Ok(());
    }
    let mut rows = tx.prepare_cached(
        "SELECT rowid, source, fingerprint, received_at, state FROM alerts WHERE rowid > ?1 ORDER BY rowid",
    )?;
    let mut rows = rows.query([recent.last_rowid])?;
    let mut dropped = 0;
    while let Some(row) = rows.next()? {
        let (key, r, duplicate) = recent_row(row, now)?;
        recent.last_rowid = r.rowid;
        if !duplicate {
            dropped += recent.add(key, r, now);
        }
    }
    if dropped > 0 {
        warn_shortened(recent, dropped);
    }
    Ok(())
}

/// A row of `SELECT rowid, source, fingerprint, received_at, state`: its key, where it is and
/// when it came (`unreadable` if its time is not one), whether it is a duplicate.
fn recent_row(row: &rusqlite::Row<'_>, unreadable: i64) -> rusqlite::Result<(u128, Recent, bool)> {
    let text = |i| row.get_ref(i).and_then(|v| Ok(v.as_str()?));
    let recent = Recent {
        rowid: row.get(0)?,
        at: recent::micros(text(3)?).unwrap_or(unreadable),
    };
    Ok((
        recent::key(text(1)?, text(2)?),
        recent,
        text(4)? == "duplicate",
    ))
}

/// A flood of distinct alerts filled the map: say so, at most once a minute.
fn warn_shortened(recent: &RecentAlerts, dropped: usize) {
    use std::sync::atomic::{AtomicI64, Ordering};
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if now - LAST.load(Ordering::Relaxed) >= 60 {
        LAST.store(now, Ordering::Relaxed);
        tracing::warn!(
            dropped,
            held = recent.len(),
            "more distinct alerts within the de-duplication window than the {} held in memory: the oldest were dropped, and a re-delivery of one of them would be taken as new",
            recent.capacity()
        );
    }
}

/// Appends to the audit chain inside the caller's transaction (under the writer lock).
fn append_audit(tx: &rusqlite::Transaction<'_>, events: Vec<PreparedEvent>) -> StoreResult<()> {
    let tail = |sql: &str| {
        tx.prepare_cached(sql)?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
    };
    let last = match tail(AUDIT_TAIL)? {
        Some(l) => Some(l),
        // Everything before was pruned: the chain continues from the retention anchor.
        None => tail(ANCHOR_TAIL)?,
    };
    let at = now_rfc3339();
    let mut insert = tx.prepare_cached(&audit_insert(1))?;
    for r in chain_records(last, &at, events) {
        let e = &r.event.event;
        insert.execute(params![
            r.seq,
            r.id,
            at,
            e.kind,
            e.actor,
            e.alert_id,
            e.action_id,
            e.playbook,
            e.subject,
            r.event.data,
            r.prev_hash,
            r.hash,
        ])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{format_time, shift_time};
    use crate::store::NewAlert;

    /// A connection to a new database in `dir` with the schema in place.
    fn migrated(dir: &tempfile::TempDir) -> Connection {
        let conn = open(dir.path().join("intake.db").to_str().unwrap()).unwrap();
        for (_, _, sql) in crate::store::migrations::SQLITE {
            conn.execute_batch(sql).unwrap();
        }
        conn
    }

    /// Intake of one alert through `insert_batch`, received `age` seconds ago with a window of
    /// `window` seconds; returns its outcome.
    fn intake(
        conn: &mut Connection,
        recent: &mut RecentAlerts,
        id: &str,
        fingerprint: &str,
        age: i64,
        window: i64,
    ) -> InsertOutcome {
        let received_at = shift_time(&format_time(time::OffsetDateTime::now_utc()), -age);
        let alert = NewAlert {
            id: id.into(),
            source: "generic".into(),
            fingerprint: fingerprint.into(),
            correlation: "c".into(),
            received_at: received_at.clone(),
            status: "firing".into(),
            alert: "{}".into(),
            settled: None,
            plan: None,
            subjects: vec![],
        };
        let (request, _answer) =
            IntakeRequest::new_for_test(alert, &shift_time(&received_at, -window));
        let mut batch = vec![request];
        insert_batch(conn, &mut batch, recent).unwrap().remove(0)
    }

    #[test]
    fn each_range_of_the_file_is_dropped_once_and_the_tail_is_kept() {
        let mut trim = CacheTrim::new(100);
        assert_eq!(
            trim.next_range(100),
            None,
            "nothing is past the kept tail yet"
        );
        let range = |offset, length| Some((offset, std::num::NonZeroU64::new(length).unwrap()));
        assert_eq!(trim.next_range(250), range(0, 150));
        assert_eq!(trim.next_range(250), None, "already dropped");
        assert_eq!(trim.next_range(260), range(150, 10));
        // A file that shrank (a VACUUM) is not dropped again until it outgrows the mark.
        assert_eq!(trim.next_range(120), None);
        assert_eq!(trim.next_range(270), range(160, 10));
    }

    /// Dropping cached pages is advice to the kernel: what was synced reads back the same.
    #[test]
    fn dropped_pages_read_back_from_the_file() {
        use std::io::{Read, Seek, Write};
        let dir = tempfile::tempdir().unwrap();
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(dir.path().join("f"))
            .unwrap();
        let data: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
        file.write_all(&data).unwrap();
        file.sync_data().unwrap();
        let mut trim = CacheTrim::new(4096);
        trim.trim(&file);
        assert_eq!(trim.dropped_until, 60 * 1024);
        let mut back = vec![];
        file.rewind().unwrap();
        file.read_to_end(&mut back).unwrap();
        assert!(back == data);
    }

    #[test]
    fn de_duplication_reads_the_table_back_only_for_a_longer_window() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = migrated(&dir);
        let mut recent = RecentAlerts::new(100);
        let hour = 3600;
        assert_eq!(
            intake(&mut conn, &mut recent, "a1", "fp-1", 10, hour),
            InsertOutcome::Inserted
        );
        assert_eq!(recent.reloads, 1, "the first batch reads the window");
        // A request that waited longer in the queue has the same window: no reload (its
        // window measured from now would look 20 s longer).
        assert_eq!(
            intake(&mut conn, &mut recent, "a2", "fp-2", 30, hour),
            InsertOutcome::Inserted
        );
        assert_eq!(
            intake(&mut conn, &mut recent, "a3", "fp-1", 0, hour),
            InsertOutcome::Duplicate {
                original: "a1".into()
            }
        );
        assert_eq!(recent.reloads, 1);
        // A longer window reads the table back, and finds the same original.
        assert_eq!(
            intake(&mut conn, &mut recent, "a4", "fp-1", 0, 2 * hour),
            InsertOutcome::Duplicate {
                original: "a1".into()
            }
        );
        assert_eq!(recent.reloads, 2);
    }

    /// A flood past the map's capacity: the oldest are forgotten early, counted (the
    /// `lockout_dedup_forgotten_total` metric), and a re-delivery of one is taken as new.
    #[test]
    fn alerts_forgotten_past_capacity_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = migrated(&dir);
        let mut recent = RecentAlerts::new(2);
        let hour = 3600;
        for (id, fp) in [("f1", "fp-1"), ("f2", "fp-2"), ("f3", "fp-3")] {
            assert_eq!(
                intake(&mut conn, &mut recent, id, fp, 0, hour),
                InsertOutcome::Inserted
            );
        }
        assert_eq!(recent.forgotten, 1);
        assert_eq!(
            intake(&mut conn, &mut recent, "f4", "fp-1", 0, hour),
            InsertOutcome::Inserted
        );
        assert_eq!(
            intake(&mut conn, &mut recent, "f5", "fp-3", 0, hour),
            InsertOutcome::Duplicate {
                original: "f3".into()
            }
        );
    }

    #[test]
    fn a_log_past_its_limit_is_copied_to_the_end_so_the_next_write_starts_it_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let path = path.to_str().unwrap();
        let writer = open(path).unwrap();
        writer.execute_batch("CREATE TABLE t (x TEXT)").unwrap();
        for _ in 0..40 {
            writer
                .execute("INSERT INTO t VALUES (?1)", ["x".repeat(3000)])
                .unwrap();
        }
        let checkpoints = open(path).unwrap();
        let db_file = std::fs::File::open(path).unwrap();
        let lock = tokio::sync::Mutex::new(());
        copy_log(&checkpoints, &db_file, &lock, 10).unwrap();
        // Everything was copied: the next transaction writes the log from its start.
        writer.execute("INSERT INTO t VALUES ('z')", []).unwrap();
        let (log, copied) = passive_checkpoint(&checkpoints).unwrap();
        assert!(log < 10, "the log started over: {log} frames");
        assert_eq!(copied, log);
        let rows: i64 = writer
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 41);
    }
}

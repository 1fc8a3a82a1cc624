//! Schema migrations, embedded in the binary. Shipped migrations are never edited: add one.

pub const SQLITE: &[(i64, &str, &str)] = &[(
    1,
    "initial",
    r#"
CREATE TABLE alerts (
    id           TEXT PRIMARY KEY,
    source       TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    received_at  TEXT NOT NULL,
    status       TEXT NOT NULL,
    state        TEXT NOT NULL,
    duplicate_of TEXT,
    alert        TEXT NOT NULL
);
CREATE INDEX alerts_by_fingerprint ON alerts (source, fingerprint, received_at);
CREATE INDEX alerts_by_state ON alerts (state, received_at);

CREATE TABLE actions (
    id               TEXT PRIMARY KEY,
    alert_id         TEXT,
    playbook         TEXT,
    kind             TEXT NOT NULL,
    target           TEXT NOT NULL,
    mode             TEXT NOT NULL,
    reason           TEXT NOT NULL,
    state            TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    not_before       TEXT NOT NULL,
    deadline_at      TEXT NOT NULL,
    claimed_by       TEXT,
    claim_expires_at TEXT,
    user_id          TEXT,
    last_error       TEXT,
    result           TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
CREATE INDEX actions_ready ON actions (state, not_before);
CREATE INDEX actions_by_target ON actions (target, kind, state);

CREATE TABLE audit (
    seq       INTEGER PRIMARY KEY,
    id        TEXT NOT NULL UNIQUE,
    at        TEXT NOT NULL,
    kind      TEXT NOT NULL,
    actor     TEXT NOT NULL,
    alert_id  TEXT,
    action_id TEXT,
    playbook  TEXT,
    subject   TEXT,
    data      TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE INDEX audit_by_alert ON audit (alert_id);
CREATE INDEX audit_by_subject ON audit (subject);

-- The service never changes audit rows: make the database refuse it too.
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
"#,
)];

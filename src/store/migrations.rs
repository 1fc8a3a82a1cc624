//! Schema migrations, embedded in the binary. A migration is never edited once released: add
//! a new one. (Version 1 is the first released schema.)

pub const SQLITE: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        r#"
CREATE TABLE alerts (
    id           TEXT PRIMARY KEY,
    source       TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    correlation  TEXT NOT NULL,
    received_at  TEXT NOT NULL,
    status       TEXT NOT NULL,
    state        TEXT NOT NULL,
    duplicate_of TEXT,
    alert        TEXT NOT NULL
);
CREATE INDEX alerts_by_fingerprint ON alerts (fingerprint, received_at);
CREATE INDEX alerts_by_state ON alerts (state, received_at);
CREATE INDEX alerts_by_correlation ON alerts (correlation);

CREATE TABLE actions (
    id               TEXT PRIMARY KEY,
    chain_id         TEXT NOT NULL,
    step_index       INTEGER NOT NULL,
    predecessor      TEXT,
    alert_id         TEXT,
    playbook         TEXT,
    kind             TEXT NOT NULL,
    target           TEXT NOT NULL,
    params           TEXT NOT NULL,
    approval         TEXT,
    mode             TEXT NOT NULL,
    reason           TEXT NOT NULL,
    origin           TEXT NOT NULL,
    requested_by     TEXT,
    state            TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    delay_secs       INTEGER NOT NULL,
    deadline_secs    INTEGER NOT NULL,
    not_before       TEXT NOT NULL,
    deadline_at      TEXT NOT NULL,
    claimed_by       TEXT,
    claim_expires_at TEXT,
    user_id          TEXT,
    last_error       TEXT,
    result           TEXT,
    limit_override   INTEGER NOT NULL DEFAULT 0,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    started_at       TEXT,
    finished_at      TEXT
);
CREATE INDEX actions_due ON actions (state, not_before);
CREATE INDEX actions_by_target ON actions (target, kind, state);
CREATE INDEX actions_by_chain ON actions (chain_id, step_index);
CREATE INDEX actions_by_alert ON actions (alert_id);
CREATE INDEX actions_started ON actions (kind, started_at);

CREATE TABLE approvals (
    id           TEXT PRIMARY KEY,
    action_id    TEXT NOT NULL,
    state        TEXT NOT NULL,
    request      TEXT NOT NULL,
    binding_hash TEXT NOT NULL,
    requested_by TEXT,
    decisions    TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    escalate_at  TEXT,
    escalated    INTEGER NOT NULL DEFAULT 0,
    decided_at   TEXT
);
CREATE INDEX approvals_by_state ON approvals (state, expires_at);
CREATE INDEX approvals_by_action ON approvals (action_id);

CREATE TABLE limit_trips (
    id         INTEGER PRIMARY KEY,
    scope      TEXT NOT NULL,
    tripped_at TEXT NOT NULL,
    reset_at   TEXT,
    reset_by   TEXT
);

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
CREATE INDEX audit_by_kind ON audit (kind);

-- The service never changes audit rows: make the database refuse it too.
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
"#,
    ),
    (
        2,
        "audit forwarding cursor and retention anchor",
        r#"
CREATE TABLE forward_cursors (
    name       TEXT PRIMARY KEY,
    seq        BIGINT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE audit_anchors (
    seq       BIGINT PRIMARY KEY,
    hash      TEXT NOT NULL,
    pruned_at TEXT NOT NULL,
    pruned_by TEXT NOT NULL
);
"#,
    ),
    (
        3,
        "indexes for what intake writes and what queries read",
        V3_INDEXES,
    ),
    (
        4,
        "de-duplication in the intake thread's memory",
        r#"
-- The intake thread de-duplicates against the alerts of the window it holds in memory
-- (store/recent.rs): this index put every alert on a random page. Resolved alerts find their
-- firing one through pending approvals, not through it.
DROP INDEX IF EXISTS alerts_by_correlation;
"#,
    ),
    (5, "the alerts that asked for each action", V5_ACTION_ALERTS),
    (
        6,
        "signed requests seen, for replay refusal across replicas",
        V6_SEEN_SIGNATURES,
    ),
    (7, "signed retention anchors", V7_SIGNED_ANCHORS),
    (8, "the sandbox's users", V8_SANDBOX_STATE),
    (
        9,
        "the plan intake made, stored with its alert",
        V9_STORED_PLAN,
    ),
    (
        10,
        "who each alert is about, searchable",
        V10_ALERT_SUBJECTS_SQLITE,
    ),
    (11, "suppressions", V11_SUPPRESSIONS),
    (
        12,
        "1Password events, feed cursors, action context and proof",
        V12_EVENTS,
    ),
];

pub const POSTGRES: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        r#"
CREATE TABLE alerts (
    id           TEXT PRIMARY KEY,
    source       TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    correlation  TEXT NOT NULL,
    received_at  TEXT NOT NULL,
    status       TEXT NOT NULL,
    state        TEXT NOT NULL,
    duplicate_of TEXT,
    alert        TEXT NOT NULL
);
CREATE INDEX alerts_by_fingerprint ON alerts (fingerprint, received_at);
CREATE INDEX alerts_by_state ON alerts (state, received_at);
CREATE INDEX alerts_by_correlation ON alerts (correlation);

CREATE TABLE actions (
    id               TEXT PRIMARY KEY,
    chain_id         TEXT NOT NULL,
    step_index       BIGINT NOT NULL,
    predecessor      TEXT,
    alert_id         TEXT,
    playbook         TEXT,
    kind             TEXT NOT NULL,
    target           TEXT NOT NULL,
    params           TEXT NOT NULL,
    approval         TEXT,
    mode             TEXT NOT NULL,
    reason           TEXT NOT NULL,
    origin           TEXT NOT NULL,
    requested_by     TEXT,
    state            TEXT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    delay_secs       BIGINT NOT NULL,
    deadline_secs    BIGINT NOT NULL,
    not_before       TEXT NOT NULL,
    deadline_at      TEXT NOT NULL,
    claimed_by       TEXT,
    claim_expires_at TEXT,
    user_id          TEXT,
    last_error       TEXT,
    result           TEXT,
    limit_override   BIGINT NOT NULL DEFAULT 0,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    started_at       TEXT,
    finished_at      TEXT
);
CREATE INDEX actions_due ON actions (state, not_before);
CREATE INDEX actions_by_target ON actions (target, kind, state);
CREATE INDEX actions_by_chain ON actions (chain_id, step_index);
CREATE INDEX actions_by_alert ON actions (alert_id);
CREATE INDEX actions_started ON actions (kind, started_at);

CREATE TABLE approvals (
    id           TEXT PRIMARY KEY,
    action_id    TEXT NOT NULL,
    state        TEXT NOT NULL,
    request      TEXT NOT NULL,
    binding_hash TEXT NOT NULL,
    requested_by TEXT,
    decisions    TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    escalate_at  TEXT,
    escalated    BIGINT NOT NULL DEFAULT 0,
    decided_at   TEXT
);
CREATE INDEX approvals_by_state ON approvals (state, expires_at);
CREATE INDEX approvals_by_action ON approvals (action_id);

CREATE TABLE limit_trips (
    id         BIGSERIAL PRIMARY KEY,
    scope      TEXT NOT NULL,
    tripped_at TEXT NOT NULL,
    reset_at   TEXT,
    reset_by   TEXT
);

CREATE TABLE audit (
    seq       BIGINT PRIMARY KEY,
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
CREATE INDEX audit_by_kind ON audit (kind);

-- The service never changes audit rows: make the database refuse it too.
CREATE FUNCTION lockout_audit_append_only() RETURNS trigger AS $fn$
BEGIN
    RAISE EXCEPTION 'audit records are append-only';
END
$fn$ LANGUAGE plpgsql;
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit FOR EACH ROW EXECUTE FUNCTION lockout_audit_append_only();
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit FOR EACH ROW EXECUTE FUNCTION lockout_audit_append_only();
"#,
    ),
    (
        2,
        "audit forwarding cursor and retention anchor",
        r#"
CREATE TABLE forward_cursors (
    name       TEXT PRIMARY KEY,
    seq        BIGINT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE audit_anchors (
    seq       BIGINT PRIMARY KEY,
    hash      TEXT NOT NULL,
    pruned_at TEXT NOT NULL,
    pruned_by TEXT NOT NULL
);
"#,
    ),
    (
        3,
        "indexes for what intake writes and what queries read",
        V3_INDEXES,
    ),
    (5, "the alerts that asked for each action", V5_ACTION_ALERTS),
    (
        6,
        "signed requests seen, for replay refusal across replicas",
        V6_SEEN_SIGNATURES,
    ),
    (7, "signed retention anchors", V7_SIGNED_ANCHORS),
    (8, "the sandbox's users", V8_SANDBOX_STATE),
    (
        9,
        "the plan intake made, stored with its alert",
        V9_STORED_PLAN,
    ),
    (
        10,
        "who each alert is about, searchable",
        V10_ALERT_SUBJECTS,
    ),
    (11, "suppressions", V11_SUPPRESSIONS),
    (
        12,
        "1Password events, feed cursors, action context and proof",
        V12_EVENTS,
    ),
];

/// Version 3 is the same SQL on both backends (partial indexes exist on both).
const V3_INDEXES: &str = r#"
-- Most alerts are stored already evaluated: only 'received' ones need finding by state.
DROP INDEX alerts_by_state;
CREATE INDEX alerts_unevaluated ON alerts (received_at, id) WHERE state = 'received';
-- One index for de-duplication (correlation, fingerprint, window) and for finding the firing
-- alert of a resolved one (correlation): both keys are hashes, so every insert lands on a
-- random page, and two such indexes doubled what each commit writes.
DROP INDEX alerts_by_fingerprint;
DROP INDEX alerts_by_correlation;
CREATE INDEX alerts_by_correlation ON alerts (correlation, fingerprint, received_at);
-- Audit queries filter by alert, action or subject (selective); by kind they scan by seq.
-- Most records (every alert's) have no subject: leave them out of its index.
DROP INDEX audit_by_kind;
DROP INDEX audit_by_subject;
CREATE INDEX audit_by_subject ON audit (subject) WHERE subject IS NOT NULL;
CREATE INDEX audit_by_action ON audit (action_id) WHERE action_id IS NOT NULL;
"#;

/// Versions 5 to 7 are the same SQL on both backends.
const V5_ACTION_ALERTS: &str = r#"
-- Every alert that asked for an action: the one that created it and each later one that
-- attached to it. A resolved alert withdraws its request; an approval is cancelled on resolve
-- only when no request is left.
CREATE TABLE action_alerts (
    action_id   TEXT NOT NULL,
    alert_id    TEXT NOT NULL,
    correlation TEXT NOT NULL,
    resolved_at TEXT,
    PRIMARY KEY (action_id, alert_id)
);
CREATE INDEX action_alerts_by_correlation ON action_alerts (correlation);
INSERT INTO action_alerts (action_id, alert_id, correlation)
    SELECT ac.id, al.id, al.correlation FROM actions ac JOIN alerts al ON al.id = ac.alert_id;
CREATE INDEX actions_by_user ON actions (user_id, kind, state);
"#;

const V6_SEEN_SIGNATURES: &str = r#"
-- The replay key of each signed (HMAC) request accepted, until it can no longer be replayed
-- (its timestamp is out of tolerance) or for a day: every replica refuses a replay.
CREATE TABLE seen_signatures (
    source     TEXT NOT NULL,
    replay_key TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    PRIMARY KEY (source, replay_key)
);
CREATE INDEX seen_signatures_by_expiry ON seen_signatures (expires_at);
"#;

const V7_SIGNED_ANCHORS: &str = r#"
-- A prune's anchor is signed with the checkpoint key (outside the database): an anchor row
-- inserted by someone who can write the database does not verify.
ALTER TABLE audit_anchors ADD COLUMN signature TEXT;
"#;

/// The sandbox fake's users (sandbox mode only): the CLI and a restarted service see the
/// states the service left, not a fresh sample account.
const V8_SANDBOX_STATE: &str = r#"
CREATE TABLE sandbox_users (
    id   TEXT PRIMARY KEY,
    seed TEXT NOT NULL
);
"#;

/// Intake evaluates every alert; an alert that starts actions is stored with that plan, and
/// the planner carries it out instead of evaluating again.
/// Every name (e-mail, lower-cased; 1Password id) an alert gives its subjects, so the console
/// finds a user's alerts by index among any number of alerts.
/// On SQLite the table is its own index (WITHOUT ROWID): one b-tree insert per name on
/// intake's path instead of two.
const V10_ALERT_SUBJECTS_SQLITE: &str = r#"
CREATE TABLE alert_subjects (
    subject  TEXT NOT NULL,
    alert_id TEXT NOT NULL,
    PRIMARY KEY (subject, alert_id)
) WITHOUT ROWID;
"#;

const V10_ALERT_SUBJECTS: &str = r#"
CREATE TABLE alert_subjects (
    subject  TEXT NOT NULL,
    alert_id TEXT NOT NULL,
    PRIMARY KEY (subject, alert_id)
);
"#;

/// Suppressions: which matches an analyst holds back, why, by whom, until when.
const V11_SUPPRESSIONS: &str = r#"
CREATE TABLE suppressions (
    id          TEXT PRIMARY KEY,
    user_match  TEXT,
    playbook    TEXT,
    source      TEXT,
    labels      TEXT NOT NULL,
    reason      TEXT NOT NULL,
    author      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    removed_at  TEXT,
    removed_by  TEXT,
    expiry_recorded INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX suppressions_by_expiry ON suppressions (expires_at);
"#;

const V9_STORED_PLAN: &str = r#"
ALTER TABLE alerts ADD COLUMN plan TEXT;
"#;

/// The Events API's events as lockout read them (de-duplicated by feed and uuid; `ts` is the
/// event's time in lockout's fixed format, so text order is time order), each feed's cursor,
/// the activity frozen into an action when it was requested, and each action's proof.
const V12_EVENTS: &str = r#"
CREATE TABLE events (
    feed        TEXT NOT NULL,
    uuid        TEXT NOT NULL,
    ts          TEXT NOT NULL,
    user_key    TEXT,
    user_email  TEXT,
    object_key  TEXT,
    facts       TEXT NOT NULL,
    item        TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (feed, uuid)
);
CREATE INDEX events_by_user ON events (user_key, ts);
CREATE INDEX events_by_email ON events (user_email, ts);
CREATE INDEX events_by_object ON events (object_key, ts);
CREATE INDEX events_by_time ON events (ts);
CREATE TABLE event_cursors (
    feed       TEXT PRIMARY KEY,
    cursor     TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE action_context (
    action_id  TEXT PRIMARY KEY,
    context    TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE action_verifications (
    action_id   TEXT PRIMARY KEY,
    outcome     TEXT NOT NULL,
    event_uuid  TEXT,
    recorded_at TEXT NOT NULL
);
"#;

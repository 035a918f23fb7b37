//! The schema and its migrations: forward only, one transaction each, numbered by
//! SQLite's `user_version`.
//!
//! A migration is never edited once released: a change is a new migration appended to
//! [`MIGRATIONS`]. The tests open a database left at every earlier version, with data in
//! it, and check that it reaches the same schema as a new one and keeps its data.

use rusqlite::Connection;

use crate::error::{Result, StoreError};

/// The migrations, in order. Index `i` takes the schema from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // 1: the collected data, users, consent, the audit log and destruction records.
    r#"
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    login TEXT NOT NULL UNIQUE COLLATE NOCASE,
    role TEXT NOT NULL CHECK (role IN ('agent', 'manager', 'admin', 'support')),
    password_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    access_until INTEGER,
    disabled INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE contacts (
    id INTEGER PRIMARY KEY,
    phone TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL DEFAULT '',
    email TEXT NOT NULL DEFAULT '',
    extra TEXT NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    blocked_at INTEGER
);

CREATE TABLE calls (
    id INTEGER PRIMARY KEY,
    contact_id INTEGER REFERENCES contacts(id),
    agent_id INTEGER REFERENCES users(id),
    direction TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    local_number TEXT NOT NULL DEFAULT '',
    remote_number TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    answered_at INTEGER,
    ended_at INTEGER,
    sip_call_id TEXT,
    recording_path TEXT,
    jitter_ms REAL,
    loss_pct REAL,
    rtt_ms REAL,
    mos REAL,
    outcome TEXT
);
CREATE INDEX calls_contact ON calls(contact_id);
CREATE INDEX calls_started ON calls(started_at);

CREATE TABLE scripts (
    script_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    name TEXT NOT NULL,
    fields TEXT NOT NULL,
    PRIMARY KEY (script_id, version)
) WITHOUT ROWID;

CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    script_id TEXT NOT NULL,
    script_version INTEGER NOT NULL,
    contact_id INTEGER REFERENCES contacts(id),
    call_id INTEGER REFERENCES calls(id),
    agent_id INTEGER REFERENCES users(id),
    state TEXT NOT NULL CHECK (state IN ('active', 'finished')),
    started_at INTEGER NOT NULL,
    ended_at INTEGER,
    outcome TEXT
);
CREATE INDEX runs_started ON runs(started_at);
CREATE INDEX runs_contact ON runs(contact_id);
CREATE INDEX runs_active ON runs(state) WHERE state = 'active';

-- The bulky part of a run, apart so that scanning runs (exports, filters) stays fast:
-- what the runner was started with, and the finished record (path, answers, timings).
-- run_data, run_events and field_values have no foreign key to runs: they are written
-- only by a batch that has checked the run, and deleted with it explicitly (privacy.rs);
-- the per-row parent lookup cost a tenth of the insert rate.
CREATE TABLE run_data (
    run_id INTEGER PRIMARY KEY,
    context TEXT NOT NULL,
    record TEXT
);

CREATE TABLE run_events (
    run_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;

CREATE TABLE field_values (
    run_id INTEGER NOT NULL,
    field TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_id, field)
) WITHOUT ROWID;

CREATE TABLE callbacks (
    id INTEGER PRIMARY KEY,
    run_id INTEGER REFERENCES runs(id) ON DELETE CASCADE,
    contact_id INTEGER REFERENCES contacts(id),
    agent_id INTEGER REFERENCES users(id),
    due TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'cancelled')),
    created_at INTEGER NOT NULL
);
CREATE INDEX callbacks_contact ON callbacks(contact_id);

CREATE TABLE consents (
    id INTEGER PRIMARY KEY,
    contact_id INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    given INTEGER NOT NULL,
    purpose TEXT NOT NULL,
    at INTEGER NOT NULL,
    recorded_by INTEGER REFERENCES users(id),
    method TEXT NOT NULL,
    script_id TEXT,
    script_version INTEGER,
    step TEXT,
    run_id INTEGER
);
CREATE INDEX consents_contact ON consents(contact_id);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    user_id INTEGER,
    action TEXT NOT NULL,
    target TEXT,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

CREATE TABLE destructions (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    reason TEXT NOT NULL,
    user_id INTEGER,
    contacts INTEGER NOT NULL,
    runs INTEGER NOT NULL,
    calls INTEGER NOT NULL,
    other INTEGER NOT NULL
);
"#,
    // 2: the CRM outbox (issue 6 delivers it).
    r#"
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    target TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    contact_id INTEGER REFERENCES contacts(id),
    run_id INTEGER,
    call_id INTEGER,
    state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_until INTEGER,
    last_error TEXT,
    crm_ref TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX outbox_due ON outbox(state, next_attempt_at);
CREATE INDEX outbox_contact ON outbox(contact_id);
"#,
    // 3: indexes for export filters and retention.
    r#"
CREATE INDEX runs_script ON runs(script_id, started_at);
CREATE INDEX runs_agent ON runs(agent_id, started_at);
CREATE INDEX contacts_updated ON contacts(updated_at);
CREATE INDEX contacts_blocked ON contacts(blocked_at) WHERE blocked_at IS NOT NULL;
"#,
    // 4: how far each outbox item's delivery got (the CRM sync's progress: CRM ids and
    // stage marks, JSON), kept with the item so it is saved in the same encrypted file,
    // in a transaction, and goes when the item goes.
    r#"
ALTER TABLE outbox ADD COLUMN progress TEXT;
"#,
];

/// The newest schema version this build knows.
pub const LATEST: i64 = MIGRATIONS.len() as i64;

/// The schema version of an open database.
pub fn version(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

/// Bring the schema up to `target` (normally [`LATEST`]). Refuses a database from a newer
/// CallHelper without touching it.
pub fn migrate(conn: &mut Connection, target: i64) -> Result<()> {
    let found = version(conn)?;
    if found > LATEST {
        return Err(StoreError::TooNew {
            found,
            known: LATEST,
        });
    }
    for v in found..target.min(LATEST) {
        let tx = conn.transaction()?;
        tx.execute_batch(MIGRATIONS[v as usize])?;
        // `user_version` takes no bound parameter; `v` is our own integer.
        tx.execute_batch(&format!("PRAGMA user_version = {}", v + 1))?;
        tx.commit()?;
        log::info!("store: schema migrated to version {}", v + 1);
    }
    Ok(())
}

//! Script runs: the runner's events, one row each with a sequence number, committed before
//! the caller hears they are stored; the collected field values; the finished record; and
//! the callback a run agreed.
//!
//! The events are the truth: a run is rebuilt from them with
//! [`callhelper_script::Run::replay`], after a crash or a restart. The field values and the
//! record are kept beside them so exports and searches need no replay.
//!
//! Writes go through a [`Batch`] (one transaction): the app writes one action's events per
//! batch; bulk loads and the benchmark write thousands of runs per batch.

use std::collections::BTreeMap;

use callhelper_script::{Context, Program, RunEvent, RunRecord, Timestamp, Value};
use rusqlite::types::Value as Sql;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};

use crate::access::{Permission, UserId};
use crate::calls::CallId;
use crate::contacts::{self, Contact, ContactId};
use crate::error::{Result, StoreError};
use crate::outbox::{self, CrmPlanner};
use crate::{Session, Store};

/// A run's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(pub i64);

/// Whether a run is still going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Started and not finished (or interrupted by a crash: resume it).
    Active,
    /// Finished.
    Finished,
}

/// A new run. `Debug` leaves out the context and events (they may hold personal data).
#[derive(Clone, Copy)]
pub struct NewRun<'a> {
    /// The script it follows (its id, version and fields are recorded).
    pub program: &'a Program,
    /// The person called, if known.
    pub contact: Option<ContactId>,
    /// The call it belongs to.
    pub call: Option<CallId>,
    /// What the runner was started with (`Run::start`'s context).
    pub context: &'a Context,
    /// The events `Run::start` returned (beginning with `started`).
    pub events: &'a [RunEvent],
}

/// A finished run, as the CRM planner sees it. `Debug` shows ids only.
#[derive(Clone, Copy)]
pub struct FinishedRun<'a> {
    /// The run.
    pub run: RunId,
    /// The person, if the run has one.
    pub contact: Option<&'a Contact>,
    /// The agent.
    pub agent: Option<UserId>,
    /// The call.
    pub call: Option<CallId>,
    /// What the run found out.
    pub record: &'a RunRecord,
}

impl std::fmt::Debug for NewRun<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewRun")
            .field("program", &self.program)
            .field("contact", &self.contact)
            .field("call", &self.call)
            .field("events", &self.events.len())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for FinishedRun<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FinishedRun")
            .field("run", &self.run)
            .field("contact", &self.contact.map(|c| c.id))
            .field("agent", &self.agent)
            .field("call", &self.call)
            .field("outcome", &self.record.outcome)
            .finish_non_exhaustive()
    }
}

/// A stored run, with everything needed to resume it.
#[derive(Clone, PartialEq, Serialize)]
pub struct StoredRun {
    /// Id.
    pub id: RunId,
    /// The script's id.
    pub script_id: String,
    /// The script's version.
    pub script_version: u32,
    /// The person.
    pub contact: Option<ContactId>,
    /// The call.
    pub call: Option<CallId>,
    /// The agent.
    pub agent: Option<UserId>,
    /// State.
    pub state: RunState,
    /// When it began.
    pub started_at: Timestamp,
    /// When it ended.
    pub ended_at: Option<Timestamp>,
    /// The outcome.
    pub outcome: Option<String>,
    /// The context it was started with (may hold personal data).
    pub context: Context,
    /// The events, in order.
    pub events: Vec<RunEvent>,
    /// The finished record.
    pub record: Option<RunRecord>,
}

impl std::fmt::Debug for StoredRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredRun")
            .field("id", &self.id)
            .field("script_id", &self.script_id)
            .field("script_version", &self.script_version)
            .field("state", &self.state)
            .field("events", &self.events.len())
            .finish_non_exhaustive()
    }
}

/// A script's field as the export needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FieldInfo {
    pub id: String,
    pub label: String,
    #[serde(default)]
    pub personal: bool,
}

/// One transaction of run writes. Get one from [`Store::batch`].
pub struct Batch<'a> {
    tx: Transaction<'a>,
    now: Timestamp,
    agent: UserId,
    planner: Option<std::sync::Arc<dyn CrmPlanner>>,
    events: u64,
    /// Runs this batch knows are active. Saves two lookups per write when a batch
    /// starts and finishes many runs.
    known: std::collections::HashMap<RunId, Active>,
    /// Script versions already recorded in this batch.
    scripts: std::collections::HashSet<(String, u32)>,
}

impl std::fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

fn run_state(tx: &Connection, run: RunId) -> Result<(RunState, Option<i64>, Option<i64>)> {
    let row: Option<(String, Option<i64>, Option<i64>)> = tx
        .prepare_cached("SELECT state, contact_id, call_id FROM runs WHERE id = ?1")?
        .query_row([run.0], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    match row {
        Some((s, c, k)) => Ok((
            if s == "active" {
                RunState::Active
            } else {
                RunState::Finished
            },
            c,
            k,
        )),
        None => Err(StoreError::NotFound {
            what: "run",
            id: run.0,
        }),
    }
}

/// Rows per multi-row INSERT.
const ROWS_PER_INSERT: usize = 16;

/// `INSERT INTO <table> VALUES (?, ?, ?), ...` for `rows` rows of three columns, built
/// once per size.
fn multi_insert(table: &str, rows: usize) -> String {
    let mut sql = format!("INSERT INTO {table} VALUES ");
    for i in 0..rows {
        sql.push_str(if i == 0 { "(?, ?, ?)" } else { ", (?, ?, ?)" });
    }
    sql
}

/// What a batch knows about an active run.
#[derive(Debug, Clone, Copy)]
struct Active {
    contact: Option<i64>,
    call: Option<i64>,
    next_seq: i64,
    /// The run may have stored field values (to be replaced, not just added).
    has_fields: bool,
}

impl Batch<'_> {
    fn insert_events(&mut self, run: RunId, first_seq: i64, events: &[RunEvent]) -> Result<()> {
        // Several rows per statement: the per-statement cost dominates small rows.
        let mut seq = first_seq;
        for chunk in events.chunks(ROWS_PER_INSERT) {
            let mut values = Vec::with_capacity(chunk.len() * 3);
            for e in chunk {
                values.push(Sql::Integer(run.0));
                values.push(Sql::Integer(seq));
                values.push(Sql::Text(serde_json::to_string(e)?));
                seq += 1;
            }
            self.tx
                .prepare_cached(&multi_insert(
                    "run_events (run_id, seq, event)",
                    chunk.len(),
                ))?
                .execute(rusqlite::params_from_iter(values))?;
        }
        self.events += events.len() as u64;
        Ok(())
    }

    /// The run's contact, call and next sequence number; refuses a finished run.
    fn active(&mut self, run: RunId) -> Result<Active> {
        if let Some(k) = self.known.get(&run) {
            return Ok(*k);
        }
        let (state, contact, call) = run_state(&self.tx, run)?;
        if state == RunState::Finished {
            return Err(StoreError::RunFinished { run: run.0 });
        }
        let seq: i64 = self
            .tx
            .prepare_cached("SELECT coalesce(max(seq) + 1, 0) FROM run_events WHERE run_id = ?1")?
            .query_row([run.0], |r| r.get(0))?;
        Ok(Active {
            contact,
            call,
            next_seq: seq,
            has_fields: true,
        })
    }

    fn save_fields(
        &self,
        run: RunId,
        fields: &BTreeMap<String, Value>,
        had_none: bool,
    ) -> Result<()> {
        if !had_none {
            self.tx
                .prepare_cached("DELETE FROM field_values WHERE run_id = ?1")?
                .execute([run.0])?;
        }
        let fields: Vec<_> = fields.iter().collect();
        for chunk in fields.chunks(ROWS_PER_INSERT) {
            let mut values = Vec::with_capacity(chunk.len() * 3);
            for (k, v) in chunk {
                values.push(Sql::Integer(run.0));
                values.push(Sql::Text((*k).clone()));
                values.push(Sql::Text(serde_json::to_string(v)?));
            }
            self.tx
                .prepare_cached(&multi_insert(
                    "field_values (run_id, field, value)",
                    chunk.len(),
                ))?
                .execute(rusqlite::params_from_iter(values))?;
        }
        Ok(())
    }

    /// Start a run: record the script, the run and its first events. Refused for a
    /// blocked person.
    pub fn start_run(&mut self, new: &NewRun<'_>) -> Result<RunId> {
        let Some(RunEvent::Started { at, .. }) = new.events.first() else {
            return Err(StoreError::Corrupt(
                "a run must begin with `started`".into(),
            ));
        };
        if let Some(c) = new.contact
            && contacts::blocked_by_id(&self.tx, c.0)?
        {
            return Err(StoreError::Blocked);
        }
        let script = new.program.script();
        if self.scripts.insert((script.id.clone(), script.version)) {
            let fields: Vec<FieldInfo> = script
                .fields
                .iter()
                .map(|f| FieldInfo {
                    id: f.id.clone(),
                    label: f.label.clone(),
                    personal: f.personal,
                })
                .collect();
            self.tx
                .prepare_cached(
                    "INSERT INTO scripts (script_id, version, name, fields) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT DO NOTHING",
                )?
                .execute(params![
                    script.id,
                    script.version,
                    script.name,
                    serde_json::to_string(&fields)?
                ])?;
        }
        self.tx
            .prepare_cached(
                "INSERT INTO runs (script_id, script_version, contact_id, call_id, agent_id, state, started_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'active', ?6)",
            )?
            .execute(params![
                script.id,
                script.version,
                new.contact.map(|c| c.0),
                new.call.map(|c| c.0),
                self.agent.0,
                at.0
            ])?;
        let id = RunId(self.tx.last_insert_rowid());
        self.tx
            .prepare_cached("INSERT INTO run_data (run_id, context) VALUES (?1, ?2)")?
            .execute(params![id.0, serde_json::to_string(new.context)?])?;
        self.insert_events(id, 0, new.events)?;
        self.known.insert(
            id,
            Active {
                contact: new.contact.map(|c| c.0),
                call: new.call.map(|c| c.0),
                next_seq: new.events.len() as i64,
                has_fields: false,
            },
        );
        Ok(id)
    }

    /// Append events to an active run, and (when given) replace its current field values.
    pub fn append(
        &mut self,
        run: RunId,
        events: &[RunEvent],
        fields: Option<&BTreeMap<String, Value>>,
    ) -> Result<()> {
        let mut a = self.active(run)?;
        self.insert_events(run, a.next_seq, events)?;
        if let Some(f) = fields {
            self.save_fields(run, f, !a.has_fields)?;
            a.has_fields = true;
        }
        a.next_seq += events.len() as i64;
        self.known.insert(run, a);
        Ok(())
    }

    /// Append the last events of a run and store it as finished: its record, outcome and
    /// field values, the callback it agreed, and its CRM work (unless the person is
    /// blocked), all in this transaction.
    pub fn finish(&mut self, run: RunId, events: &[RunEvent], record: &RunRecord) -> Result<()> {
        let Active {
            contact,
            call,
            next_seq,
            has_fields,
        } = self.active(run)?;
        self.known.remove(&run);
        self.insert_events(run, next_seq, events)?;
        self.save_fields(run, &record.fields, !has_fields)?;
        // The record without its fields: they are in `field_values` (read back by
        // `stored_run`), and stored once.
        let mut stored = record.clone();
        stored.fields.clear();
        let n = self
            .tx
            .prepare_cached(
                "UPDATE runs SET state = 'finished', ended_at = ?2, outcome = ?3
                 WHERE id = ?1 AND state = 'active'",
            )?
            .execute(params![
                run.0,
                record.ended_at.map(|t| t.0),
                record.outcome.as_ref().map(|o| o.as_str().to_owned()),
            ])?;
        if n == 0 {
            return Err(StoreError::RunFinished { run: run.0 });
        }
        self.tx
            .prepare_cached("UPDATE run_data SET record = ?2 WHERE run_id = ?1")?
            .execute(params![run.0, serde_json::to_string(&stored)?])?;
        if let Some(due) = &record.callback_at {
            self.tx
                .prepare_cached(
                    "INSERT INTO callbacks (run_id, contact_id, agent_id, due, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![run.0, contact, self.agent.0, due, self.now.0])?;
        }
        if let Some(planner) = &self.planner {
            let contact = match contact {
                Some(c) => Some(contacts::by_id(&self.tx, ContactId(c))?),
                None => None,
            };
            if contact.as_ref().is_none_or(|c| c.blocked_at.is_none()) {
                let items = planner.plan_run(&FinishedRun {
                    run,
                    contact: contact.as_ref(),
                    agent: Some(self.agent),
                    call: call.map(CallId),
                    record,
                });
                outbox::enqueue_in(&self.tx, self.now, &items, Some(run.0), call)?;
            }
        }
        Ok(())
    }

    /// How many events this batch has written so far.
    pub fn events_written(&self) -> u64 {
        self.events
    }
}

pub(crate) fn stored_run(db: &Connection, id: i64) -> Result<StoredRun> {
    let mut run = db
        .prepare_cached(
            "SELECT id, script_id, script_version, contact_id, call_id, agent_id, state, started_at,
                    ended_at, outcome, d.context, d.record
             FROM runs LEFT JOIN run_data d ON d.run_id = runs.id WHERE id = ?1",
        )?
        .query_row([id], |r| {
            Ok((
                StoredRun {
                    id: RunId(r.get(0)?),
                    script_id: r.get(1)?,
                    script_version: r.get(2)?,
                    contact: r.get::<_, Option<i64>>(3)?.map(ContactId),
                    call: r.get::<_, Option<i64>>(4)?.map(CallId),
                    agent: r.get::<_, Option<i64>>(5)?.map(UserId),
                    state: if r.get::<_, String>(6)? == "active" {
                        RunState::Active
                    } else {
                        RunState::Finished
                    },
                    started_at: Timestamp(r.get(7)?),
                    ended_at: r.get::<_, Option<i64>>(8)?.map(Timestamp),
                    outcome: r.get(9)?,
                    context: Context::default(),
                    events: Vec::new(),
                    record: None,
                },
                r.get::<_, Option<String>>(10)?,
                r.get::<_, Option<String>>(11)?,
            ))
        })
        .optional()?
        .map(|(mut run, context, record)| -> Result<StoredRun> {
            run.context = context.map(|c| serde_json::from_str(&c)).transpose()?.unwrap_or_default();
            run.record = record.map(|r| serde_json::from_str(&r)).transpose()?;
            Ok(run)
        })
        .ok_or(StoreError::NotFound { what: "run", id })??;
    run.events = events_of(db, id)?;
    if let Some(record) = &mut run.record {
        let mut stmt =
            db.prepare_cached("SELECT field, value FROM field_values WHERE run_id = ?1")?;
        let rows = stmt.query_map([id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        for row in rows {
            let (k, v) = row?;
            record.fields.insert(k, serde_json::from_str(&v)?);
        }
    }
    Ok(run)
}

pub(crate) fn events_of(db: &Connection, run: i64) -> Result<Vec<RunEvent>> {
    let mut stmt =
        db.prepare_cached("SELECT event FROM run_events WHERE run_id = ?1 ORDER BY seq")?;
    let rows = stmt.query_map([run], |r| r.get::<_, String>(0))?;
    let mut events = Vec::new();
    for e in rows {
        events.push(serde_json::from_str(&e?)?);
    }
    Ok(events)
}

impl Store {
    /// Run `f` in one transaction of run writes, committed (and on disk) when this
    /// returns `Ok`. Nothing of it is stored when `f` or the commit fails.
    pub fn batch<T>(&self, s: &Session, f: impl FnOnce(&mut Batch<'_>) -> Result<T>) -> Result<T> {
        let now = self.now();
        let planner = self.planner();
        let mut db = self.db();
        self.require(&db, s, Permission::Work, "record a run")?;
        let tx = db.transaction()?;
        let mut batch = Batch {
            tx,
            now,
            agent: s.user(),
            planner,
            events: 0,
            known: Default::default(),
            scripts: Default::default(),
        };
        let out = f(&mut batch)?;
        let n = batch.events;
        batch.tx.commit()?;
        log::debug!("store: {n} run event(s) committed");
        Ok(out)
    }

    /// Start a run (one transaction). See [`Batch::start_run`].
    pub fn start_run(&self, s: &Session, new: &NewRun<'_>) -> Result<RunId> {
        let id = self.batch(s, |b| b.start_run(new))?;
        log::info!("store: run {} started", id.0);
        Ok(id)
    }

    /// Store a run's new events; returns once they are committed. See [`Batch::append`].
    pub fn append_events(
        &self,
        s: &Session,
        run: RunId,
        events: &[RunEvent],
        fields: Option<&BTreeMap<String, Value>>,
    ) -> Result<()> {
        self.batch(s, |b| b.append(run, events, fields))
    }

    /// Store a run's last events and its record. See [`Batch::finish`].
    pub fn finish_run(
        &self,
        s: &Session,
        run: RunId,
        events: &[RunEvent],
        record: &RunRecord,
    ) -> Result<()> {
        self.batch(s, |b| b.finish(run, events, record))?;
        log::info!("store: run {} finished", run.0);
        Ok(())
    }

    /// A run with its events.
    pub fn run(&self, s: &Session, id: RunId) -> Result<StoredRun> {
        let db = self.db();
        self.require(&db, s, Permission::View, "view a run")?;
        stored_run(&db, id.0)
    }

    /// Runs that were started and not finished (a crash, a closed window), oldest first;
    /// only the signed-in agent's when `mine` is set. Resume each with `Run::replay`.
    pub fn unfinished_runs(&self, s: &Session, mine: bool) -> Result<Vec<StoredRun>> {
        let db = self.db();
        self.require(&db, s, Permission::View, "view unfinished runs")?;
        let ids: Vec<i64> = db
            .prepare("SELECT id FROM runs WHERE state = 'active' AND (?1 IS NULL OR agent_id = ?1) ORDER BY id")?
            .query_map([mine.then_some(s.user().0)], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        ids.into_iter().map(|id| stored_run(&db, id)).collect()
    }

    /// The runs of one person, oldest first.
    pub fn runs_of_contact(&self, s: &Session, contact: ContactId) -> Result<Vec<StoredRun>> {
        let db = self.db();
        self.require(&db, s, Permission::View, "view runs")?;
        let ids: Vec<i64> = db
            .prepare("SELECT id FROM runs WHERE contact_id = ?1 ORDER BY id")?
            .query_map([contact.0], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        ids.into_iter().map(|id| stored_run(&db, id)).collect()
    }

    /// Pending callbacks, soonest first: (run, contact, due).
    pub fn pending_callbacks(&self, s: &Session) -> Result<Vec<Callback>> {
        let db = self.db();
        self.require(&db, s, Permission::View, "view callbacks")?;
        let mut stmt = db.prepare(&format!(
            "SELECT {CALLBACK_COLUMNS} FROM callbacks WHERE state = 'pending' ORDER BY due, id"
        ))?;
        let rows = stmt.query_map([], callback_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Mark a callback done (or cancelled).
    pub fn close_callback(&self, s: &Session, id: i64, done: bool) -> Result<()> {
        let db = self.db();
        self.require(&db, s, Permission::Work, "close a callback")?;
        let n = db.execute(
            "UPDATE callbacks SET state = ?2 WHERE id = ?1 AND state = 'pending'",
            params![id, if done { "done" } else { "cancelled" }],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound {
                what: "callback",
                id,
            });
        }
        Ok(())
    }
}

pub(crate) const CALLBACK_COLUMNS: &str = "id, run_id, contact_id, agent_id, due";

pub(crate) fn callback_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Callback> {
    Ok(Callback {
        id: r.get(0)?,
        run: r.get::<_, Option<i64>>(1)?.map(RunId),
        contact: r.get::<_, Option<i64>>(2)?.map(ContactId),
        agent: r.get::<_, Option<i64>>(3)?.map(UserId),
        due: r.get(4)?,
    })
}

/// A callback a run agreed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Callback {
    /// Id.
    pub id: i64,
    /// The run that agreed it.
    pub run: Option<RunId>,
    /// The person to call back.
    pub contact: Option<ContactId>,
    /// The agent.
    pub agent: Option<UserId>,
    /// When (`2026-03-31` or `2026-03-31T14:30`, as the script's field holds it).
    pub due: String,
}

//! Calls: direction, numbers, when it started, was answered and ended, the SIP Call-ID,
//! the recording's path, quality figures and the outcome.
//!
//! The call path asks the store first: a call to or from a blocked person is refused
//! (terms «b»: blocking stops all processing).

use callhelper_script::Timestamp;
use rusqlite::{OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

use crate::access::Permission;
use crate::contacts::{self, ContactId};
use crate::error::{Result, StoreError};
use crate::outbox;
use crate::pii::Pii;
use crate::{Session, Store, UserId};

/// A call's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CallId(pub i64);

/// Who called whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// The client called.
    Inbound,
    /// The agent called.
    Outbound,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// Quality figures measured during the call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Quality {
    /// Mean jitter, milliseconds.
    pub jitter_ms: Option<f64>,
    /// Packet loss, percent.
    pub loss_pct: Option<f64>,
    /// Round-trip time, milliseconds.
    pub rtt_ms: Option<f64>,
    /// MOS estimate (1–5).
    pub mos: Option<f64>,
}

/// A call as it begins.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCall {
    /// Direction.
    pub direction: Direction,
    /// Our number or account.
    pub local_number: String,
    /// The client's number as dialled or received.
    pub remote_number: Pii<String>,
    /// When it began.
    pub started_at: Timestamp,
    /// The SIP Call-ID.
    pub sip_call_id: Option<String>,
}

/// How a call ended.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallEnd {
    /// When it was answered, if it was.
    pub answered_at: Option<Timestamp>,
    /// When it ended.
    pub ended_at: Timestamp,
    /// The recording, if one was made (with consent).
    pub recording_path: Option<Pii<String>>,
    /// Quality figures.
    pub quality: Quality,
    /// The outcome (`answered`, `busy`, `no_answer`, `failed`, or a script outcome).
    pub outcome: Option<String>,
}

/// A call as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Call {
    /// Id.
    pub id: CallId,
    /// The contact, when the number is known.
    pub contact: Option<ContactId>,
    /// The agent.
    pub agent: Option<UserId>,
    /// Direction.
    pub direction: Direction,
    /// Our number.
    pub local_number: String,
    /// The client's number (E.164 when it could be read as one).
    pub remote_number: Pii<String>,
    /// Began.
    pub started_at: Timestamp,
    /// Answered.
    pub answered_at: Option<Timestamp>,
    /// Ended.
    pub ended_at: Option<Timestamp>,
    /// SIP Call-ID.
    pub sip_call_id: Option<String>,
    /// Recording file.
    pub recording_path: Option<Pii<String>>,
    /// Quality.
    pub quality: Quality,
    /// Outcome.
    pub outcome: Option<String>,
}

pub(crate) const COLUMNS: &str = "id, contact_id, agent_id, direction, local_number, remote_number, \
    started_at, answered_at, ended_at, sip_call_id, recording_path, jitter_ms, loss_pct, rtt_ms, mos, outcome";

pub(crate) fn row(r: &Row<'_>) -> rusqlite::Result<Call> {
    Ok(Call {
        id: CallId(r.get(0)?),
        contact: r.get::<_, Option<i64>>(1)?.map(ContactId),
        agent: r.get::<_, Option<i64>>(2)?.map(UserId),
        direction: if r.get::<_, String>(3)? == "inbound" {
            Direction::Inbound
        } else {
            Direction::Outbound
        },
        local_number: r.get(4)?,
        remote_number: Pii::new(r.get(5)?),
        started_at: Timestamp(r.get(6)?),
        answered_at: r.get::<_, Option<i64>>(7)?.map(Timestamp),
        ended_at: r.get::<_, Option<i64>>(8)?.map(Timestamp),
        sip_call_id: r.get(9)?,
        recording_path: r.get::<_, Option<String>>(10)?.map(Pii::new),
        quality: Quality {
            jitter_ms: r.get(11)?,
            loss_pct: r.get(12)?,
            rtt_ms: r.get(13)?,
            mos: r.get(14)?,
        },
        outcome: r.get(15)?,
    })
}

impl Store {
    /// Record a call as it begins. Refused with [`StoreError::Blocked`] when the number
    /// belongs to a blocked person.
    pub fn start_call(&self, s: &Session, call: &NewCall) -> Result<CallId> {
        let raw = call.remote_number.expose().trim();
        let number = self
            .normalise_phone(raw)
            .map_or_else(|_| raw.to_owned(), |p| p.as_str().to_owned());
        let db = self.db();
        self.require(&db, s, Permission::Work, "record a call")?;
        let contact: Option<(i64, bool)> = db
            .prepare_cached("SELECT id, blocked_at IS NOT NULL FROM contacts WHERE phone = ?1")?
            .query_row([&number], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if contact.is_some_and(|(_, blocked)| blocked) {
            log::info!("store: call refused, the person is blocked");
            return Err(StoreError::Blocked);
        }
        db.prepare_cached(
            "INSERT INTO calls (contact_id, agent_id, direction, local_number, remote_number, started_at, sip_call_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            contact.map(|(id, _)| id),
            s.user().0,
            call.direction.as_str(),
            call.local_number,
            number,
            call.started_at.0,
            call.sip_call_id
        ])?;
        let id = CallId(db.last_insert_rowid());
        log::info!("store: call {} started", id.0);
        Ok(id)
    }

    /// Record how a call ended, and queue its CRM work in the same transaction.
    pub fn finish_call(&self, s: &Session, id: CallId, end: &CallEnd) -> Result<Call> {
        let now = self.now();
        let planner = self.planner();
        let mut db = self.db();
        self.require(&db, s, Permission::Work, "record a call")?;
        let tx = db.transaction()?;
        let n = tx.execute(
            "UPDATE calls SET answered_at = ?2, ended_at = ?3, recording_path = ?4, jitter_ms = ?5,
                    loss_pct = ?6, rtt_ms = ?7, mos = ?8, outcome = ?9 WHERE id = ?1",
            params![
                id.0,
                end.answered_at.map(|t| t.0),
                end.ended_at.0,
                end.recording_path.as_ref().map(|p| p.expose()),
                end.quality.jitter_ms,
                end.quality.loss_pct,
                end.quality.rtt_ms,
                end.quality.mos,
                end.outcome
            ],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound {
                what: "call",
                id: id.0,
            });
        }
        let call = tx.query_row(
            &format!("SELECT {COLUMNS} FROM calls WHERE id = ?1"),
            [id.0],
            row,
        )?;
        let blocked = match call.contact {
            Some(c) => contacts::blocked_by_id(&tx, c.0)?,
            None => false,
        };
        if let Some(p) = planner
            && !blocked
        {
            outbox::enqueue_in(&tx, now, &p.plan_call(&call), None, Some(id.0))?;
        }
        tx.commit()?;
        log::info!("store: call {} finished", id.0);
        Ok(call)
    }

    /// A call by id.
    pub fn call(&self, s: &Session, id: CallId) -> Result<Call> {
        let db = self.db();
        self.require(&db, s, Permission::View, "view a call")?;
        db.query_row(
            &format!("SELECT {COLUMNS} FROM calls WHERE id = ?1"),
            [id.0],
            row,
        )
        .optional()?
        .ok_or(StoreError::NotFound {
            what: "call",
            id: id.0,
        })
    }

    /// The latest calls, newest first (call history).
    pub fn recent_calls(&self, s: &Session, limit: u32) -> Result<Vec<Call>> {
        let db = self.db();
        self.require(&db, s, Permission::View, "view call history")?;
        let mut stmt = db.prepare(&format!(
            "SELECT {COLUMNS} FROM calls ORDER BY started_at DESC, id DESC LIMIT ?1"
        ))?;
        let rows = stmt.query_map([limit], row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

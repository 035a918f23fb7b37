//! The CRM outbox: work for the CRM sync (issue 6), queued in the same transaction that
//! stores the finished run or call it comes from, so nothing is lost and nothing is sent
//! for a result that was not stored.
//!
//! The store does not know the CRMs. The application registers a [`CrmPlanner`]
//! ([`Store::set_crm_planner`]) that turns a finished run or call into work items; the
//! store calls it inside its transaction. The sync worker then takes due items with
//! [`Outbox::claim_due`] (a lease keeps two workers off one item), and reports each as
//! sent or failed. Each item has an idempotency key, unique in the table, so queuing the
//! same result twice queues it once. How far a delivery got (the sync's progress: CRM ids
//! and which requests were attempted) is saved with the item ([`Outbox::save_progress`],
//! one transaction) and handed back by every claim, so a delivery interrupted by a crash
//! resumes from it.
//!
//! Personal-data rules apply here too: nothing is queued for a blocked person and queued
//! work of a blocked person is not handed out until they are unblocked (terms «b»:
//! blocking stops processing); every item says whether its person is blocked now
//! ([`OutboxItem::blocked`]), so a worker checks again just before sending; destroying a
//! person removes all their items, with their progress.

use std::sync::Arc;
use std::time::Duration;

use callhelper_script::Timestamp;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

use crate::access::Permission;
use crate::calls::Call;
use crate::error::{Result, StoreError};
use crate::runs::FinishedRun;
use crate::{Session, Store, lock};

/// An outbox item's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OutboxId(pub i64);

/// Where an item is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxState {
    /// Waiting to be sent (possibly after a failed attempt, at `next_attempt_at`).
    Queued,
    /// Delivered; the CRM accepted it.
    Sent,
    /// Given up: the CRM refused it for good, or the worker stopped retrying. "Retry now"
    /// queues it again.
    Failed,
}

impl OutboxState {
    fn as_str(self) -> &'static str {
        match self {
            OutboxState::Queued => "queued",
            OutboxState::Sent => "sent",
            OutboxState::Failed => "failed",
        }
    }

    fn parse(s: &str) -> OutboxState {
        match s {
            "sent" => OutboxState::Sent,
            "failed" => OutboxState::Failed,
            _ => OutboxState::Queued,
        }
    }
}

/// Work to queue.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct NewOutboxItem {
    /// Which CRM connection (`amocrm`, `bitrix24`, `webhook:orders`...).
    pub target: String,
    /// What to do (`call_finished`, `run_finished`, `callback`...).
    pub kind: String,
    /// The data to send (may hold personal data: it lives in the encrypted database).
    pub payload: serde_json::Value,
    /// Unique per result and target (`run:42:amocrm`): queuing it again does nothing.
    pub idempotency_key: String,
    /// The person the item is about, so blocking and destruction reach it.
    pub contact: Option<i64>,
}

impl std::fmt::Debug for NewOutboxItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewOutboxItem")
            .field("target", &self.target)
            .field("kind", &self.kind)
            .field("idempotency_key", &self.idempotency_key)
            .field("contact", &self.contact)
            .finish_non_exhaustive()
    }
}

/// A queued, sent or failed item.
#[derive(Clone, PartialEq, Serialize)]
pub struct OutboxItem {
    /// Id.
    pub id: OutboxId,
    /// Which CRM connection.
    pub target: String,
    /// What to do.
    pub kind: String,
    /// The data to send.
    pub payload: serde_json::Value,
    /// The idempotency key (send it to the CRM where its API takes one).
    pub idempotency_key: String,
    /// The person the item is about.
    pub contact: Option<i64>,
    /// The run it comes from.
    pub run: Option<i64>,
    /// The call it comes from.
    pub call: Option<i64>,
    /// State.
    pub state: OutboxState,
    /// Attempts made so far.
    pub attempts: u32,
    /// When it may be tried next.
    pub next_attempt_at: Timestamp,
    /// The CRM's message from the last failed attempt.
    pub last_error: Option<String>,
    /// The CRM's id for what was created (after sending).
    pub crm_ref: Option<String>,
    /// When it was queued.
    pub created_at: Timestamp,
    /// How far its delivery got, as the sync saved it ([`Outbox::save_progress`]); `None`
    /// before the first attempt.
    pub progress: Option<serde_json::Value>,
    /// Its person is blocked now: it must not be sent (the store does not hand it out,
    /// and a worker holding it from before the block checks this before sending).
    pub blocked: bool,
}

impl std::fmt::Debug for OutboxItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxItem")
            .field("id", &self.id)
            .field("target", &self.target)
            .field("kind", &self.kind)
            .field("state", &self.state)
            .field("attempts", &self.attempts)
            .field("blocked", &self.blocked)
            .finish_non_exhaustive()
    }
}

/// How many items are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OutboxCounts {
    /// Waiting (including those waiting for a retry).
    pub queued: u64,
    /// Delivered.
    pub sent: u64,
    /// Given up.
    pub failed: u64,
}

/// Turns finished runs and calls into CRM work. Implemented by the CRM sync and
/// registered with [`Store::set_crm_planner`]; called inside the storing transaction, so
/// it must be quick and must not touch the store.
pub trait CrmPlanner: Send + Sync {
    /// Work for a finished run (not called for blocked people).
    fn plan_run(&self, run: &FinishedRun<'_>) -> Vec<NewOutboxItem>;
    /// Work for a finished call (not called for blocked people).
    fn plan_call(&self, call: &Call) -> Vec<NewOutboxItem>;
}

/// The columns of [`item`], read from `outbox o`.
const COLUMNS: &str = "o.id, o.target, o.kind, o.payload, o.idempotency_key, o.contact_id, o.run_id, \
    o.call_id, o.state, o.attempts, o.next_attempt_at, o.last_error, o.crm_ref, o.created_at, o.progress, \
    coalesce((SELECT c.blocked_at IS NOT NULL FROM contacts c WHERE c.id = o.contact_id), 0)";

fn item(r: &Row<'_>) -> rusqlite::Result<OutboxItem> {
    Ok(OutboxItem {
        id: OutboxId(r.get(0)?),
        target: r.get(1)?,
        kind: r.get(2)?,
        payload: serde_json::from_str(&r.get::<_, String>(3)?).unwrap_or_default(),
        idempotency_key: r.get(4)?,
        contact: r.get(5)?,
        run: r.get(6)?,
        call: r.get(7)?,
        state: OutboxState::parse(&r.get::<_, String>(8)?),
        attempts: r.get(9)?,
        next_attempt_at: Timestamp(r.get(10)?),
        last_error: r.get(11)?,
        crm_ref: r.get(12)?,
        created_at: Timestamp(r.get(13)?),
        progress: r
            .get::<_, Option<String>>(14)?
            .and_then(|p| serde_json::from_str(&p).ok()),
        blocked: r.get(15)?,
    })
}

/// Queue items inside the caller's transaction. An item whose idempotency key is already
/// queued is skipped. Returns the ids of the items that were new.
pub(crate) fn enqueue_in(
    tx: &Connection,
    now: Timestamp,
    items: &[NewOutboxItem],
    run: Option<i64>,
    call: Option<i64>,
) -> Result<Vec<OutboxId>> {
    let mut ids = Vec::with_capacity(items.len());
    let mut stmt = tx.prepare_cached(
        "INSERT INTO outbox (target, kind, payload, idempotency_key, contact_id, run_id, call_id,
                             next_attempt_at, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?8)
         ON CONFLICT (idempotency_key) DO NOTHING",
    )?;
    for it in items {
        let n = stmt.execute(params![
            it.target,
            it.kind,
            it.payload.to_string(),
            it.idempotency_key,
            it.contact,
            run,
            call,
            now.0
        ])?;
        if n == 1 {
            ids.push(OutboxId(tx.last_insert_rowid()));
        }
    }
    Ok(ids)
}

/// Remove every item about a person (destruction). Returns how many were removed.
pub(crate) fn remove_for_contact(tx: &Connection, contact: i64) -> Result<u64> {
    Ok(tx.execute("DELETE FROM outbox WHERE contact_id = ?1", [contact])? as u64)
}

/// The outbox as the sync worker sees it: system work, not tied to a signed-in user.
#[derive(Debug, Clone, Copy)]
pub struct Outbox<'a> {
    store: &'a Store,
}

impl Store {
    /// Register the planner that queues CRM work for finished runs and calls.
    pub fn set_crm_planner(&self, planner: Arc<dyn CrmPlanner>) {
        *lock(&self.planner) = Some(planner);
    }

    /// The outbox, for the sync worker.
    pub fn outbox(&self) -> Outbox<'_> {
        Outbox { store: self }
    }

    /// Outbox items for the status screen, newest first (any signed-in user may view).
    pub fn outbox_items(
        &self,
        s: &Session,
        state: Option<OutboxState>,
        limit: u32,
    ) -> Result<Vec<OutboxItem>> {
        {
            let db = self.db();
            self.require(&db, s, Permission::View, "view the CRM outbox")?;
        }
        self.outbox().list(state, limit)
    }

    /// "Retry now" pressed by a user (agents, managers, administrators).
    pub fn outbox_retry_now(&self, s: &Session, id: OutboxId) -> Result<()> {
        {
            let db = self.db();
            self.require(&db, s, Permission::Work, "retry CRM work")?;
        }
        self.outbox().retry_now(id)
    }
}

impl Outbox<'_> {
    /// Queue items on their own (work not tied to a finished run or call).
    pub fn enqueue(&self, items: &[NewOutboxItem]) -> Result<Vec<OutboxId>> {
        let now = self.store.now();
        let mut db = self.store.db();
        let tx = db.transaction()?;
        for it in items {
            if let Some(c) = it.contact
                && crate::contacts::blocked_by_id(&tx, c)?
            {
                return Err(StoreError::Blocked);
            }
        }
        let ids = enqueue_in(&tx, now, items, None, None)?;
        tx.commit()?;
        Ok(ids)
    }

    /// Take up to `limit` due items (oldest first), optionally for one target, and lease
    /// them for `lease` so another worker does not take them too. Items of blocked people
    /// stay queued and are not handed out.
    pub fn claim_due(
        &self,
        target: Option<&str>,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<OutboxItem>> {
        let now = self.store.now();
        let lease_until = now
            .0
            .saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
        let mut db = self.store.db();
        let tx = db.transaction()?;
        let items: Vec<OutboxItem> = {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM outbox o
                 WHERE o.state = 'queued' AND o.next_attempt_at <= ?1
                   AND (o.lease_until IS NULL OR o.lease_until <= ?1)
                   AND (?2 IS NULL OR o.target = ?2)
                   AND (contact_id IS NULL OR NOT EXISTS (
                        SELECT 1 FROM contacts c WHERE c.id = o.contact_id AND c.blocked_at IS NOT NULL))
                 ORDER BY o.next_attempt_at, o.id LIMIT ?3"
            ))?;
            stmt.query_map(params![now.0, target, limit], item)?
                .collect::<rusqlite::Result<_>>()?
        };
        {
            let mut lease_stmt =
                tx.prepare_cached("UPDATE outbox SET lease_until = ?2 WHERE id = ?1")?;
            for it in &items {
                lease_stmt.execute(params![it.id.0, lease_until])?;
            }
        }
        tx.commit()?;
        Ok(items)
    }

    /// Save how far the delivery of items got (the CRM sync's progress), all in one
    /// transaction, committed before this returns: the sync calls it before and after
    /// every request that is not idempotent. Items that are gone (their person was
    /// destroyed) or already sent are left alone. Returns how many items were updated.
    pub fn save_progress(&self, items: &[(OutboxId, &serde_json::Value)]) -> Result<usize> {
        let now = self.store.now();
        let mut db = self.store.db();
        let tx = db.transaction()?;
        let mut n = 0;
        {
            let mut stmt = tx.prepare_cached(
                "UPDATE outbox SET progress = ?2, updated_at = ?3 WHERE id = ?1 AND state != 'sent'",
            )?;
            for (id, progress) in items {
                n += stmt.execute(params![id.0, progress.to_string(), now.0])?;
            }
        }
        tx.commit()?;
        Ok(n)
    }

    /// The earliest time a queued item of `target` (or of any target) may be tried, if
    /// any is queued and may be handed out (for a worker to sleep until then; items of
    /// blocked people wait for the unblock, not for a time).
    pub fn next_due(&self, target: Option<&str>) -> Result<Option<Timestamp>> {
        let at: Option<i64> = self.store.db().query_row(
            "SELECT min(next_attempt_at) FROM outbox o
             WHERE state = 'queued' AND (?1 IS NULL OR target = ?1)
               AND (contact_id IS NULL OR NOT EXISTS (
                    SELECT 1 FROM contacts c WHERE c.id = o.contact_id AND c.blocked_at IS NOT NULL))",
            [target],
            |r| r.get(0),
        )?;
        Ok(at.map(Timestamp))
    }

    /// The CRM accepted the item; `crm_ref` is its id for what was created.
    pub fn mark_sent(&self, id: OutboxId, crm_ref: Option<&str>) -> Result<()> {
        let now = self.store.now();
        let n = self.store.db().execute(
            "UPDATE outbox SET state = 'sent', attempts = attempts + 1, lease_until = NULL,
                    crm_ref = ?2, last_error = NULL, updated_at = ?3 WHERE id = ?1",
            params![id.0, crm_ref, now.0],
        )?;
        found(n, id)
    }

    /// An attempt failed with the CRM's `message`. With `retry_at` the item stays queued
    /// until then; without, it is given up (`failed`) until someone presses "retry now".
    pub fn mark_failed(
        &self,
        id: OutboxId,
        message: &str,
        retry_at: Option<Timestamp>,
    ) -> Result<()> {
        let now = self.store.now();
        let (state, next) = match retry_at {
            Some(t) => ("queued", t.0),
            None => ("failed", now.0),
        };
        let n = self.store.db().execute(
            "UPDATE outbox SET state = ?2, attempts = attempts + 1, lease_until = NULL,
                    next_attempt_at = ?3, last_error = ?4, updated_at = ?5 WHERE id = ?1",
            params![id.0, state, next, message, now.0],
        )?;
        found(n, id)
    }

    /// Queue a failed (or waiting) item to be tried at once.
    pub fn retry_now(&self, id: OutboxId) -> Result<()> {
        let now = self.store.now();
        let n = self.store.db().execute(
            "UPDATE outbox SET state = 'queued', next_attempt_at = ?2, lease_until = NULL,
                    updated_at = ?2 WHERE id = ?1 AND state != 'sent'",
            params![id.0, now.0],
        )?;
        found(n, id)
    }

    /// One item.
    pub fn get(&self, id: OutboxId) -> Result<Option<OutboxItem>> {
        Ok(self
            .store
            .db()
            .query_row(
                &format!("SELECT {COLUMNS} FROM outbox o WHERE o.id = ?1"),
                [id.0],
                item,
            )
            .optional()?)
    }

    /// Items, newest first, optionally in one state.
    pub fn list(&self, state: Option<OutboxState>, limit: u32) -> Result<Vec<OutboxItem>> {
        let db = self.store.db();
        let mut stmt = db.prepare(&format!(
            "SELECT {COLUMNS} FROM outbox o WHERE (?1 IS NULL OR o.state = ?1) ORDER BY o.id DESC LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![state.map(OutboxState::as_str), limit], item)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// How many items are in each state.
    pub fn counts(&self) -> Result<OutboxCounts> {
        let db = self.store.db();
        let mut stmt = db.prepare("SELECT state, count(*) FROM outbox GROUP BY state")?;
        let mut counts = OutboxCounts::default();
        for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?)))? {
            let (state, n) = row?;
            match OutboxState::parse(&state) {
                OutboxState::Queued => counts.queued = n,
                OutboxState::Sent => counts.sent = n,
                OutboxState::Failed => counts.failed = n,
            }
        }
        Ok(counts)
    }
}

fn found(n: usize, id: OutboxId) -> Result<()> {
    if n == 0 {
        Err(StoreError::NotFound {
            what: "outbox item",
            id: id.0,
        })
    } else {
        Ok(())
    }
}

//! The rights of the people in the database: blocking, destruction, retention and
//! subject access.
//!
//! - **Blocking** (terms «b»: "временное прекращение обработки") stops processing of one
//!   person until unblocked: no calls ([`Store::is_blocked`], [`Store::start_call`]), no
//!   CRM sync (nothing queued, nothing handed out), no export, no new runs. Correcting
//!   their data is still allowed.
//! - **Destruction** (terms «г»: "невозможно восстановить содержание") removes a person's
//!   contact, runs with their events and fields, calls, callbacks, consent records and
//!   CRM work. `secure_delete` is on for every connection, so freed pages are overwritten,
//!   and the WAL is checkpointed and truncated afterwards so no old page lingers there.
//!   What remains is a destruction record with counts and no personal data. Deleting a
//!   person's data on request (§5.2) is this destruction: there is no soft delete.
//! - **Retention** (§2.1.4: kept no longer than the purpose requires): runs, calls and
//!   contacts older than the configured period are destroyed by [`Store::apply_retention`],
//!   which the app calls at start-up and daily.
//! - **Subject access** (§8.1): everything held about one person, in one document.

use callhelper_script::{Timestamp, text};
use rusqlite::{Connection, params};
use serde::Serialize;

use crate::access::{Permission, UserId};
use crate::audit::{self, Audit};
use crate::calls::{self, Call};
use crate::consent::{self, Consent};
use crate::contacts::{self, Contact, ContactId};
use crate::error::{Result, StoreError};
use crate::outbox::{self, OutboxItem};
use crate::runs::{self, StoredRun};
use crate::{Session, Store};

/// Why data was destroyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DestructionReason {
    /// The person (or the user on their behalf) asked for it (§5.2, §8.1).
    Request,
    /// The retention period ran out (§2.1.4).
    Retention,
}

/// What a destruction removed. Holds no personal data; kept as the destruction record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Destruction {
    /// The record's id (0 when nothing was destroyed).
    pub id: i64,
    /// Contacts removed.
    pub contacts: u64,
    /// Runs removed (with their events and fields).
    pub runs: u64,
    /// Calls removed.
    pub calls: u64,
    /// Other rows removed (consent records, callbacks, CRM work, events).
    pub other: u64,
}

/// A stored destruction record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DestructionRecord {
    /// Id.
    pub id: i64,
    /// When.
    pub at: Timestamp,
    /// Why.
    pub reason: String,
    /// Who (none for retention).
    pub user: Option<UserId>,
    /// Counts.
    pub counts: Destruction,
}

/// Everything held about one person (§8.1).
#[derive(Debug, Clone, Serialize)]
pub struct SubjectReport {
    /// When the report was made.
    pub generated_at: Timestamp,
    /// The contact.
    pub contact: Contact,
    /// Consent records.
    pub consents: Vec<Consent>,
    /// Calls.
    pub calls: Vec<Call>,
    /// Script runs, with their events and records.
    pub runs: Vec<StoredRun>,
    /// Callbacks agreed.
    pub callbacks: Vec<runs::Callback>,
    /// CRM work about the person.
    pub crm_outbox: Vec<OutboxItem>,
}

/// Remove rows of the runs matched by `which` (an SQL condition on `runs`), with their
/// CRM work. Returns (runs, other rows).
fn delete_runs(tx: &Connection, which: &str, arg: i64) -> Result<(u64, u64)> {
    let events = tx.execute(
        &format!("DELETE FROM run_events WHERE run_id IN (SELECT id FROM runs WHERE {which})"),
        [arg],
    )? as u64;
    let fields = tx.execute(
        &format!("DELETE FROM field_values WHERE run_id IN (SELECT id FROM runs WHERE {which})"),
        [arg],
    )? as u64;
    let callbacks = tx.execute(
        &format!("DELETE FROM callbacks WHERE run_id IN (SELECT id FROM runs WHERE {which})"),
        [arg],
    )? as u64;
    let data = tx.execute(
        &format!("DELETE FROM run_data WHERE run_id IN (SELECT id FROM runs WHERE {which})"),
        [arg],
    )? as u64;
    let work = tx.execute(
        &format!("DELETE FROM outbox WHERE run_id IN (SELECT id FROM runs WHERE {which})"),
        [arg],
    )? as u64;
    let runs = tx.execute(&format!("DELETE FROM runs WHERE {which}"), [arg])? as u64;
    Ok((runs, events + fields + data + callbacks + work))
}

/// Destroy one contact and everything about them, inside a transaction.
fn destroy_contact(tx: &Connection, c: &Contact) -> Result<Destruction> {
    let id = c.id.0;
    let mut other = outbox::remove_for_contact(tx, id)?;
    other += tx.execute("DELETE FROM callbacks WHERE contact_id = ?1", [id])? as u64;
    other += tx.execute("DELETE FROM consents WHERE contact_id = ?1", [id])? as u64;
    let (runs, o) = delete_runs(tx, "contact_id = ?1", id)?;
    other += o;
    // Calls to or from the number, also those stored before the contact existed.
    tx.execute(
        "UPDATE runs SET call_id = NULL WHERE call_id IN
            (SELECT id FROM calls WHERE contact_id = ?1 OR remote_number = ?2)",
        params![id, c.phone.as_str()],
    )?;
    other += tx.execute(
        "DELETE FROM outbox WHERE call_id IN (SELECT id FROM calls WHERE contact_id = ?1 OR remote_number = ?2)",
        params![id, c.phone.as_str()],
    )? as u64;
    let calls = tx.execute(
        "DELETE FROM calls WHERE contact_id = ?1 OR remote_number = ?2",
        params![id, c.phone.as_str()],
    )? as u64;
    tx.execute("DELETE FROM contacts WHERE id = ?1", [id])?;
    Ok(Destruction {
        id: 0,
        contacts: 1,
        runs,
        calls,
        other,
    })
}

fn record_destruction(
    tx: &Connection,
    at: Timestamp,
    reason: DestructionReason,
    user: Option<UserId>,
    d: &mut Destruction,
) -> Result<()> {
    tx.execute(
        "INSERT INTO destructions (at, reason, user_id, contacts, runs, calls, other) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            at.0,
            match reason {
                DestructionReason::Request => "request",
                DestructionReason::Retention => "retention",
            },
            user.map(|u| u.0),
            d.contacts,
            d.runs,
            d.calls,
            d.other
        ],
    )?;
    d.id = tx.last_insert_rowid();
    Ok(())
}

impl Store {
    fn set_blocked(&self, s: &Session, id: ContactId, blocked: bool) -> Result<()> {
        let now = self.now();
        let db = self.db();
        self.require(
            &db,
            s,
            Permission::Rights,
            if blocked {
                "block a person"
            } else {
                "unblock a person"
            },
        )?;
        contacts::by_id(&db, id)?;
        db.execute(
            "UPDATE contacts SET blocked_at = ?2 WHERE id = ?1",
            params![id.0, blocked.then_some(now.0)],
        )?;
        let what = if blocked {
            Audit::Blocked { contact: id.0 }
        } else {
            Audit::Unblocked { contact: id.0 }
        };
        audit::write(&db, now, Some(s.user()), what)?;
        log::info!(
            "store: contact {} {}",
            id.0,
            if blocked { "blocked" } else { "unblocked" }
        );
        Ok(())
    }

    /// Block a person: no calls, no sync, no export until unblocked (managers and
    /// administrators; audited).
    pub fn block(&self, s: &Session, id: ContactId) -> Result<()> {
        self.set_blocked(s, id, true)
    }

    /// Lift a block (managers and administrators; audited).
    pub fn unblock(&self, s: &Session, id: ContactId) -> Result<()> {
        self.set_blocked(s, id, false)
    }

    /// Destroy a person's data irreversibly (§5.2, terms «г»): see the module docs.
    /// Returns the destruction record, which holds no personal data.
    pub fn destroy_person(&self, s: &Session, id: ContactId) -> Result<Destruction> {
        let now = self.now();
        let d = {
            let mut db = self.db();
            self.require(&db, s, Permission::Rights, "destroy personal data")?;
            let tx = db.transaction()?;
            let c = contacts::by_id(&tx, id)?;
            let mut d = destroy_contact(&tx, &c)?;
            record_destruction(&tx, now, DestructionReason::Request, Some(s.user()), &mut d)?;
            audit::write(
                &tx,
                now,
                Some(s.user()),
                Audit::Destroyed {
                    destruction: d.id,
                    contacts: d.contacts,
                    runs: d.runs,
                },
            )?;
            tx.commit()?;
            d
        };
        self.checkpoint()?;
        log::info!(
            "store: destruction {} done ({} runs, {} calls)",
            d.id,
            d.runs,
            d.calls
        );
        Ok(d)
    }

    /// The retention period in days, if one is set (setting `retention_days`, 0 = keep).
    pub fn retention_days(&self) -> Result<Option<u32>> {
        Ok(self
            .setting("retention_days")?
            .and_then(|v| v.parse::<u32>().ok())
            .filter(|d| *d > 0))
    }

    /// Destroy what is older than the retention period (§2.1.4): runs and calls that
    /// began before `now - period`, and contacts not changed since then that have no
    /// runs or calls left. Called by the app at start-up and daily; does nothing when no
    /// period is set. Leaves one destruction record (when anything went).
    pub fn apply_retention(&self, now: Timestamp) -> Result<Destruction> {
        let Some(days) = self.retention_days()? else {
            return Ok(Destruction::default());
        };
        let cutoff = now.0.saturating_sub(crate::time::days(i64::from(days)));
        let d = {
            let mut db = self.db();
            let tx = db.transaction()?;
            let (runs, mut other) = delete_runs(&tx, "started_at < ?1", cutoff)?;
            tx.execute(
                "UPDATE runs SET call_id = NULL WHERE call_id IN (SELECT id FROM calls WHERE started_at < ?1)",
                [cutoff],
            )?;
            other += tx.execute(
                "DELETE FROM outbox WHERE call_id IN (SELECT id FROM calls WHERE started_at < ?1)
                    OR (state != 'queued' AND updated_at < ?1)",
                [cutoff],
            )? as u64;
            let calls = tx.execute("DELETE FROM calls WHERE started_at < ?1", [cutoff])? as u64;
            let stale: Vec<Contact> = tx
                .prepare(&format!(
                    "SELECT {} FROM contacts c WHERE updated_at < ?1
                       AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.contact_id = c.id)
                       AND NOT EXISTS (SELECT 1 FROM calls k WHERE k.contact_id = c.id)",
                    contacts::COLUMNS
                ))?
                .query_map([cutoff], contacts::row)?
                .collect::<rusqlite::Result<_>>()?;
            let mut d = Destruction {
                id: 0,
                contacts: 0,
                runs,
                calls,
                other,
            };
            for c in &stale {
                let x = destroy_contact(&tx, c)?;
                d.contacts += x.contacts;
                d.runs += x.runs;
                d.calls += x.calls;
                d.other += x.other;
            }
            if d.contacts + d.runs + d.calls + d.other > 0 {
                record_destruction(&tx, now, DestructionReason::Retention, None, &mut d)?;
                audit::write(
                    &tx,
                    now,
                    None,
                    Audit::Retention {
                        destruction: d.id,
                        contacts: d.contacts,
                        runs: d.runs,
                    },
                )?;
            }
            tx.commit()?;
            d
        };
        if d.id != 0 {
            self.checkpoint()?;
            log::info!(
                "store: retention destroyed {} runs, {} calls, {} contacts",
                d.runs,
                d.calls,
                d.contacts
            );
        }
        Ok(d)
    }

    /// The destruction records, newest first (administrators and managers).
    pub fn destructions(&self, s: &Session) -> Result<Vec<DestructionRecord>> {
        let db = self.db();
        self.require(&db, s, Permission::Rights, "view destruction records")?;
        let mut stmt = db.prepare(
            "SELECT id, at, reason, user_id, contacts, runs, calls, other FROM destructions ORDER BY id DESC",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(DestructionRecord {
                id: r.get(0)?,
                at: Timestamp(r.get(1)?),
                reason: r.get(2)?,
                user: r.get::<_, Option<i64>>(3)?.map(UserId),
                counts: Destruction {
                    id: r.get(0)?,
                    contacts: r.get(4)?,
                    runs: r.get(5)?,
                    calls: r.get(6)?,
                    other: r.get(7)?,
                },
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Everything held about the person with this phone number (§8.1), for a copy to
    /// give them. An export: managers and administrators only, audited; allowed for a
    /// blocked person (it is their right to know).
    pub fn subject_access(&self, s: &Session, raw_phone: &str) -> Result<SubjectReport> {
        let phone = self.normalise_phone(raw_phone)?;
        let now = self.now();
        let db = self.db();
        self.require(&db, s, Permission::Export, "export a person's data")?;
        let contact = contacts::by_phone(&db, &phone)?.ok_or(StoreError::NoSuchContact)?;
        let id = contact.id;
        let calls: Vec<Call> = db
            .prepare(&format!(
                "SELECT {} FROM calls WHERE contact_id = ?1 OR remote_number = ?2 ORDER BY started_at",
                calls::COLUMNS
            ))?
            .query_map(params![id.0, phone.as_str()], calls::row)?
            .collect::<rusqlite::Result<_>>()?;
        let run_ids: Vec<i64> = db
            .prepare("SELECT id FROM runs WHERE contact_id = ?1 ORDER BY id")?
            .query_map([id.0], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut runs_out = Vec::with_capacity(run_ids.len());
        for r in run_ids {
            runs_out.push(runs::stored_run(&db, r)?);
        }
        let callbacks: Vec<runs::Callback> = db
            .prepare(&format!(
                "SELECT {} FROM callbacks WHERE contact_id = ?1 ORDER BY id",
                runs::CALLBACK_COLUMNS
            ))?
            .query_map([id.0], runs::callback_row)?
            .collect::<rusqlite::Result<_>>()?;
        let outbox_ids: Vec<i64> = db
            .prepare("SELECT id FROM outbox WHERE contact_id = ?1 ORDER BY id")?
            .query_map([id.0], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let consents = consent::consents_of(&db, id)?;
        audit::write(
            &db,
            now,
            Some(s.user()),
            Audit::SubjectAccess { contact: id.0 },
        )?;
        drop(db);
        let crm_outbox = outbox_ids
            .into_iter()
            .filter_map(|i| self.outbox().get(outbox::OutboxId(i)).transpose())
            .collect::<Result<_>>()?;
        Ok(SubjectReport {
            generated_at: now,
            contact,
            consents,
            calls,
            runs: runs_out,
            callbacks,
            crm_outbox,
        })
    }

    /// Find a contact's id by phone for a rights request, with a clear error when the
    /// number is unknown.
    pub fn contact_id_by_phone(&self, s: &Session, raw_phone: &str) -> Result<ContactId> {
        self.contact_by_phone(s, raw_phone)?
            .map(|c| c.id)
            .ok_or_else(|| {
                StoreError::Invalid(text!(
                "There is no contact with that phone number.";
                "Контакта с таким номером телефона нет."))
            })
    }
}

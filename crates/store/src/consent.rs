//! Consent records: who gave (or withdrew) consent, when, how and for what purpose.
//!
//! Processing is allowed with the person's consent (policy §3.1.1) and the user confirms
//! that third parties' data is entered with their prior consent (§4.12). A record says
//! which script, version and step captured it, or that it came from an import or was
//! entered by hand. Records are never edited; a withdrawal is a new record.

use callhelper_script::{Text, Timestamp};
use rusqlite::params;
use serde::{Deserialize, Serialize};

use crate::access::{Permission, UserId};
use crate::audit::{self, Audit};
use crate::contacts::{self, ContactId};
use crate::error::{Result, StoreError};
use crate::runs::RunId;
use crate::{Session, Store};

/// How consent was captured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum ConsentMethod {
    /// During a call, at a script step.
    Script {
        /// The script's id.
        script_id: String,
        /// Its version.
        script_version: u32,
        /// The step at which the person agreed.
        step: String,
        /// The run.
        run: Option<RunId>,
    },
    /// With an import (the importer confirms it holds the consent, §4.12).
    Import,
    /// Entered by a user (a signed form, an e-mail).
    Manual,
}

/// A consent record to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewConsent {
    /// The person.
    pub contact: ContactId,
    /// Given (`true`) or withdrawn (`false`).
    pub given: bool,
    /// What it is for ("calls about our offers", ...).
    pub purpose: String,
    /// When the person said so.
    pub at: Timestamp,
    /// How it was captured.
    pub method: ConsentMethod,
}

/// A stored consent record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Consent {
    /// Id.
    pub id: i64,
    /// The person.
    pub contact: ContactId,
    /// Given or withdrawn.
    pub given: bool,
    /// Purpose.
    pub purpose: String,
    /// When.
    pub at: Timestamp,
    /// The user who recorded it.
    pub recorded_by: Option<UserId>,
    /// How.
    pub method: ConsentMethod,
}

impl Store {
    /// Record consent given or withdrawn (agents and up; audited by id).
    pub fn record_consent(&self, s: &Session, c: &NewConsent) -> Result<i64> {
        if c.purpose.trim().is_empty() {
            return Err(StoreError::Invalid(Text::new(
                "Say what the consent is for (its purpose).",
                "Укажите цель, для которой дано согласие.",
            )));
        }
        let now = self.now();
        let db = self.db();
        self.require(&db, s, Permission::Work, "record consent")?;
        contacts::by_id(&db, c.contact)?;
        let (method, script, version, step, run) = match &c.method {
            ConsentMethod::Script {
                script_id,
                script_version,
                step,
                run,
            } => (
                "script",
                Some(script_id.as_str()),
                Some(*script_version),
                Some(step.as_str()),
                run.map(|r| r.0),
            ),
            ConsentMethod::Import => ("import", None, None, None, None),
            ConsentMethod::Manual => ("manual", None, None, None, None),
        };
        db.execute(
            "INSERT INTO consents (contact_id, given, purpose, at, recorded_by, method, script_id, script_version, step, run_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![c.contact.0, c.given, c.purpose.trim(), c.at.0, s.user().0, method, script, version, step, run],
        )?;
        let id = db.last_insert_rowid();
        audit::write(
            &db,
            now,
            Some(s.user()),
            Audit::ConsentRecorded {
                contact: c.contact.0,
                given: c.given,
            },
        )?;
        Ok(id)
    }

    /// A person's consent records, oldest first.
    pub fn consents(&self, s: &Session, contact: ContactId) -> Result<Vec<Consent>> {
        let db = self.db();
        self.require(&db, s, Permission::View, "view consent records")?;
        consents_of(&db, contact)
    }
}

pub(crate) fn consents_of(db: &rusqlite::Connection, contact: ContactId) -> Result<Vec<Consent>> {
    let mut stmt = db.prepare(
        "SELECT id, contact_id, given, purpose, at, recorded_by, method, script_id, script_version, step, run_id
         FROM consents WHERE contact_id = ?1 ORDER BY at, id",
    )?;
    let rows = stmt.query_map([contact.0], |r| {
        let method = match r.get::<_, String>(6)?.as_str() {
            "script" => ConsentMethod::Script {
                script_id: r.get::<_, Option<String>>(7)?.unwrap_or_default(),
                script_version: r.get::<_, Option<u32>>(8)?.unwrap_or_default(),
                step: r.get::<_, Option<String>>(9)?.unwrap_or_default(),
                run: r.get::<_, Option<i64>>(10)?.map(RunId),
            },
            "import" => ConsentMethod::Import,
            _ => ConsentMethod::Manual,
        };
        Ok(Consent {
            id: r.get(0)?,
            contact: ContactId(r.get(1)?),
            given: r.get(2)?,
            purpose: r.get(3)?,
            at: Timestamp(r.get(4)?),
            recorded_by: r.get::<_, Option<i64>>(5)?.map(UserId),
            method,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

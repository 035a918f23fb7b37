//! The audit log: who did what to the data, when. Append-only (triggers refuse UPDATE and
//! DELETE), and free of personal data: entries name records by id, never by phone or name,
//! so the log survives the destruction of the people it mentions.

use callhelper_script::Timestamp;
use rusqlite::{Connection, params};
use serde::Serialize;

use crate::access::{Permission, Role, UserId};
use crate::error::Result;
use crate::{Session, Store};

/// Something worth an audit entry.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub(crate) enum Audit {
    LoggedIn,
    LoginFailed,
    Denied {
        what: &'static str,
    },
    SupportViewed {
        what: &'static str,
    },
    SupportGranted {
        user: UserId,
        until: Timestamp,
    },
    UserCreated {
        user: UserId,
        role: Role,
    },
    UserDisabled {
        user: UserId,
        disabled: bool,
    },
    RoleChanged {
        user: UserId,
        from: Role,
        to: Role,
    },
    PasswordChanged {
        user: UserId,
    },
    Exported {
        format: String,
        rows: u64,
        filter: serde_json::Value,
    },
    SubjectAccess {
        contact: i64,
    },
    ContactChanged {
        contact: i64,
    },
    Blocked {
        contact: i64,
    },
    Unblocked {
        contact: i64,
    },
    Destroyed {
        destruction: i64,
        contacts: u64,
        runs: u64,
    },
    Imported {
        added: u64,
        updated: u64,
        bad: u64,
    },
    ConsentRecorded {
        contact: i64,
        given: bool,
    },
    SettingChanged {
        key: String,
    },
    Retention {
        destruction: i64,
        contacts: u64,
        runs: u64,
    },
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    /// Entry id (increasing).
    pub id: i64,
    /// When.
    pub at: Timestamp,
    /// Who (none for the system, e.g. retention).
    pub user: Option<UserId>,
    /// What (`exported`, `blocked`, `role_changed`, ...).
    pub action: String,
    /// The details, without personal data.
    pub detail: serde_json::Value,
}

pub(crate) fn write(
    db: &Connection,
    at: Timestamp,
    user: Option<UserId>,
    what: Audit,
) -> Result<()> {
    let mut detail = serde_json::to_value(&what)?;
    let action = detail
        .as_object_mut()
        .and_then(|o| o.remove("action"))
        .and_then(|a| a.as_str().map(str::to_owned))
        .unwrap_or_default();
    db.prepare_cached(
        "INSERT INTO audit_log (at, user_id, action, detail) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![at.0, user.map(|u| u.0), action, detail.to_string()])?;
    Ok(())
}

impl Store {
    /// The newest `limit` audit entries, newest first (administrators; support may view).
    pub fn audit_log(&self, s: &Session, limit: u32) -> Result<Vec<AuditEntry>> {
        let db = self.db();
        if s.role() != Role::Support {
            self.require(&db, s, Permission::Administer, "read the audit log")?;
        } else {
            self.require(&db, s, Permission::View, "read the audit log")?;
        }
        let mut stmt = db.prepare(
            "SELECT id, at, user_id, action, detail FROM audit_log ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit], |r| {
            Ok(AuditEntry {
                id: r.get(0)?,
                at: Timestamp(r.get(1)?),
                user: r.get::<_, Option<i64>>(2)?.map(UserId),
                action: r.get(3)?,
                detail: serde_json::from_str(&r.get::<_, String>(4)?).unwrap_or_default(),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

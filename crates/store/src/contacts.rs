//! Contacts: the people the agents call. One contact per phone number (E.164), with a
//! name, an e-mail address and any other fields an import brought (`extra`).
//!
//! Changing a person's data (§5.1) is allowed even while they are blocked: blocking stops
//! processing "except where it is needed to correct the data" (terms «b»).

use std::collections::BTreeMap;

use callhelper_script::{Text, Timestamp, text};
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

use crate::access::Permission;
use crate::audit::{self, Audit};
use crate::error::{Result, StoreError};
use crate::phone::{self, Country};
use crate::pii::{Phone, Pii};
use crate::{Session, Store};

/// A contact's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContactId(pub i64);

/// A contact as stored. `Debug` shows only the id and flags.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Contact {
    /// Id.
    pub id: ContactId,
    /// Phone (E.164).
    pub phone: Phone,
    /// Full name.
    pub name: Pii<String>,
    /// E-mail address.
    pub email: Pii<String>,
    /// Other fields (company, city, ...).
    pub extra: Pii<BTreeMap<String, String>>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// Set while the person is blocked.
    pub blocked_at: Option<Timestamp>,
}

impl Contact {
    /// The variables a script's `{{contact.x}}` placeholders read.
    pub fn script_variables(&self) -> BTreeMap<String, String> {
        let mut vars: BTreeMap<String, String> = self.extra.expose().clone();
        let name = self.name.expose().trim();
        if !name.is_empty() {
            vars.insert("name".into(), name.to_owned());
            let mut parts = name.split_whitespace();
            if let Some(first) = parts.next() {
                vars.entry("first_name".into())
                    .or_insert_with(|| first.to_owned());
            }
        }
        if !self.email.expose().is_empty() {
            vars.insert("email".into(), self.email.expose().clone());
        }
        vars.insert("phone".into(), self.phone.as_str().to_owned());
        vars
    }
}

/// A contact to add (or to merge into the one with the same phone).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct NewContact {
    /// The phone as written; normalised to E.164.
    pub phone: Pii<String>,
    /// Full name.
    #[serde(default)]
    pub name: Pii<String>,
    /// E-mail address.
    #[serde(default)]
    pub email: Pii<String>,
    /// Other fields.
    #[serde(default)]
    pub extra: Pii<BTreeMap<String, String>>,
}

/// A change to a contact (§5.1): each `Some` replaces the value; an `extra` entry with
/// `None` removes that field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContactChange {
    /// New phone.
    pub phone: Option<Pii<String>>,
    /// New name.
    pub name: Option<Pii<String>>,
    /// New e-mail.
    pub email: Option<Pii<String>>,
    /// Fields to set or remove.
    pub extra: BTreeMap<String, Option<Pii<String>>>,
}

pub(crate) const COLUMNS: &str =
    "id, phone, name, email, extra, created_at, updated_at, blocked_at";

pub(crate) fn row(r: &Row<'_>) -> rusqlite::Result<Contact> {
    Ok(Contact {
        id: ContactId(r.get(0)?),
        phone: Phone::from_e164(r.get(1)?),
        name: Pii::new(r.get(2)?),
        email: Pii::new(r.get(3)?),
        extra: Pii::new(serde_json::from_str(&r.get::<_, String>(4)?).unwrap_or_default()),
        created_at: Timestamp(r.get(5)?),
        updated_at: Timestamp(r.get(6)?),
        blocked_at: r.get::<_, Option<i64>>(7)?.map(Timestamp),
    })
}

/// Check an e-mail address's shape (empty is allowed: the address is optional).
pub fn valid_email(email: &str) -> bool {
    if email.is_empty() {
        return true;
    }
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    email.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email
            .chars()
            .any(|c| c.is_whitespace() || c == ',' || c == ';')
        && !domain.contains('@')
}

pub(crate) fn bad_email() -> StoreError {
    StoreError::Invalid(Text::new(
        "That is not a valid e-mail address.",
        "Это не адрес электронной почты.",
    ))
}

pub(crate) fn blocked_by_id(db: &Connection, id: i64) -> Result<bool> {
    Ok(db
        .prepare_cached("SELECT blocked_at IS NOT NULL FROM contacts WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?
        .unwrap_or(false))
}

pub(crate) fn by_phone(db: &Connection, phone: &Phone) -> Result<Option<Contact>> {
    Ok(db
        .prepare_cached(&format!("SELECT {COLUMNS} FROM contacts WHERE phone = ?1"))?
        .query_row([phone.as_str()], row)
        .optional()?)
}

pub(crate) fn by_id(db: &Connection, id: ContactId) -> Result<Contact> {
    db.prepare_cached(&format!("SELECT {COLUMNS} FROM contacts WHERE id = ?1"))?
        .query_row([id.0], row)
        .optional()?
        .ok_or(StoreError::NotFound {
            what: "contact",
            id: id.0,
        })
}

/// Insert or merge a contact inside a transaction. Returns the id and whether anything
/// changed (`None` = new, `Some(true)` = updated, `Some(false)` = unchanged).
pub(crate) fn upsert(
    tx: &Connection,
    now: Timestamp,
    phone: &Phone,
    c: &NewContact,
) -> Result<(ContactId, Option<bool>)> {
    if let Some(existing) = by_phone(tx, phone)? {
        let mut extra = existing.extra.expose().clone();
        extra.extend(c.extra.expose().iter().map(|(k, v)| (k.clone(), v.clone())));
        let name = if c.name.expose().is_empty() {
            existing.name.expose()
        } else {
            c.name.expose()
        };
        let email = if c.email.expose().is_empty() {
            existing.email.expose()
        } else {
            c.email.expose()
        };
        let changed = name != existing.name.expose()
            || email != existing.email.expose()
            || &extra != existing.extra.expose();
        if changed {
            tx.prepare_cached(
                "UPDATE contacts SET name = ?2, email = ?3, extra = ?4, updated_at = ?5 WHERE id = ?1",
            )?
            .execute(params![existing.id.0, name, email, serde_json::to_string(&extra)?, now.0])?;
        }
        return Ok((existing.id, Some(changed)));
    }
    tx.prepare_cached(
        "INSERT INTO contacts (phone, name, email, extra, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
    )?
    .execute(params![
        phone.as_str(),
        c.name.expose().trim(),
        c.email.expose().trim(),
        serde_json::to_string(c.extra.expose())?,
        now.0
    ])?;
    Ok((ContactId(tx.last_insert_rowid()), None))
}

impl Store {
    /// The installation's default country for phone numbers written without `+`.
    pub fn default_country(&self) -> Result<Country> {
        let iso = self.setting("default_country")?;
        Ok(iso.as_deref().and_then(Country::by_iso).unwrap_or_default())
    }

    /// Normalise a phone number with the installation's default country.
    pub fn normalise_phone(&self, raw: &str) -> Result<Phone> {
        phone::normalise(raw, self.default_country()?).ok_or(StoreError::BadPhone)
    }

    /// Add a contact, or merge into the one with the same phone (empty values do not
    /// overwrite). Refused for a blocked person except through [`Store::change_contact`].
    pub fn add_contact(&self, s: &Session, c: &NewContact) -> Result<ContactId> {
        let phone = self.normalise_phone(c.phone.expose())?;
        if !valid_email(c.email.expose().trim()) {
            return Err(bad_email());
        }
        let now = self.now();
        let mut db = self.db();
        self.require(&db, s, Permission::Work, "add a contact")?;
        let tx = db.transaction()?;
        if by_phone(&tx, &phone)?.is_some_and(|c| c.blocked_at.is_some()) {
            return Err(StoreError::Blocked);
        }
        let (id, _) = upsert(&tx, now, &phone, c)?;
        tx.commit()?;
        Ok(id)
    }

    /// The contact with a phone number (any form the normaliser reads), if any.
    pub fn contact_by_phone(&self, s: &Session, raw_phone: &str) -> Result<Option<Contact>> {
        let phone = self.normalise_phone(raw_phone)?;
        let db = self.db();
        self.require(&db, s, Permission::View, "view a contact")?;
        by_phone(&db, &phone)
    }

    /// A contact by id.
    pub fn contact(&self, s: &Session, id: ContactId) -> Result<Contact> {
        let db = self.db();
        self.require(&db, s, Permission::View, "view a contact")?;
        by_id(&db, id)
    }

    /// Contacts whose name, e-mail or phone contains `query` (case-insensitive for
    /// Latin letters), at most `limit`.
    pub fn search_contacts(&self, s: &Session, query: &str, limit: u32) -> Result<Vec<Contact>> {
        let db = self.db();
        self.require(&db, s, Permission::View, "search contacts")?;
        let like = format!(
            "%{}%",
            query
                .trim()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let mut stmt = db.prepare(&format!(
            "SELECT {COLUMNS} FROM contacts
             WHERE name LIKE ?1 ESCAPE '\\' OR email LIKE ?1 ESCAPE '\\' OR phone LIKE ?1 ESCAPE '\\'
             ORDER BY id LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![like, limit], row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Change a person's data (§5.1). Audited (by id; the values stay out of the log).
    pub fn change_contact(&self, s: &Session, id: ContactId, change: &ContactChange) -> Result<()> {
        let phone = change
            .phone
            .as_ref()
            .map(|p| self.normalise_phone(p.expose()))
            .transpose()?;
        if let Some(e) = &change.email
            && !valid_email(e.expose().trim())
        {
            return Err(bad_email());
        }
        let now = self.now();
        let mut db = self.db();
        self.require(&db, s, Permission::Work, "change a contact")?;
        let tx = db.transaction()?;
        let c = by_id(&tx, id)?;
        if let Some(p) = &phone
            && *p != c.phone
            && by_phone(&tx, p)?.is_some()
        {
            return Err(StoreError::Invalid(Text::new(
                "Another contact already has that phone number.",
                "Этот номер телефона уже есть у другого контакта.",
            )));
        }
        let mut extra = c.extra.expose().clone();
        for (k, v) in &change.extra {
            match v {
                Some(v) => extra.insert(k.clone(), v.expose().clone()),
                None => extra.remove(k),
            };
        }
        tx.execute(
            "UPDATE contacts SET phone = ?2, name = ?3, email = ?4, extra = ?5, updated_at = ?6 WHERE id = ?1",
            params![
                id.0,
                phone.as_ref().unwrap_or(&c.phone).as_str(),
                change.name.as_ref().map_or(c.name.expose().as_str(), |n| n.expose().trim()),
                change.email.as_ref().map_or(c.email.expose().as_str(), |e| e.expose().trim()),
                serde_json::to_string(&extra)?,
                now.0
            ],
        )?;
        audit::write(
            &tx,
            now,
            Some(s.user()),
            Audit::ContactChanged { contact: id.0 },
        )?;
        tx.commit()?;
        log::info!("store: contact {} changed", id.0);
        Ok(())
    }

    /// Is the person with this number blocked? For the call path, before dialling or
    /// answering: a blocked person is not called (terms «b»). Numbers that are not valid
    /// or not known are not blocked.
    pub fn is_blocked(&self, raw_phone: &str) -> Result<bool> {
        let Ok(phone) = self.normalise_phone(raw_phone) else {
            return Ok(false);
        };
        let db = self.db();
        Ok(db
            .prepare_cached("SELECT blocked_at IS NOT NULL FROM contacts WHERE phone = ?1")?
            .query_row([phone.as_str()], |r| r.get(0))
            .optional()?
            .unwrap_or(false))
    }

    /// A setting's value.
    pub fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .db()
            .prepare_cached("SELECT value FROM settings WHERE key = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()?)
    }

    /// Change a setting (administrators; audited). Known keys: `default_country` (an ISO
    /// code the phone normaliser knows), `retention_days` (a whole number; 0 = keep).
    pub fn set_setting(&self, s: &Session, key: &str, value: &str) -> Result<()> {
        let value = value.trim();
        let ok = match key {
            "default_country" => Country::by_iso(value).is_some(),
            "retention_days" => value.parse::<u32>().is_ok(),
            _ => false,
        };
        if !ok {
            return Err(StoreError::Invalid(text!(
                "«{value}» is not a valid value for the setting `{key}`.";
                "«{value}» — недопустимое значение настройки `{key}`.")));
        }
        let now = self.now();
        let db = self.db();
        self.require(&db, s, Permission::Administer, "change a setting")?;
        db.execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        audit::write(
            &db,
            now,
            Some(s.user()),
            Audit::SettingChanged { key: key.into() },
        )?;
        Ok(())
    }
}

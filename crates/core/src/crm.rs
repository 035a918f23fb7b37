//! CRM sync as the app uses it: the connection (amoCRM, Bitrix24 or a signed webhook),
//! the planner that queues work for a finished run inside the store's transaction, the
//! sync worker over the store's outbox, what the user sees (queued, sent, failed with the
//! CRM's message, "retry now"), the CRM's field list for mapping, and the click-to-call
//! endpoint a CRM widget uses.
//!
//! Files in `<data>/crm/` (a folder only the user can read): `connection.json` (no
//! secrets), `credentials.json` (the token, webhook URL or secret), `tokens.json` (OAuth
//! tokens, replaced atomically on every refresh) and `dial-token` (the click-to-call
//! token). How far each outbox item's delivery got is kept with the item in the store
//! (see [`StoreOutbox`]); the `progress/` folder of earlier versions is read into the
//! store once and removed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use callhelper_crm::adapter::Adapter;
use callhelper_crm::amo::{Amo, AmoAuth, AmoSettings};
use callhelper_crm::bitrix::{Bitrix, BitrixAuth, BitrixSettings};
use callhelper_crm::dial::{DialEndpoint, OnDial};
use callhelper_crm::error::FailureNote;
use callhelper_crm::http::{Clock, SystemClock};
use callhelper_crm::job::{ItemId, Progress, Receipt};
use callhelper_crm::mapping::{CrmField, Mappings, validate};
pub use callhelper_crm::mapping::{FieldMap, FieldRule};
use callhelper_crm::oauth::{FileTokenStore, write_private_atomic};
use callhelper_crm::outbox::QueuedItem;
use callhelper_crm::pace::RetrySchedule;
use callhelper_crm::webhook::{Webhook, WebhookSettings};
use callhelper_crm::worker::Tick;
use callhelper_crm::{
    CallInfo, CallResult, Contact, CrmError, Direction, Outbox, RunId, SyncJob, Worker,
};
pub use callhelper_crm::{CrmKind, Secret};
use callhelper_script::{Lang, Script, Text, Timestamp, text};
use callhelper_store::calls::Call;
use callhelper_store::outbox::{CrmPlanner, NewOutboxItem, OutboxId, OutboxItem, OutboxState};
use callhelper_store::runs::FinishedRun;
use callhelper_store::{Session, Store};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::paths::DataDir;

/// The default port of the click-to-call endpoint (a CRM widget needs a fixed one).
pub const DIAL_PORT: u16 = 47_800;

impl From<CrmError> for Error {
    fn from(e: CrmError) -> Error {
        Error::new(e.code(), e.message())
    }
}

fn io_error(what: &Path, e: impl std::fmt::Display) -> Error {
    let p = what.display();
    Error::new(
        "crm.settings_unreadable",
        text!("cannot read or write {p}: {e}"; "не удалось прочитать или записать {p}: {e}"),
    )
}

/// An OAuth application's public part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OAuthApp {
    /// The application's id.
    pub client_id: String,
    /// amoCRM: the redirect URI registered with the integration.
    #[serde(default)]
    pub redirect_uri: String,
    /// Bitrix24: where tokens are renewed (`https://oauth.bitrix.info`).
    #[serde(default)]
    pub oauth_url: String,
}

/// The CRM connection's settings (no secrets).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    /// Which CRM.
    pub crm: CrmKind,
    /// amoCRM: the account's address; Bitrix24 with OAuth: the portal's; webhook: where
    /// to post. (A Bitrix24 inbound webhook URL holds a key: it is kept with the secrets.)
    #[serde(default)]
    pub url: String,
    /// OAuth instead of a token or webhook URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<OAuthApp>,
    /// The language of notes, comments and tasks in the CRM (`ru` or `en`).
    #[serde(default = "default_lang")]
    pub lang: String,
    /// The agents' UTC offset in minutes (for dates without one).
    #[serde(default = "default_offset")]
    pub utc_offset_min: i32,
    /// amoCRM: the user calls and tasks go to; Bitrix24: the portal user (`USER_ID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crm_user_id: Option<u64>,
    /// Field mappings by script id.
    #[serde(default)]
    pub mappings: Mappings,
    /// The click-to-call endpoint's port on 127.0.0.1 (default [`DIAL_PORT`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dial_port: Option<u16>,
}

fn default_lang() -> String {
    "ru".into()
}

fn default_offset() -> i32 {
    180
}

impl Connection {
    /// A connection with the defaults.
    pub fn new(crm: CrmKind, url: impl Into<String>) -> Connection {
        Connection {
            crm,
            url: url.into(),
            oauth: None,
            lang: default_lang(),
            utc_offset_min: default_offset(),
            crm_user_id: None,
            mappings: Mappings::new(),
            dial_port: None,
        }
    }

    /// The web origin of the CRM (`https://example.amocrm.ru`), allowed to use the
    /// click-to-call endpoint from a browser; none for a webhook or an address that is
    /// not a web address.
    pub fn web_origin(&self) -> Option<String> {
        if self.crm == CrmKind::Webhook {
            return None;
        }
        let (scheme, rest) = self.url.trim().split_once("://")?;
        if !matches!(scheme, "http" | "https") {
            return None;
        }
        let host = rest
            .split(['/', '?', '#'])
            .next()
            .filter(|h| !h.is_empty())?;
        Some(format!("{scheme}://{}", host.to_ascii_lowercase()))
    }

    /// The outbox target of this connection.
    pub fn target(&self) -> &'static str {
        self.crm.id()
    }

    fn lang(&self) -> Lang {
        Lang::parse(&self.lang).unwrap_or(Lang::Ru)
    }
}

#[derive(Serialize, Deserialize)]
struct Credentials {
    secret: Secret,
    #[serde(default)]
    client_secret: Option<Secret>,
}

fn crm_dir(dir: &DataDir) -> Result<PathBuf, Error> {
    dir.part("crm")
}

/// The saved connection, if the CRM was connected.
pub fn connection(dir: &DataDir) -> Result<Option<Connection>, Error> {
    let path = crm_dir(dir)?.join("connection.json");
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| io_error(&path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(&path, e)),
    }
}

/// The saved connection, or an error that says to connect a CRM first.
pub fn require_connection(dir: &DataDir) -> Result<Connection, Error> {
    connection(dir)?.ok_or_else(|| {
        Error::new(
            "crm.not_connected",
            text!("no CRM is connected; connect one first (callhelper crm connect …, or Settings → CRM)";
                  "CRM не подключена; сначала подключите её (callhelper crm connect … или Настройки → CRM)"),
        )
    })
}

/// Save the connection's settings (mappings, language...).
pub fn save_connection(dir: &DataDir, conn: &Connection) -> Result<(), Error> {
    let path = crm_dir(dir)?.join("connection.json");
    let bytes = serde_json::to_vec_pretty(conn).map_err(|e| io_error(&path, e))?;
    write_private_atomic(&path, &bytes).map_err(|e| io_error(&path, e))
}

fn credentials(dir: &DataDir) -> Result<Credentials, Error> {
    let path = crm_dir(dir)?.join("credentials.json");
    let b = std::fs::read(&path).map_err(|e| io_error(&path, e))?;
    serde_json::from_slice(&b).map_err(|e| io_error(&path, e))
}

fn clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock::default())
}

/// The adapter for a connection.
fn adapter_for(
    dir: &DataDir,
    conn: &Connection,
    creds: &Credentials,
) -> Result<Box<dyn Adapter>, Error> {
    let seed = callhelper_crm::rng::Rng::from_entropy().next_u64();
    let tokens = || -> Result<Box<FileTokenStore>, Error> {
        Ok(Box::new(FileTokenStore::new(
            crm_dir(dir)?.join("tokens.json"),
        )))
    };
    let client_secret = || creds.client_secret.clone().unwrap_or_default();
    Ok(match conn.crm {
        CrmKind::AmoCrm => {
            let mut s = AmoSettings::new(&conn.url);
            s.lang = conn.lang();
            s.utc_offset_min = conn.utc_offset_min;
            s.responsible_user_id = conn.crm_user_id;
            s.mappings = conn.mappings.clone();
            let auth = match &conn.oauth {
                Some(app) => AmoAuth::OAuth {
                    client_id: app.client_id.clone(),
                    client_secret: client_secret(),
                    redirect_uri: app.redirect_uri.clone(),
                    tokens: tokens()?,
                },
                None => AmoAuth::LongLived(creds.secret.clone()),
            };
            Box::new(Amo::new(s, auth, clock(), seed))
        }
        CrmKind::Bitrix24 => {
            let s = BitrixSettings {
                user_id: conn.crm_user_id.unwrap_or(1),
                lang: conn.lang(),
                utc_offset_min: conn.utc_offset_min,
                mappings: conn.mappings.clone(),
                ..BitrixSettings::default()
            };
            let auth = match &conn.oauth {
                Some(app) => BitrixAuth::OAuth {
                    portal_url: conn.url.clone(),
                    oauth_url: if app.oauth_url.is_empty() {
                        "https://oauth.bitrix.info".into()
                    } else {
                        app.oauth_url.clone()
                    },
                    client_id: app.client_id.clone(),
                    client_secret: client_secret(),
                    tokens: tokens()?,
                },
                None => BitrixAuth::Webhook(creds.secret.clone()),
            };
            Box::new(Bitrix::new(s, auth, clock(), seed))
        }
        _ => {
            let mut s = WebhookSettings::new(&conn.url, creds.secret.clone());
            s.lang = conn.lang();
            s.utc_offset_min = conn.utc_offset_min;
            s.mappings = conn.mappings.clone();
            Box::new(Webhook::new(s, clock(), seed))
        }
    })
}

/// Connect a CRM: check the connection works (exchanging an amoCRM authorisation code
/// first, when given), then save it. `secret` is the long-lived token (amoCRM), the
/// inbound webhook URL (Bitrix24), the shared secret (webhook), or with OAuth the
/// application's secret. Returns the account's name.
pub fn connect(
    dir: &DataDir,
    conn: &Connection,
    secret: Secret,
    auth_code: Option<Secret>,
) -> Result<String, Error> {
    let creds = if conn.oauth.is_some() {
        Credentials {
            secret: Secret::default(),
            client_secret: Some(secret),
        }
    } else {
        Credentials {
            secret,
            client_secret: None,
        }
    };
    let mut adapter = adapter_for(dir, conn, &creds)?;
    if let Some(code) = auth_code {
        if conn.crm != CrmKind::AmoCrm || conn.oauth.is_none() {
            return Err(Error::new(
                "crm.settings",
                text!("an authorisation code is only used with amoCRM OAuth"; "код авторизации используется только с OAuth amoCRM"),
            ));
        }
        let mut s = AmoSettings::new(&conn.url);
        s.mappings = conn.mappings.clone();
        let app = conn.oauth.clone().unwrap_or(OAuthApp {
            client_id: String::new(),
            redirect_uri: String::new(),
            oauth_url: String::new(),
        });
        let mut amo = Amo::new(
            s,
            AmoAuth::OAuth {
                client_id: app.client_id,
                client_secret: creds.client_secret.clone().unwrap_or_default(),
                redirect_uri: app.redirect_uri,
                tokens: Box::new(FileTokenStore::new(crm_dir(dir)?.join("tokens.json"))),
            },
            clock(),
            1,
        );
        amo.authorize(&code)?;
    }
    let info = adapter.check()?;
    let path = crm_dir(dir)?.join("credentials.json");
    let bytes = serde_json::to_vec(&creds).map_err(|e| io_error(&path, e))?;
    write_private_atomic(&path, &bytes).map_err(|e| io_error(&path, e))?;
    save_connection(dir, conn)?;
    Ok(info.name)
}

/// The CRM's contact fields, for editing a mapping.
pub fn crm_fields(dir: &DataDir) -> Result<Vec<CrmField>, Error> {
    let conn = require_connection(dir)?;
    Ok(adapter_for(dir, &conn, &credentials(dir)?)?.fields()?)
}

/// Check a script's mapping against the CRM's fields and the script; the problems, each
/// with what to do.
pub fn check_mapping(dir: &DataDir, script: &Script) -> Result<Vec<Text>, Error> {
    let conn = require_connection(dir)?;
    match conn.mappings.get(&script.id) {
        Some(map) => check_field_map(dir, &conn, script, map),
        None => Ok(Vec::new()),
    }
}

/// Check a mapping for `script` against the script and the connected CRM's fields,
/// before it is saved; the problems, each with what to do.
pub fn check_field_map(
    dir: &DataDir,
    conn: &Connection,
    script: &Script,
    map: &FieldMap,
) -> Result<Vec<Text>, Error> {
    let fields = if conn.crm == CrmKind::Webhook {
        None
    } else {
        Some(crm_fields(dir)?)
    };
    let mut problems: Vec<Text> = match &fields {
        Some(f) => validate(map, f, Some(script))
            .iter()
            .map(|p| p.message())
            .collect(),
        None => Vec::new(),
    };
    if fields.is_none() {
        for r in &map.rules {
            if script.field(&r.field).is_none() {
                let f = &r.field;
                problems
                    .push(text!("the script has no field \"{f}\""; "в сценарии нет поля «{f}»"));
            }
        }
    }
    Ok(problems)
}

/// One outbox item as the status screen shows it (no personal data).
#[derive(Debug, Clone, Serialize)]
pub struct ItemLine {
    /// The outbox's id (for "retry now").
    pub id: i64,
    /// Queued, sent or failed.
    pub state: OutboxState,
    /// Attempts so far.
    pub attempts: u32,
    /// When it is tried next (queued items).
    pub next_attempt_at: Timestamp,
    /// The CRM's message from the last failed attempt, in both languages when it came
    /// from us.
    pub last_error: Option<Text>,
    /// The CRM's id of what was made.
    pub crm_ref: Option<String>,
}

/// The sync status.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The connected CRM, if any.
    pub crm: Option<CrmKind>,
    /// Queued (waiting, possibly after failures).
    pub queued: u64,
    /// Sent.
    pub sent: u64,
    /// Given up until "retry now".
    pub failed: u64,
    /// Queued items that failed at least once.
    pub retrying: u64,
    /// The latest items.
    pub items: Vec<ItemLine>,
}

fn error_text(stored: &str) -> Text {
    match serde_json::from_str::<FailureNote>(stored) {
        Ok(n) => n.text(),
        Err(_) => Text::new(stored, stored),
    }
}

/// The sync status and the latest `limit` items.
pub fn status(dir: &DataDir, store: &Store, s: &Session, limit: u32) -> Result<Status, Error> {
    let crm = connection(dir)?.map(|c| c.crm);
    let items = store.outbox_items(s, None, limit)?;
    let counts = store.outbox().counts()?;
    let retrying = store
        .outbox_items(s, Some(OutboxState::Queued), u32::MAX)?
        .iter()
        .filter(|i| i.attempts > 0)
        .count() as u64;
    Ok(Status {
        crm,
        queued: counts.queued,
        sent: counts.sent,
        failed: counts.failed,
        retrying,
        items: items
            .iter()
            .map(|i| ItemLine {
                id: i.id.0,
                state: i.state,
                attempts: i.attempts,
                next_attempt_at: i.next_attempt_at,
                last_error: i.last_error.as_deref().map(error_text),
                crm_ref: i.crm_ref.clone(),
            })
            .collect(),
    })
}

/// "Retry now": one item, or every item not sent. Returns how many.
pub fn retry(store: &Store, s: &Session, id: Option<i64>) -> Result<usize, Error> {
    if let Some(id) = id {
        store.outbox_retry_now(s, OutboxId(id))?;
        return Ok(1);
    }
    let mut n = 0;
    for state in [OutboxState::Queued, OutboxState::Failed] {
        for it in store.outbox_items(s, Some(state), u32::MAX)? {
            store.outbox_retry_now(s, it.id)?;
            n += 1;
        }
    }
    Ok(n)
}

/// The planner the app registers with the store: a finished run with a person becomes one
/// outbox item for the connected CRM, keyed `run:<id>:<crm>` so it is queued once.
///
/// The store hands the planner the run but only the id of its call; the call's details
/// come from [`CrmPlanner::plan_call`], which the store calls when the call ends. Calls
/// end before their runs in the app's flow, so the planner keeps the last finished calls
/// in memory and puts them into the run's job. (See the report on issue 6: the store's
/// `FinishedRun` should carry the `Call` itself.)
#[derive(Debug)]
pub struct Planner {
    target: CrmKind,
    calls: Mutex<HashMap<i64, CallInfo>>,
}

impl Planner {
    /// A planner for the connected CRM.
    pub fn new(target: CrmKind) -> Planner {
        Planner {
            target,
            calls: Mutex::new(HashMap::new()),
        }
    }

    /// The job for a run (public for tests and the desktop's "send again").
    pub fn job(&self, run: &FinishedRun<'_>) -> Option<SyncJob> {
        let contact = run.contact?;
        let call = run.call.and_then(|c| {
            self.calls
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&c.0)
        });
        Some(SyncJob {
            run_id: RunId(format!("ch-run-{}", run.run.0)),
            person_id: contact.id.0.to_string(),
            contact: Contact {
                phone: contact.phone.as_str().to_owned(),
                name: Some(contact.name.expose().clone()).filter(|n| !n.trim().is_empty()),
            },
            call,
            run: run.record.clone(),
            script_name: None,
        })
    }
}

impl CrmPlanner for Planner {
    fn plan_run(&self, run: &FinishedRun<'_>) -> Vec<NewOutboxItem> {
        let Some(job) = self.job(run) else {
            return Vec::new();
        };
        let Ok(payload) = serde_json::to_value(&job) else {
            return Vec::new();
        };
        vec![NewOutboxItem {
            target: self.target.id().into(),
            kind: "run_finished".into(),
            payload,
            idempotency_key: format!("run:{}:{}", run.run.0, self.target.id()),
            contact: run.contact.map(|c| c.id.0),
        }]
    }

    fn plan_call(&self, call: &Call) -> Vec<NewOutboxItem> {
        let (Some(answered), Some(ended)) =
            (call.answered_at.or(Some(call.started_at)), call.ended_at)
        else {
            return Vec::new();
        };
        let info = CallInfo {
            direction: match call.direction {
                callhelper_store::calls::Direction::Inbound => Direction::Inbound,
                callhelper_store::calls::Direction::Outbound => Direction::Outbound,
            },
            started_at: call.started_at,
            duration_s: u64::try_from((ended.0 - answered.0) / 1000).unwrap_or(0),
            result: if call.answered_at.is_some() {
                CallResult::Answered
            } else {
                CallResult::NoAnswer
            },
            recording_url: None,
        };
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        if calls.len() > 1000 {
            calls.clear();
        }
        calls.insert(call.id.0, info);
        Vec::new()
    }
}

/// The store's outbox for one CRM, as the sync worker sees it.
///
/// The store keeps everything: items, leases, attempts, messages, and how far each
/// delivery got ([`Progress`]: CRM ids and stage marks), saved with the item in one
/// transaction of the encrypted database before and after every request that is not
/// idempotent. Items of blocked people are not handed out, and one blocked after it was
/// handed out is not sent ([`OutboxItem::blocked`]); destroyed people's items are gone
/// from the store, progress and all.
#[derive(Debug)]
pub struct StoreOutbox<'a> {
    store: &'a Store,
    target: String,
    lease: Duration,
}

fn outbox_err(e: impl std::fmt::Display) -> CrmError {
    CrmError::Outbox {
        detail: e.to_string(),
    }
}

impl<'a> StoreOutbox<'a> {
    /// The outbox of `target` in `store`. Progress files left by an earlier version in
    /// `<data>/crm/progress/` are moved into the store first.
    pub fn new(dir: &DataDir, store: &'a Store, target: &str) -> Result<StoreOutbox<'a>, Error> {
        adopt_progress_files(&crm_dir(dir)?.join("progress"), store)?;
        Ok(StoreOutbox {
            store,
            target: target.into(),
            lease: Duration::from_secs(600),
        })
    }
}

/// An item as the worker gets it, or `None` when this version cannot read its payload.
fn queued(it: &OutboxItem) -> Option<QueuedItem> {
    let job: SyncJob = serde_json::from_value(it.payload.clone()).ok()?;
    // Progress this version cannot read starts over: the adapters look for an attempted
    // request in the CRM before sending it again, and a fresh start has none attempted.
    let progress = it
        .progress
        .clone()
        .and_then(|p| serde_json::from_value(p).ok())
        .unwrap_or_default();
    Some(QueuedItem {
        id: ItemId(it.id.0 as u64),
        progress,
        job,
        failures: it.attempts,
    })
}

impl Outbox for StoreOutbox<'_> {
    fn claim_due(&mut self, _now: Timestamp, limit: usize) -> Result<Vec<QueuedItem>, CrmError> {
        let items = self
            .store
            .outbox()
            .claim_due(
                Some(&self.target),
                u32::try_from(limit).unwrap_or(u32::MAX),
                self.lease,
            )
            .map_err(outbox_err)?;
        let mut out = Vec::new();
        for it in items {
            match queued(&it) {
                Some(q) => out.push(q),
                None => {
                    // A payload this version cannot read: say so, keep it.
                    let note = FailureNote {
                        code: "crm.unreadable_item".into(),
                        en: "this item cannot be read by this version of CallHelper; update the app".into(),
                        ru: "эту запись не может прочитать эта версия CallHelper; обновите приложение".into(),
                        class: callhelper_crm::pace::FailureClass::NeedsUser,
                    };
                    let msg = serde_json::to_string(&note).unwrap_or_default();
                    self.store
                        .outbox()
                        .mark_failed(it.id, &msg, None)
                        .map_err(outbox_err)?;
                }
            }
        }
        Ok(out)
    }

    fn still_sendable(&mut self, ids: &[ItemId]) -> Result<Vec<bool>, CrmError> {
        ids.iter()
            .map(|id| {
                let it = self
                    .store
                    .outbox()
                    .get(OutboxId(id.0 as i64))
                    .map_err(outbox_err)?;
                Ok(it.is_some_and(|i| i.state == OutboxState::Queued && !i.blocked))
            })
            .collect()
    }

    fn save_progress(&mut self, items: &[(ItemId, &Progress)]) -> Result<(), CrmError> {
        let values = items
            .iter()
            .map(|(id, p)| Ok((OutboxId(id.0 as i64), serde_json::to_value(p)?)))
            .collect::<Result<Vec<_>, serde_json::Error>>()
            .map_err(outbox_err)?;
        let refs: Vec<(OutboxId, &serde_json::Value)> =
            values.iter().map(|(id, v)| (*id, v)).collect();
        self.store
            .outbox()
            .save_progress(&refs)
            .map_err(outbox_err)?;
        Ok(())
    }

    fn mark_sent(&mut self, id: ItemId, _at: Timestamp, receipt: &Receipt) -> Result<(), CrmError> {
        let crm_ref = receipt
            .call_id
            .clone()
            .or_else(|| receipt.contact_id.clone());
        self.store
            .outbox()
            .mark_sent(OutboxId(id.0 as i64), crm_ref.as_deref())
            .map_err(outbox_err)
    }

    fn mark_failed(
        &mut self,
        id: ItemId,
        _at: Timestamp,
        failure: &FailureNote,
        next: Timestamp,
    ) -> Result<(), CrmError> {
        let msg = serde_json::to_string(failure).map_err(outbox_err)?;
        self.store
            .outbox()
            .mark_failed(OutboxId(id.0 as i64), &msg, Some(next))
            .map_err(outbox_err)
    }

    fn next_due(&mut self) -> Result<Option<Timestamp>, CrmError> {
        self.store
            .outbox()
            .next_due(Some(&self.target))
            .map_err(outbox_err)
    }
}

/// Move the progress files of an earlier version (`<data>/crm/progress/<id>.json`) into
/// the store, then remove them: progress of items still waiting is kept (unless the store
/// already has newer), files of items sent or destroyed are simply removed.
fn adopt_progress_files(folder: &Path, store: &Store) -> Result<(), Error> {
    let entries = match std::fs::read_dir(folder) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error(folder, e)),
    };
    for e in entries.flatten() {
        let path = e.path();
        let id = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".json"))
            .and_then(|n| n.parse::<i64>().ok());
        let Some(id) = id else {
            continue;
        };
        let saved: Option<serde_json::Value> = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Progress>(&b).ok())
            .and_then(|p| serde_json::to_value(p).ok());
        let waiting = store.outbox().get(OutboxId(id))?;
        if let (Some(p), Some(it)) = (&saved, waiting)
            && it.state != OutboxState::Sent
            && it.progress.is_none()
        {
            store.outbox().save_progress(&[(OutboxId(id), p)])?;
        }
        std::fs::remove_file(&path).map_err(|e| io_error(&path, e))?;
    }
    // Empty now (anything else in it is not ours to remove).
    let _ = std::fs::remove_dir(folder);
    Ok(())
}

/// Deliver what is due now, batch after batch, until nothing is due (items that failed
/// wait for their next attempt). What the CLI's `crm sync` and the desktop's background
/// worker run.
pub fn sync(dir: &DataDir, store: &Store) -> Result<Tick, Error> {
    let conn = require_connection(dir)?;
    let adapter = adapter_for(dir, &conn, &credentials(dir)?)?;
    let mut outbox = StoreOutbox::new(dir, store, conn.target())?;
    let mut worker = Worker::new(
        adapter,
        clock(),
        RetrySchedule::default(),
        callhelper_crm::rng::Rng::from_entropy().next_u64(),
    );
    let mut total = Tick::default();
    loop {
        let t = worker.tick(&mut outbox)?;
        total.claimed += t.claimed;
        total.sent += t.sent;
        total.failed += t.failed;
        total.skipped += t.skipped;
        if t.claimed == 0 || t.sent == 0 {
            return Ok(total);
        }
    }
}

/// Start the click-to-call endpoint on 127.0.0.1 ([`DIAL_PORT`], or `port`) with this
/// installation's token (made on first use); `origins` are the CRM web origins allowed.
/// `on_dial` is wired by the app to the phone engine. Returns the endpoint and the token
/// the CRM widget must send.
pub fn dial_endpoint(
    dir: &DataDir,
    port: Option<u16>,
    origins: Vec<String>,
    on_dial: OnDial,
) -> Result<(DialEndpoint, Secret), Error> {
    let token = dial_token(dir)?;
    let ep = DialEndpoint::start(port.unwrap_or(DIAL_PORT), token.clone(), origins, on_dial).map_err(|e| {
        Error::new(
            "crm.dial_port_busy",
            text!("cannot listen for click-to-call on 127.0.0.1 ({e}); another copy of the app may be running";
                  "не удалось открыть порт звонков из CRM на 127.0.0.1 ({e}); возможно, запущена другая копия программы"),
        )
    })?;
    Ok((ep, token))
}

/// This installation's click-to-call token, made on first use.
pub fn dial_token(dir: &DataDir) -> Result<Secret, Error> {
    let path = crm_dir(dir)?.join("dial-token");
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => Ok(Secret::new(t.trim())),
        _ => {
            let t = callhelper_crm::dial::new_token();
            write_private_atomic(&path, t.expose().as_bytes()).map_err(|e| io_error(&path, e))?;
            Ok(t)
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! The whole path: a run stored with the planner registered queues its work in the
    //! store's outbox; `sync` delivers it to a local webhook receiver; blocked people wait,
    //! destroyed people's work is gone, a refusal stays queued with the CRM's words until
    //! "retry now".

    use std::sync::Arc;

    use callhelper_crm_fakes::{WebhookConfig, WebhookServer};
    use callhelper_script::{AnswerRef, Context, Dialect, Program, Run, Timestamp, load_str};
    use callhelper_store::contacts::{ContactId, NewContact};
    use callhelper_store::runs::NewRun;
    use callhelper_store::{DbKey, Pii, Session, Store, Unlock};

    use super::*;

    const SCRIPT: &str = r#"
format: callhelper-script/1
id: short
name: Short
version: 1
locale: en
start: greet
steps:
  - id: greet
    say: "Hello!"
    answers:
      - { label: Yes, key: "1", next: won }
  - { id: won, outcome: success }
"#;

    /// Store a finished run of a one-step script for `contact`; returns its id.
    pub(crate) fn run_for(store: &Store, s: &Session, contact: ContactId, at: i64) -> i64 {
        let program =
            Arc::new(Program::new(load_str(SCRIPT, Dialect::Yaml).script.unwrap()).unwrap());
        let (mut run, events) = Run::start(program.clone(), Context::default(), Timestamp(at));
        let id = store
            .start_run(
                s,
                &NewRun {
                    program: &program,
                    contact: Some(contact),
                    call: None,
                    context: run.context(),
                    events: &events,
                },
            )
            .unwrap();
        let ev = run
            .choose(AnswerRef::Key("1"), Timestamp(at + 1000))
            .unwrap();
        assert!(run.is_finished());
        store.finish_run(s, id, &ev, &run.record()).unwrap();
        id.0
    }

    /// Start a local webhook receiver and connect the installation in `dir` to it.
    pub(crate) fn connect_webhook(dir: &DataDir) -> WebhookServer {
        let server = WebhookServer::start(WebhookConfig::default()).unwrap();
        let conn = Connection::new(CrmKind::Webhook, server.url());
        connect(
            dir,
            &conn,
            Secret::new(WebhookConfig::default().secret),
            None,
        )
        .unwrap();
        server
    }

    /// Add a contact with this phone.
    pub(crate) fn person(store: &Store, s: &Session, phone: &str) -> ContactId {
        store
            .add_contact(
                s,
                &NewContact {
                    phone: Pii::new(phone.into()),
                    name: Pii::new("Client".into()),
                    email: Pii::default(),
                    extra: Pii::default(),
                },
            )
            .unwrap()
    }

    /// A new installation with its store open, the webhook planner registered and its
    /// administrator signed in.
    fn installation() -> (tempfile::TempDir, DataDir, Store, Session) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::at(tmp.path());
        let key = Unlock::Key(DbKey::from_hex(&"ab".repeat(32)).unwrap());
        let store = Store::open(&tmp.path().join("callhelper.db"), &key).unwrap();
        store.set_crm_planner(Arc::new(Planner::new(CrmKind::Webhook)));
        let s = store.create_first_admin("admin", "admin-password").unwrap();
        (tmp, dir, store, s)
    }

    #[test]
    fn stored_runs_reach_the_crm_once_and_blocking_destruction_and_refusals_hold() {
        let (_tmp, dir, store, s) = installation();
        let server = connect_webhook(&dir);

        let (a, b, c) = (
            person(&store, &s, "+79161112233"),
            person(&store, &s, "+79162223344"),
            person(&store, &s, "+79163334455"),
        );
        let ra = run_for(&store, &s, a, 1_770_000_000_000);
        let rb = run_for(&store, &s, b, 1_770_000_100_000);
        run_for(&store, &s, c, 1_770_000_200_000);
        store.block(&s, b).unwrap();
        store.destroy_person(&s, c).unwrap();
        let st = status(&dir, &store, &s, 10).unwrap();
        assert_eq!(
            (st.queued, st.sent),
            (2, 0),
            "the destroyed person's work is gone"
        );

        let t = sync(&dir, &store).unwrap();
        assert_eq!(t.sent, 1);
        let kept = server.fake.deliveries();
        assert_eq!(
            kept.keys().cloned().collect::<Vec<_>>(),
            [format!("ch-run-{ra}")],
            "blocked people are not sent"
        );
        assert_eq!(
            kept[&format!("ch-run-{ra}")]["contact"]["phone"],
            "+79161112233"
        );

        store.unblock(&s, b).unwrap();
        server.fake.reject_all(Some((422, "contact is archived")));
        let t = sync(&dir, &store).unwrap();
        assert_eq!((t.sent, t.failed), (0, 1));
        let st = status(&dir, &store, &s, 10).unwrap();
        let failed = st
            .items
            .iter()
            .find(|i| i.attempts == 1 && i.state == OutboxState::Queued)
            .unwrap();
        let msg = failed.last_error.clone().unwrap();
        assert!(
            msg.en.contains("contact is archived") && msg.ru.contains("не приняла"),
            "{msg:?}"
        );

        server.fake.reject_all(None);
        assert_eq!(retry(&store, &s, None).unwrap(), 1);
        let t = sync(&dir, &store).unwrap();
        assert_eq!(t.sent, 1);
        assert!(
            server
                .fake
                .deliveries()
                .contains_key(&format!("ch-run-{rb}"))
        );
        assert_eq!(status(&dir, &store, &s, 10).unwrap().sent, 2);
        assert_eq!(
            server
                .fake
                .stats
                .duplicates
                .load(std::sync::atomic::Ordering::Relaxed),
            0
        );
    }

    #[test]
    fn progress_lives_in_the_store_and_a_person_blocked_after_the_claim_is_not_sent() {
        let (_tmp, dir, store, s) = installation();
        let (a, b) = (
            person(&store, &s, "+79161112233"),
            person(&store, &s, "+79162223344"),
        );
        run_for(&store, &s, a, 1_770_000_000_000);
        run_for(&store, &s, b, 1_770_000_100_000);
        let of = |c: ContactId| {
            store
                .outbox()
                .list(None, 10)
                .unwrap()
                .into_iter()
                .find(|i| i.contact == Some(c.0))
                .unwrap()
                .id
        };
        let (item_a, item_b) = (of(a), of(b));

        // An earlier version's progress file is moved into the store, once.
        let folder = crm_dir(&dir).unwrap().join("progress");
        std::fs::create_dir_all(&folder).unwrap();
        let old = Progress {
            contact_id: Some("555".into()),
            ..Default::default()
        };
        std::fs::write(
            folder.join(format!("{}.json", item_a.0)),
            serde_json::to_vec(&old).unwrap(),
        )
        .unwrap();
        std::fs::write(folder.join("999.json"), b"{}").unwrap();
        let mut outbox = StoreOutbox::new(&dir, &store, CrmKind::Webhook.id()).unwrap();
        assert!(!folder.exists(), "the old folder is gone");
        assert_eq!(
            store.outbox().get(item_a).unwrap().unwrap().progress,
            Some(serde_json::to_value(&old).unwrap())
        );

        // Claimed with its progress; progress saved goes into the store.
        let claimed = outbox.claim_due(Timestamp(0), 10).unwrap();
        let ids: Vec<ItemId> = claimed.iter().map(|q| q.id).collect();
        assert_eq!(ids, [ItemId(item_a.0 as u64), ItemId(item_b.0 as u64)]);
        assert_eq!(claimed[0].progress, old);
        assert_eq!(claimed[1].progress, Progress::default());
        let mut newer = Progress::default();
        newer.mark_attempted(callhelper_crm::job::Stage::Call);
        outbox.save_progress(&[(ids[1], &newer)]).unwrap();
        assert_eq!(
            store.outbox().get(item_b).unwrap().unwrap().progress,
            Some(serde_json::to_value(&newer).unwrap())
        );

        // Blocked after the claim: not sent.
        store.block(&s, b).unwrap();
        assert_eq!(outbox.still_sendable(&ids).unwrap(), [true, false]);
        assert!(store.outbox().get(item_b).unwrap().unwrap().blocked);
        assert_eq!(
            outbox.next_due().unwrap(),
            store
                .outbox()
                .get(item_a)
                .unwrap()
                .map(|i| i.next_attempt_at),
            "only the unblocked item is due"
        );
    }
}

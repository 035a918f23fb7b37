//! What is sent to a CRM for one finished run, and how far its delivery got.
//!
//! A [`SyncJob`] is what the outbox holds for a run: the contact, the call, the run
//! record. Its [`Progress`] records each stage (contact found or created, call logged,
//! note added, ...) so a delivery interrupted anywhere — a timeout, a crash, a kill —
//! resumes where it stopped. A stage is marked *attempted* (and saved) before any request
//! that is not idempotent goes out; finding a stage attempted but not done means "it may
//! have reached the CRM", and the adapter looks in the CRM before sending it again.

use std::collections::BTreeMap;
use std::fmt;

use callhelper_script::{RunRecord, Timestamp};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{CrmError, CrmKind};

/// Our id of a finished run: the idempotency key in every CRM (amoCRM `uniq`, a marker
/// line in notes and tasks, the webhook's `delivery_id`). Not personal data.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(transparent)]
pub struct RunId(pub String);

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl RunId {
    /// The line that marks our notes, comments and tasks in a CRM, so a retry can tell
    /// whether an earlier attempt got through.
    pub fn marker(&self) -> String {
        format!("[callhelper:run:{}]", self.0)
    }
}

/// The person called. `Debug` shows no personal data.
#[derive(Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Contact {
    /// The phone number as dialled.
    pub phone: String,
    /// The name, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl fmt::Debug for Contact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Contact { .. }")
    }
}

impl Contact {
    /// The digits of the phone number.
    pub fn digits(&self) -> String {
        self.phone.chars().filter(char::is_ascii_digit).collect()
    }

    /// The last ten digits: how CRMs match a number whatever its country prefix.
    pub fn last10(&self) -> String {
        let d = self.digits();
        d[d.len().saturating_sub(10)..].to_owned()
    }
}

/// Which way the call went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// We called.
    Outbound,
    /// They called.
    Inbound,
}

/// How the call itself went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallResult {
    /// Someone answered and there was a conversation.
    Answered,
    /// Nobody answered.
    NoAnswer,
    /// The line was busy.
    Busy,
    /// The call failed.
    Failed,
}

/// The phone call of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CallInfo {
    /// Which way.
    pub direction: Direction,
    /// When it started (milliseconds since 1970, UTC).
    pub started_at: Timestamp,
    /// How long it lasted, in seconds.
    pub duration_s: u64,
    /// How it went.
    pub result: CallResult,
    /// Where the recording can be fetched, when there is one and it may be shared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_url: Option<String>,
}

/// The work for one finished run, as the outbox keeps it. `Debug` shows only the ids.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncJob {
    /// The run's id (idempotency key).
    pub run_id: RunId,
    /// The store's id of the person (checked against blocking and destruction).
    pub person_id: String,
    /// The person called.
    pub contact: Contact,
    /// The call, when the run had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<CallInfo>,
    /// The run.
    pub run: RunRecord,
    /// The script's name for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script_name: Option<String>,
}

impl fmt::Debug for SyncJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncJob")
            .field("run_id", &self.run_id)
            .field("person_id", &self.person_id)
            .finish_non_exhaustive()
    }
}

impl SyncJob {
    /// When to call back, parsed from the run (`None` when there is no callback or it
    /// cannot be read). A date without a time means 10:00 that day; a time without an
    /// offset is taken in `utc_offset_min`.
    pub fn callback_at(&self, utc_offset_min: i32) -> Option<Timestamp> {
        let s = self.run.callback_at.as_deref()?;
        crate::time::parse_iso(s, utc_offset_min, 10 * 60)
    }
}

/// A stage of delivering one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The contact was found or created.
    Contact,
    /// Mapped fields were written to the contact.
    Fields,
    /// The call was logged (amoCRM) or registered (Bitrix24).
    Call,
    /// The recording was attached.
    Recording,
    /// The call was finished (Bitrix24).
    Finish,
    /// The transcript was added as a note or timeline comment.
    Note,
    /// The callback task was created.
    Task,
    /// The webhook was posted.
    Post,
}

/// How far a stage got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum StageState {
    /// A request went out (or was about to); whether it took effect is not known.
    Attempted,
    /// Done; the CRM's id of what was made, when it gave one.
    Done {
        /// The CRM's id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
}

/// How far the delivery of one run got; saved in the outbox after every change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The CRM's id of the contact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<String>,
    /// The CRM's id of the call (Bitrix24 `CALL_ID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// The stages.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub stages: BTreeMap<Stage, StageState>,
}

impl Progress {
    /// The stage is done.
    pub fn done(&self, s: Stage) -> bool {
        matches!(self.stages.get(&s), Some(StageState::Done { .. }))
    }

    /// The stage was attempted and may have taken effect.
    pub fn attempted(&self, s: Stage) -> bool {
        matches!(self.stages.get(&s), Some(StageState::Attempted))
    }

    /// Mark a stage attempted.
    pub fn mark_attempted(&mut self, s: Stage) {
        self.stages.insert(s, StageState::Attempted);
    }

    /// Mark a stage done.
    pub fn mark_done(&mut self, s: Stage, id: Option<String>) {
        self.stages.insert(s, StageState::Done { id });
    }
}

/// The outbox's id of an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ItemId(pub u64);

/// What the CRM made of a delivered run, kept in the outbox.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    /// The CRM's id of the contact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<String>,
    /// The CRM's id of the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
}

/// One item being delivered.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The outbox's id.
    pub id: ItemId,
    /// The work.
    pub job: SyncJob,
    /// How far it got.
    pub progress: Progress,
    /// Set by the adapter when this item is decided on its own (sent, or refused by the
    /// CRM while others in the batch went through). Items left `None` share the batch's
    /// result.
    pub outcome: Option<Result<Receipt, CrmError>>,
}

impl Delivery {
    /// A delivery starting from the saved progress.
    pub fn new(id: ItemId, job: SyncJob, progress: Progress) -> Delivery {
        Delivery {
            id,
            job,
            progress,
            outcome: None,
        }
    }

    /// Still to be decided.
    pub fn open(&self) -> bool {
        self.outcome.is_none()
    }

    /// Decide this item as refused by the CRM.
    pub fn reject(&mut self, crm: CrmKind, message: impl Into<String>) {
        self.outcome = Some(Err(CrmError::Rejected {
            crm,
            message: message.into(),
        }));
    }

    /// Decide this item as sent.
    pub fn sent(&mut self) {
        self.outcome = Some(Ok(Receipt {
            contact_id: self.progress.contact_id.clone(),
            call_id: self.progress.call_id.clone(),
        }));
    }
}

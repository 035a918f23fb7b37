//! What the sync worker needs from the outbox, and what the user sees of it.
//!
//! The app's outbox is a table in the encrypted store (`crates/store/src/outbox.rs`),
//! filled in the same transaction that stores a finished run. [`JournalOutbox`] is a
//! small file-backed implementation for development and tests (the soak test kills the
//! worker process over it); it keeps personal data in plain text and is not for the app.

use callhelper_script::{Text, Timestamp, text};
use serde::{Deserialize, Serialize};

use crate::error::{CrmError, FailureNote};
use crate::job::{ItemId, Progress, Receipt, SyncJob};

pub use crate::journal::JournalOutbox;

/// An item due for delivery.
#[derive(Debug, Clone)]
pub struct QueuedItem {
    /// Its id.
    pub id: ItemId,
    /// The work.
    pub job: SyncJob,
    /// How far earlier attempts got.
    pub progress: Progress,
    /// Failed attempts so far.
    pub failures: u32,
}

/// The outbox as the worker uses it.
pub trait Outbox {
    /// Items due at `now`, oldest first, at most `limit`. Never items of blocked or
    /// destroyed people.
    fn claim_due(&mut self, now: Timestamp, limit: usize) -> Result<Vec<QueuedItem>, CrmError>;
    /// Which of `ids` may still be sent now (a person may have been blocked, or the item
    /// removed, since they were claimed).
    fn still_sendable(&mut self, ids: &[ItemId]) -> Result<Vec<bool>, CrmError>;
    /// Save the progress of items (before and after each request that is not idempotent).
    fn save_progress(&mut self, items: &[(ItemId, &Progress)]) -> Result<(), CrmError>;
    /// The item was delivered.
    fn mark_sent(&mut self, id: ItemId, at: Timestamp, receipt: &Receipt) -> Result<(), CrmError>;
    /// The item was not delivered; try again at `next_attempt`.
    fn mark_failed(
        &mut self,
        id: ItemId,
        at: Timestamp,
        failure: &FailureNote,
        next_attempt: Timestamp,
    ) -> Result<(), CrmError>;
    /// The earliest time an item becomes due (to sleep until then), if any is queued.
    fn next_due(&mut self) -> Result<Option<Timestamp>, CrmError>;
}

/// Where an item stands, as the user sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemState {
    /// Waiting to be sent (for the first time, or again after a failure).
    Queued,
    /// Sent.
    Sent,
    /// The last attempt failed; it stays queued and is tried again.
    Failed,
}

impl ItemState {
    /// Its name for people.
    pub fn label(self) -> Text {
        match self {
            ItemState::Queued => text!("queued"; "в очереди"),
            ItemState::Sent => text!("sent"; "отправлено"),
            ItemState::Failed => text!("failed"; "ошибка"),
        }
    }
}

/// One item, as the status screen lists it (no personal data).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemView {
    /// The outbox's id.
    pub id: ItemId,
    /// The run's id.
    pub run_id: String,
    /// The script's id.
    pub script_id: String,
    /// Where it stands.
    pub state: ItemState,
    /// Failed attempts.
    pub failures: u32,
    /// When it was queued.
    pub queued_at: Timestamp,
    /// When it is tried next (queued and failed items).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt: Option<Timestamp>,
    /// When it was sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<Timestamp>,
    /// The last failure, with the CRM's message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<FailureNote>,
}

/// Counts for the status line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Queued, never failed.
    pub queued: usize,
    /// Sent.
    pub sent: usize,
    /// Queued after a failure.
    pub failed: usize,
}

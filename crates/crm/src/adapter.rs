//! What every CRM adapter offers the sync worker.

use crate::error::{CrmError, CrmKind};
use crate::http::HttpStats;
use crate::job::Delivery;
use crate::mapping::CrmField;

/// Saves the progress of items before and after requests that are not idempotent.
pub trait Checkpoint {
    /// Persist the progress of `items` (only what changed needs writing).
    fn save(&mut self, items: &[Delivery]) -> Result<(), CrmError>;
}

/// A checkpoint that keeps nothing (tests of a single delivery).
#[derive(Debug, Default)]
pub struct NoCheckpoint;

impl Checkpoint for NoCheckpoint {
    fn save(&mut self, _: &[Delivery]) -> Result<(), CrmError> {
        Ok(())
    }
}

/// Who the connection is, as the CRM says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountInfo {
    /// The account's or portal's name.
    pub name: String,
}

/// A CRM adapter.
pub trait Adapter: Send + std::fmt::Debug {
    /// Which CRM.
    fn kind(&self) -> CrmKind;
    /// How many items one delivery takes at most.
    fn batch_size(&self) -> usize;
    /// Deliver `items`, resuming each from its progress. Items decided on their own get an
    /// `outcome`; an `Err` is the result of all the others.
    fn deliver(&mut self, items: &mut [Delivery], cp: &mut dyn Checkpoint) -> Result<(), CrmError>;
    /// The CRM's contact fields (for mapping).
    fn fields(&mut self) -> Result<Vec<CrmField>, CrmError>;
    /// Check the connection works.
    fn check(&mut self) -> Result<AccountInfo, CrmError>;
    /// HTTP counters.
    fn stats(&self) -> HttpStats;
}

/// After the stages: items whose every required part is done are sent; others stay open
/// with an error saying the CRM did not confirm everything (they are tried again, and the
/// attempted parts are looked up in the CRM first).
pub(crate) fn settle(crm: CrmKind, items: &mut [Delivery], complete: impl Fn(&Delivery) -> bool) {
    for d in items.iter_mut().filter(|d| d.open()) {
        if complete(d) {
            d.sent();
        } else {
            d.outcome = Some(Err(CrmError::Malformed {
                crm,
                detail: "the answer did not confirm every part of the delivery".into(),
            }));
        }
    }
}

//! The licence status of this computer, decided from what is stored and the time.
//!
//! [`evaluate`] is pure: it takes the stored key, lease and clock record (already
//! checked) and `now`, and returns the [`Status`] plus the highest time to remember. The
//! IO layer (`store`) reads the files and writes the record back.
//!
//! Clock rollback: the highest time ever seen is the largest of the remembered one, the
//! key's issue time and the lease's issue time (the server's clock, signed). A clock more
//! than [`ROLLBACK_TOLERANCE`] behind it stops work until the server is reached.

use serde::Serialize;

use crate::key::{KeyError, Licence, LicenceKey};
use crate::lease::{Lease, LeaseError};
use crate::machine::MachineHash;
use crate::time::DAY;

/// How far the clock may go back (time zones, manual fixes) before it counts as rolled
/// back.
pub const ROLLBACK_TOLERANCE: u64 = DAY;

/// The clock record is rewritten only when time has moved on by this much (seconds), so
/// asking the status often does not write to disk each time.
pub const REMEMBER_STEP: u64 = 60;

/// A licence in use on this computer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Licensed {
    /// The licence.
    pub licence: Licence,
    /// The seat this computer holds.
    pub seat: u32,
    /// From when the lease should be renewed (Unix seconds).
    pub renew_after: u64,
    /// When the lease ends; without reaching the server, work stops then.
    pub lease_until: u64,
}

/// Why the licence server must be reached before work goes on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
#[non_exhaustive]
pub enum NeedsServer {
    /// A key is stored but no lease (the activation did not finish).
    NotActivated,
    /// The lease ended while the server could not be reached.
    LeaseEnded {
        /// When it ended.
        at: u64,
    },
    /// The clock is more than a day behind the highest time seen.
    ClockBehind {
        /// The clock now.
        now: u64,
        /// The highest time seen before.
        highest_seen: u64,
    },
    /// The lease file was changed, or belongs to another computer or licence.
    LeaseInvalid,
    /// The clock record is missing or was changed.
    StateInvalid,
    /// The stored key was changed: it must be activated again.
    KeyInvalid,
}

/// The licence status of this computer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Status {
    /// No licence: the app runs in demo mode (the demo line only).
    Demo,
    /// Licensed, and the lease is fresh.
    Active(Licensed),
    /// Licensed, but renewal is overdue (the server was not reached): working offline
    /// until `lease_until`.
    Grace(Licensed),
    /// The licence's term has ended; a new key is needed.
    Expired {
        /// The licence.
        licence: Licence,
    },
    /// The server said the licence was revoked.
    Revoked {
        /// The licence.
        licence: Licence,
    },
    /// Work stops until the licence server is reached (or the key is activated again).
    NeedsServer {
        /// The licence, when the stored key is intact.
        licence: Option<Licence>,
        /// Why.
        #[serde(flatten)]
        reason: NeedsServer,
    },
}

impl Status {
    /// The licence in force when the full product may be used (`Active` or `Grace`);
    /// `None` means demo mode.
    pub fn licensed(&self) -> Option<&Licensed> {
        match self {
            Status::Active(l) | Status::Grace(l) => Some(l),
            _ => None,
        }
    }

    /// True when only the demo line may be used.
    pub fn is_demo(&self) -> bool {
        self.licensed().is_none()
    }

    /// True when the licence server should be asked now: renewal is overdue, or work is
    /// stopped for a reason the server can clear (everything but demo mode, an ended
    /// term and a damaged key).
    pub fn wants_server(&self) -> bool {
        match self {
            Status::Grace(_) | Status::Revoked { .. } => true,
            Status::NeedsServer { licence, reason } => {
                licence.is_some() && !matches!(reason, NeedsServer::KeyInvalid)
            }
            _ => false,
        }
    }

    /// A stable name for the state (`demo`, `active`, `grace`, `expired`, `revoked`,
    /// `needs_server`).
    pub fn name(&self) -> &'static str {
        match self {
            Status::Demo => "demo",
            Status::Active(_) => "active",
            Status::Grace(_) => "grace",
            Status::Expired { .. } => "expired",
            Status::Revoked { .. } => "revoked",
            Status::NeedsServer { .. } => "needs_server",
        }
    }
}

/// The clock record as read from disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockRecord {
    /// No record.
    Missing,
    /// A record whose authentication failed or that cannot be read.
    Invalid,
    /// A good record.
    Valid {
        /// The highest time seen.
        highest_seen: u64,
        /// Whether the server said the licence was revoked.
        revoked: bool,
    },
}

/// Everything stored about the licence, each part already decoded and checked.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The licence key (`None`: none stored).
    pub key: Option<Result<LicenceKey, KeyError>>,
    /// The lease (`None`: none stored).
    pub lease: Option<Result<Lease, LeaseError>>,
    /// The clock record.
    pub clock: ClockRecord,
}

/// The outcome of [`evaluate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// The status.
    pub status: Status,
    /// A new highest-seen time to write to the clock record, when it moved forward (and
    /// the record was valid: a broken record is never healed without the server).
    pub remember: Option<u64>,
}

/// Decide the status at `now` for this machine.
pub fn evaluate(stored: &Stored, machine: &MachineHash, now: u64) -> Evaluation {
    let status = |s| Evaluation {
        status: s,
        remember: None,
    };
    let key = match &stored.key {
        None => return status(Status::Demo),
        Some(Err(_)) => {
            return status(Status::NeedsServer {
                licence: None,
                reason: NeedsServer::KeyInvalid,
            });
        }
        Some(Ok(k)) => k,
    };
    let licence = key.licence().clone();
    let lease = match &stored.lease {
        Some(Ok(l)) if l.licence == key.licence().id && &l.machine == machine => Some(Ok(l)),
        Some(Ok(_)) | Some(Err(_)) => Some(Err(())),
        None => None,
    };
    let mut highest = licence.issued;
    if let Some(Ok(l)) = lease {
        highest = highest.max(l.issued);
    }
    if let ClockRecord::Valid { highest_seen, .. } = stored.clock {
        highest = highest.max(highest_seen);
    }
    if now.saturating_add(ROLLBACK_TOLERANCE) < highest {
        return status(Status::NeedsServer {
            licence: Some(licence),
            reason: NeedsServer::ClockBehind {
                now,
                highest_seen: highest,
            },
        });
    }
    let remember = match stored.clock {
        ClockRecord::Valid { highest_seen, .. }
            if now >= highest_seen.saturating_add(REMEMBER_STEP) =>
        {
            Some(now.max(highest))
        }
        _ => None,
    };
    let decided = |s| Evaluation {
        status: s,
        remember,
    };
    if let ClockRecord::Valid { revoked: true, .. } = stored.clock {
        return decided(Status::Revoked { licence });
    }
    if key.check_term(now).is_err() {
        return decided(Status::Expired { licence });
    }
    let needs = |licence, reason| Status::NeedsServer {
        licence: Some(licence),
        reason,
    };
    let lease = match lease {
        None => return decided(needs(licence, NeedsServer::NotActivated)),
        Some(Err(())) => return decided(needs(licence, NeedsServer::LeaseInvalid)),
        Some(Ok(l)) => l,
    };
    if !matches!(stored.clock, ClockRecord::Valid { .. }) {
        return decided(needs(licence, NeedsServer::StateInvalid));
    }
    if now >= lease.valid_until {
        return decided(needs(
            licence,
            NeedsServer::LeaseEnded {
                at: lease.valid_until,
            },
        ));
    }
    let licensed = Licensed {
        licence,
        seat: lease.seat,
        renew_after: lease.renew_after,
        lease_until: lease.valid_until,
    };
    if now >= lease.renew_after {
        decided(Status::Grace(licensed))
    } else {
        decided(Status::Active(licensed))
    }
}

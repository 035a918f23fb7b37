//! Errors of the licence operations.

use crate::key::KeyError;
use crate::lease::LeaseError;

/// Why a licence operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The licence key was refused.
    #[error("{0}")]
    Key(#[from] KeyError),
    /// The server's lease was refused.
    #[error("{0}")]
    Lease(#[from] LeaseError),
    /// The server does not accept this key (unknown or not issued by it).
    #[error("the licence server does not accept this licence key")]
    Rejected,
    /// The licence was revoked.
    #[error("the licence has been revoked")]
    Revoked,
    /// Every seat is taken.
    #[error("all {seats} seats of the licence are in use")]
    SeatsExhausted {
        /// The licence's seat count.
        seats: u32,
    },
    /// Too many requests; try later.
    #[error("the licence server is limiting requests; retry in {retry_after} s")]
    RateLimited {
        /// Seconds to wait.
        retry_after: u64,
    },
    /// The server is overloaded.
    #[error("the licence server is busy; retry later")]
    Busy,
    /// The server could not be reached.
    #[error("cannot reach the licence server at {url}: {detail}")]
    Unreachable {
        /// The server's address.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// The server answered something unexpected.
    #[error("unexpected answer from the licence server: {0}")]
    Protocol(String),
    /// The server's lease is for another licence or computer.
    #[error("the licence server returned a lease for another licence or computer")]
    LeaseMismatch,
    /// This computer's clock disagrees with the server's by more than a day.
    #[error("this computer's clock ({}) disagrees with the licence server's ({})",
        crate::time::format_datetime(*local), crate::time::format_datetime(*server))]
    ClockSkew {
        /// The local clock.
        local: u64,
        /// The server's clock.
        server: u64,
    },
    /// No licence is activated here.
    #[error("no licence is activated on this computer")]
    NotActivated,
    /// This build trusts no vendor key, so no key can be valid.
    #[error("this build of CallHelper has no vendor key; it runs in demo mode only")]
    NoTrustedKey,
    /// No server address is configured.
    #[error("no licence server is configured")]
    NoServer,
    /// The server address is not an http(s) URL.
    #[error("the licence server address is not a valid http(s) URL: {0}")]
    BadServerUrl(String),
    /// The machine id cannot be read.
    #[error("cannot read this computer's machine id: {0}")]
    MachineId(String),
    /// A file in the licence folder cannot be read or written.
    #[error("cannot use {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

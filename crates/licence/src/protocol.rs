//! The HTTP protocol between the app and the licence server (JSON over POST).
//!
//! Every endpoint takes a [`LeaseRequest`] (the licence key as text and the machine
//! hash) and answers either `200` with a body for that endpoint or an error status with
//! an [`ErrorBody`]. The server answers `licence_invalid` alike for a key it never
//! issued, a key signed by someone else and a malformed key, so no answer tells whether
//! some other customer's licence exists.

use serde::{Deserialize, Serialize};

/// Take a seat (or return the seat this machine already holds): answers [`LeaseBody`].
pub const ACTIVATE: &str = "/v1/activate";
/// Extend this machine's lease (takes a free seat if the old one was reclaimed): answers
/// [`LeaseBody`].
pub const RENEW: &str = "/v1/renew";
/// Free this machine's seat: answers [`DeactivateBody`].
pub const DEACTIVATE: &str = "/v1/deactivate";
/// Liveness: `GET` answers `200 ok`.
pub const HEALTH: &str = "/health";

/// The largest request body the server reads.
pub const MAX_BODY: usize = 4096;
/// The largest response body the client reads.
pub const MAX_RESPONSE: u64 = 16 * 1024;

/// What the app sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseRequest {
    /// The licence key text.
    pub key: String,
    /// The salted machine hash (64 hex characters).
    pub machine: String,
}

/// A lease granted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseBody {
    /// The signed lease text.
    pub lease: String,
}

/// A deactivation done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeactivateBody {
    /// True when a seat was freed; false when this machine held none.
    pub freed: bool,
}

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// One of the codes in [`code`].
    pub code: String,
    /// For `seats_exhausted`: the licence's seat count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seats: Option<u32>,
    /// For `rate_limited`: seconds to wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

/// Error codes.
pub mod code {
    /// Malformed request (bad JSON, bad machine hash, too large).
    pub const BAD_REQUEST: &str = "bad_request";
    /// Unknown, foreign or malformed licence key (one answer for all three).
    pub const LICENCE_INVALID: &str = "licence_invalid";
    /// The licence's term has ended.
    pub const LICENCE_EXPIRED: &str = "licence_expired";
    /// The licence was revoked.
    pub const LICENCE_REVOKED: &str = "licence_revoked";
    /// Every seat is taken.
    pub const SEATS_EXHAUSTED: &str = "seats_exhausted";
    /// Too many requests from this address.
    pub const RATE_LIMITED: &str = "rate_limited";
    /// The server is overloaded or timed out.
    pub const BUSY: &str = "busy";
    /// The server failed.
    pub const INTERNAL: &str = "internal";
}

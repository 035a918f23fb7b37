//! The CallHelper licence server: issues vendor-signed licence keys, counts seats and
//! signs leases over HTTP, with its own database.
//!
//! - [`service`]: what the server does (activate/renew, deactivate, reclaim, issue,
//!   revoke, list), over any [`db::Store`];
//! - [`db`]: the store traits and the portable SQL; [`sqlite`] is the default backend,
//!   and with the `postgres` feature `postgres` runs the same service on PostgreSQL;
//! - [`http`]: routes, per-address rate limits, in-flight and time limits;
//! - [`keyfile`]: the vendor's signing key on disk.
//!
//! The binary `callhelper-licence-server` wires these to an admin command line.

pub mod db;
pub mod http;
pub mod keyfile;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod ratelimit;
pub mod service;
pub mod sqlite;

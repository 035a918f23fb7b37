//! Licensing of CallHelper: vendor-signed licence keys, server-signed leases, the machine
//! hash, the status decision and the client of the licence server.
//!
//! The pure parts take time as an argument and do no IO: [`key`] (the key format),
//! [`lease`] (the lease format), [`status::evaluate`] (what the stored state means at a
//! given time, with clock-rollback detection), [`machine::MachineHash`]. The IO parts are
//! [`store`] (the licence folder) and, with the `client` feature, [`client`] (HTTP to
//! the licence server and the activate / refresh / deactivate operations). The licence
//! server (`callhelper-licence-server`) uses this crate without the `client` feature for
//! the same formats and the [`protocol`].

pub mod error;
pub mod key;
pub mod lease;
pub mod machine;
pub mod protocol;
mod signed;
pub mod status;
pub mod time;

#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "client")]
pub mod store;

#[cfg(feature = "client")]
pub use client::{Client, Deactivated, Licensing, Refresh};
pub use error::Error;
pub use key::{KeyError, Licence, LicenceId, LicenceKey};
pub use lease::{Lease, LeaseError};
pub use machine::{Machine, MachineHash};
pub use signed::{PublicKey, SecretKey, Trust};
pub use status::{Licensed, NeedsServer, Status};
#[cfg(feature = "client")]
pub use store::LicenceDir;

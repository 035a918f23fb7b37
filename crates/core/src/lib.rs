//! The application API of CallHelper: the one surface the command line (`crates/cli`) and
//! the desktop shell (`src-tauri/`) call.
//!
//! Each area of the product has a module here that turns the pure engines and the edge
//! crates into operations a user performs (lint a script folder, run a script, ...).
//! Errors cross this boundary as [`Error`] values with a stable `code` and a message in
//! both interface languages; callers never match on message text.

pub mod background;
pub mod crm;
pub mod data;
pub mod desktop;
pub mod error;
pub mod licence;
pub mod paths;
pub mod phone;
pub mod scripts;

pub use callhelper_script as script;
pub use error::Error;

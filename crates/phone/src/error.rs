//! Errors of the phone engine.

use std::path::PathBuf;

use crate::call::CallId;
use crate::dtmf::InvalidDigit;

/// The phone could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The engine's folder could not be created.
    #[error("cannot create the phone folder {path}: {source}")]
    Folder {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file the configuration names does not exist.
    #[error("the file {0} does not exist")]
    MissingFile(PathBuf),
    /// liblinphone could not create or start its core (status code from liblinphone).
    #[error("the SIP engine did not start (liblinphone status {0})")]
    Engine(i32),
    /// A SIP port could not be opened (taken by another program?).
    #[error("cannot listen for SIP on the requested ports (in use by another program?)")]
    Listen,
    /// An account in the configuration is unusable.
    #[error(transparent)]
    Account(#[from] PhoneError),
    /// The engine thread could not be started.
    #[error("cannot start the phone thread: {0}")]
    Thread(std::io::Error),
}

/// A command the phone could not carry out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PhoneError {
    /// The phone has shut down.
    #[error("the phone is not running")]
    Stopped,
    /// No call with this id (it ended, or never existed).
    #[error("there is no call {0}")]
    NoSuchCall(CallId),
    /// No account with this name.
    #[error("there is no account named {0:?}")]
    NoSuchAccount(String),
    /// An account with this name exists already.
    #[error("an account named {0:?} exists already")]
    DuplicateAccount(String),
    /// An account's settings are not valid.
    #[error("account {name:?}: {what}")]
    InvalidAccount {
        /// The account's name.
        name: String,
        /// What is wrong.
        what: &'static str,
    },
    /// The address cannot be dialled.
    #[error("not a valid SIP address or number")]
    InvalidAddress,
    /// A DTMF digit is not valid.
    #[error(transparent)]
    InvalidDigit(#[from] InvalidDigit),
    /// The call is not in a state where this makes sense (answering a connected call...).
    #[error("{what} is not possible while the call is {state}")]
    WrongState {
        /// What was asked.
        what: &'static str,
        /// The call's state name.
        state: &'static str,
    },
    /// No sound device with this id is present.
    #[error("there is no sound device {0:?}")]
    NoSuchDevice(String),
    /// liblinphone refused the request.
    #[error("the SIP engine refused to {0}")]
    Refused(&'static str),
}

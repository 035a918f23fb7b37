//! Errors as they cross the API boundary: a stable code and a message in two languages.

use callhelper_script::{Lang, Text};
use serde::Serialize;

/// An error from the application API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{}", message.en)]
pub struct Error {
    /// A stable, machine-readable code such as `script.unreadable`.
    pub code: &'static str,
    /// What happened and what to do, in English and Russian.
    pub message: Text,
}

impl Error {
    /// An error with a code and a message.
    pub fn new(code: &'static str, message: Text) -> Error {
        Error { code, message }
    }

    /// The message in `lang`.
    pub fn message(&self, lang: Lang) -> &str {
        self.message.get(lang)
    }
}

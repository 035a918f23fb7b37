//! Types that hold personal data and never show it in `Debug` or logs.
//!
//! The policy (§6.1) requires the data to stay confidential; a derived `Debug` on a plain
//! `String` is how phone numbers end up in log files. Every personal value the store hands
//! out is wrapped in one of these, so `{:?}` prints a placeholder and reading the value
//! takes a deliberate call ([`Pii::expose`], [`Phone::as_str`]).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A personal value (a name, an e-mail address, a free-text note). `Debug` and `Display`
/// print `<redacted>`; [`Pii::expose`] gives the value.
#[derive(Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Pii<T>(T);

impl<T> Pii<T> {
    /// Wrap a value.
    pub fn new(value: T) -> Pii<T> {
        Pii(value)
    }

    /// The value itself. Call this only to show it to an authorised person or to write
    /// it where it belongs (the database, an export), never into a log.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// Unwrap the value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> From<T> for Pii<T> {
    fn from(value: T) -> Self {
        Pii(value)
    }
}

impl<T> fmt::Debug for Pii<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<T> fmt::Display for Pii<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A phone number in E.164 form (`+79161234567`), built only by
/// [`crate::phone::normalise`]. `Debug` and `Display` hide it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Phone(String);

impl Phone {
    /// Wrap a number that is already E.164 (from the database or the normaliser).
    pub(crate) fn from_e164(s: String) -> Phone {
        Phone(s)
    }

    /// The number, `+` and digits. Never log it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Phone(<redacted>)")
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted phone>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let name = Pii::new("Иван Петров".to_owned());
        let phone = Phone::from_e164("+79161234567".into());
        let shown = format!("{name:?} {name} {phone:?} {phone} {:?}", Some(&name));
        assert!(!shown.contains("Иван") && !shown.contains("916"), "{shown}");
        assert_eq!(name.expose(), "Иван Петров");
        assert_eq!(phone.as_str(), "+79161234567");
    }
}

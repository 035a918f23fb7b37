//! Keeping personal data out of logs: SIP addresses and phone numbers are masked in the
//! `Debug` of the types that hold them and in every line liblinphone logs.

use std::borrow::Cow;
use std::fmt;

/// A SIP or tel address of a person (the far end of a call, an account's identity).
/// `Debug` masks the user part; use [`Address::as_str`] where the value is really needed
/// (dialling, showing it to the agent).
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Address(String);

impl Address {
    /// Wrap an address.
    pub fn new(s: impl Into<String>) -> Address {
        Address(s.into())
    }

    /// The address itself.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({:?})", scrub(&self.0))
    }
}

/// A secret (a SIP password). `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret itself, for the engine.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Mask personal data in free text: the user part of `sip:`, `sips:` and `tel:` addresses,
/// quoted display names before `<`, and anything that looks like a phone number (seven or
/// more digits, possibly with spaces, dashes and brackets).
pub fn scrub(text: &str) -> Cow<'_, str> {
    if !needs_scrub(text) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if let Some(len) = scheme_at(b, i) {
            out.push_str(&text[i..i + len]);
            i += len;
            let end = user_part_end(b, i);
            if end > i {
                out.push_str("***");
                i = end;
            }
            continue;
        }
        if b[i] == b'"' {
            if let Some(close) = text[i + 1..].find('"').map(|p| i + 1 + p) {
                let rest = text[close + 1..].trim_start();
                if rest.starts_with('<') {
                    out.push_str("\"***\"");
                    i = close + 1;
                    continue;
                }
            }
        }
        if b[i].is_ascii_digit() || (b[i] == b'+' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            let (end, digits) = number_extent(b, i);
            // A digit run glued to letters is an identifier (a branch, a tag), not a number.
            let glued = i > 0 && b[i - 1].is_ascii_alphanumeric();
            if digits >= 7 && !glued {
                out.push_str("***");
            } else {
                out.push_str(&text[i..end]);
            }
            i = end;
            continue;
        }
        let ch = text[i..].chars().next().expect("in bounds");
        out.push(ch);
        i += ch.len_utf8();
    }
    Cow::Owned(out)
}

fn needs_scrub(text: &str) -> bool {
    let lower_has = |p: &str| {
        text.as_bytes()
            .windows(p.len())
            .any(|w| w.eq_ignore_ascii_case(p.as_bytes()))
    };
    lower_has("sip:") || lower_has("sips:") || lower_has("tel:") || text.contains('"') || {
        let mut run = 0;
        text.bytes().any(|c| {
            run = if c.is_ascii_digit() {
                run + 1
            } else if matches!(c, b' ' | b'-' | b'(' | b')') {
                run
            } else {
                0
            };
            run >= 7
        })
    }
}

fn scheme_at(b: &[u8], i: usize) -> Option<usize> {
    if i > 0 && b[i - 1].is_ascii_alphanumeric() {
        return None;
    }
    ["sips:", "sip:", "tel:"]
        .iter()
        .find(|s| b.len() >= i + s.len() && b[i..i + s.len()].eq_ignore_ascii_case(s.as_bytes()))
        .map(|s| s.len())
}

/// Where the user part after a scheme ends: at `@` for SIP (nothing to mask without one),
/// at a delimiter for `tel:` (which is all user part).
fn user_part_end(b: &[u8], start: usize) -> usize {
    let is_tel = start >= 4 && b[start - 4..start].eq_ignore_ascii_case(b"tel:");
    let stop =
        |c: u8| c.is_ascii_whitespace() || matches!(c, b'>' | b';' | b',' | b'"' | b'\'' | b'?');
    let mut j = start;
    while j < b.len() && !stop(b[j]) {
        if b[j] == b'@' && !is_tel {
            return j;
        }
        j += 1;
    }
    if is_tel { j } else { start }
}

fn is_separator(c: u8) -> bool {
    matches!(c, b' ' | b'-' | b'(' | b')')
}

fn number_extent(b: &[u8], start: usize) -> (usize, usize) {
    let mut j = start;
    let mut digits = 0;
    let mut end = start;
    if b[j] == b'+' {
        j += 1;
    }
    while j < b.len() {
        let c = b[j];
        if c.is_ascii_digit() {
            digits += 1;
            j += 1;
            end = j;
        } else if is_separator(c) {
            // Up to two separators (`) `, ` (`) between digit groups.
            let k = if b.get(j + 1).copied().is_some_and(is_separator) {
                j + 2
            } else {
                j + 1
            };
            if b.get(k).is_some_and(u8::is_ascii_digit) {
                j = k;
            } else {
                break;
            }
        } else {
            break;
        }
    }
    (end.max(start + 1), digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_users_display_names_and_numbers_are_masked() {
        let cases = [
            (
                "From: \"Ivan Petrov\" <sip:+79991234567@pbx.example.com>;tag=abc",
                "From: \"***\" <sip:***@pbx.example.com>;tag=abc",
            ),
            (
                "call to sips:alice@example.org failed",
                "call to sips:***@example.org failed",
            ),
            (
                "dial tel:+7-999-123-45-67;phone-context=x",
                "dial tel:***;phone-context=x",
            ),
            ("number +7 (999) 123-45-67 busy", "number *** busy"),
            (
                "Contact: <SIP:bob@127.0.0.1:5070>",
                "Contact: <SIP:***@127.0.0.1:5070>",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(scrub(input), want, "{input}");
        }
    }

    #[test]
    fn ordinary_log_text_is_left_alone() {
        for s in [
            "Audio stream started on port 40012 at 127.0.0.1",
            "sip:127.0.0.1:5060",
            "CSeq: 20 INVITE",
            "branch=z9hG4bK1234567890 is fine",
            "Привет, мир",
            "",
        ] {
            assert_eq!(scrub(s), s);
        }
        // The common case costs no allocation.
        assert!(matches!(scrub("Audio stream started"), Cow::Borrowed(_)));
    }

    #[test]
    fn debug_of_addresses_and_secrets_hides_them() {
        let a = Address::new("sip:+79991234567@pbx.example.com");
        assert_eq!(format!("{a:?}"), "Address(\"sip:***@pbx.example.com\")");
        assert_eq!(a.as_str(), "sip:+79991234567@pbx.example.com");
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(***)");
    }

    proptest::proptest! {
        #[test]
        fn scrub_never_panics_and_hides_long_numbers(prefix in "[a-z :<]{0,10}", n in 1_000_000u64..99_999_999_999u64) {
            let s = format!("{prefix} {n}");
            let out = scrub(&s);
            proptest::prop_assert!(!out.contains(&n.to_string()));
        }

        #[test]
        fn scrub_handles_any_text(s in "\\PC{0,60}") {
            let _ = scrub(&s);
        }
    }
}

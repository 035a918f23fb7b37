//! Phone numbers to E.164 (`+` country code and number, at most 15 digits).
//!
//! Contacts are found by phone (an incoming call, a CRM card, an import), so every number
//! is stored in one form. A number written with `+` or `00` is international; anything
//! else is read in the installation's default country (Russia unless configured), where
//! the trunk prefix (`8` in Russia, `0` in most of Europe) is dropped. This is a small,
//! dependency-free normaliser: it checks lengths, not the numbering plan of each country.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::pii::Phone;

/// A country's dialling rules, for numbers written without the international prefix.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Country {
    /// ISO 3166 alpha-2 code (`RU`).
    pub iso: &'static str,
    /// The country calling code (`7`).
    pub calling_code: &'static str,
    /// The trunk prefix dialled before a national number (`8`), if any.
    pub trunk_prefix: &'static str,
    /// How many digits a national number has without the trunk prefix (min, max).
    pub national_len: (usize, usize),
}

impl fmt::Debug for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.iso)
    }
}

/// The countries the normaliser knows by code.
pub const COUNTRIES: &[Country] = &[
    Country {
        iso: "RU",
        calling_code: "7",
        trunk_prefix: "8",
        national_len: (10, 10),
    },
    Country {
        iso: "KZ",
        calling_code: "7",
        trunk_prefix: "8",
        national_len: (10, 10),
    },
    Country {
        iso: "BY",
        calling_code: "375",
        trunk_prefix: "80",
        national_len: (9, 9),
    },
    Country {
        iso: "UA",
        calling_code: "380",
        trunk_prefix: "0",
        national_len: (9, 9),
    },
    Country {
        iso: "UZ",
        calling_code: "998",
        trunk_prefix: "",
        national_len: (9, 9),
    },
    Country {
        iso: "AM",
        calling_code: "374",
        trunk_prefix: "0",
        national_len: (8, 8),
    },
    Country {
        iso: "GE",
        calling_code: "995",
        trunk_prefix: "0",
        national_len: (9, 9),
    },
    Country {
        iso: "US",
        calling_code: "1",
        trunk_prefix: "1",
        national_len: (10, 10),
    },
    Country {
        iso: "CA",
        calling_code: "1",
        trunk_prefix: "1",
        national_len: (10, 10),
    },
    Country {
        iso: "GB",
        calling_code: "44",
        trunk_prefix: "0",
        national_len: (9, 10),
    },
    Country {
        iso: "DE",
        calling_code: "49",
        trunk_prefix: "0",
        national_len: (6, 13),
    },
    Country {
        iso: "FR",
        calling_code: "33",
        trunk_prefix: "0",
        national_len: (9, 9),
    },
];

impl Country {
    /// Russia, the default.
    pub const RU: Country = COUNTRIES[0];

    /// A country by its ISO code (case-insensitive).
    pub fn by_iso(iso: &str) -> Option<Country> {
        COUNTRIES
            .iter()
            .copied()
            .find(|c| c.iso.eq_ignore_ascii_case(iso.trim()))
    }
}

impl Default for Country {
    fn default() -> Self {
        Country::RU
    }
}

/// Read a phone number as people write it (`8 (916) 123-45-67`, `+7 916 123 45 67`,
/// `0044 20 7946 0958`) and return it in E.164 form, or `None` when it is not a number.
pub fn normalise(input: &str, country: Country) -> Option<Phone> {
    let trimmed = input.trim();
    // An extension or a comment after the number is not part of it.
    let mut digits = String::with_capacity(16);
    let mut plus = false;
    for (i, c) in trimmed.chars().enumerate() {
        match c {
            '0'..='9' => digits.push(c),
            '+' if i == 0 => plus = true,
            ' ' | '\u{a0}' | '-' | '(' | ')' | '.' | '/' | '\t' => {}
            _ => return None,
        }
    }
    let international = if plus {
        Some(digits.as_str())
    } else {
        digits.strip_prefix("00")
    };
    let e164 = match international {
        Some(rest) => rest.to_owned(),
        None => {
            let (min, max) = country.national_len;
            let national = if !country.trunk_prefix.is_empty()
                && digits.starts_with(country.trunk_prefix)
                && (min..=max).contains(&(digits.len() - country.trunk_prefix.len()))
            {
                &digits[country.trunk_prefix.len()..]
            } else if digits.starts_with(country.calling_code)
                && (min..=max).contains(&(digits.len() - country.calling_code.len()))
            {
                // Written with the country code but without `+` (`79161234567`).
                &digits[country.calling_code.len()..]
            } else if (min..=max).contains(&digits.len()) {
                digits.as_str()
            } else {
                return None;
            };
            format!("{}{national}", country.calling_code)
        }
    };
    if !(8..=15).contains(&e164.len()) || e164.starts_with('0') {
        return None;
    }
    Some(Phone::from_e164(format!("+{e164}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str, c: Country) -> Option<String> {
        normalise(s, c).map(|p| p.as_str().to_owned())
    }

    #[test]
    fn russian_forms_agree() {
        for s in [
            "+7 916 123-45-67",
            "8 (916) 123-45-67",
            "89161234567",
            "79161234567",
            "9161234567",
            "007 916 1234567",
        ] {
            assert_eq!(n(s, Country::RU).as_deref(), Some("+79161234567"), "{s}");
        }
    }

    #[test]
    fn other_countries_and_rejects() {
        let gb = Country::by_iso("gb").unwrap();
        assert_eq!(n("020 7946 0958", gb).as_deref(), Some("+442079460958"));
        assert_eq!(
            n("+44 20 7946 0958", Country::RU).as_deref(),
            Some("+442079460958")
        );
        let us = Country::by_iso("US").unwrap();
        assert_eq!(n("(415) 555-2671", us).as_deref(), Some("+14155552671"));
        for bad in [
            "",
            "12345",
            "abc",
            "+7 916 ext 5",
            "+1234567890123456",
            "+0123456789",
        ] {
            assert_eq!(n(bad, Country::RU), None, "{bad}");
        }
    }
}

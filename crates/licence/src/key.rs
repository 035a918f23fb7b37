//! Licence keys: what the vendor sells, as text an admin can paste.
//!
//! A key carries a [`Licence`] (id, customer, seats, features, issued, expires) signed by
//! the vendor's key. [`LicenceKey::parse`] checks the signature first and reads the
//! payload only when a trusted key signed it; then it checks the payload's shape. Whether
//! the key is still in its term is a separate question ([`LicenceKey::check_term`]),
//! because it needs the time.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::signed::{self, Kind, OpenError, SecretKey, Trust};

/// The envelope of licence keys.
pub(crate) const KEY: Kind = Kind {
    prefix: "CHK1",
    context: b"callhelper licence key v1",
    max_text: 4096,
};

/// The payload version this code writes and reads.
const VERSION: u32 = 1;
/// The most seats one licence can have.
pub const MAX_SEATS: u32 = 100_000;
/// The longest customer name, in characters.
pub const MAX_CUSTOMER: usize = 200;
/// The most features one licence can carry.
pub const MAX_FEATURES: usize = 32;
/// The longest feature name.
pub const MAX_FEATURE_LEN: usize = 40;

/// A licence id: 26 characters of base32 (128 random bits), e.g. `MFRGGZDFMZTWQ2LKNNWG23TPOA`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LicenceId(String);

impl LicenceId {
    /// An id from 16 random bytes (the server draws them from the OS's RNG).
    pub fn from_random(bytes: [u8; 16]) -> LicenceId {
        LicenceId(data_encoding::BASE32_NOPAD.encode(&bytes))
    }

    /// Parse an id as printed (case does not matter).
    pub fn parse(text: &str) -> Option<LicenceId> {
        let t = text.trim().to_ascii_uppercase();
        (t.len() == 26
            && t.bytes()
                .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)))
        .then_some(LicenceId(t))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for LicenceId {
    type Error = &'static str;
    fn try_from(s: String) -> Result<LicenceId, &'static str> {
        LicenceId::parse(&s).ok_or("not a licence id")
    }
}

impl From<LicenceId> for String {
    fn from(id: LicenceId) -> String {
        id.0
    }
}

impl std::fmt::Display for LicenceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a licence grants: the payload of a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Licence {
    /// The licence id (random; the server knows the licence by it).
    pub id: LicenceId,
    /// The customer's name as written on the contract (an organisation, not a person).
    pub customer: String,
    /// How many computers may use the licence at once.
    pub seats: u32,
    /// Feature names the licence enables (lowercase `a-z 0-9 - _ .`).
    pub features: Vec<String>,
    /// When the key was issued (Unix seconds).
    pub issued: u64,
    /// When the licence ends (Unix seconds).
    pub expires: u64,
}

/// The payload as written: the licence plus its version number.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    v: u32,
    id: LicenceId,
    customer: String,
    seats: u32,
    features: Vec<String>,
    issued: u64,
    expires: u64,
}

impl Wire {
    fn new(l: &Licence) -> Wire {
        Wire {
            v: VERSION,
            id: l.id.clone(),
            customer: l.customer.clone(),
            seats: l.seats,
            features: l.features.clone(),
            issued: l.issued,
            expires: l.expires,
        }
    }

    fn into_licence(self) -> Licence {
        Licence {
            id: self.id,
            customer: self.customer,
            seats: self.seats,
            features: self.features,
            issued: self.issued,
            expires: self.expires,
        }
    }
}

/// Read only the version, whatever else the payload holds.
#[derive(Deserialize)]
struct VersionOnly {
    v: u32,
}

/// Why a licence key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Not a CallHelper licence key at all: wrong characters, cut short, or another kind
    /// of text.
    #[error("this is not a CallHelper licence key (cut short, mistyped or not a key)")]
    Malformed,
    /// The signature does not match: the key was changed, mistyped, or issued by someone
    /// other than the vendor.
    #[error(
        "the licence key's signature does not match: it was changed, mistyped or not issued by the vendor"
    )]
    BadSignature,
    /// A key format from a newer version of CallHelper.
    #[error("the licence key has format version {0}; update CallHelper")]
    UnsupportedVersion(u32),
    /// Signed, but its content breaks the rules (only a faulty issuer produces these).
    #[error("the licence key's content is invalid: {0}")]
    Invalid(&'static str),
    /// The licence's term has ended.
    #[error("the licence expired on {}", crate::time::format_datetime(*expires))]
    Expired {
        /// When it ended (Unix seconds).
        expires: u64,
    },
}

impl From<OpenError> for KeyError {
    fn from(e: OpenError) -> KeyError {
        match e {
            OpenError::Malformed => KeyError::Malformed,
            OpenError::BadSignature => KeyError::BadSignature,
        }
    }
}

fn feature_ok(f: &str) -> bool {
    (1..=MAX_FEATURE_LEN).contains(&f.len())
        && f.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
}

impl Licence {
    /// Check the rules every licence follows; the issuer and the reader both apply them.
    pub fn validate(&self) -> Result<(), &'static str> {
        let n = self.customer.chars().count();
        if n == 0 || n > MAX_CUSTOMER || self.customer.trim() != self.customer {
            return Err("the customer name must be 1 to 200 characters without surrounding spaces");
        }
        if self.customer.chars().any(char::is_control) {
            return Err("the customer name contains control characters");
        }
        if !(1..=MAX_SEATS).contains(&self.seats) {
            return Err("seats must be between 1 and 100000");
        }
        if self.features.len() > MAX_FEATURES || !self.features.iter().all(|f| feature_ok(f)) {
            return Err("features must be at most 32 names of lowercase letters, digits, - _ .");
        }
        let mut sorted = self.features.clone();
        sorted.sort();
        sorted.dedup();
        if sorted.len() != self.features.len() {
            return Err("a feature is listed twice");
        }
        if self.expires <= self.issued {
            return Err("the licence must expire after it is issued");
        }
        Ok(())
    }

    /// True when the licence enables `feature`.
    pub fn has_feature(&self, feature: &str) -> bool {
        self.features.iter().any(|f| f == feature)
    }
}

/// A licence key whose signature has been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LicenceKey {
    licence: Licence,
    text: String,
    digest: [u8; 32],
}

impl LicenceKey {
    /// Sign a licence with the vendor's key and return the key text.
    pub fn issue(licence: &Licence, key: &SecretKey) -> Result<String, KeyError> {
        licence.validate().map_err(KeyError::Invalid)?;
        let payload = serde_json::to_vec(&Wire::new(licence))
            .map_err(|_| KeyError::Invalid("cannot be written"))?;
        Ok(signed::seal(KEY, key, &payload))
    }

    /// Check a pasted key: decode it, verify the signature against `trust`, and only then
    /// read and check the payload. The term is not checked here (see
    /// [`LicenceKey::check_term`]).
    pub fn parse(text: &str, trust: &Trust) -> Result<LicenceKey, KeyError> {
        let raw = signed::decode(KEY, text)?;
        let payload = signed::verify(KEY, &raw, trust)?;
        let v: VersionOnly =
            serde_json::from_slice(&payload).map_err(|_| KeyError::Invalid("no version"))?;
        if v.v != VERSION {
            return Err(KeyError::UnsupportedVersion(v.v));
        }
        let wire: Wire = serde_json::from_slice(&payload)
            .map_err(|_| KeyError::Invalid("unreadable payload"))?;
        let licence = wire.into_licence();
        licence.validate().map_err(KeyError::Invalid)?;
        Ok(LicenceKey {
            licence,
            text: signed::encode(KEY, &raw),
            digest: Sha256::digest(&raw).into(),
        })
    }

    /// The licence the key grants.
    pub fn licence(&self) -> &Licence {
        &self.licence
    }

    /// The key in its canonical text form (as issued: uppercase, grouped).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// SHA-256 of the key's bytes, in hex: the server stores it to recognise the exact
    /// key it issued.
    pub fn digest_hex(&self) -> String {
        data_encoding::HEXLOWER.encode(&self.digest)
    }

    /// Whether the licence is in its term at `now`.
    pub fn check_term(&self, now: u64) -> Result<(), KeyError> {
        if now >= self.licence.expires {
            Err(KeyError::Expired {
                expires: self.licence.expires,
            })
        } else {
            Ok(())
        }
    }
}

/// The raw bytes (signature ‖ payload) of a key text, for tools and tests that need to
/// look inside without trusting it.
pub fn key_bytes(text: &str) -> Option<Vec<u8>> {
    signed::decode(KEY, text).ok()
}

/// Key text for raw bytes (the inverse of [`key_bytes`]); the result is only a valid key
/// if the bytes are.
pub fn key_text(bytes: &[u8]) -> String {
    signed::encode(KEY, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Licence {
        Licence {
            id: LicenceId::from_random([7; 16]),
            customer: "ООО «Ромашка»".into(),
            seats: 25,
            features: vec!["crm".into(), "recording".into()],
            issued: 1_767_225_600,
            expires: 1_798_761_600,
        }
    }

    #[test]
    fn issue_and_parse() {
        let sk = SecretKey::from_seed(&[1; 32]);
        let trust = Trust::new([sk.public()]);
        let text = LicenceKey::issue(&sample(), &sk).unwrap();
        assert!(text.starts_with("CHK1-"), "{text}");
        assert!((300..=500).contains(&text.len()), "{} chars", text.len());
        let key = LicenceKey::parse(&text, &trust).unwrap();
        assert_eq!(key.licence(), &sample());
        assert_eq!(key.text(), text);
        assert_eq!(
            LicenceKey::parse(&text.to_lowercase(), &trust)
                .unwrap()
                .text(),
            text
        );
        assert!(key.check_term(1_798_761_599).is_ok());
        assert_eq!(
            key.check_term(1_798_761_600),
            Err(KeyError::Expired {
                expires: 1_798_761_600
            })
        );
    }

    #[test]
    fn foreign_key_is_refused() {
        let text = LicenceKey::issue(&sample(), &SecretKey::from_seed(&[1; 32])).unwrap();
        let trust = Trust::new([SecretKey::from_seed(&[2; 32]).public()]);
        assert_eq!(
            LicenceKey::parse(&text, &trust),
            Err(KeyError::BadSignature)
        );
    }

    #[test]
    fn validation_rules() {
        let sk = SecretKey::from_seed(&[1; 32]);
        let cases: [fn(&mut Licence); 10] = [
            |l| l.customer = String::new(),
            |l| l.customer = " x".into(),
            |l| l.customer = "a\u{7}b".into(),
            |l| l.customer = "x".repeat(201),
            |l| l.seats = 0,
            |l| l.seats = MAX_SEATS + 1,
            |l| l.features = vec!["CRM".into()],
            |l| l.features = vec!["a".into(), "a".into()],
            |l| l.features = (0..33).map(|i| format!("f{i}")).collect(),
            |l| l.expires = l.issued,
        ];
        for (i, change) in cases.iter().enumerate() {
            let mut l = sample();
            change(&mut l);
            assert!(
                matches!(LicenceKey::issue(&l, &sk), Err(KeyError::Invalid(_))),
                "case {i}"
            );
        }
    }

    #[test]
    fn newer_version_says_so() {
        let sk = SecretKey::from_seed(&[1; 32]);
        let trust = Trust::new([sk.public()]);
        let text = signed::seal(KEY, &sk, br#"{"v":2,"anything":true}"#);
        assert_eq!(
            LicenceKey::parse(&text, &trust),
            Err(KeyError::UnsupportedVersion(2))
        );
        let text = signed::seal(KEY, &sk, br#"{"v":1,"id":"x"}"#);
        assert!(matches!(
            LicenceKey::parse(&text, &trust),
            Err(KeyError::Invalid(_))
        ));
    }

    #[test]
    fn ids() {
        let id = LicenceId::from_random([0xAB; 16]);
        assert_eq!(id.as_str().len(), 26);
        assert_eq!(LicenceId::parse(&id.as_str().to_lowercase()), Some(id));
        assert_eq!(LicenceId::parse("short"), None);
        assert_eq!(LicenceId::parse(&"1".repeat(26)), None);
    }
}

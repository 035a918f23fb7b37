//! Signed documents as text: the envelope shared by licence keys and leases.
//!
//! A document is `signature (64 bytes) ‖ payload (JSON)`, written as base32 (RFC 4648,
//! no padding) in groups of five characters after a prefix that names the kind and its
//! version: `CHK1-XXXXX-XXXXX-…` for keys, `CHL1-…` for leases. The signature is Ed25519
//! over `context ‖ 0x00 ‖ payload`, where the context differs per kind, so a lease can
//! never be passed off as a key or the other way round.
//!
//! [`open`] checks the signature against the trusted keys *before* anything reads the
//! payload; callers parse only bytes that a trusted key signed.

use data_encoding::BASE32_NOPAD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

/// Size of an Ed25519 signature.
const SIG_LEN: usize = 64;
/// Characters in one group of the text form.
const GROUP: usize = 5;

/// One kind of signed document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Kind {
    /// The first group of the text form (`CHK1`).
    pub prefix: &'static str,
    /// Signed before the payload, so signatures of one kind do not verify as another.
    pub context: &'static [u8],
    /// The longest text accepted before decoding (bounds the work on hostile input).
    pub max_text: usize,
}

/// Why a signed text was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenError {
    /// Not this kind of document, wrong characters or wrong length.
    Malformed,
    /// No trusted key signed these bytes: tampered, mistyped or from someone else.
    BadSignature,
}

/// A public key that signs licence keys and leases (the vendor's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(pub(crate) VerifyingKey);

impl PublicKey {
    /// Parse the 64-character hex form printed by the licence server's `keygen`.
    pub fn from_hex(text: &str) -> Option<PublicKey> {
        let bytes = data_encoding::HEXLOWER_PERMISSIVE
            .decode(text.trim().as_bytes())
            .ok()?;
        let bytes: [u8; 32] = bytes.try_into().ok()?;
        VerifyingKey::from_bytes(&bytes).ok().map(PublicKey)
    }

    /// The 64-character lowercase hex form.
    pub fn to_hex(&self) -> String {
        data_encoding::HEXLOWER.encode(self.0.as_bytes())
    }
}

/// The set of public keys whose signatures the app accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trust {
    keys: Vec<PublicKey>,
}

impl Trust {
    /// Trust exactly these keys (several while a vendor key is being rotated).
    pub fn new(keys: impl IntoIterator<Item = PublicKey>) -> Trust {
        Trust {
            keys: keys.into_iter().collect(),
        }
    }

    /// True when no key is trusted (a build without a vendor key: demo mode only).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The trusted keys.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }
}

/// The secret key that signs licence keys and leases. Its `Debug` shows only the public
/// half.
pub struct SecretKey(SigningKey);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SecretKey")
            .field(&self.public().to_hex())
            .finish()
    }
}

impl SecretKey {
    /// A key from its 32-byte seed (generate the seed with a cryptographic RNG).
    pub fn from_seed(seed: &[u8; 32]) -> SecretKey {
        SecretKey(SigningKey::from_bytes(seed))
    }

    /// The 32-byte seed, for storing the key.
    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }
}

fn message(kind: Kind, payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(kind.context.len() + 1 + payload.len());
    m.extend_from_slice(kind.context);
    m.push(0);
    m.extend_from_slice(payload);
    m
}

/// Sign `payload` and write it as grouped text.
pub(crate) fn seal(kind: Kind, key: &SecretKey, payload: &[u8]) -> String {
    let sig = key.0.sign(&message(kind, payload));
    let mut bytes = Vec::with_capacity(SIG_LEN + payload.len());
    bytes.extend_from_slice(&sig.to_bytes());
    bytes.extend_from_slice(payload);
    encode(kind, &bytes)
}

/// Decode grouped text into its raw bytes (signature ‖ payload), without checking the
/// signature. Spaces, line breaks and case do not matter; the groups must be separated
/// by `-` as printed.
pub(crate) fn decode(kind: Kind, text: &str) -> Result<Vec<u8>, OpenError> {
    if text.len() > kind.max_text {
        return Err(OpenError::Malformed);
    }
    let compact: String = text
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let mut groups = compact.split('-');
    if groups.next() != Some(kind.prefix) {
        return Err(OpenError::Malformed);
    }
    let mut body = String::with_capacity(compact.len());
    for g in groups {
        if g.is_empty() || g.len() > GROUP {
            return Err(OpenError::Malformed);
        }
        body.push_str(g);
    }
    let bytes = BASE32_NOPAD
        .decode(body.as_bytes())
        .map_err(|_| OpenError::Malformed)?;
    if bytes.len() <= SIG_LEN {
        return Err(OpenError::Malformed);
    }
    Ok(bytes)
}

/// Encode raw bytes (signature ‖ payload) as grouped text: the inverse of [`decode`].
pub(crate) fn encode(kind: Kind, bytes: &[u8]) -> String {
    let body = BASE32_NOPAD.encode(bytes);
    let mut text = String::from(kind.prefix);
    for chunk in body.as_bytes().chunks(GROUP) {
        text.push('-');
        text.push_str(std::str::from_utf8(chunk).unwrap_or_default());
    }
    text
}

/// Check the signature of decoded bytes against every trusted key and return the
/// payload only if one of them signed it.
pub(crate) fn verify(kind: Kind, bytes: &[u8], trust: &Trust) -> Result<Vec<u8>, OpenError> {
    let (sig, payload) = bytes.split_at(SIG_LEN);
    let sig: [u8; SIG_LEN] = sig.try_into().map_err(|_| OpenError::Malformed)?;
    let sig = Signature::from_bytes(&sig);
    let msg = message(kind, payload);
    if trust
        .keys
        .iter()
        .any(|k| k.0.verify_strict(&msg, &sig).is_ok())
    {
        Ok(payload.to_vec())
    } else {
        Err(OpenError::BadSignature)
    }
}

/// Decode and verify: the payload of a text that a trusted key signed.
pub(crate) fn open(kind: Kind, text: &str, trust: &Trust) -> Result<Vec<u8>, OpenError> {
    verify(kind, &decode(kind, text)?, trust)
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: Kind = Kind {
        prefix: "CHT1",
        context: b"test",
        max_text: 1000,
    };
    const OTHER: Kind = Kind {
        prefix: "CHT1",
        context: b"other",
        max_text: 1000,
    };

    fn key(n: u8) -> SecretKey {
        SecretKey::from_seed(&[n; 32])
    }

    #[test]
    fn seal_then_open() {
        let k = key(1);
        let trust = Trust::new([k.public()]);
        let text = seal(K, &k, b"{\"a\":1}");
        assert!(text.starts_with("CHT1-"));
        assert!(text.split('-').skip(1).all(|g| (1..=5).contains(&g.len())));
        assert_eq!(open(K, &text, &trust).unwrap(), b"{\"a\":1}");
        // Case, spaces and line breaks are forgiven.
        let messy = format!(" {}\n", text.to_lowercase().replace('-', "- "));
        assert_eq!(open(K, &messy, &trust).unwrap(), b"{\"a\":1}");
    }

    #[test]
    fn foreign_key_and_other_context_fail() {
        let k = key(1);
        let text = seal(K, &k, b"payload");
        assert_eq!(
            open(K, &text, &Trust::new([key(2).public()])),
            Err(OpenError::BadSignature)
        );
        assert_eq!(
            open(OTHER, &text, &Trust::new([k.public()])),
            Err(OpenError::BadSignature)
        );
        assert_eq!(
            open(K, &text, &Trust::default()),
            Err(OpenError::BadSignature)
        );
        // A second trusted key does not hurt.
        assert!(open(K, &text, &Trust::new([key(2).public(), k.public()])).is_ok());
    }

    #[test]
    fn malformed_texts() {
        let k = key(1);
        let trust = Trust::new([k.public()]);
        let text = seal(K, &k, b"payload");
        for bad in [
            String::new(),
            "CHT1".into(),
            "CHT1-".into(),
            text.replacen("CHT1", "CHX1", 1),
            text.replace('-', ""),
            format!("{text}--"),
            text.replacen('-', "-0", 2),
            "x".repeat(1001),
            encode(K, &[0; 64]),
        ] {
            assert_eq!(open(K, &bad, &trust), Err(OpenError::Malformed), "{bad}");
        }
    }

    #[test]
    fn public_key_hex_round_trip() {
        let p = key(7).public();
        assert_eq!(PublicKey::from_hex(&p.to_hex()), Some(p));
        assert_eq!(PublicKey::from_hex(&p.to_hex().to_uppercase()), Some(p));
        assert_eq!(PublicKey::from_hex("abcd"), None);
        assert!(!format!("{:?}", key(7)).contains(&format!("{:?}", [7u8; 32])));
    }
}

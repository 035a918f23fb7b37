//! Leases: the server's signed word that one computer holds one seat until a time.
//!
//! A lease names the licence, the machine hash, the seat number, when it was issued (the
//! server's clock), when the app should renew it, and when it ends. The app may work
//! offline until it ends. It is signed with the vendor key under its own context, so a
//! lease file cannot be edited and a lease is never mistaken for a licence key.

use serde::{Deserialize, Serialize};

use crate::key::LicenceId;
use crate::machine::MachineHash;
use crate::signed::{self, Kind, OpenError, SecretKey, Trust};

/// The envelope of leases.
pub(crate) const LEASE: Kind = Kind {
    prefix: "CHL1",
    context: b"callhelper lease v1",
    max_text: 4096,
};

const VERSION: u32 = 1;

/// The content of a lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The licence the seat belongs to.
    pub licence: LicenceId,
    /// The computer holding the seat.
    pub machine: MachineHash,
    /// The seat number, from 1 to the licence's seat count.
    pub seat: u32,
    /// When the server issued it (the server's clock, Unix seconds).
    pub issued: u64,
    /// From when the app should renew it.
    pub renew_after: u64,
    /// When it ends: the app works offline until then.
    pub valid_until: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    v: u32,
    licence: LicenceId,
    machine: MachineHash,
    seat: u32,
    issued: u64,
    renew_after: u64,
    valid_until: u64,
}

/// Why a lease was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LeaseError {
    /// Not a lease: cut short or other text.
    #[error("the lease is damaged (not a lease)")]
    Malformed,
    /// The signature does not match: the lease was edited or not signed by the vendor.
    #[error(
        "the lease's signature does not match: it was changed or not issued by the licence server"
    )]
    BadSignature,
    /// Signed, but the content breaks the rules.
    #[error("the lease's content is invalid: {0}")]
    Invalid(&'static str),
}

impl From<OpenError> for LeaseError {
    fn from(e: OpenError) -> LeaseError {
        match e {
            OpenError::Malformed => LeaseError::Malformed,
            OpenError::BadSignature => LeaseError::BadSignature,
        }
    }
}

impl Lease {
    /// The rules every lease follows.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.seat == 0 {
            return Err("seat 0");
        }
        if !(self.issued <= self.renew_after
            && self.renew_after <= self.valid_until
            && self.issued < self.valid_until)
        {
            return Err("times out of order");
        }
        Ok(())
    }

    /// Sign the lease with the vendor key (the licence server does this).
    pub fn sign(&self, key: &SecretKey) -> Result<String, LeaseError> {
        self.validate().map_err(LeaseError::Invalid)?;
        let wire = Wire {
            v: VERSION,
            licence: self.licence.clone(),
            machine: self.machine.clone(),
            seat: self.seat,
            issued: self.issued,
            renew_after: self.renew_after,
            valid_until: self.valid_until,
        };
        let payload =
            serde_json::to_vec(&wire).map_err(|_| LeaseError::Invalid("cannot be written"))?;
        Ok(signed::seal(LEASE, key, &payload))
    }

    /// Check a lease's signature against `trust`, then read it.
    pub fn parse(text: &str, trust: &Trust) -> Result<Lease, LeaseError> {
        let payload = signed::open(LEASE, text, trust)?;
        let w: Wire = serde_json::from_slice(&payload)
            .map_err(|_| LeaseError::Invalid("unreadable payload"))?;
        if w.v != VERSION {
            return Err(LeaseError::Invalid("unknown version"));
        }
        let lease = Lease {
            licence: w.licence,
            machine: w.machine,
            seat: w.seat,
            issued: w.issued,
            renew_after: w.renew_after,
            valid_until: w.valid_until,
        };
        lease.validate().map_err(LeaseError::Invalid)?;
        Ok(lease)
    }
}

/// The raw bytes of a lease text, for tools and tests.
pub fn lease_bytes(text: &str) -> Option<Vec<u8>> {
    signed::decode(LEASE, text).ok()
}

/// Lease text for raw bytes (the inverse of [`lease_bytes`]).
pub fn lease_text(bytes: &[u8]) -> String {
    signed::encode(LEASE, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{KEY, LicenceKey};

    pub(crate) fn sample() -> Lease {
        Lease {
            licence: LicenceId::from_random([3; 16]),
            machine: MachineHash::of_machine_id("m1"),
            seat: 2,
            issued: 1_000,
            renew_after: 2_000,
            valid_until: 10_000,
        }
    }

    #[test]
    fn sign_and_parse() {
        let sk = SecretKey::from_seed(&[5; 32]);
        let trust = Trust::new([sk.public()]);
        let text = sample().sign(&sk).unwrap();
        assert!(text.starts_with("CHL1-"));
        assert_eq!(Lease::parse(&text, &trust).unwrap(), sample());
        assert_eq!(
            Lease::parse(
                &text,
                &Trust::new([SecretKey::from_seed(&[6; 32]).public()])
            ),
            Err(LeaseError::BadSignature)
        );
    }

    #[test]
    fn a_lease_is_not_a_key_and_a_key_is_not_a_lease() {
        let sk = SecretKey::from_seed(&[5; 32]);
        let trust = Trust::new([sk.public()]);
        let lease = sample().sign(&sk).unwrap();
        assert!(LicenceKey::parse(&lease, &trust).is_err());
        // Same bytes under the key prefix: the context differs, so the signature fails.
        let as_key = signed::encode(KEY, &lease_bytes(&lease).unwrap());
        assert_eq!(
            LicenceKey::parse(&as_key, &trust),
            Err(crate::KeyError::BadSignature)
        );
    }

    #[test]
    fn out_of_order_times_are_refused() {
        let sk = SecretKey::from_seed(&[5; 32]);
        let mut l = sample();
        l.renew_after = 20_000;
        assert!(l.sign(&sk).is_err());
        let mut l = sample();
        l.seat = 0;
        assert!(l.sign(&sk).is_err());
    }
}

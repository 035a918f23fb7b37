//! Which computer this is, without telling anyone its real id.
//!
//! The OS's machine id (`/etc/machine-id` on Linux, `MachineGuid` on Windows,
//! `IOPlatformUUID` on macOS, read by the `machine-uid` crate) never leaves the computer.
//! Two values are derived from it with SHA-256 and app-specific salts:
//! - [`MachineHash`], sent to the licence server to tell one seat from another;
//! - the local state key that authenticates the clock record (see `store`), which the
//!   server never sees, so knowing the hash does not help forge the record.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const SEAT_SALT: &[u8] = b"callhelper/licence/machine-hash/v1/2f9c1e07a4d5";
const STATE_SALT: &[u8] = b"callhelper/licence/state-key/v1/b81d33c0e65f";

fn salted(salt: &[u8], raw: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update([0]);
    h.update(raw.trim().as_bytes());
    h.finalize().into()
}

/// The salted hash of a machine id: 64 lowercase hex characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MachineHash(String);

impl MachineHash {
    /// The hash of a raw machine id.
    pub fn of_machine_id(raw: &str) -> MachineHash {
        MachineHash(data_encoding::HEXLOWER.encode(&salted(SEAT_SALT, raw)))
    }

    /// Parse the hex form (as the server receives it).
    pub fn parse(text: &str) -> Option<MachineHash> {
        (text.len() == 64
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| MachineHash(text.to_owned()))
    }

    /// The hex form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 characters: enough for an admin to tell computers apart in a list.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

impl TryFrom<String> for MachineHash {
    type Error = &'static str;
    fn try_from(s: String) -> Result<MachineHash, &'static str> {
        MachineHash::parse(&s).ok_or("not a machine hash")
    }
}

impl From<MachineHash> for String {
    fn from(m: MachineHash) -> String {
        m.0
    }
}

/// This computer as the licence code knows it: the hash it shows the server and the
/// key of its local clock record. `Debug` does not show the state key.
#[derive(Clone)]
pub struct Machine {
    hash: MachineHash,
    #[cfg_attr(not(feature = "client"), allow(dead_code))]
    state_key: [u8; 32],
}

impl std::fmt::Debug for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Machine")
            .field("hash", &self.hash.short())
            .finish_non_exhaustive()
    }
}

impl Machine {
    /// A machine from a raw id (tests use made-up ids to play several computers).
    pub fn from_machine_id(raw: &str) -> Machine {
        Machine {
            hash: MachineHash::of_machine_id(raw),
            state_key: salted(STATE_SALT, raw),
        }
    }

    /// This computer, from the OS's machine id.
    #[cfg(feature = "client")]
    pub fn this() -> Result<Machine, crate::Error> {
        let raw = machine_uid::get().map_err(|e| crate::Error::MachineId(e.to_string()))?;
        if raw.trim().is_empty() {
            return Err(crate::Error::MachineId("the machine id is empty".into()));
        }
        Ok(Machine::from_machine_id(&raw))
    }

    /// The salted hash sent to the server.
    pub fn hash(&self) -> &MachineHash {
        &self.hash
    }

    #[cfg(feature = "client")]
    pub(crate) fn state_key(&self) -> &[u8; 32] {
        &self.state_key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_stable_salted_and_distinct() {
        let a = Machine::from_machine_id("4c4c4544-0042-3510-8051-b4c04f4e3232");
        let b = Machine::from_machine_id("4c4c4544-0042-3510-8051-b4c04f4e3233");
        assert_eq!(
            a.hash(),
            Machine::from_machine_id("4c4c4544-0042-3510-8051-b4c04f4e3232\n").hash()
        );
        assert_ne!(a.hash(), b.hash());
        assert_eq!(a.hash().as_str().len(), 64);
        assert!(!a.hash().as_str().contains("4c4c4544"));
        assert_ne!(
            &a.state_key[..],
            &data_encoding::HEXLOWER
                .decode(a.hash().as_str().as_bytes())
                .unwrap()[..]
        );
        assert_eq!(
            MachineHash::parse(a.hash().as_str()).as_ref(),
            Some(a.hash())
        );
        assert_eq!(MachineHash::parse(&a.hash().as_str().to_uppercase()), None);
        assert_eq!(MachineHash::parse("abc"), None);
        assert!(!format!("{a:?}").contains(a.hash().as_str()));
    }
}

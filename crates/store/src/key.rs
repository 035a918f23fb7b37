//! The database key: a random 32-byte key kept in the OS keychain, or a passphrase the
//! administrator chooses where no keychain can be reached.
//!
//! The key is never written to a file. Beside the database lies a small marker
//! (`<db>.key.json`) that says only *where* the key is (the keychain entry's name, or
//! "passphrase"), so the next start knows what to ask for. Key bytes are wiped from memory
//! when dropped and never appear in `Debug`.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Result, StoreError, io_error};

/// The keychain service under which CallHelper keeps database keys.
pub const KEYCHAIN_SERVICE: &str = "CallHelper";

/// A raw 256-bit database key.
#[derive(Clone, PartialEq, Eq)]
pub struct DbKey([u8; 32]);

impl DbKey {
    /// A new key from the OS's random source.
    pub fn generate() -> Result<DbKey> {
        let mut k = [0u8; 32];
        getrandom::fill(&mut k).map_err(|e| StoreError::Io {
            path: "random source".into(),
            source: std::io::Error::other(e.to_string()),
        })?;
        Ok(DbKey(k))
    }

    /// A key from its 64 hexadecimal digits.
    pub fn from_hex(hex: &str) -> Option<DbKey> {
        let hex = hex.trim().as_bytes();
        if hex.len() != 64 {
            return None;
        }
        let mut k = [0u8; 32];
        for (i, pair) in hex.chunks(2).enumerate() {
            let s = std::str::from_utf8(pair).ok()?;
            k[i] = u8::from_str_radix(s, 16).ok()?;
        }
        Some(DbKey(k))
    }

    /// The key as 64 hexadecimal digits (wiped when dropped).
    pub fn to_hex(&self) -> Zeroizing<String> {
        let mut s = Zeroizing::new(String::with_capacity(64));
        for b in self.0 {
            s.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
            s.push(char::from_digit(u32::from(b & 15), 16).unwrap_or('0'));
        }
        s
    }
}

impl Drop for DbKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for DbKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DbKey(<secret>)")
    }
}

/// A passphrase typed by the administrator (wiped when dropped, hidden in `Debug`).
#[derive(Clone)]
pub struct Passphrase(Zeroizing<String>);

impl Passphrase {
    /// Wrap a passphrase. Refuses one shorter than 8 characters.
    pub fn new(s: String) -> Result<Passphrase> {
        if s.chars().count() < 8 {
            return Err(StoreError::Invalid(callhelper_script::Text::new(
                "The database passphrase must be at least 8 characters long.",
                "Пароль базы данных должен быть не короче 8 символов.",
            )));
        }
        Ok(Passphrase(Zeroizing::new(s)))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(<secret>)")
    }
}

/// How to unlock (or, for a new database, protect) the database.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Unlock {
    /// A random key kept in the OS keychain (the normal case).
    Keychain,
    /// A passphrase chosen by the administrator, for machines without a keychain.
    Passphrase(Passphrase),
    /// A raw key given directly (tests, benchmarks, recovery tools).
    Key(DbKey),
}

/// What the key marker beside the database says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum KeyMarker {
    /// The key is in the OS keychain under [`KEYCHAIN_SERVICE`] and this entry name.
    Keychain {
        /// The entry (account) name.
        entry: String,
    },
    /// The key is derived from a passphrase the administrator types.
    Passphrase,
    /// The key was given directly by the program that created the database.
    Raw,
}

/// Where the marker of a database lives.
pub fn marker_path(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(".key.json");
    PathBuf::from(s)
}

/// Read the marker, if there is one.
pub fn read_marker(db: &Path) -> Result<Option<KeyMarker>> {
    let path = marker_path(db);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(&path)(e)),
    }
}

pub(crate) fn write_marker(db: &Path, marker: &KeyMarker) -> Result<()> {
    let path = marker_path(db);
    let tmp = path.with_extension("tmp");
    let json = serde_json::to_vec_pretty(marker)?;
    std::fs::write(&tmp, json).map_err(io_error(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io_error(&path))
}

/// The OS keychain, through the `keyring` crate.
pub(crate) mod keychain {
    use super::*;

    fn unavailable(e: keyring::Error) -> StoreError {
        StoreError::KeychainUnavailable {
            detail: e.to_string(),
        }
    }

    fn entry(name: &str) -> Result<keyring::Entry> {
        keyring::Entry::new(KEYCHAIN_SERVICE, name).map_err(unavailable)
    }

    /// The key stored under `name`, or `None` when there is no such entry.
    pub(crate) fn get(name: &str) -> Result<Option<DbKey>> {
        match entry(name)?.get_password() {
            Ok(hex) => {
                let hex = Zeroizing::new(hex);
                DbKey::from_hex(&hex)
                    .map(Some)
                    .ok_or_else(|| StoreError::KeychainUnavailable {
                        detail: format!("the keychain entry {name} does not hold a database key"),
                    })
            }
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Keep `key` under `name`, then read it back: a keychain that accepts a secret and
    /// loses it would otherwise lock the database forever.
    pub(crate) fn put(name: &str, key: &DbKey) -> Result<()> {
        entry(name)?
            .set_password(&key.to_hex())
            .map_err(unavailable)?;
        match get(name)? {
            Some(k) if k == *key => Ok(()),
            _ => Err(StoreError::KeychainUnavailable {
                detail: "the keychain did not keep the key it was given".into(),
            }),
        }
    }

    /// Remove the entry (after the database itself was removed).
    pub(crate) fn delete(name: &str) -> Result<()> {
        match entry(name)?.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }
}

/// A fresh random name for a keychain entry (`database-<32 hex>`), so two installations
/// for one OS user never share a key.
pub(crate) fn new_entry_name() -> Result<String> {
    let k = DbKey::generate()?;
    Ok(format!("database-{}", &k.to_hex()[..32]))
}

/// Is the OS keychain reachable? (Tries to read a entry that does not exist.)
pub fn keychain_reachable() -> std::result::Result<(), StoreError> {
    keychain::get("callhelper-probe").map(|_| ())
}

/// Forget the key of a database in the keychain (used when a database is deleted).
pub fn forget_keychain_key(db: &Path) -> Result<()> {
    if let Some(KeyMarker::Keychain { entry }) = read_marker(db)? {
        keychain::delete(&entry)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_redaction() {
        let k = DbKey::generate().unwrap();
        assert_eq!(DbKey::from_hex(&k.to_hex()), Some(k.clone()));
        assert!(!format!("{k:?}").contains(&k.to_hex()[..8]));
        assert_eq!(DbKey::from_hex("zz"), None);
        assert!(Passphrase::new("short".into()).is_err());
        let p = Passphrase::new("correct horse".into()).unwrap();
        assert!(!format!("{p:?}").contains("horse"));
    }
}

//! The licence folder: what this computer keeps between runs.
//!
//! | file | content | protection |
//! |---|---|---|
//! | `key.txt` | the licence key text | signed by the vendor |
//! | `lease.txt` | the current lease text | signed by the vendor key on the server |
//! | `clock` | highest time seen, revoked flag | HMAC-SHA256 under the machine's state key |
//! | `server.txt` | the licence server's address | none needed (a setting) |
//!
//! Threat model, honestly: the key and the lease cannot be edited or forged without the
//! vendor's secret key. The clock record's HMAC key is derived from the OS machine id,
//! which any local user can read, and this program is free software, so a determined
//! user can recompute the HMAC; it stops hand-editing and copying the record to another
//! computer, not a programmer. Deleting or breaking the record is caught (work stops
//! until the server is reached). Two floors cannot be lowered at all: the key's and the
//! lease's issue times, signed by the vendor. What no offline scheme stops is restoring
//! an old copy of the whole folder and setting the clock back within one lease period;
//! the lease's end bounds how long that works. Seat counting happens on the server and
//! does not depend on any of this.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::Error;
use crate::key::LicenceKey;
use crate::lease::Lease;
use crate::machine::Machine;
use crate::signed::Trust;
use crate::status::{ClockRecord, Stored};

const KEY_FILE: &str = "key.txt";
const LEASE_FILE: &str = "lease.txt";
const CLOCK_FILE: &str = "clock";
const SERVER_FILE: &str = "server.txt";
/// Nothing we write is near this; a larger file is not ours.
const MAX_FILE: u64 = 64 * 1024;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockWire {
    v: u32,
    highest_seen: u64,
    revoked: bool,
}

/// The licence folder of one installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LicenceDir {
    dir: PathBuf,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn mac(key: &[u8; 32], body: &[u8]) -> Hmac<Sha256> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    m.update(body);
    m
}

impl LicenceDir {
    /// The licence folder at `dir` (created by the caller, e.g. `DataDir::part`).
    pub fn new(dir: impl Into<PathBuf>) -> LicenceDir {
        LicenceDir { dir: dir.into() }
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// A file's path, for tools and tests.
    pub fn file(&self, name: StoredFile) -> PathBuf {
        self.dir.join(match name {
            StoredFile::Key => KEY_FILE,
            StoredFile::Lease => LEASE_FILE,
            StoredFile::Clock => CLOCK_FILE,
            StoredFile::Server => SERVER_FILE,
        })
    }

    fn read_file(&self, name: StoredFile) -> Result<Option<String>, Error> {
        let path = self.file(name);
        let file = match fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let mut bytes = Vec::new();
        file.take(MAX_FILE + 1)
            .read_to_end(&mut bytes)
            .map_err(io_err(&path))?;
        // An oversized or non-UTF-8 file is not ours: read it as garbage, which every
        // parser refuses.
        if bytes.len() as u64 > MAX_FILE {
            return Ok(Some(String::from("\u{0}")));
        }
        Ok(Some(
            String::from_utf8(bytes).unwrap_or_else(|_| "\u{0}".into()),
        ))
    }

    fn write_file(&self, name: StoredFile, content: &str) -> Result<(), Error> {
        let path = self.file(name);
        let tmp = path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            let mut opts = fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(&tmp)?;
            f.write_all(content.as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        };
        write().map_err(io_err(&path))
    }

    fn remove_file(&self, name: StoredFile) -> Result<(), Error> {
        let path = self.file(name);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(&path)(e)),
            _ => Ok(()),
        }
    }

    /// Read and check everything stored.
    pub fn read(&self, trust: &Trust, machine: &Machine) -> Result<Stored, Error> {
        let key = self
            .read_file(StoredFile::Key)?
            .map(|t| LicenceKey::parse(&t, trust));
        let lease = self
            .read_file(StoredFile::Lease)?
            .map(|t| Lease::parse(&t, trust));
        let clock = match self.read_file(StoredFile::Clock)? {
            None => ClockRecord::Missing,
            Some(t) => read_clock(&t, machine),
        };
        Ok(Stored { key, lease, clock })
    }

    /// The stored key, if one is stored and intact.
    pub(crate) fn key(
        &self,
        trust: &Trust,
    ) -> Result<Option<Result<LicenceKey, crate::KeyError>>, Error> {
        Ok(self
            .read_file(StoredFile::Key)?
            .map(|t| LicenceKey::parse(&t, trust)))
    }

    /// Write the clock record, never lowering a highest time already recorded by another
    /// process in the meantime unless `reset` (the server vouched for the time).
    pub(crate) fn write_clock(
        &self,
        machine: &Machine,
        highest_seen: u64,
        revoked: bool,
        reset: bool,
    ) -> Result<(), Error> {
        let mut highest = highest_seen;
        if !reset {
            if let Some(ClockRecord::Valid {
                highest_seen: h, ..
            }) = self
                .read_file(StoredFile::Clock)?
                .map(|t| read_clock(&t, machine))
            {
                highest = highest.max(h);
            }
        }
        let body = serde_json::to_string(&ClockWire {
            v: 1,
            highest_seen: highest,
            revoked,
        })
        .unwrap_or_default();
        let tag = data_encoding::HEXLOWER.encode(
            &mac(machine.state_key(), body.as_bytes())
                .finalize()
                .into_bytes(),
        );
        self.write_file(StoredFile::Clock, &format!("{body}\n{tag}\n"))
    }

    /// Store a fresh activation or renewal: key, lease and a clock record set to the
    /// server's time.
    pub(crate) fn save_lease(
        &self,
        key: &LicenceKey,
        lease_text: &str,
        lease: &Lease,
        machine: &Machine,
    ) -> Result<(), Error> {
        self.write_file(StoredFile::Key, &format!("{}\n", key.text()))?;
        self.write_file(StoredFile::Lease, &format!("{lease_text}\n"))?;
        self.write_clock(machine, lease.issued, false, true)
    }

    /// Record that the server revoked the licence: the lease is dropped.
    pub(crate) fn save_revoked(&self, machine: &Machine, now: u64) -> Result<(), Error> {
        self.remove_file(StoredFile::Lease)?;
        self.write_clock(machine, now, true, false)
    }

    /// Drop the lease (the server no longer backs it).
    pub(crate) fn drop_lease(&self) -> Result<(), Error> {
        self.remove_file(StoredFile::Lease)
    }

    /// Forget the licence on this computer (key, lease, clock record). The server
    /// address stays.
    pub fn clear(&self) -> Result<(), Error> {
        self.remove_file(StoredFile::Lease)?;
        self.remove_file(StoredFile::Clock)?;
        self.remove_file(StoredFile::Key)
    }

    /// The saved licence server address, if any.
    pub fn server(&self) -> Result<Option<String>, Error> {
        Ok(self
            .read_file(StoredFile::Server)?
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty()))
    }

    /// Save the licence server address used for renewals.
    pub fn set_server(&self, url: &str) -> Result<(), Error> {
        self.write_file(StoredFile::Server, &format!("{}\n", url.trim()))
    }
}

/// The files of the licence folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoredFile {
    /// The licence key.
    Key,
    /// The lease.
    Lease,
    /// The clock record.
    Clock,
    /// The server address.
    Server,
}

fn read_clock(text: &str, machine: &Machine) -> ClockRecord {
    let mut lines = text.lines();
    let (Some(body), Some(tag), None) = (lines.next(), lines.next(), lines.next()) else {
        return ClockRecord::Invalid;
    };
    let Ok(tag) = data_encoding::HEXLOWER.decode(tag.as_bytes()) else {
        return ClockRecord::Invalid;
    };
    if mac(machine.state_key(), body.as_bytes())
        .verify_slice(&tag)
        .is_err()
    {
        return ClockRecord::Invalid;
    }
    match serde_json::from_str::<ClockWire>(body) {
        Ok(w) if w.v == 1 => ClockRecord::Valid {
            highest_seen: w.highest_seen,
            revoked: w.revoked,
        },
        _ => ClockRecord::Invalid,
    }
}

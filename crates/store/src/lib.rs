//! The collected database of CallHelper: one SQLCipher-encrypted SQLite file per
//! installation holding contacts, calls, script runs and their events, collected field
//! values, callbacks, consent records, users and roles, the audit log and the CRM outbox.
//!
//! What it guarantees:
//! - **Encryption.** The file and its WAL hold no plaintext. The key is a random 32-byte
//!   key in the OS keychain, or an administrator's passphrase where no keychain exists
//!   ([`Unlock`]); a build whose SQLite does not encrypt refuses to start, and a wrong key
//!   or a damaged file is an error that changes nothing.
//! - **Crash safety.** [`Store::append_events`] returns only after the events are
//!   committed (`synchronous = FULL`), so a run can always be rebuilt from what the agent
//!   saw confirmed ([`callhelper_script::Run::replay`]).
//! - **Personal-data rights** from the policy: consent records (§3.1, §4.12), change
//!   (§5.1), deletion and irreversible destruction (§5.2, terms «г»), blocking (terms «b»),
//!   retention (§2.1.4), subject access (§8.1), passwords and roles (§4.10), read-only,
//!   time-limited, audited support access (§4.11).
//! - **No personal data in logs.** Personal values travel in [`Pii`] and [`Phone`], whose
//!   `Debug` and `Display` hide them; log lines carry ids only.
//!
//! Every operation takes the [`Session`] of a signed-in user and checks the role first.
//! The store reads the clock itself (it is an edge crate), through [`Store::set_clock`]
//! in tests.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use callhelper_script::Timestamp;
use rusqlite::{Connection, OpenFlags};

pub mod access;
pub mod analytics;
mod audit;
pub mod calls;
pub mod consent;
pub mod contacts;
pub mod error;
pub mod export;
pub mod import;
pub mod key;
pub mod outbox;
pub mod phone;
mod pii;
pub mod privacy;
pub mod runs;
mod schema;
pub mod time;

pub use access::{Permission, Role, Session, UserId, UserInfo};
pub use audit::AuditEntry;
pub use error::{Result, StoreError};
pub use key::{DbKey, KeyMarker, Passphrase, Unlock};
pub use outbox::{CrmPlanner, NewOutboxItem, OutboxItem, OutboxState};
pub use phone::Country;
pub use pii::{Phone, Pii};
pub use schema::LATEST as SCHEMA_VERSION;

use crate::error::io_error;
use crate::key::{KeyMarker as Marker, keychain};

/// The file name of the database inside its folder.
pub const DB_FILE: &str = "callhelper.db";

/// Where the store reads the time from.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// An open, unlocked database. Share it between threads (`Arc<Store>`); operations take
/// turns on one connection.
pub struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
    clock: Mutex<Clock>,
    planner: Mutex<Option<Arc<dyn CrmPlanner>>>,
    /// Kept (wiped on drop) to open read-only connections for long reads such as exports.
    material: Material,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The key material that goes into `PRAGMA key`.
enum Material {
    Raw(DbKey),
    Passphrase(Passphrase),
}

impl Store {
    /// Open the database at `path`, creating it (and its key) when the file does not
    /// exist. An existing file is only ever opened, never recreated: a wrong key, a
    /// missing key or a damaged file is an error and the file is left as it was.
    pub fn open(path: &Path, unlock: &Unlock) -> Result<Store> {
        Store::open_at_version(path, unlock, schema::LATEST)
    }

    /// Like [`Store::open`], but stop migrating at schema `version` (migration tests).
    #[doc(hidden)]
    pub fn open_at_version(path: &Path, unlock: &Unlock, version: i64) -> Result<Store> {
        let exists = path.exists();
        let material = key_for(path, unlock, exists)?;
        let mut conn = connect(path, &material, exists)?;
        schema::migrate(&mut conn, version)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        log::info!(
            "store: opened (schema {}, {})",
            schema::version(&conn)?,
            if exists { "existing" } else { "new" }
        );
        Ok(Store {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
            clock: Mutex::new(Arc::new(time::now)),
            planner: Mutex::new(None),
            material,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Read the time from `clock` from now on (tests).
    pub fn set_clock(&self, clock: Clock) {
        *lock(&self.clock) = clock;
    }

    /// The store's idea of now.
    pub fn now(&self) -> Timestamp {
        let clock = lock(&self.clock).clone();
        clock()
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<i64> {
        schema::version(&self.db())
    }

    /// `PRAGMA integrity_check`: `Ok(())` when the file is sound, the findings otherwise.
    pub fn integrity_check(&self) -> Result<Vec<String>> {
        let db = self.db();
        let mut stmt = db.prepare("PRAGMA integrity_check")?;
        let rows: Vec<String> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(if rows == ["ok"] { Vec::new() } else { rows })
    }

    /// The SQLCipher version in use (never empty: [`Store::open`] refuses otherwise).
    pub fn cipher_version(&self) -> Result<String> {
        Ok(self
            .db()
            .query_row("PRAGMA cipher_version", [], |r| r.get(0))?)
    }

    /// Move everything from the WAL into the database file and truncate the WAL (after
    /// a destruction, so no old page lingers there).
    pub fn checkpoint(&self) -> Result<()> {
        self.db()
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    pub(crate) fn db(&self) -> MutexGuard<'_, Connection> {
        lock(&self.conn)
    }

    /// A second connection for a long read (an export), so the app's writes go on
    /// meanwhile. Under WAL it reads one consistent snapshot per transaction.
    pub(crate) fn reader(&self) -> Result<Connection> {
        connect(&self.path, &self.material, true)
    }

    pub(crate) fn planner(&self) -> Option<Arc<dyn CrmPlanner>> {
        lock(&self.planner).clone()
    }
}

/// A poisoned lock only means another thread panicked mid-operation; SQLite rolled its
/// transaction back, so the connection is still sound.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Find or make the key for the database at `path`.
fn key_for(path: &Path, unlock: &Unlock, exists: bool) -> Result<Material> {
    let shown = || path.display().to_string();
    let marker = key::read_marker(path)?;
    match unlock {
        Unlock::Key(k) => {
            if !exists {
                key::write_marker(path, &Marker::Raw)?;
            }
            Ok(Material::Raw(k.clone()))
        }
        Unlock::Passphrase(p) => {
            if exists && matches!(marker, Some(Marker::Keychain { .. })) {
                // Trying the passphrase would only say "wrong key"; say what is wrong.
                return Err(StoreError::Invalid(callhelper_script::Text::new(
                    "This database is protected by the OS keychain, not by a passphrase: do not give one (unset CALLHELPER_DB_PASSPHRASE).",
                    "Эта база данных защищена хранилищем ключей ОС, а не паролем: не указывайте пароль (уберите CALLHELPER_DB_PASSPHRASE).",
                )));
            }
            if !exists {
                key::write_marker(path, &Marker::Passphrase)?;
            }
            Ok(Material::Passphrase(p.clone()))
        }
        Unlock::Keychain => match (marker, exists) {
            (Some(Marker::Passphrase), _) => Err(StoreError::PassphraseRequired),
            (Some(Marker::Keychain { entry }), true) => keychain::get(&entry)?
                .map(Material::Raw)
                .ok_or(StoreError::KeyMissing { path: shown() }),
            (Some(Marker::Raw) | None, true) => Err(StoreError::KeyMissing { path: shown() }),
            (marker, false) => {
                // A new database. Reuse an entry a crash left behind, else make one; the
                // key is in the keychain (and read back) before the file exists.
                let entry = match marker {
                    Some(Marker::Keychain { entry }) => entry,
                    _ => key::new_entry_name()?,
                };
                let key = match keychain::get(&entry)? {
                    Some(k) => k,
                    None => {
                        let k = DbKey::generate()?;
                        keychain::put(&entry, &k)?;
                        k
                    }
                };
                key::write_marker(path, &Marker::Keychain { entry })?;
                Ok(Material::Raw(key))
            }
        },
    }
}

/// Open the SQLite connection, apply the key, prove it decrypts, and set the pragmas.
fn connect(path: &Path, material: &Material, exists: bool) -> Result<Connection> {
    let damaged = || StoreError::WrongKeyOrDamaged {
        path: path.display().to_string(),
    };
    if exists {
        let meta = std::fs::metadata(path).map_err(io_error(path))?;
        if meta.len() == 0 {
            // SQLite would treat an empty file as a new database and write into it.
            return Err(damaged());
        }
    }
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    if !exists {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(path, flags)?;
    // A plain SQLite ignores `PRAGMA key` and writes plain text: ask SQLCipher for its
    // version before anything is written, and leave no empty file behind on refusal.
    let cipher: Option<String> = conn
        .query_row("PRAGMA cipher_version", [], |r| r.get(0))
        .ok();
    if let Err(e) = require_encrypting(cipher.as_deref()) {
        drop(conn);
        if !exists && std::fs::metadata(path).is_ok_and(|m| m.len() == 0) {
            let _ = std::fs::remove_file(path);
        }
        return Err(e);
    }
    // SQLCipher prints decryption failures to stderr unless told not to.
    conn.execute_batch("PRAGMA cipher_log_level = NONE")?;
    match material {
        Material::Raw(k) => {
            let pragma = zeroize::Zeroizing::new(format!("PRAGMA key = \"x'{}'\"", &*k.to_hex()));
            conn.execute_batch(&pragma)?;
        }
        Material::Passphrase(p) => conn.pragma_update(None, "key", p.expose())?,
    }
    // The key is only checked when a page is read: read one.
    let check: rusqlite::Result<i64> =
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0));
    match check {
        Ok(_) => {}
        Err(rusqlite::Error::SqliteFailure(e, _))
            if matches!(
                e.code,
                rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt
            ) =>
        {
            return Err(damaged());
        }
        Err(e) => return Err(e.into()),
    }
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    // Checkpoints every 8,192 pages (32 MiB of WAL) rather than SQLite's 1,000: the index
    // pages a batch of runs touches are copied into the database once per checkpoint, so
    // fewer checkpoints write them fewer times (inserts 135–157k → 191–197k events/s in the
    // bench). Destruction still checkpoints and truncates the WAL at once.
    conn.execute_batch(
        "PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA secure_delete = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -32768;
         PRAGMA wal_autocheckpoint = 8192;",
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.set_prepared_statement_cache_capacity(128);
    Ok(conn)
}

/// Refuse a SQLite that does not encrypt: `PRAGMA cipher_version` answers nothing (no
/// row) or an empty text on a build without SQLCipher.
fn require_encrypting(cipher_version: Option<&str>) -> Result<()> {
    match cipher_version.map(str::trim) {
        Some(v) if !v.is_empty() => Ok(()),
        _ => Err(StoreError::NotEncrypting),
    }
}

/// The path of the database in a data folder's `store` part.
pub fn db_path(store_dir: &Path) -> PathBuf {
    store_dir.join(DB_FILE)
}

// The store is shared between the app's threads (the UI, the CRM worker).
const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<Store>();
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sqlite_without_sqlcipher_is_refused() {
        // What a plain `bundled` SQLite answers to `PRAGMA cipher_version`: no row, or
        // (through some wrappers) an empty text.
        for missing in [None, Some(""), Some("  ")] {
            let e = require_encrypting(missing).unwrap_err();
            assert!(matches!(e, StoreError::NotEncrypting), "{missing:?}");
            assert_eq!(e.code(), "store.not_encrypting");
            assert!(e.message().en.contains("refuses to store anything"));
            assert!(e.message().ru.contains("ничего не сохраняет"));
        }
        assert!(require_encrypting(Some("4.20.0 community")).is_ok());
    }

    #[test]
    fn a_real_plain_sqlite_answers_what_is_refused() {
        // Ask a real SQLite built without SQLCipher (the one in Python's standard
        // library) what it answers, and give that answer to the check.
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                "import sqlite3\n\
                 rows = sqlite3.connect(':memory:').execute('PRAGMA cipher_version').fetchall()\n\
                 print(rows[0][0] if rows else '')",
            ])
            .output()
            .expect("python3 runs (it is on every machine this project builds on)");
        assert!(out.status.success(), "{out:?}");
        let answer = String::from_utf8(out.stdout).unwrap();
        let answer = answer.trim_end_matches('\n');
        assert_eq!(answer, "", "a plain SQLite names no cipher");
        let e = require_encrypting(Some(answer).filter(|a| !a.is_empty())).unwrap_err();
        assert!(matches!(e, StoreError::NotEncrypting));
    }

    #[test]
    fn this_build_encrypts() {
        let conn = Connection::open_in_memory().unwrap();
        let v: Option<String> = conn
            .query_row("PRAGMA cipher_version", [], |r| r.get(0))
            .ok();
        assert!(require_encrypting(v.as_deref()).is_ok(), "{v:?}");
    }
}

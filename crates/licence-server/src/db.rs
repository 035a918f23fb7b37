//! The server's database, seen through two small traits so that the same service code
//! runs on SQLite (the default, [`crate::sqlite`]) and PostgreSQL (`postgres`, feature `postgres`).
//!
//! Schema (portable SQL; every integer is a `BIGINT`, times are Unix seconds):
//! - `licence(id, customer, seats, features, issued, expires, key_digest, key_text,
//!   revoked_at)`;
//! - `activation(licence_id, seat, machine, activated_at, renewed_at, lease_until)` with
//!   primary key `(licence_id, seat)` and `UNIQUE (licence_id, machine)`: the database
//!   itself refuses two holders of one seat, whatever the code above it does.

/// Statements shared by both backends. Parameters are written `$1`, `$2`... in order of
/// first use, which PostgreSQL reads natively and SQLite reads as named parameters bound
/// by position.
pub mod sql {
    /// The schema, one statement per entry.
    pub const SCHEMA: &[&str] = &[
        "CREATE TABLE IF NOT EXISTS licence (
            id TEXT PRIMARY KEY,
            customer TEXT NOT NULL,
            seats BIGINT NOT NULL,
            features TEXT NOT NULL,
            issued BIGINT NOT NULL,
            expires BIGINT NOT NULL,
            key_digest TEXT NOT NULL,
            key_text TEXT NOT NULL,
            revoked_at BIGINT
        )",
        "CREATE TABLE IF NOT EXISTS activation (
            licence_id TEXT NOT NULL REFERENCES licence(id),
            seat BIGINT NOT NULL,
            machine TEXT NOT NULL,
            activated_at BIGINT NOT NULL,
            renewed_at BIGINT NOT NULL,
            lease_until BIGINT NOT NULL,
            PRIMARY KEY (licence_id, seat),
            UNIQUE (licence_id, machine)
        )",
        "CREATE INDEX IF NOT EXISTS activation_lease_until ON activation (lease_until)",
    ];
    /// The columns of a licence row, in [`crate::db::LicenceRow`] order.
    pub const LICENCE_COLUMNS: &str =
        "id, customer, seats, features, issued, expires, key_digest, key_text, revoked_at";
    /// The columns of an activation row, in [`crate::db::ActivationRow`] order.
    pub const ACTIVATION_COLUMNS: &str =
        "licence_id, seat, machine, activated_at, renewed_at, lease_until";
    /// One licence by id.
    pub const LICENCE: &str = "SELECT id, customer, seats, features, issued, expires, key_digest, key_text, revoked_at FROM licence WHERE id = $1";
    /// Every licence with its live seat count.
    pub const LIST: &str =
        "SELECT id, customer, seats, features, issued, expires, key_digest, key_text, revoked_at,
            (SELECT COUNT(*) FROM activation a WHERE a.licence_id = l.id AND a.lease_until > $1)
        FROM licence l ORDER BY issued, id";
    /// Insert a licence.
    pub const INSERT_LICENCE: &str = "INSERT INTO licence (id, customer, seats, features, issued, expires, key_digest, key_text, revoked_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL)";
    /// Revoke a licence (keeps the first revocation time).
    pub const REVOKE: &str =
        "UPDATE licence SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2";
    /// The activations of a licence.
    pub const ACTIVATIONS: &str = "SELECT licence_id, seat, machine, activated_at, renewed_at, lease_until FROM activation WHERE licence_id = $1 ORDER BY seat";
    /// One machine's activation.
    pub const ACTIVATION: &str = "SELECT licence_id, seat, machine, activated_at, renewed_at, lease_until FROM activation WHERE licence_id = $1 AND machine = $2";
    /// Take a seat.
    pub const INSERT_ACTIVATION: &str =
        "INSERT INTO activation (licence_id, seat, machine, activated_at, renewed_at, lease_until)
        VALUES ($1, $2, $3, $4, $5, $6)";
    /// Extend a lease.
    pub const RENEW: &str = "UPDATE activation SET renewed_at = $1, lease_until = $2 WHERE licence_id = $3 AND machine = $4";
    /// Free a machine's seat.
    pub const DELETE_ACTIVATION: &str =
        "DELETE FROM activation WHERE licence_id = $1 AND machine = $2";
    /// Reclaim the expired leases of one licence.
    pub const RECLAIM_LICENCE: &str =
        "DELETE FROM activation WHERE lease_until <= $1 AND licence_id = $2";
    /// Reclaim every expired lease.
    pub const RECLAIM_ALL: &str = "DELETE FROM activation WHERE lease_until <= $1";
}

/// A licence as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LicenceRow {
    /// Licence id.
    pub id: String,
    /// Customer name (an organisation).
    pub customer: String,
    /// Seat count.
    pub seats: i64,
    /// Features as a JSON array.
    pub features: String,
    /// Issue time.
    pub issued: i64,
    /// End of term.
    pub expires: i64,
    /// SHA-256 (hex) of the key bytes issued.
    pub key_digest: String,
    /// The key text, so an admin can print it again.
    pub key_text: String,
    /// When it was revoked, if it was.
    pub revoked_at: Option<i64>,
}

/// A seat held by a machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivationRow {
    /// Licence id.
    pub licence_id: String,
    /// Seat number (1-based).
    pub seat: i64,
    /// Machine hash.
    pub machine: String,
    /// When the seat was taken.
    pub activated_at: i64,
    /// Last renewal.
    pub renewed_at: i64,
    /// Lease end.
    pub lease_until: i64,
}

/// A database failure (not a refusal: the request was fine, the server was not).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL failed.
    #[cfg(feature = "postgres")]
    #[error("postgres: {}", postgres_detail(.0))]
    Postgres(#[from] ::postgres::Error),
    /// A stored value is not what the schema promises.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// No connection could be had.
    #[error("database unavailable: {0}")]
    Unavailable(String),
}

/// The server's own message when there is one ("db error" alone says nothing).
#[cfg(feature = "postgres")]
fn postgres_detail(e: &::postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

/// The operations the service needs inside one transaction.
pub trait Tx {
    /// A licence by id; with `lock`, the row stays locked until the transaction ends, so
    /// concurrent activations of one licence queue up (SQLite locks the whole database
    /// for the transaction anyway).
    fn licence(&mut self, id: &str, lock: bool) -> Result<Option<LicenceRow>, StoreError>;
    /// Every licence with its live seat count at `now`.
    fn list(&mut self, now: i64) -> Result<Vec<(LicenceRow, i64)>, StoreError>;
    /// Insert a licence.
    fn insert_licence(&mut self, row: &LicenceRow) -> Result<(), StoreError>;
    /// Revoke a licence; false when there is no such licence.
    fn revoke(&mut self, id: &str, at: i64) -> Result<bool, StoreError>;
    /// The activations of a licence, by seat.
    fn activations(&mut self, licence: &str) -> Result<Vec<ActivationRow>, StoreError>;
    /// One machine's activation.
    fn activation(
        &mut self,
        licence: &str,
        machine: &str,
    ) -> Result<Option<ActivationRow>, StoreError>;
    /// Take a seat.
    fn insert_activation(&mut self, row: &ActivationRow) -> Result<(), StoreError>;
    /// Extend a lease.
    fn renew(
        &mut self,
        licence: &str,
        machine: &str,
        at: i64,
        until: i64,
    ) -> Result<(), StoreError>;
    /// Free a seat; false when the machine held none.
    fn delete_activation(&mut self, licence: &str, machine: &str) -> Result<bool, StoreError>;
    /// Delete leases that ended at or before `now` (of one licence, or all).
    fn reclaim(&mut self, licence: Option<&str>, now: i64) -> Result<u64, StoreError>;
}

/// A database the service can open transactions on.
pub trait Store: Send + Sync + 'static {
    /// Create the schema if it is missing.
    fn migrate(&self) -> Result<(), StoreError>;
    /// Run `f` in one transaction: committed when `f` returns `Ok`, rolled back
    /// otherwise.
    fn transaction<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&mut dyn Tx) -> Result<T, E>,
    ) -> Result<T, E>;
}

/// Reading one column of a result row, the same way on both backends.
pub trait RowGet {
    /// A text column.
    fn text(&self, i: usize) -> Result<String, StoreError>;
    /// An integer column.
    fn int(&self, i: usize) -> Result<i64, StoreError>;
    /// A nullable integer column.
    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError>;
}

impl LicenceRow {
    /// A licence from a row of [`sql::LICENCE_COLUMNS`].
    pub fn from_row(r: &impl RowGet) -> Result<LicenceRow, StoreError> {
        Ok(LicenceRow {
            id: r.text(0)?,
            customer: r.text(1)?,
            seats: r.int(2)?,
            features: r.text(3)?,
            issued: r.int(4)?,
            expires: r.int(5)?,
            key_digest: r.text(6)?,
            key_text: r.text(7)?,
            revoked_at: r.opt_int(8)?,
        })
    }
}

impl ActivationRow {
    /// An activation from a row of [`sql::ACTIVATION_COLUMNS`].
    pub fn from_row(r: &impl RowGet) -> Result<ActivationRow, StoreError> {
        Ok(ActivationRow {
            licence_id: r.text(0)?,
            seat: r.int(1)?,
            machine: r.text(2)?,
            activated_at: r.int(3)?,
            renewed_at: r.int(4)?,
            lease_until: r.int(5)?,
        })
    }
}

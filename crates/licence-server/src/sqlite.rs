//! The SQLite backend: one connection behind a mutex, WAL journal, and `BEGIN IMMEDIATE`
//! transactions, so a seat count and the insert that follows it cannot interleave with
//! another writer.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::db::{ActivationRow, LicenceRow, RowGet, Store, StoreError, Tx, sql};

/// A SQLite database file.
#[derive(Debug)]
pub struct Sqlite {
    conn: Mutex<Connection>,
}

impl Sqlite {
    /// Open (or create) the database at `path`.
    pub fn open(path: &Path) -> Result<Sqlite, StoreError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        Ok(Sqlite {
            conn: Mutex::new(conn),
        })
    }
}

impl RowGet for rusqlite::Row<'_> {
    fn text(&self, i: usize) -> Result<String, StoreError> {
        Ok(self.get(i)?)
    }
    fn int(&self, i: usize) -> Result<i64, StoreError> {
        Ok(self.get(i)?)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        Ok(self.get(i)?)
    }
}

struct SqliteTx<'a>(rusqlite::Transaction<'a>);

impl SqliteTx<'_> {
    fn rows<T>(
        &self,
        query: &str,
        p: impl rusqlite::Params,
        f: impl Fn(&rusqlite::Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let mut stmt = self.0.prepare_cached(query)?;
        let mut rows = stmt.query(p)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(f(r)?);
        }
        Ok(out)
    }
}

impl Tx for SqliteTx<'_> {
    fn licence(&mut self, id: &str, _lock: bool) -> Result<Option<LicenceRow>, StoreError> {
        // The IMMEDIATE transaction already holds the write lock.
        Ok(self
            .rows(sql::LICENCE, params![id], |r| LicenceRow::from_row(r))?
            .pop())
    }

    fn list(&mut self, now: i64) -> Result<Vec<(LicenceRow, i64)>, StoreError> {
        self.rows(sql::LIST, params![now], |r| {
            Ok((LicenceRow::from_row(r)?, r.int(9)?))
        })
    }

    fn insert_licence(&mut self, l: &LicenceRow) -> Result<(), StoreError> {
        self.0
            .prepare_cached(sql::INSERT_LICENCE)?
            .execute(params![
                l.id,
                l.customer,
                l.seats,
                l.features,
                l.issued,
                l.expires,
                l.key_digest,
                l.key_text
            ])?;
        Ok(())
    }

    fn revoke(&mut self, id: &str, at: i64) -> Result<bool, StoreError> {
        Ok(self
            .0
            .prepare_cached(sql::REVOKE)?
            .execute(params![at, id])?
            > 0)
    }

    fn activations(&mut self, licence: &str) -> Result<Vec<ActivationRow>, StoreError> {
        self.rows(sql::ACTIVATIONS, params![licence], |r| {
            ActivationRow::from_row(r)
        })
    }

    fn activation(
        &mut self,
        licence: &str,
        machine: &str,
    ) -> Result<Option<ActivationRow>, StoreError> {
        Ok(self
            .0
            .prepare_cached(sql::ACTIVATION)?
            .query_row(params![licence, machine], |r| {
                ActivationRow::from_row(r)
                    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
            })
            .optional()?)
    }

    fn insert_activation(&mut self, a: &ActivationRow) -> Result<(), StoreError> {
        self.0
            .prepare_cached(sql::INSERT_ACTIVATION)?
            .execute(params![
                a.licence_id,
                a.seat,
                a.machine,
                a.activated_at,
                a.renewed_at,
                a.lease_until
            ])?;
        Ok(())
    }

    fn renew(
        &mut self,
        licence: &str,
        machine: &str,
        at: i64,
        until: i64,
    ) -> Result<(), StoreError> {
        self.0
            .prepare_cached(sql::RENEW)?
            .execute(params![at, until, licence, machine])?;
        Ok(())
    }

    fn delete_activation(&mut self, licence: &str, machine: &str) -> Result<bool, StoreError> {
        Ok(self
            .0
            .prepare_cached(sql::DELETE_ACTIVATION)?
            .execute(params![licence, machine])?
            > 0)
    }

    fn reclaim(&mut self, licence: Option<&str>, now: i64) -> Result<u64, StoreError> {
        let n = match licence {
            Some(l) => self
                .0
                .prepare_cached(sql::RECLAIM_LICENCE)?
                .execute(params![now, l])?,
            None => self
                .0
                .prepare_cached(sql::RECLAIM_ALL)?
                .execute(params![now])?,
        };
        Ok(n as u64)
    }
}

impl Store for Sqlite {
    fn migrate(&self) -> Result<(), StoreError> {
        let conn = self
            .conn
            .lock()
            .map_err(|_| StoreError::Unavailable("poisoned".into()))?;
        for stmt in sql::SCHEMA {
            conn.execute(stmt, [])?;
        }
        Ok(())
    }

    fn transaction<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&mut dyn Tx) -> Result<T, E>,
    ) -> Result<T, E> {
        // A panic in another request poisons the mutex but leaves the connection usable:
        // its transaction was rolled back when it unwound.
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| E::from(e.into()))?;
        let mut tx = SqliteTx(tx);
        let out = f(&mut tx)?;
        tx.0.commit().map_err(|e| E::from(e.into()))?;
        Ok(out)
    }
}

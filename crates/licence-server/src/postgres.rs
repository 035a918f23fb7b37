//! The PostgreSQL backend (feature `postgres`): the same SQL and the same service code
//! as SQLite, for when one server is not enough (several servers share one database).
//!
//! A small pool of synchronous connections (`postgres` crate, used from the blocking
//! threads the HTTP layer runs requests on). Transactions run at READ COMMITTED; an
//! activation locks its licence row (`SELECT ... FOR UPDATE`), so concurrent activations
//! of one licence queue up on any number of servers, and the `(licence_id, seat)` key
//! refuses a double-booked seat regardless. Connections are made without TLS: keep the
//! database on the same host or a private network.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use postgres::{Client, NoTls};

use crate::db::{ActivationRow, LicenceRow, RowGet, Store, StoreError, Tx, sql};

/// Most connections kept open.
const MAX_CONNECTIONS: usize = 16;
/// Serialises schema creation between servers (an arbitrary application-wide number).
const MIGRATION_LOCK: &str = "SELECT pg_advisory_xact_lock(7152936412)";
/// Longest wait for a free connection.
const WAIT: Duration = Duration::from_secs(10);

/// A PostgreSQL database.
pub struct Postgres {
    url: String,
    /// Idle connections and the number open.
    pool: Mutex<(Vec<Client>, usize)>,
    freed: Condvar,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password.
        f.debug_struct("Postgres").finish_non_exhaustive()
    }
}

impl Postgres {
    /// Connect to `url` (`postgres://user:password@host/db`) and check it answers.
    pub fn connect(url: &str) -> Result<Postgres, StoreError> {
        let pg = Postgres {
            url: url.to_owned(),
            pool: Mutex::new((Vec::new(), 0)),
            freed: Condvar::new(),
        };
        let c = pg.get()?;
        pg.put(c);
        Ok(pg)
    }

    fn get(&self) -> Result<Client, StoreError> {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(c) = pool.0.pop() {
                return Ok(c);
            }
            if pool.1 < MAX_CONNECTIONS {
                pool.1 += 1;
                drop(pool);
                return Client::connect(&self.url, NoTls).map_err(|e| {
                    self.forget();
                    StoreError::Unavailable(e.to_string())
                });
            }
            let (p, timeout) = self
                .freed
                .wait_timeout(pool, WAIT)
                .unwrap_or_else(|p| p.into_inner());
            pool = p;
            if timeout.timed_out() && pool.0.is_empty() && pool.1 >= MAX_CONNECTIONS {
                return Err(StoreError::Unavailable(
                    "no free database connection".into(),
                ));
            }
        }
    }

    fn put(&self, c: Client) {
        if c.is_closed() {
            self.forget();
            return;
        }
        self.pool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .push(c);
        self.freed.notify_one();
    }

    /// A connection was lost (closed, failed to open, or dropped in a panic).
    fn forget(&self) {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        pool.1 = pool.1.saturating_sub(1);
        self.freed.notify_one();
    }
}

impl RowGet for postgres::Row {
    fn text(&self, i: usize) -> Result<String, StoreError> {
        Ok(self.try_get(i)?)
    }
    fn int(&self, i: usize) -> Result<i64, StoreError> {
        Ok(self.try_get(i)?)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        Ok(self.try_get(i)?)
    }
}

struct PgTx<'a>(postgres::Transaction<'a>);

impl Tx for PgTx<'_> {
    fn licence(&mut self, id: &str, lock: bool) -> Result<Option<LicenceRow>, StoreError> {
        let row = if lock {
            self.0
                .query_opt(&format!("{} FOR UPDATE", sql::LICENCE), &[&id])?
        } else {
            self.0.query_opt(sql::LICENCE, &[&id])?
        };
        row.map(|r| LicenceRow::from_row(&r)).transpose()
    }

    fn list(&mut self, now: i64) -> Result<Vec<(LicenceRow, i64)>, StoreError> {
        self.0
            .query(sql::LIST, &[&now])?
            .iter()
            .map(|r| Ok((LicenceRow::from_row(r)?, r.int(9)?)))
            .collect()
    }

    fn insert_licence(&mut self, l: &LicenceRow) -> Result<(), StoreError> {
        self.0.execute(
            sql::INSERT_LICENCE,
            &[
                &l.id,
                &l.customer,
                &l.seats,
                &l.features,
                &l.issued,
                &l.expires,
                &l.key_digest,
                &l.key_text,
            ],
        )?;
        Ok(())
    }

    fn revoke(&mut self, id: &str, at: i64) -> Result<bool, StoreError> {
        Ok(self.0.execute(sql::REVOKE, &[&at, &id])? > 0)
    }

    fn activations(&mut self, licence: &str) -> Result<Vec<ActivationRow>, StoreError> {
        self.0
            .query(sql::ACTIVATIONS, &[&licence])?
            .iter()
            .map(ActivationRow::from_row)
            .collect()
    }

    fn activation(
        &mut self,
        licence: &str,
        machine: &str,
    ) -> Result<Option<ActivationRow>, StoreError> {
        self.0
            .query_opt(sql::ACTIVATION, &[&licence, &machine])?
            .map(|r| ActivationRow::from_row(&r))
            .transpose()
    }

    fn insert_activation(&mut self, a: &ActivationRow) -> Result<(), StoreError> {
        self.0.execute(
            sql::INSERT_ACTIVATION,
            &[
                &a.licence_id,
                &a.seat,
                &a.machine,
                &a.activated_at,
                &a.renewed_at,
                &a.lease_until,
            ],
        )?;
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
            .execute(sql::RENEW, &[&at, &until, &licence, &machine])?;
        Ok(())
    }

    fn delete_activation(&mut self, licence: &str, machine: &str) -> Result<bool, StoreError> {
        Ok(self
            .0
            .execute(sql::DELETE_ACTIVATION, &[&licence, &machine])?
            > 0)
    }

    fn reclaim(&mut self, licence: Option<&str>, now: i64) -> Result<u64, StoreError> {
        Ok(match licence {
            Some(l) => self.0.execute(sql::RECLAIM_LICENCE, &[&now, &l])?,
            None => self.0.execute(sql::RECLAIM_ALL, &[&now])?,
        })
    }
}

/// Returns the connection to the pool, or forgets it if the holder panicked.
struct Lease<'a> {
    pg: &'a Postgres,
    client: Option<Client>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        match self.client.take() {
            Some(c) if !std::thread::panicking() => self.pg.put(c),
            _ => self.pg.forget(),
        }
    }
}

impl Store for Postgres {
    fn migrate(&self) -> Result<(), StoreError> {
        let mut c = Lease {
            pg: self,
            client: Some(self.get()?),
        };
        let client = c
            .client
            .as_mut()
            .ok_or_else(|| StoreError::Unavailable("no connection".into()))?;
        // Servers starting together would race on CREATE ... IF NOT EXISTS (PostgreSQL
        // can then fail on its catalog's unique index): one at a time.
        let mut tx = client.transaction()?;
        tx.batch_execute(MIGRATION_LOCK)?;
        for stmt in sql::SCHEMA {
            tx.batch_execute(stmt)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn transaction<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&mut dyn Tx) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut c = Lease {
            pg: self,
            client: Some(self.get().map_err(E::from)?),
        };
        let client = c
            .client
            .as_mut()
            .ok_or_else(|| E::from(StoreError::Unavailable("no connection".into())))?;
        let tx = client.transaction().map_err(|e| E::from(e.into()))?;
        let mut tx = PgTx(tx);
        let out = f(&mut tx)?;
        tx.0.commit().map_err(|e| E::from(e.into()))?;
        Ok(out)
    }
}

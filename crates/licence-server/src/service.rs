//! What the licence server does, independent of HTTP and of the database backend.

use callhelper_licence::key::MAX_SEATS;
use callhelper_licence::{Lease, Licence, LicenceId, LicenceKey, MachineHash, SecretKey, Trust};

use crate::db::{ActivationRow, LicenceRow, Store, StoreError, Tx};

/// How long leases last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTerms {
    /// A lease's length: how long the app may work without reaching the server.
    pub lease_secs: u64,
    /// How soon after issue the app should renew.
    pub renew_secs: u64,
}

impl Default for LeaseTerms {
    fn default() -> LeaseTerms {
        LeaseTerms {
            lease_secs: 14 * 86_400,
            renew_secs: 86_400,
        }
    }
}

/// Why a request was refused (the answer the client gets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Malformed request.
    BadRequest,
    /// Unknown, foreign or malformed key: deliberately one answer.
    Invalid,
    /// The licence's term is over.
    Expired,
    /// The licence was revoked.
    Revoked,
    /// Every seat is taken.
    SeatsExhausted {
        /// The seat count.
        seats: u32,
    },
}

/// A failed request: refused, or the server failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Refused.
    #[error("refused: {0:?}")]
    Refused(Refusal),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<Refusal> for ServiceError {
    fn from(r: Refusal) -> ServiceError {
        ServiceError::Refused(r)
    }
}

/// An admin's order for a new licence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLicence {
    /// The customer (an organisation).
    pub customer: String,
    /// Seat count.
    pub seats: u32,
    /// Features.
    pub features: Vec<String>,
    /// End of term (Unix seconds).
    pub expires: u64,
}

/// The licence service over a store.
#[derive(Debug)]
pub struct Service<S> {
    store: S,
    key: SecretKey,
    trust: Trust,
    terms: LeaseTerms,
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl<S: Store> Service<S> {
    /// A service signing with `key`.
    pub fn new(store: S, key: SecretKey, terms: LeaseTerms) -> Service<S> {
        let trust = Trust::new([key.public()]);
        Service {
            store,
            key,
            trust,
            terms,
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Check a presented key against what was issued: the same answer for a key that
    /// does not parse, is not ours, or is not in the database.
    fn known_licence(
        &self,
        tx: &mut dyn Tx,
        key_text: &str,
    ) -> Result<(LicenceKey, LicenceRow), ServiceError> {
        let key = LicenceKey::parse(key_text, &self.trust).map_err(|_| Refusal::Invalid)?;
        let row = tx
            .licence(key.licence().id.as_str(), true)?
            .filter(|r| r.key_digest == key.digest_hex())
            .ok_or(Refusal::Invalid)?;
        Ok((key, row))
    }

    /// Activate or renew: return this machine's seat with a fresh lease, taking a free
    /// seat if it holds none. Seats are counted and taken in one transaction.
    pub fn lease(
        &self,
        key_text: &str,
        machine: &MachineHash,
        now: u64,
    ) -> Result<String, ServiceError> {
        let (licence, seat, until) = self.store.transaction(|tx| {
            let (key, row) = self.known_licence(tx, key_text)?;
            if row.revoked_at.is_some() {
                return Err(Refusal::Revoked.into());
            }
            if key.check_term(now).is_err() {
                return Err(Refusal::Expired.into());
            }
            let id = row.id.as_str();
            let n = to_i64(now);
            let until = now
                .saturating_add(self.terms.lease_secs)
                .min(key.licence().expires);
            tx.reclaim(Some(id), n)?;
            let seat = match tx.activation(id, machine.as_str())? {
                Some(a) => {
                    tx.renew(id, machine.as_str(), n, to_i64(until))?;
                    a.seat
                }
                None => {
                    let taken: Vec<i64> = tx.activations(id)?.iter().map(|a| a.seat).collect();
                    let seats = i64::from(key.licence().seats.min(MAX_SEATS));
                    let free = (1..=seats).find(|s| !taken.contains(s)).ok_or(
                        Refusal::SeatsExhausted {
                            seats: key.licence().seats,
                        },
                    )?;
                    tx.insert_activation(&ActivationRow {
                        licence_id: id.to_owned(),
                        seat: free,
                        machine: machine.as_str().to_owned(),
                        activated_at: n,
                        renewed_at: n,
                        lease_until: to_i64(until),
                    })?;
                    free
                }
            };
            Ok::<_, ServiceError>((key.licence().id.clone(), seat, until))
        })?;
        let lease = Lease {
            licence,
            machine: machine.clone(),
            seat: u32::try_from(seat).map_err(|_| StoreError::Corrupt(format!("seat {seat}")))?,
            issued: now,
            renew_after: now.saturating_add(self.terms.renew_secs).min(until),
            valid_until: until,
        };
        lease
            .sign(&self.key)
            .map_err(|e| StoreError::Corrupt(e.to_string()).into())
    }

    /// Free this machine's seat; `false` when it held none.
    pub fn deactivate(&self, key_text: &str, machine: &MachineHash) -> Result<bool, ServiceError> {
        self.store.transaction(|tx| {
            let (key, _) = self.known_licence(tx, key_text)?;
            Ok(tx.delete_activation(key.licence().id.as_str(), machine.as_str())?)
        })
    }

    /// Delete every lease that has ended; returns how many.
    pub fn reclaim(&self, now: u64) -> Result<u64, StoreError> {
        self.store.transaction(|tx| tx.reclaim(None, to_i64(now)))
    }

    /// Issue a licence: sign the key and record it. `id` is 16 random bytes.
    pub fn issue(
        &self,
        order: &NewLicence,
        id: [u8; 16],
        now: u64,
    ) -> Result<(LicenceId, String), IssueError> {
        let licence = Licence {
            id: LicenceId::from_random(id),
            customer: order.customer.trim().to_owned(),
            seats: order.seats,
            features: order.features.clone(),
            issued: now,
            expires: order.expires,
        };
        let text = LicenceKey::issue(&licence, &self.key)
            .map_err(|e| IssueError::Invalid(e.to_string()))?;
        let key = LicenceKey::parse(&text, &self.trust)
            .map_err(|e| IssueError::Invalid(e.to_string()))?;
        let row = LicenceRow {
            id: licence.id.to_string(),
            customer: licence.customer.clone(),
            seats: i64::from(licence.seats),
            features: serde_json::to_string(&licence.features).unwrap_or_else(|_| "[]".into()),
            issued: to_i64(licence.issued),
            expires: to_i64(licence.expires),
            key_digest: key.digest_hex(),
            key_text: text.clone(),
            revoked_at: None,
        };
        self.store.transaction(|tx| tx.insert_licence(&row))?;
        Ok((licence.id, text))
    }
}

/// Revoke a licence: its leases stop renewing. `false` when there is no such licence.
pub fn revoke(store: &impl Store, id: &LicenceId, now: u64) -> Result<bool, StoreError> {
    store.transaction(|tx| tx.revoke(id.as_str(), to_i64(now)))
}

/// Every licence with the seats in use at `now`.
pub fn list(store: &impl Store, now: u64) -> Result<Vec<(LicenceRow, u64)>, StoreError> {
    let rows = store.transaction(|tx| tx.list(to_i64(now)))?;
    Ok(rows.into_iter().map(|(r, n)| (r, to_u64(n))).collect())
}

/// A licence and its activations (including ended leases not yet reclaimed).
pub fn activations(
    store: &impl Store,
    id: &LicenceId,
) -> Result<Option<(LicenceRow, Vec<ActivationRow>)>, StoreError> {
    store.transaction(|tx| {
        let Some(row) = tx.licence(id.as_str(), false)? else {
            return Ok(None);
        };
        let acts = tx.activations(id.as_str())?;
        Ok(Some((row, acts)))
    })
}

/// Why a licence could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The order breaks the licence rules.
    #[error("{0}")]
    Invalid(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

//! The app's side: talking to the licence server, and the operations an admin performs
//! (activate, refresh, deactivate) on top of the licence folder.

use std::time::Duration;

use crate::Error;
use crate::key::{KeyError, LicenceKey};
use crate::lease::Lease;
use crate::machine::Machine;
use crate::protocol::{self, DeactivateBody, ErrorBody, LeaseBody, LeaseRequest, code};
use crate::signed::Trust;
use crate::status::{Status, evaluate};
use crate::store::LicenceDir;
use crate::time::DAY;

/// How long one request to the server may take, connecting included.
const TIMEOUT: Duration = Duration::from_secs(15);

/// An HTTP client of one licence server.
#[derive(Debug, Clone)]
pub struct Client {
    agent: ureq::Agent,
    base: String,
}

impl Client {
    /// A client of the server at `base_url` (`http://` or `https://`, no query).
    pub fn new(base_url: &str) -> Result<Client, Error> {
        let base = base_url.trim().trim_end_matches('/').to_owned();
        let ok_scheme = base.starts_with("https://") || base.starts_with("http://");
        let host = base.split_once("://").map(|(_, r)| r).unwrap_or("");
        if !ok_scheme || host.is_empty() || base.contains(['?', '#', ' ']) || base.len() > 512 {
            return Err(Error::BadServerUrl(base_url.to_owned()));
        }
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(TIMEOUT))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("callhelper-licence/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Ok(Client { agent, base })
    }

    /// The server's address.
    pub fn url(&self) -> &str {
        &self.base
    }

    fn post(&self, path: &str, key: &LicenceKey, machine: &Machine) -> Result<Vec<u8>, Error> {
        let body = serde_json::to_vec(&LeaseRequest {
            key: key.text().to_owned(),
            machine: machine.hash().as_str().to_owned(),
        })
        .map_err(|e| Error::Protocol(e.to_string()))?;
        let unreachable = |e: ureq::Error| Error::Unreachable {
            url: self.base.clone(),
            detail: e.to_string(),
        };
        let mut resp = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .send(&body[..])
            .map_err(unreachable)?;
        let status = resp.status().as_u16();
        let retry_header = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(protocol::MAX_RESPONSE)
            .read_to_vec()
            .map_err(unreachable)?;
        if status == 200 {
            return Ok(bytes);
        }
        let err: Option<ErrorBody> = serde_json::from_slice(&bytes).ok();
        let code = err.as_ref().map(|e| e.code.as_str()).unwrap_or("");
        Err(match (status, code) {
            (_, code::LICENCE_INVALID) => Error::Rejected,
            (_, code::LICENCE_REVOKED) => Error::Revoked,
            (_, code::LICENCE_EXPIRED) => Error::Key(KeyError::Expired {
                expires: key.licence().expires,
            }),
            (_, code::SEATS_EXHAUSTED) => Error::SeatsExhausted {
                seats: err.and_then(|e| e.seats).unwrap_or(key.licence().seats),
            },
            (429, _) | (_, code::RATE_LIMITED) => Error::RateLimited {
                retry_after: err
                    .and_then(|e| e.retry_after)
                    .or(retry_header)
                    .unwrap_or(1),
            },
            (503, _) | (_, code::BUSY) => Error::Busy,
            _ => Error::Protocol(format!("HTTP {status} {code}")),
        })
    }

    fn lease(
        &self,
        path: &str,
        key: &LicenceKey,
        machine: &Machine,
        trust: &Trust,
    ) -> Result<(String, Lease), Error> {
        let body: LeaseBody = serde_json::from_slice(&self.post(path, key, machine)?)
            .map_err(|e| Error::Protocol(e.to_string()))?;
        let lease = Lease::parse(&body.lease, trust)?;
        if lease.licence != key.licence().id || &lease.machine != machine.hash() {
            return Err(Error::LeaseMismatch);
        }
        Ok((body.lease.trim().to_owned(), lease))
    }

    /// Take a seat: the server's signed lease, checked against `trust`.
    pub fn activate(
        &self,
        key: &LicenceKey,
        machine: &Machine,
        trust: &Trust,
    ) -> Result<(String, Lease), Error> {
        self.lease(protocol::ACTIVATE, key, machine, trust)
    }

    /// Renew this machine's lease.
    pub fn renew(
        &self,
        key: &LicenceKey,
        machine: &Machine,
        trust: &Trust,
    ) -> Result<(String, Lease), Error> {
        self.lease(protocol::RENEW, key, machine, trust)
    }

    /// Free this machine's seat; `Ok(false)` when it held none.
    pub fn deactivate(&self, key: &LicenceKey, machine: &Machine) -> Result<bool, Error> {
        let body: DeactivateBody =
            serde_json::from_slice(&self.post(protocol::DEACTIVATE, key, machine)?)
                .map_err(|e| Error::Protocol(e.to_string()))?;
        Ok(body.freed)
    }
}

/// The outcome of [`Licensing::refresh`].
#[derive(Debug)]
pub struct Refresh {
    /// The status after the attempt.
    pub status: Status,
    /// Whether the server was asked.
    pub contacted: bool,
    /// Why the renewal failed, when it did (the status says what that means for work).
    pub error: Option<Error>,
}

/// What a deactivation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Deactivated {
    /// The server freed the seat; the licence is gone from this computer.
    SeatFreed,
    /// The server had no seat for this computer (already reclaimed); the licence is gone
    /// from this computer.
    NoSeatHeld,
    /// The server was not told (unreachable or the key unusable); the licence is gone from
    /// this computer and its seat frees itself when the lease ends.
    ForgottenLocally,
}

/// The licence operations of one installation on one computer.
#[derive(Debug, Clone, Copy)]
pub struct Licensing<'a> {
    /// The licence folder.
    pub dir: &'a LicenceDir,
    /// The vendor keys this build trusts.
    pub trust: &'a Trust,
    /// This computer.
    pub machine: &'a Machine,
}

impl Licensing<'_> {
    /// The status at `now` from what is stored (no network). Moves the clock record's
    /// highest time forward.
    pub fn status(&self, now: u64) -> Result<Status, Error> {
        let stored = self.dir.read(self.trust, self.machine)?;
        let ev = evaluate(&stored, self.machine.hash(), now);
        if let (Some(t), crate::status::ClockRecord::Valid { revoked, .. }) =
            (ev.remember, stored.clock)
        {
            self.dir.write_clock(self.machine, t, revoked, false)?;
        }
        Ok(ev.status)
    }

    /// Activate `key_text` with the server: check the key, take a seat, store the key and
    /// the lease. A different licence stored before is deactivated on a best-effort basis.
    pub fn activate(&self, client: &Client, key_text: &str, now: u64) -> Result<Status, Error> {
        if self.trust.is_empty() {
            return Err(Error::NoTrustedKey);
        }
        let key = LicenceKey::parse(key_text, self.trust)?;
        key.check_term(now)?;
        let previous = self.dir.key(self.trust)?.and_then(Result::ok);
        let (text, lease) = client.activate(&key, self.machine, self.trust)?;
        self.dir.save_lease(&key, &text, &lease, self.machine)?;
        if let Some(old) = previous.filter(|old| old.licence().id != key.licence().id) {
            // The new licence is stored; failing to free the old seat only means it frees
            // itself when its lease ends.
            let _ = client.deactivate(&old, self.machine);
        }
        check_clock(now, &lease)?;
        self.status(now)
    }

    /// Renew the lease when it is due or when work is stopped for want of the server;
    /// otherwise just report the status. Network failures are not errors here: they
    /// leave the status as it is (offline grace) and are reported in [`Refresh::error`].
    pub fn refresh(&self, client: &Client, now: u64) -> Result<Refresh, Error> {
        let status = self.status(now)?;
        let due = status.wants_server();
        if !due {
            return Ok(Refresh {
                status,
                contacted: false,
                error: None,
            });
        }
        let Some(Ok(key)) = self.dir.key(self.trust)? else {
            return Ok(Refresh {
                status,
                contacted: false,
                error: None,
            });
        };
        let error = match client.renew(&key, self.machine, self.trust) {
            Ok((text, lease)) => {
                self.dir.save_lease(&key, &text, &lease, self.machine)?;
                check_clock(now, &lease).err()
            }
            Err(Error::Revoked) => {
                self.dir.save_revoked(self.machine, now)?;
                Some(Error::Revoked)
            }
            Err(e @ Error::Key(KeyError::Expired { .. })) => {
                // The server says the term is over: stop using the lease. (A server that
                // does not know the key keeps nothing from us: the signed lease runs on.)
                self.dir.drop_lease()?;
                Some(e)
            }
            Err(e) => Some(e),
        };
        Ok(Refresh {
            status: self.status(now)?,
            contacted: true,
            error,
        })
    }

    /// Free this computer's seat and forget the licence here. When the server cannot be
    /// told and `forget_if_unreachable` is false, nothing changes and the error is
    /// returned.
    pub fn deactivate(
        &self,
        client: Option<&Client>,
        forget_if_unreachable: bool,
    ) -> Result<Deactivated, Error> {
        let key = match self.dir.key(self.trust)? {
            None => return Err(Error::NotActivated),
            Some(Err(_)) => None,
            Some(Ok(k)) => Some(k),
        };
        let told = match (key, client) {
            (Some(key), Some(client)) => client.deactivate(&key, self.machine),
            (Some(_), None) => Err(Error::NoServer),
            (None, _) => Err(Error::Key(KeyError::BadSignature)),
        };
        let outcome = match told {
            Ok(true) => Deactivated::SeatFreed,
            Ok(false) | Err(Error::Rejected) => Deactivated::NoSeatHeld,
            Err(_) if forget_if_unreachable => Deactivated::ForgottenLocally,
            Err(e) => return Err(e),
        };
        self.dir.clear()?;
        Ok(outcome)
    }
}

/// A fresh lease already over by the local clock, or issued more than a day in the
/// local future, means the clock is wrong; say so rather than report a lease problem.
fn check_clock(now: u64, lease: &Lease) -> Result<(), Error> {
    if now >= lease.valid_until || now.saturating_add(DAY) < lease.issued {
        Err(Error::ClockSkew {
            local: now,
            server: lease.issued,
        })
    } else {
        Ok(())
    }
}

//! The HTTP edge: one blocking client per CRM connection that keeps the CRM's rate limit
//! (through the pure [`Pacer`]) and turns network trouble into [`CrmError`]s.
//!
//! It resends a request only when the CRM said "too many requests" — an answer that
//! means the request was not processed. Every other failure goes up to the adapter, which
//! knows whether resending is safe.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use callhelper_script::Timestamp;
use serde::Serialize;

use crate::error::{CrmError, CrmKind};
use crate::pace::{Backoff, Pace, Pacer, RateLimit};
use crate::rng::Rng;

/// Largest answer read from a CRM.
const MAX_ANSWER: u64 = 32 * 1024 * 1024;

/// Where time comes from. The real one reads the system clocks; tests of the worker can
/// pass their own.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Wall-clock time.
    fn now(&self) -> Timestamp;
    /// Monotonic milliseconds (for pacing).
    fn mono_ms(&self) -> u64;
    /// Sleep.
    fn sleep_ms(&self, ms: u64);
}

/// The system's clocks.
#[derive(Debug)]
pub struct SystemClock {
    start: Instant,
}

impl Default for SystemClock {
    fn default() -> SystemClock {
        SystemClock {
            start: Instant::now(),
        }
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
        )
    }

    fn mono_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn sleep_ms(&self, ms: u64) {
        std::thread::sleep(Duration::from_millis(ms));
    }
}

/// How one CRM connection talks HTTP.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    /// Timeout of one request, from connecting to the last byte of the answer.
    pub timeout: Duration,
    /// The rate limit kept.
    pub limit: RateLimit,
    /// Backoff after "too many requests".
    pub refusal_backoff: Backoff,
    /// How many "too many requests" in a row before the batch is rescheduled.
    pub max_refusals: u32,
}

impl HttpConfig {
    /// The defaults for a CRM.
    pub fn for_crm(crm: CrmKind) -> HttpConfig {
        HttpConfig {
            timeout: Duration::from_secs(30),
            limit: match crm {
                CrmKind::AmoCrm => RateLimit::AMOCRM,
                CrmKind::Bitrix24 => RateLimit::BITRIX24,
                CrmKind::Webhook => RateLimit::WEBHOOK,
            },
            refusal_backoff: Backoff {
                base_ms: 1_000,
                max_ms: 60_000,
            },
            max_refusals: 6,
        }
    }
}

/// Counters of one connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct HttpStats {
    /// Requests sent.
    pub requests: u64,
    /// "Too many requests" answers received (and waited out).
    pub refusals: u64,
    /// Requests that failed on the network (refused, reset, timed out).
    pub network_failures: u64,
    /// Milliseconds spent waiting for the rate limit.
    pub paced_ms: u64,
}

/// An answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
    /// `Retry-After`, in milliseconds.
    pub retry_after_ms: Option<u64>,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self, crm: CrmKind) -> Result<serde_json::Value, CrmError> {
        serde_json::from_slice(&self.body).map_err(|e| CrmError::Malformed {
            crm,
            detail: format!("HTTP {}: {e}", self.status),
        })
    }

    /// The start of the body as text, for messages.
    pub fn snippet(&self) -> String {
        let s = String::from_utf8_lossy(&self.body);
        let s = s.trim();
        match s.char_indices().nth(300) {
            Some((i, _)) => format!("{}…", &s[..i]),
            None => s.to_owned(),
        }
    }
}

/// A request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// POST.
    Post,
    /// PATCH.
    Patch,
}

/// The HTTP client of one CRM connection.
pub struct Transport {
    crm: CrmKind,
    agent: ureq::Agent,
    pacer: Pacer,
    rng: Rng,
    clock: Arc<dyn Clock>,
    stats: HttpStats,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("crm", &self.crm)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// A client for `crm`. The rate limiter starts empty, not full: another process of
    /// ours (the one before a restart) may have just used the CRM's burst.
    pub fn new(crm: CrmKind, cfg: &HttpConfig, clock: Arc<dyn Clock>, seed: u64) -> Transport {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(cfg.timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("CallHelper/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Transport {
            crm,
            agent,
            pacer: Pacer::new(cfg.limit, cfg.refusal_backoff, cfg.max_refusals, false),
            rng: Rng::new(seed),
            clock,
            stats: HttpStats::default(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> HttpStats {
        self.stats
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Send a request, keeping the rate limit; `refused` tells a "too many requests"
    /// answer of this CRM, which is waited out and resent.
    pub fn send(
        &mut self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        refused: &dyn Fn(&Answer) -> bool,
    ) -> Result<Answer, CrmError> {
        loop {
            match self.pacer.before_send(self.clock.mono_ms()) {
                Pace::Send => {}
                Pace::Wait(ms) => {
                    self.stats.paced_ms += ms;
                    self.clock.sleep_ms(ms);
                    continue;
                }
                Pace::GiveUp => return Err(CrmError::RateLimited { crm: self.crm }),
            }
            self.stats.requests += 1;
            let answer = self.once(method, url, headers, body).inspect_err(|_| {
                self.stats.network_failures += 1;
            })?;
            if refused(&answer) {
                self.stats.refusals += 1;
                match self
                    .pacer
                    .refused(self.clock.mono_ms(), answer.retry_after_ms, &mut self.rng)
                {
                    Pace::Wait(_) => continue,
                    _ => return Err(CrmError::RateLimited { crm: self.crm }),
                }
            }
            self.pacer.answered();
            return Ok(answer);
        }
    }

    fn once(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Answer, CrmError> {
        let crm = self.crm;
        // A URL may hold a secret (a Bitrix24 webhook key, an OAuth refresh token in the
        // query): keep it out of the message.
        let path = url
            .split_once("://")
            .and_then(|(_, r)| r.find('/').map(|i| &r[i..]))
            .unwrap_or("");
        let unreachable = |e: ureq::Error| {
            let mut detail = e.to_string().replace(url, &crate::secret::redact_url(url));
            if path.len() > 1 {
                detail = detail.replace(path, "/…");
            }
            CrmError::Unreachable { crm, detail }
        };
        let result = match method {
            Method::Get => {
                let mut r = self.agent.get(url);
                for (n, v) in headers {
                    r = r.header(*n, *v);
                }
                r.call()
            }
            Method::Post | Method::Patch => {
                let mut r = if method == Method::Post {
                    self.agent.post(url)
                } else {
                    self.agent.patch(url)
                };
                for (n, v) in headers {
                    r = r.header(*n, *v);
                }
                r.send(body.unwrap_or(&[]))
            }
        };
        let mut resp = result.map_err(unreachable)?;
        let status = resp.status().as_u16();
        let retry_after_ms = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| s.saturating_mul(1000));
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_vec()
            .map_err(unreachable)?;
        Ok(Answer {
            status,
            body,
            retry_after_ms,
        })
    }
}

/// Percent-encode a query component.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

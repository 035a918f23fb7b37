//! The pure sync core: backoff with jitter, the per-CRM rate limiter, and the decisions
//! taken when a CRM answers "too many requests" or fails. No IO and no clock: time comes in
//! as milliseconds, randomness from a seeded [`Rng`], so every scenario (a CRM answering
//! 429 three times, a day offline) is a fast deterministic test.

use serde::{Deserialize, Serialize};

use crate::rng::Rng;

/// Exponential backoff with "equal jitter": attempt `n` waits between half and all of
/// `min(max, base · 2ⁿ)`, so retries spread out but never come back at once.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Backoff {
    /// The first delay, in milliseconds.
    pub base_ms: u64,
    /// The longest delay, in milliseconds.
    pub max_ms: u64,
}

impl Backoff {
    /// The delay before retry number `attempt` (0 for the first retry).
    pub fn delay(&self, attempt: u32, rng: &mut Rng) -> u64 {
        let ceiling = self
            .base_ms
            .saturating_mul(1u64.checked_shl(attempt.min(40)).unwrap_or(u64::MAX))
            .min(self.max_ms)
            .max(1);
        let half = ceiling / 2;
        half + rng.up_to(ceiling - half)
    }
}

/// How fast one CRM may be asked.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateLimit {
    /// Requests that may go at once after a quiet spell.
    pub burst: f64,
    /// Requests a second after that.
    pub per_sec: f64,
}

impl RateLimit {
    /// amoCRM allows 7 requests a second. We send at most 6 a second, one at a time, so
    /// that no window of a second ever sees 7 even when requests bunch up on the way.
    pub const AMOCRM: RateLimit = RateLimit {
        burst: 1.0,
        per_sec: 6.0,
    };
    /// Bitrix24 allows a burst of 50 and then 2 a second (a leaky bucket); we keep 10%
    /// under both.
    pub const BITRIX24: RateLimit = RateLimit {
        burst: 45.0,
        per_sec: 1.8,
    };
    /// A webhook receiver we know nothing about: 10 a second.
    pub const WEBHOOK: RateLimit = RateLimit {
        burst: 10.0,
        per_sec: 10.0,
    };

    /// The same limit with time running `factor` times faster (tests against servers whose
    /// windows are scaled the same way).
    pub fn scaled(self, factor: f64) -> RateLimit {
        RateLimit {
            burst: self.burst,
            per_sec: self.per_sec * factor,
        }
    }
}

/// A token bucket: holds up to `burst` tokens, refills `per_sec` a second; a request takes
/// one. Time is passed in as monotonic milliseconds.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    limit: RateLimit,
    tokens: f64,
    last_ms: Option<u64>,
    paused_until: u64,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(limit: RateLimit) -> TokenBucket {
        TokenBucket {
            limit,
            tokens: limit.burst,
            last_ms: None,
            paused_until: 0,
        }
    }

    fn refill(&mut self, now_ms: u64) {
        if let Some(last) = self.last_ms {
            let dt = now_ms.saturating_sub(last) as f64 / 1000.0;
            self.tokens = (self.tokens + dt * self.limit.per_sec).min(self.limit.burst);
        }
        self.last_ms = Some(self.last_ms.map_or(now_ms, |l| l.max(now_ms)));
    }

    /// Take a token at `now_ms`: `Ok` to send now, or `Err(wait)` milliseconds to wait
    /// before asking again.
    pub fn take(&mut self, now_ms: u64) -> Result<(), u64> {
        if now_ms < self.paused_until {
            return Err(self.paused_until - now_ms);
        }
        self.refill(now_ms);
        if self.tokens >= 1.0 - 1e-9 {
            self.tokens -= 1.0;
            return Ok(());
        }
        let missing = 1.0 - self.tokens;
        Err(((missing / self.limit.per_sec) * 1000.0).ceil().max(1.0) as u64)
    }

    /// The CRM said we went too fast: send nothing before `until_ms`, and start again from
    /// an empty bucket then.
    pub fn pause_until(&mut self, now_ms: u64, until_ms: u64) {
        self.refill(now_ms);
        self.tokens = 0.0;
        self.paused_until = self.paused_until.max(until_ms);
        self.last_ms = Some(self.paused_until);
    }
}

/// What to do before sending, or after a "too many requests" answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Send now.
    Send,
    /// Wait this many milliseconds, then ask again.
    Wait(u64),
    /// Stop asking: the CRM kept refusing. The work is rescheduled.
    GiveUp,
}

/// The pacing of one CRM connection: the token bucket, plus how "too many requests"
/// answers are handled (wait as the CRM says, or back off with jitter; give up after
/// `max_refusals` in a row).
#[derive(Debug, Clone)]
pub struct Pacer {
    bucket: TokenBucket,
    backoff: Backoff,
    max_refusals: u32,
    refusals: u32,
}

impl Pacer {
    /// A pacer for `limit`, its bucket full or empty.
    pub fn new(limit: RateLimit, backoff: Backoff, max_refusals: u32, full: bool) -> Pacer {
        let mut bucket = TokenBucket::new(limit);
        if !full {
            bucket.tokens = 0.0;
        }
        Pacer {
            bucket,
            backoff,
            max_refusals,
            refusals: 0,
        }
    }

    /// May a request go at `now_ms`?
    pub fn before_send(&mut self, now_ms: u64) -> Pace {
        match self.bucket.take(now_ms) {
            Ok(()) => Pace::Send,
            Err(w) => Pace::Wait(w),
        }
    }

    /// The CRM answered "too many requests" (with a `Retry-After` in milliseconds when it
    /// gave one).
    pub fn refused(&mut self, now_ms: u64, retry_after_ms: Option<u64>, rng: &mut Rng) -> Pace {
        if self.refusals >= self.max_refusals {
            self.refusals = 0;
            return Pace::GiveUp;
        }
        let backoff = self.backoff.delay(self.refusals, rng);
        self.refusals += 1;
        let wait = retry_after_ms.unwrap_or(0).max(backoff);
        self.bucket.pause_until(now_ms, now_ms + wait);
        Pace::Wait(wait)
    }

    /// The CRM answered something else: the refusal streak is over.
    pub fn answered(&mut self) {
        self.refusals = 0;
    }
}

/// Why an item was not delivered, as far as scheduling the next attempt goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// Unreachable, timed out, a server error, an unreadable answer: try again soon.
    Transient,
    /// The CRM kept saying "too many requests".
    RateLimited,
    /// Someone has to act (reconnect, fix the field mapping or the data). Tried again
    /// rarely, and at once after "retry now".
    NeedsUser,
}

/// When the outbox tries an item again.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RetrySchedule {
    /// Backoff for transient failures (the default grows from 2 s to 15 min).
    pub transient: Backoff,
    /// Backoff for failures someone must fix (from 30 min to 6 h).
    pub needs_user: Backoff,
}

impl Default for RetrySchedule {
    fn default() -> RetrySchedule {
        RetrySchedule {
            transient: Backoff {
                base_ms: 2_000,
                max_ms: 15 * 60_000,
            },
            needs_user: Backoff {
                base_ms: 30 * 60_000,
                max_ms: 6 * 3_600_000,
            },
        }
    }
}

impl RetrySchedule {
    /// The time of the next attempt after failure number `failures` (1 for the first) at
    /// `now_ms` (wall clock). Items are never dropped: after days offline they are still
    /// tried, at most every `max_ms`.
    pub fn next_attempt(
        &self,
        class: FailureClass,
        failures: u32,
        now_ms: i64,
        rng: &mut Rng,
    ) -> i64 {
        let b = match class {
            FailureClass::Transient | FailureClass::RateLimited => self.transient,
            FailureClass::NeedsUser => self.needs_user,
        };
        now_ms.saturating_add(b.delay(failures.saturating_sub(1), rng) as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_within_bounds() {
        let b = Backoff {
            base_ms: 100,
            max_ms: 1000,
        };
        let mut rng = Rng::new(7);
        for attempt in 0..20 {
            let d = b.delay(attempt, &mut rng);
            let ceiling = (100u64 << attempt.min(10)).min(1000);
            assert!(d >= ceiling / 2 && d <= ceiling, "attempt {attempt}: {d}");
        }
    }

    #[test]
    fn bucket_paces_after_the_burst() {
        let mut b = TokenBucket::new(RateLimit {
            burst: 2.0,
            per_sec: 4.0,
        });
        assert_eq!(b.take(0), Ok(()));
        assert_eq!(b.take(0), Ok(()));
        assert_eq!(b.take(0), Err(250));
        assert_eq!(b.take(250), Ok(()));
        assert_eq!(b.take(300), Err(200));
    }
}

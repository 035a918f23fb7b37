//! Seeded fault injection and the servers' rate limits.
//!
//! A fake decides, for each request, whether to misbehave: before doing anything (answer
//! 429/503/500, drop the connection, hang) or after applying the request (drop the answer,
//! hang, or answer with broken JSON — the cases where the client cannot know whether its
//! request took effect). Faults come from a script (`push`, for deterministic tests) and
//! then at random from a seeded generator.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A deterministic pseudo-random generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// One way of misbehaving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Answer the CRM's "too many requests" (amoCRM: 429; Bitrix24: 503 `QUERY_LIMIT_EXCEEDED`).
    RateLimited,
    /// Answer 500 without doing anything.
    ServerError,
    /// Close the connection without doing anything.
    DropBefore,
    /// Hang without doing anything, then close.
    HangBefore,
    /// Do the work, then close the connection without answering.
    DropAfter,
    /// Do the work, then hang and close.
    HangAfter,
    /// Do the work, then answer 200 with a body that is not JSON.
    MalformedAfter,
}

impl Fault {
    /// Every fault, in a fixed order.
    pub const ALL: [Fault; 7] = [
        Fault::RateLimited,
        Fault::ServerError,
        Fault::DropBefore,
        Fault::HangBefore,
        Fault::DropAfter,
        Fault::HangAfter,
        Fault::MalformedAfter,
    ];

    /// True when the request is applied before the fault shows.
    pub fn after(self) -> bool {
        matches!(
            self,
            Fault::DropAfter | Fault::HangAfter | Fault::MalformedAfter
        )
    }

    fn index(self) -> usize {
        Fault::ALL.iter().position(|f| *f == self).unwrap_or(0)
    }
}

/// How often random faults happen.
#[derive(Debug, Clone)]
pub struct FaultPlan {
    /// The generator's seed.
    pub seed: u64,
    /// Chance of a fault per request, in per mille (0 = none).
    pub per_mille: u32,
    /// How long a hang lasts (longer than the client's timeout).
    pub hang: Duration,
}

impl Default for FaultPlan {
    fn default() -> FaultPlan {
        FaultPlan {
            seed: 1,
            per_mille: 0,
            hang: Duration::from_millis(1500),
        }
    }
}

/// The fault injector of one fake.
#[derive(Debug)]
pub struct Faults {
    plan: Mutex<(FaultPlan, Rng)>,
    scripted: Mutex<VecDeque<Fault>>,
    counts: [AtomicU64; 7],
}

impl Faults {
    /// An injector with a plan.
    pub fn new(plan: FaultPlan) -> Faults {
        let rng = Rng::new(plan.seed);
        Faults {
            plan: Mutex::new((plan, rng)),
            scripted: Mutex::new(VecDeque::new()),
            counts: Default::default(),
        }
    }

    /// Change the random plan (the scripted queue stays).
    pub fn set_plan(&self, plan: FaultPlan) {
        let rng = Rng::new(plan.seed);
        *self.plan.lock().unwrap_or_else(|e| e.into_inner()) = (plan, rng);
    }

    /// Make the next requests misbehave in this order, before any random fault.
    pub fn push(&self, faults: &[Fault]) {
        self.scripted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(faults.iter().copied());
    }

    /// How long a hang lasts.
    pub fn hang(&self) -> Duration {
        self.plan.lock().unwrap_or_else(|e| e.into_inner()).0.hang
    }

    /// The fault for the next request, if any.
    pub fn next(&self) -> Option<Fault> {
        let f = self
            .scripted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
            .or_else(|| {
                let mut g = self.plan.lock().unwrap_or_else(|e| e.into_inner());
                let (plan, rng) = &mut *g;
                if plan.per_mille == 0 || rng.below(1000) >= u64::from(plan.per_mille) {
                    return None;
                }
                Some(Fault::ALL[rng.below(Fault::ALL.len() as u64) as usize])
            })?;
        self.counts[f.index()].fetch_add(1, Ordering::Relaxed);
        Some(f)
    }

    /// How many times each fault was injected.
    pub fn injected(&self) -> Vec<(Fault, u64)> {
        Fault::ALL
            .iter()
            .map(|f| (*f, self.counts[f.index()].load(Ordering::Relaxed)))
            .collect()
    }

    /// How many faults were injected in all.
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// amoCRM's limit: at most `limit` requests in any sliding `window`.
#[derive(Debug)]
pub struct SlidingWindow {
    limit: usize,
    window: Duration,
    times: VecDeque<Instant>,
}

impl SlidingWindow {
    /// A limit of `limit` requests per `window`.
    pub fn new(limit: usize, window: Duration) -> SlidingWindow {
        SlidingWindow {
            limit,
            window,
            times: VecDeque::new(),
        }
    }

    /// Count a request arriving now; false when it is over the limit (it is then not
    /// counted).
    pub fn admit(&mut self, now: Instant) -> bool {
        while let Some(t) = self.times.front() {
            if now.duration_since(*t) >= self.window {
                self.times.pop_front();
            } else {
                break;
            }
        }
        if self.times.len() >= self.limit {
            return false;
        }
        self.times.push_back(now);
        true
    }
}

/// Bitrix24's limit: a leaky bucket. Each request adds one; the bucket drains `per_sec`
/// a second; a request that would take it over `burst` is refused.
#[derive(Debug)]
pub struct LeakyBucket {
    burst: f64,
    per_sec: f64,
    level: f64,
    last: Option<Instant>,
}

impl LeakyBucket {
    /// A bucket of `burst` draining `per_sec`.
    pub fn new(burst: u32, per_sec: f64) -> LeakyBucket {
        LeakyBucket {
            burst: f64::from(burst),
            per_sec,
            level: 0.0,
            last: None,
        }
    }

    /// Count a request arriving now; false when it is refused.
    pub fn admit(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let drained = now.duration_since(last).as_secs_f64() * self.per_sec;
            self.level = (self.level - drained).max(0.0);
        }
        self.last = Some(now);
        if self.level + 1.0 > self.burst + 1e-9 {
            return false;
        }
        self.level += 1.0;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_window_refuses_the_eighth_request_in_a_second() {
        let t0 = Instant::now();
        let mut w = SlidingWindow::new(7, Duration::from_secs(1));
        for i in 0..7 {
            assert!(w.admit(t0 + Duration::from_millis(i * 10)));
        }
        assert!(!w.admit(t0 + Duration::from_millis(500)));
        assert!(w.admit(t0 + Duration::from_millis(1000)));
    }

    #[test]
    fn leaky_bucket_allows_a_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut b = LeakyBucket::new(50, 2.0);
        for _ in 0..50 {
            assert!(b.admit(t0));
        }
        assert!(!b.admit(t0));
        assert!(b.admit(t0 + Duration::from_millis(500)));
        assert!(!b.admit(t0 + Duration::from_millis(600)));
    }
}

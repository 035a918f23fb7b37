//! The sync worker: takes due items from the outbox, delivers them through an adapter,
//! and records what happened. It holds nothing the outbox does not: kill it at any point
//! and a new one carries on from the saved progress.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use crate::adapter::{Adapter, Checkpoint};
use crate::error::{CrmError, FailureNote};
use crate::http::Clock;
use crate::job::{Delivery, ItemId, Progress};
use crate::outbox::Outbox;
use crate::pace::RetrySchedule;
use crate::rng::Rng;

/// What one turn of the worker did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tick {
    /// Items taken from the outbox.
    pub claimed: usize,
    /// Items delivered.
    pub sent: usize,
    /// Items that failed and stay queued.
    pub failed: usize,
    /// Items skipped because their person was blocked or destroyed meanwhile.
    pub skipped: usize,
}

/// Saves progress through the outbox, writing only what changed.
struct OutboxCheckpoint<'a> {
    outbox: &'a mut dyn Outbox,
    saved: BTreeMap<ItemId, Progress>,
}

impl Checkpoint for OutboxCheckpoint<'_> {
    fn save(&mut self, items: &[Delivery]) -> Result<(), CrmError> {
        let changed: Vec<(ItemId, &Progress)> = items
            .iter()
            .filter(|d| self.saved.get(&d.id) != Some(&d.progress))
            .map(|d| (d.id, &d.progress))
            .collect();
        if changed.is_empty() {
            return Ok(());
        }
        self.outbox.save_progress(&changed)?;
        for (id, p) in changed {
            self.saved.insert(id, p.clone());
        }
        Ok(())
    }
}

/// The sync worker of one CRM connection.
#[derive(Debug)]
pub struct Worker {
    adapter: Box<dyn Adapter>,
    clock: Arc<dyn Clock>,
    schedule: RetrySchedule,
    rng: Rng,
    /// How long to sleep when nothing is due, in milliseconds.
    pub idle_ms: u64,
}

impl Worker {
    /// A worker delivering through `adapter`.
    pub fn new(
        adapter: Box<dyn Adapter>,
        clock: Arc<dyn Clock>,
        schedule: RetrySchedule,
        seed: u64,
    ) -> Worker {
        Worker {
            adapter,
            clock,
            schedule,
            rng: Rng::new(seed),
            idle_ms: 1_000,
        }
    }

    /// The adapter (for its counters).
    pub fn adapter(&self) -> &dyn Adapter {
        &*self.adapter
    }

    /// Deliver one batch of due items.
    pub fn tick(&mut self, outbox: &mut dyn Outbox) -> Result<Tick, CrmError> {
        let now = self.clock.now();
        let claimed = outbox.claim_due(now, self.adapter.batch_size())?;
        let mut tick = Tick {
            claimed: claimed.len(),
            ..Tick::default()
        };
        if claimed.is_empty() {
            return Ok(tick);
        }
        let ids: Vec<ItemId> = claimed.iter().map(|q| q.id).collect();
        let ok = outbox.still_sendable(&ids)?;
        let mut failures = BTreeMap::new();
        let mut items: Vec<Delivery> = Vec::new();
        for (q, ok) in claimed.into_iter().zip(ok) {
            if ok {
                failures.insert(q.id, q.failures);
                items.push(Delivery::new(q.id, q.job, q.progress));
            } else {
                tick.skipped += 1;
            }
        }
        let saved = items.iter().map(|d| (d.id, d.progress.clone())).collect();
        let mut cp = OutboxCheckpoint { outbox, saved };
        let result = self.adapter.deliver(&mut items, &mut cp);
        // Progress made before a failure is kept.
        let _ = cp.save(&items);
        let outbox = cp.outbox;
        let at = self.clock.now();
        for d in &items {
            let outcome = match (&d.outcome, &result) {
                (Some(o), _) => o.clone(),
                (None, Err(e)) => Err(e.clone()),
                (None, Ok(())) => Err(CrmError::Malformed {
                    crm: self.adapter.kind(),
                    detail: "the item was left undecided".into(),
                }),
            };
            match outcome {
                Ok(receipt) => {
                    outbox.mark_sent(d.id, at, &receipt)?;
                    tick.sent += 1;
                }
                Err(e) => {
                    let n = failures.get(&d.id).copied().unwrap_or(0) + 1;
                    let next = self
                        .schedule
                        .next_attempt(e.class(), n, at.0, &mut self.rng);
                    outbox.mark_failed(
                        d.id,
                        at,
                        &FailureNote::from(&e),
                        callhelper_script::Timestamp(next),
                    )?;
                    tick.failed += 1;
                }
            }
        }
        Ok(tick)
    }

    /// Deliver until `stop` is set, sleeping while nothing is due. `until_empty` also
    /// stops once nothing is queued at all.
    pub fn run(
        &mut self,
        outbox: &mut dyn Outbox,
        stop: &AtomicBool,
        until_empty: bool,
    ) -> Result<(), CrmError> {
        while !stop.load(Ordering::SeqCst) {
            let t = match self.tick(outbox) {
                Ok(t) => t,
                // The outbox itself failed: wait and try again; nothing was lost.
                Err(CrmError::Outbox { .. }) => {
                    self.clock.sleep_ms(self.idle_ms);
                    continue;
                }
                Err(e) => return Err(e),
            };
            if t.claimed > 0 {
                continue;
            }
            let Some(next) = outbox.next_due()? else {
                if until_empty {
                    return Ok(());
                }
                self.clock.sleep_ms(self.idle_ms);
                continue;
            };
            let wait = u64::try_from(next.0 - self.clock.now().0).unwrap_or(0);
            self.clock.sleep_ms(wait.clamp(1, self.idle_ms));
        }
        Ok(())
    }
}

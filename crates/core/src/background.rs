//! Work the app does by itself while it runs: delivering queued CRM work, renewing the
//! licence lease and destroying what outlived the retention period.
//!
//! [`Background::start`] registers the CRM planner on the store (so every finished run
//! queues its CRM work in the transaction that stores it), then runs one thread that
//! - delivers what is due in the outbox ([`crate::crm::sync`]) every
//!   [`Intervals::crm`], and at once when [`Background::nudge`] is called (a run
//!   finished, or the user pressed "retry now");
//! - asks the licence server ([`crate::licence::check`]) at start and every
//!   [`Intervals::licence`], so leases renew quietly and a revoked licence stops;
//! - applies the retention period ([`Store::apply_retention`], §2.1.4) every
//!   [`Intervals::retention`] (the store already applied it when it was opened), so data
//!   goes on time even when the app stays open for weeks.
//!
//! A CRM connected or changed while the app runs is picked up at the next round. What
//! happened is reported through a callback, in words for the user; nothing personal is
//! reported or logged. Dropping the value stops the thread (an unfinished delivery ends
//! its current batch first; the outbox keeps the rest).

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use callhelper_script::Text;
use callhelper_store::Store;
use serde::Serialize;

use crate::Error;
use crate::crm::{CrmKind, Planner};
use crate::paths::DataDir;

/// How often each kind of work runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intervals {
    /// Between two deliveries of the CRM outbox.
    pub crm: Duration,
    /// Between two licence checks.
    pub licence: Duration,
    /// Between two applications of the retention period.
    pub retention: Duration,
}

impl Default for Intervals {
    fn default() -> Intervals {
        Intervals {
            crm: Duration::from_secs(30),
            licence: Duration::from_secs(3600),
            retention: Duration::from_secs(24 * 3600),
        }
    }
}

/// What a round of background work did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Report {
    /// A CRM is connected: from now on finished runs queue their work for it.
    CrmAttached {
        /// Which CRM (`amocrm`, `bitrix24`, `webhook`).
        crm: &'static str,
    },
    /// A CRM delivery round that had work.
    Crm {
        /// Items delivered.
        sent: usize,
        /// Items that failed and stay queued (their messages are in the CRM status).
        failed: usize,
        /// Items skipped because their person was blocked or destroyed meanwhile.
        skipped: usize,
    },
    /// The CRM round could not run (settings unreadable, the CRM refused the credentials…).
    CrmProblem {
        /// What went wrong and what to do.
        message: Text,
    },
    /// A licence check.
    Licence {
        /// The state after the check (`demo`, `active`, `grace`, `expired`, `revoked`,
        /// `needs_server`).
        state: &'static str,
        /// Only the demo line may be used.
        demo: bool,
        /// Why the licence server could not be asked, when it could not.
        problem: Option<Text>,
    },
    /// The retention period ran out for some data, which was destroyed (counts only).
    Retention {
        /// Contacts destroyed.
        contacts: u64,
        /// Runs destroyed.
        runs: u64,
        /// Calls destroyed.
        calls: u64,
    },
    /// The retention period could not be applied; the next round tries again.
    RetentionProblem {
        /// What went wrong.
        message: Text,
    },
}

/// Where reports go.
pub type OnReport = Arc<dyn Fn(Report) + Send + Sync>;

#[derive(Debug, Default)]
struct Signal {
    stop: bool,
    nudged: bool,
}

/// The background worker; stops when dropped.
pub struct Background {
    signal: Arc<(Mutex<Signal>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Background {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Background").finish_non_exhaustive()
    }
}

/// The CRM planner registered on the store, and for which CRM.
struct Attached(Option<CrmKind>);

impl Attached {
    /// Register the planner for the connected CRM when it changed (and say so). Returns
    /// whether a CRM is connected.
    fn refresh(
        &mut self,
        data: &DataDir,
        store: &Store,
        report: &dyn Fn(Report),
    ) -> Result<bool, Error> {
        let kind = crate::crm::connection(data)?.map(|c| c.crm);
        if let Some(k) = kind.filter(|k| self.0 != Some(*k)) {
            store.set_crm_planner(Arc::new(Planner::new(k)));
            self.0 = Some(k);
            report(Report::CrmAttached { crm: k.id() });
        }
        Ok(kind.is_some())
    }
}

impl Background {
    /// Register the CRM planner (when a CRM is connected) and start the thread.
    pub fn start(
        data: DataDir,
        store: Arc<Store>,
        intervals: Intervals,
        report: OnReport,
    ) -> Background {
        let mut attached = Attached(None);
        if let Err(e) = attached.refresh(&data, &store, &*report) {
            report(Report::CrmProblem { message: e.message });
        }
        let signal = Arc::new((Mutex::new(Signal::default()), Condvar::new()));
        let theirs = signal.clone();
        let thread = std::thread::Builder::new()
            .name("callhelper-background".into())
            .spawn(move || work(&data, &store, intervals, &*report, &theirs, attached))
            .ok();
        if thread.is_none() {
            log::error!("background: the worker thread could not start");
        }
        Background { signal, thread }
    }

    /// Deliver the CRM outbox now rather than at the next round.
    pub fn nudge(&self) {
        let (lock, cv) = &*self.signal;
        lock.lock().unwrap_or_else(|e| e.into_inner()).nudged = true;
        cv.notify_all();
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let (lock, cv) = &*self.signal;
        lock.lock().unwrap_or_else(|e| e.into_inner()).stop = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn work(
    data: &DataDir,
    store: &Store,
    intervals: Intervals,
    report: &(dyn Fn(Report) + Send + Sync),
    signal: &(Mutex<Signal>, Condvar),
    mut attached: Attached,
) {
    let start = Instant::now();
    let (mut next_crm, mut next_licence) = (start, start);
    let mut next_retention = start + intervals.retention;
    loop {
        let nudged = {
            let (lock, cv) = signal;
            let mut s = lock.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                let now = Instant::now();
                let due = next_crm.min(next_licence).min(next_retention);
                if s.stop || s.nudged || now >= due {
                    break;
                }
                let wait = due - now;
                s = cv
                    .wait_timeout(s, wait)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            if s.stop {
                return;
            }
            std::mem::take(&mut s.nudged)
        };
        let now = Instant::now();
        if nudged || now >= next_crm {
            crm_round(data, store, &mut attached, report);
            next_crm = Instant::now() + intervals.crm;
        }
        if now >= next_licence {
            licence_round(data, report);
            next_licence = Instant::now() + intervals.licence;
        }
        if now >= next_retention {
            retention_round(store, report);
            next_retention = Instant::now() + intervals.retention;
        }
    }
}

fn retention_round(store: &Store, report: &dyn Fn(Report)) {
    match store.apply_retention(store.now()) {
        Ok(d) if d.contacts + d.runs + d.calls > 0 => report(Report::Retention {
            contacts: d.contacts,
            runs: d.runs,
            calls: d.calls,
        }),
        Ok(_) => {}
        Err(e) => {
            let e = Error::from(e);
            log::warn!("background: retention not applied: {}", e.code);
            report(Report::RetentionProblem { message: e.message });
        }
    }
}

fn crm_round(data: &DataDir, store: &Store, attached: &mut Attached, report: &dyn Fn(Report)) {
    match attached.refresh(data, store, report) {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => return report(Report::CrmProblem { message: e.message }),
    }
    match crate::crm::sync(data, store) {
        Ok(t) if t.claimed > 0 => report(Report::Crm {
            sent: t.sent,
            failed: t.failed,
            skipped: t.skipped,
        }),
        Ok(_) => {}
        Err(e) => {
            log::warn!("background: CRM delivery stopped: {}", e.code);
            report(Report::CrmProblem { message: e.message });
        }
    }
}

fn licence_round(data: &DataDir, report: &dyn Fn(Report)) {
    match crate::licence::check(data) {
        Ok(c) => report(Report::Licence {
            state: c.status.name(),
            demo: c.status.is_demo(),
            problem: c.problem.map(|e| e.message),
        }),
        Err(e) => {
            log::warn!("background: licence check failed: {}", e.code);
            report(Report::Licence {
                state: "needs_server",
                demo: true,
                problem: Some(e.message),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use callhelper_store::{DbKey, Unlock};

    use super::*;
    use crate::crm::tests::{connect_webhook, person, run_for};

    fn next(rx: &mpsc::Receiver<Report>, want: impl Fn(&Report) -> bool) -> Report {
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            let left = until.saturating_duration_since(Instant::now());
            let r = rx
                .recv_timeout(left)
                .expect("the background worker reports in time");
            if want(&r) {
                return r;
            }
        }
    }

    /// A data folder with a new store and its administrator, and reports collected in a
    /// channel.
    struct Setup {
        _tmp: tempfile::TempDir,
        dir: DataDir,
        store: Arc<Store>,
        s: callhelper_store::Session,
        on: OnReport,
        rx: mpsc::Receiver<Report>,
    }

    fn setup() -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::at(tmp.path());
        let key = Unlock::Key(DbKey::from_hex(&"cd".repeat(32)).unwrap());
        let store = Arc::new(Store::open(&tmp.path().join("callhelper.db"), &key).unwrap());
        let s = store.create_first_admin("admin", "admin-password").unwrap();
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let on: OnReport = Arc::new(move |r| {
            let _ = tx.lock().unwrap().send(r);
        });
        Setup {
            _tmp: tmp,
            dir,
            store,
            s,
            on,
            rx,
        }
    }

    /// Every kind of work an hour apart (none runs again within a test).
    const HOURLY: Intervals = Intervals {
        crm: Duration::from_secs(3600),
        licence: Duration::from_secs(3600),
        retention: Duration::from_secs(3600),
    };

    #[test]
    fn finished_runs_are_queued_and_delivered_and_the_licence_is_checked() {
        let Setup {
            _tmp,
            dir,
            store,
            s,
            on,
            rx,
        } = setup();
        let intervals = HOURLY;

        // No CRM yet: a run finished now queues nothing.
        let bg = Background::start(dir.clone(), store.clone(), intervals, on.clone());
        let lic = next(&rx, |r| matches!(r, Report::Licence { .. }));
        assert_eq!(
            lic,
            Report::Licence {
                state: "demo",
                demo: true,
                problem: None
            }
        );
        let a = person(&store, &s, "+79161112233");
        run_for(&store, &s, a, 1_770_000_000_000);
        assert_eq!(store.outbox().counts().unwrap().queued, 0);

        // The CRM is connected while the app runs: the next round picks it up, and from
        // then on finished runs are queued and delivered on a nudge.
        let server = connect_webhook(&dir);
        bg.nudge();
        let attached = next(&rx, |r| matches!(r, Report::CrmAttached { .. }));
        assert_eq!(attached, Report::CrmAttached { crm: "webhook" });
        let b = person(&store, &s, "+79162223344");
        let rb = run_for(&store, &s, b, 1_770_000_100_000);
        assert_eq!(store.outbox().counts().unwrap().queued, 1);
        bg.nudge();
        let sent = next(&rx, |r| matches!(r, Report::Crm { .. }));
        assert_eq!(
            sent,
            Report::Crm {
                sent: 1,
                failed: 0,
                skipped: 0
            }
        );
        let got = server.fake.deliveries();
        assert!(
            got.contains_key(&format!("ch-run-{rb}")),
            "{:?}",
            got.keys()
        );

        // The CRM refuses everything: the round reports a failure, the work stays queued.
        server.fake.reject_all(Some((422, "contact is archived")));
        run_for(&store, &s, b, 1_770_000_200_000);
        bg.nudge();
        let failed = next(&rx, |r| matches!(r, Report::Crm { .. }));
        assert_eq!(
            failed,
            Report::Crm {
                sent: 0,
                failed: 1,
                skipped: 0
            }
        );
        assert_eq!(store.outbox().counts().unwrap().queued, 1);

        // Stopping is prompt even with hour-long intervals.
        let t = Instant::now();
        drop(bg);
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn the_retention_period_is_applied_while_the_app_runs() {
        let Setup {
            _tmp,
            dir,
            store,
            s,
            on,
            rx,
        } = setup();
        let intervals = Intervals {
            retention: Duration::from_millis(300),
            ..HOURLY
        };
        // A run from February and one from today; no period set yet: nothing goes.
        let a = person(&store, &s, "+79161112233");
        let old = run_for(&store, &s, a, 1_770_000_000_000);
        let new = run_for(&store, &s, a, store.now().0);
        let bg = Background::start(dir, store.clone(), intervals, on);
        std::thread::sleep(Duration::from_millis(800));
        assert!(
            !rx.try_iter().any(|r| matches!(r, Report::Retention { .. })),
            "no period, nothing destroyed"
        );
        assert_eq!(store.destructions(&s).unwrap().len(), 0);

        // A 30-day period set while the app runs: the next round destroys the old run and
        // keeps today's (and the person, who has a run left).
        store.set_setting(&s, "retention_days", "30").unwrap();
        let done = next(&rx, |r| matches!(r, Report::Retention { .. }));
        assert_eq!(
            done,
            Report::Retention {
                contacts: 0,
                runs: 1,
                calls: 0
            }
        );
        let id = |n: i64| callhelper_store::runs::RunId(n);
        assert!(store.run(&s, id(old)).is_err(), "the old run is gone");
        assert!(store.run(&s, id(new)).is_ok(), "today's run stays");
        assert!(
            store
                .contact_by_phone(&s, "+79161112233")
                .unwrap()
                .is_some()
        );
        let records = store.destructions(&s).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].reason, "retention");
        drop(bg);
    }
}

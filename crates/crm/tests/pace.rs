//! The pure core: a CRM answering 429 three times, backoff, the retry schedule.

use callhelper_crm::pace::{Backoff, FailureClass, Pace, Pacer, RateLimit, RetrySchedule};
use callhelper_crm::rng::Rng;

/// The time the pacer lets a request go, from `now`.
fn send_at(p: &mut Pacer, mut now: u64) -> u64 {
    loop {
        match p.before_send(now) {
            Pace::Send => return now,
            Pace::Wait(w) => now += w,
            Pace::GiveUp => panic!("gave up"),
        }
    }
}

#[test]
fn a_crm_answering_429_three_times_is_waited_out_then_paced() {
    let mut p = Pacer::new(
        RateLimit::AMOCRM,
        Backoff {
            base_ms: 1000,
            max_ms: 60_000,
        },
        6,
        true,
    );
    let mut rng = Rng::new(42);
    let mut now = 0u64;
    let mut waits = Vec::new();
    // Three refusals, the second with Retry-After: 5 s.
    for retry_after in [None, Some(5_000), None] {
        now = send_at(&mut p, now);
        match p.refused(now, retry_after, &mut rng) {
            Pace::Wait(w) => {
                waits.push(w);
                // Nothing may go before the wait is over.
                assert!(matches!(p.before_send(now + w - 1), Pace::Wait(_)));
                now += w;
            }
            other => panic!("expected a wait, got {other:?}"),
        }
    }
    // Backoff with equal jitter: [500, 1000], Retry-After wins over [1000, 2000], [2000, 4000].
    assert!((500..=1000).contains(&waits[0]), "{waits:?}");
    assert_eq!(waits[1], 5_000);
    assert!((2000..=4000).contains(&waits[2]), "{waits:?}");
    // The fourth attempt goes once a token is back (1/6 s), and the streak ends.
    assert_eq!(send_at(&mut p, now) - now, 167);
    p.answered();
    // Same seed, same waits: the scenario is deterministic.
    let mut p2 = Pacer::new(
        RateLimit::AMOCRM,
        Backoff {
            base_ms: 1000,
            max_ms: 60_000,
        },
        6,
        true,
    );
    let mut rng2 = Rng::new(42);
    let mut again = Vec::new();
    let mut t = 0;
    for retry_after in [None, Some(5_000), None] {
        t = send_at(&mut p2, t);
        if let Pace::Wait(w) = p2.refused(t, retry_after, &mut rng2) {
            again.push(w);
            t += w;
        }
    }
    assert_eq!(waits, again);
}

#[test]
fn refusals_past_the_limit_give_up_and_reschedule() {
    let mut p = Pacer::new(
        RateLimit::BITRIX24,
        Backoff {
            base_ms: 100,
            max_ms: 1000,
        },
        2,
        true,
    );
    let mut rng = Rng::new(1);
    assert!(matches!(p.refused(0, None, &mut rng), Pace::Wait(_)));
    assert!(matches!(p.refused(0, None, &mut rng), Pace::Wait(_)));
    assert_eq!(p.refused(0, None, &mut rng), Pace::GiveUp);
}

#[test]
fn the_amocrm_pace_never_puts_seven_requests_in_a_second() {
    let mut p = Pacer::new(
        RateLimit::AMOCRM,
        Backoff {
            base_ms: 1000,
            max_ms: 1000,
        },
        1,
        false,
    );
    let mut sent = Vec::new();
    let mut now = 0u64;
    while sent.len() < 200 {
        match p.before_send(now) {
            Pace::Send => sent.push(now),
            Pace::Wait(w) => now += w,
            Pace::GiveUp => unreachable!(),
        }
    }
    for w in sent.windows(7) {
        assert!(w[6] - w[0] >= 1000, "7 requests within a second: {w:?}");
    }
}

#[test]
fn the_bitrix_pace_stays_under_a_burst_of_50_then_2_a_second() {
    // Simulate Bitrix24's leaky bucket against our pacer over 10 minutes.
    let mut p = Pacer::new(
        RateLimit::BITRIX24,
        Backoff {
            base_ms: 1000,
            max_ms: 1000,
        },
        1,
        true,
    );
    let (mut level, mut last, mut now, mut sent) = (0.0f64, 0u64, 0u64, 0);
    while now < 600_000 {
        match p.before_send(now) {
            Pace::Send => {
                level = (level - (now - last) as f64 / 1000.0 * 2.0).max(0.0) + 1.0;
                last = now;
                assert!(level <= 50.0, "bucket over 50 at {now} ms");
                sent += 1;
            }
            Pace::Wait(w) => now += w,
            Pace::GiveUp => unreachable!(),
        }
    }
    assert!(sent > 1000, "too slow: {sent}");
}

#[test]
fn failed_items_are_never_dropped_even_after_days() {
    let s = RetrySchedule::default();
    let mut rng = Rng::new(3);
    let now = 1_700_000_000_000i64;
    let mut t = now;
    for n in 1..=500 {
        let next = s.next_attempt(FailureClass::Transient, n, t, &mut rng);
        assert!(next > t && next - t <= 15 * 60_000);
        t = next;
    }
    // 500 failures span days, and the item is still scheduled.
    assert!(t - now > 24 * 3_600_000);
    let later = s.next_attempt(FailureClass::NeedsUser, 1, now, &mut rng);
    assert!((15 * 60_000..=30 * 60_000).contains(&(later - now)));
}

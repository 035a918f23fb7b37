//! `status::evaluate`: every state and the clock-rollback rules, at chosen times.

use callhelper_licence::status::{ClockRecord, ROLLBACK_TOLERANCE, Stored, evaluate};
use callhelper_licence::time::DAY;
use callhelper_licence::{
    Lease, LeaseError, Licence, LicenceId, LicenceKey, Machine, NeedsServer, SecretKey, Status,
    Trust,
};

const ISSUED: u64 = 1_800_000_000;
const EXPIRES: u64 = ISSUED + 365 * DAY;
const LEASE_AT: u64 = ISSUED + 10 * DAY;

struct World {
    key: LicenceKey,
    lease: Lease,
    machine: Machine,
}

fn world() -> World {
    let sk = SecretKey::from_seed(&[9; 32]);
    let trust = Trust::new([sk.public()]);
    let licence = Licence {
        id: LicenceId::from_random([4; 16]),
        customer: "Test Customer".into(),
        seats: 5,
        features: vec!["crm".into()],
        issued: ISSUED,
        expires: EXPIRES,
    };
    let key = LicenceKey::parse(&LicenceKey::issue(&licence, &sk).unwrap(), &trust).unwrap();
    let machine = Machine::from_machine_id("status-test-machine");
    let lease = Lease {
        licence: licence.id.clone(),
        machine: machine.hash().clone(),
        seat: 3,
        issued: LEASE_AT,
        renew_after: LEASE_AT + DAY,
        valid_until: LEASE_AT + 14 * DAY,
    };
    World {
        key,
        lease,
        machine,
    }
}

fn stored(w: &World, highest_seen: u64) -> Stored {
    Stored {
        key: Some(Ok(w.key.clone())),
        lease: Some(Ok(w.lease.clone())),
        clock: ClockRecord::Valid {
            highest_seen,
            revoked: false,
        },
    }
}

fn status_at(s: &Stored, w: &World, now: u64) -> Status {
    evaluate(s, w.machine.hash(), now).status
}

#[test]
fn demo_without_a_key() {
    let w = world();
    let s = Stored {
        key: None,
        lease: Some(Ok(w.lease.clone())),
        clock: ClockRecord::Missing,
    };
    let ev = evaluate(&s, w.machine.hash(), LEASE_AT);
    assert_eq!(ev.status, Status::Demo);
    assert_eq!(ev.remember, None);
    assert!(ev.status.is_demo() && !ev.status.wants_server());
}

#[test]
fn active_then_grace_then_lease_ended() {
    let w = world();
    let s = stored(&w, LEASE_AT);
    let active = status_at(&s, &w, LEASE_AT + 10);
    let Status::Active(l) = &active else {
        panic!("{active:?}")
    };
    assert_eq!((l.seat, l.lease_until), (3, LEASE_AT + 14 * DAY));
    assert!(!active.wants_server());
    // Renewal due and not done: offline grace, still licensed.
    let grace = status_at(&s, &w, LEASE_AT + DAY);
    assert!(matches!(grace, Status::Grace(_)) && !grace.is_demo() && grace.wants_server());
    assert!(matches!(
        status_at(&s, &w, LEASE_AT + 14 * DAY - 1),
        Status::Grace(_)
    ));
    // The lease ends: demo mode until the server is reached.
    let ended = status_at(&s, &w, LEASE_AT + 14 * DAY);
    assert_eq!(
        ended,
        Status::NeedsServer {
            licence: Some(w.key.licence().clone()),
            reason: NeedsServer::LeaseEnded {
                at: LEASE_AT + 14 * DAY
            }
        }
    );
    assert!(ended.is_demo() && ended.wants_server());
}

#[test]
fn highest_time_only_moves_forward() {
    let w = world();
    let s = stored(&w, LEASE_AT + 5 * DAY);
    assert_eq!(
        evaluate(&s, w.machine.hash(), LEASE_AT + 6 * DAY).remember,
        Some(LEASE_AT + 6 * DAY)
    );
    assert_eq!(
        evaluate(&s, w.machine.hash(), LEASE_AT + 5 * DAY).remember,
        None
    );
    assert_eq!(
        evaluate(&s, w.machine.hash(), LEASE_AT + 4 * DAY + 1).remember,
        None
    );
    // Small steps are not written (no disk write on every status question).
    let step = callhelper_licence::status::REMEMBER_STEP;
    let base = LEASE_AT + 5 * DAY;
    assert_eq!(
        evaluate(&s, w.machine.hash(), base + step - 1).remember,
        None
    );
    assert_eq!(
        evaluate(&s, w.machine.hash(), base + step).remember,
        Some(base + step)
    );
    // A broken record is never healed locally.
    let mut broken = stored(&w, 0);
    broken.clock = ClockRecord::Invalid;
    assert_eq!(
        evaluate(&broken, w.machine.hash(), LEASE_AT + DAY).remember,
        None
    );
}

#[test]
fn clock_rollback_by_more_than_a_day_needs_the_server() {
    let w = world();
    let seen = LEASE_AT + 5 * DAY;
    let s = stored(&w, seen);
    // Exactly the tolerance back: still fine.
    assert!(matches!(
        status_at(&s, &w, seen - ROLLBACK_TOLERANCE),
        Status::Grace(_)
    ));
    let back = status_at(&s, &w, seen - ROLLBACK_TOLERANCE - 1);
    assert_eq!(
        back,
        Status::NeedsServer {
            licence: Some(w.key.licence().clone()),
            reason: NeedsServer::ClockBehind {
                now: seen - ROLLBACK_TOLERANCE - 1,
                highest_seen: seen
            }
        }
    );
    assert!(back.is_demo() && back.wants_server());
    // Rolled back to before the lease was issued: caught even with no record at all,
    // because the lease's issue time (the server's clock, signed) is a floor.
    let mut no_record = stored(&w, 0);
    no_record.clock = ClockRecord::Missing;
    assert!(matches!(
        status_at(&no_record, &w, LEASE_AT - 2 * DAY),
        Status::NeedsServer {
            reason: NeedsServer::ClockBehind {
                highest_seen: LEASE_AT,
                ..
            },
            ..
        }
    ));
    // So is the key's issue time.
    let mut no_lease = stored(&w, 0);
    no_lease.lease = None;
    assert!(matches!(
        status_at(&no_lease, &w, ISSUED - 2 * DAY),
        Status::NeedsServer {
            reason: NeedsServer::ClockBehind {
                highest_seen: ISSUED,
                ..
            },
            ..
        }
    ));
}

#[test]
fn missing_or_altered_record_stops_work() {
    let w = world();
    for clock in [ClockRecord::Missing, ClockRecord::Invalid] {
        let mut s = stored(&w, 0);
        s.clock = clock;
        let st = status_at(&s, &w, LEASE_AT + 10);
        assert!(
            matches!(
                st,
                Status::NeedsServer {
                    reason: NeedsServer::StateInvalid,
                    ..
                }
            ),
            "{clock:?}: {st:?}"
        );
    }
}

#[test]
fn expired_revoked_and_bad_documents() {
    let w = world();
    let s = stored(&w, LEASE_AT);
    assert!(matches!(status_at(&s, &w, EXPIRES), Status::Expired { .. }));
    assert!(!status_at(&s, &w, EXPIRES).wants_server());
    let mut revoked = stored(&w, LEASE_AT);
    revoked.clock = ClockRecord::Valid {
        highest_seen: LEASE_AT,
        revoked: true,
    };
    assert!(matches!(
        status_at(&revoked, &w, LEASE_AT + 10),
        Status::Revoked { .. }
    ));

    let mut no_lease = stored(&w, LEASE_AT);
    no_lease.lease = None;
    assert!(matches!(
        status_at(&no_lease, &w, LEASE_AT),
        Status::NeedsServer {
            reason: NeedsServer::NotActivated,
            ..
        }
    ));
    let mut bad_lease = stored(&w, LEASE_AT);
    bad_lease.lease = Some(Err(LeaseError::BadSignature));
    assert!(matches!(
        status_at(&bad_lease, &w, LEASE_AT),
        Status::NeedsServer {
            reason: NeedsServer::LeaseInvalid,
            ..
        }
    ));
    // A lease for another computer (copied folder) or another licence.
    let other = Machine::from_machine_id("someone-else");
    assert!(matches!(
        evaluate(&s, other.hash(), LEASE_AT).status,
        Status::NeedsServer {
            reason: NeedsServer::LeaseInvalid,
            ..
        }
    ));
    let mut other_licence = stored(&w, LEASE_AT);
    let mut l = w.lease.clone();
    l.licence = LicenceId::from_random([5; 16]);
    other_licence.lease = Some(Ok(l));
    assert!(matches!(
        status_at(&other_licence, &w, LEASE_AT),
        Status::NeedsServer {
            reason: NeedsServer::LeaseInvalid,
            ..
        }
    ));
    let mut bad_key = stored(&w, LEASE_AT);
    bad_key.key = Some(Err(callhelper_licence::KeyError::BadSignature));
    let st = status_at(&bad_key, &w, LEASE_AT);
    assert_eq!(
        st,
        Status::NeedsServer {
            licence: None,
            reason: NeedsServer::KeyInvalid
        }
    );
    assert!(!st.wants_server());
}

#[test]
fn status_serialises_with_a_stable_tag() {
    let w = world();
    let st = status_at(&stored(&w, LEASE_AT), &w, LEASE_AT + 1);
    let v = serde_json::to_value(&st).unwrap();
    assert_eq!(v["state"], "active");
    assert_eq!(v["seat"], 3);
    assert_eq!(st.name(), "active");
    let v = serde_json::to_value(status_at(&stored(&w, LEASE_AT + 9 * DAY), &w, LEASE_AT)).unwrap();
    assert_eq!(
        (v["state"].as_str(), v["reason"].as_str()),
        (Some("needs_server"), Some("clock_behind"))
    );
}

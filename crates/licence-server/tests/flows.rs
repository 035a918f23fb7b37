//! The licence lifecycle against the real server process.

use std::time::Duration;

use callhelper_licence::status::NeedsServer;
use callhelper_licence::store::StoredFile;
use callhelper_licence::time::{DAY, now};
use callhelper_licence::{Deactivated, Error, Status};

use crate::common::{App, Vendor};

fn licensed(st: &Status) -> &callhelper_licence::Licensed {
    st.licensed()
        .unwrap_or_else(|| panic!("not licensed: {st:?}"))
}

#[test]
fn issue_activate_use_renew() {
    let vendor = Vendor::new("use");
    let key = vendor.issue("ACME Ltd", 3);
    let server = vendor.serve(&[]);
    let app = App::new(&vendor, "machine-use-1");
    let t = now();

    assert_eq!(app.licensing().status(t).unwrap(), Status::Demo);
    let st = app.licensing().activate(&server.client(), &key, t).unwrap();
    let l = licensed(&st);
    assert!(matches!(st, Status::Active(_)));
    assert_eq!(l.licence.customer, "ACME Ltd");
    assert_eq!(l.licence.seats, 3);
    assert!(l.licence.has_feature("crm"));
    assert_eq!(l.seat, 1);
    // Default terms: renew after a day, lease for 14 days.
    assert!(
        (t + DAY - 5..=t + DAY + 5).contains(&l.renew_after),
        "{l:?}"
    );
    assert!((t + 14 * DAY - 5..=t + 14 * DAY + 5).contains(&l.lease_until));

    // Using it: a later run of the app reads the status offline.
    assert!(matches!(
        app.licensing().status(t + 3600).unwrap(),
        Status::Active(_)
    ));
    // Renewal is not due yet: refresh does not call the server.
    let r = app.licensing().refresh(&server.client(), t + 3600).unwrap();
    assert!(!r.contacted);
    // Past renew_after it renews quietly and keeps the seat.
    let r = app
        .licensing()
        .refresh(&server.client(), t + DAY + 10)
        .unwrap();
    assert!(r.contacted && r.error.is_none(), "{r:?}");
    assert_eq!(licensed(&r.status).seat, 1);
    let acts = vendor.activations(&key);
    assert_eq!(acts.len(), 1);
    assert_eq!(acts[0]["machine"], app.machine.hash().as_str());
    assert_eq!(acts[0]["state"], "live");
    // The admin list shows the seat in use.
    assert!(vendor.admin(&["list"]).contains("1/3"));
}

#[test]
fn seats_exhausted_then_deactivation_frees_a_seat() {
    let vendor = Vendor::new("seats");
    let key = vendor.issue("Two Seats LLC", 2);
    let server = vendor.serve(&[]);
    let c = server.client();
    let t = now();
    let a = App::new(&vendor, "seat-a");
    let b = App::new(&vendor, "seat-b");
    let z = App::new(&vendor, "seat-c");
    assert_eq!(
        licensed(&a.licensing().activate(&c, &key, t).unwrap()).seat,
        1
    );
    assert_eq!(
        licensed(&b.licensing().activate(&c, &key, t).unwrap()).seat,
        2
    );
    // Activating again on a computer that holds a seat keeps that seat.
    assert_eq!(
        licensed(&a.licensing().activate(&c, &key, t).unwrap()).seat,
        1
    );

    match z.licensing().activate(&c, &key, t) {
        Err(Error::SeatsExhausted { seats: 2 }) => {}
        other => panic!("expected seats exhausted, got {other:?}"),
    }
    assert_eq!(
        z.licensing().status(t).unwrap(),
        Status::Demo,
        "nothing stored on refusal"
    );

    assert_eq!(
        a.licensing().deactivate(Some(&c), false).unwrap(),
        Deactivated::SeatFreed
    );
    assert_eq!(a.licensing().status(t).unwrap(), Status::Demo);
    assert_eq!(vendor.activations(&key).len(), 1);
    // The freed seat goes to the third computer.
    assert_eq!(
        licensed(&z.licensing().activate(&c, &key, t).unwrap()).seat,
        1
    );
    // Deactivating twice: the second time there is nothing to deactivate.
    assert!(matches!(
        a.licensing().deactivate(Some(&c), false),
        Err(Error::NotActivated)
    ));
}

#[test]
fn revoked_licence_stops_at_next_renewal() {
    let vendor = Vendor::new("revoke");
    let key = vendor.issue("Revoked Inc", 5);
    let id = vendor.parse(&key).licence().id.to_string();
    let server = vendor.serve(&[]);
    let app = App::new(&vendor, "revoke-1");
    let t = now();
    app.licensing().activate(&server.client(), &key, t).unwrap();

    vendor.admin(&["revoke", &id]);
    assert!(vendor.admin(&["list"]).contains("revoked"));
    // Until the next renewal the lease stands (offline decisions cannot know).
    assert!(matches!(
        app.licensing().status(t + 60).unwrap(),
        Status::Active(_)
    ));
    let r = app
        .licensing()
        .refresh(&server.client(), t + DAY + 1)
        .unwrap();
    assert!(matches!(r.error, Some(Error::Revoked)), "{r:?}");
    assert!(matches!(r.status, Status::Revoked { .. }), "{:?}", r.status);
    assert!(r.status.is_demo());
    // It stays revoked offline, and new activations are refused.
    assert!(matches!(
        app.licensing().status(t + DAY + 2).unwrap(),
        Status::Revoked { .. }
    ));
    let other = App::new(&vendor, "revoke-2");
    assert!(matches!(
        other.licensing().activate(&server.client(), &key, t),
        Err(Error::Revoked)
    ));
    // Revoking an unknown licence is an error for the admin.
    assert!(
        vendor
            .admin_fails(&["revoke", "AAAAAAAAAAAAAAAAAAAAAAAAAA"])
            .contains("no licence")
    );
}

#[test]
fn lease_survives_a_server_outage_until_it_ends() {
    let vendor = Vendor::new("outage");
    let key = vendor.issue("Offline GmbH", 1);
    let server = vendor.serve(&[]);
    let url = server.url.clone();
    let app = App::new(&vendor, "outage-1");
    let t = now();
    let l = licensed(&app.licensing().activate(&server.client(), &key, t).unwrap()).clone();
    server.stop();

    let client = callhelper_licence::Client::new(&url).unwrap();
    // Renewal due, server gone: offline grace, with the reason reported.
    let r = app.licensing().refresh(&client, l.renew_after + 1).unwrap();
    assert!(r.contacted);
    assert!(matches!(r.error, Some(Error::Unreachable { .. })), "{r:?}");
    assert!(matches!(r.status, Status::Grace(_)), "{:?}", r.status);
    // Still working the second before the lease ends...
    let r = app.licensing().refresh(&client, l.lease_until - 1).unwrap();
    assert!(matches!(r.status, Status::Grace(_)));
    assert!(!r.status.is_demo());
    // ...and stopped when it ends.
    let r = app.licensing().refresh(&client, l.lease_until).unwrap();
    assert_eq!(
        r.status,
        Status::NeedsServer {
            licence: Some(l.licence.clone()),
            reason: NeedsServer::LeaseEnded { at: l.lease_until }
        }
    );
    assert!(r.status.is_demo());

    // The server comes back (same database): the next check renews, at the real time.
    let server = vendor.serve(&[]);
    let r = app.licensing().refresh(&server.client(), now()).unwrap();
    // The local clock record saw lease_until; real time is 14 days earlier, so the
    // record says the clock went back. The server's answer resets the record...
    assert!(r.contacted);
    assert!(
        matches!(r.status, Status::Active(_)),
        "{:?} {:?}",
        r.status,
        r.error
    );
}

#[test]
fn rolled_back_clock_is_caught() {
    let vendor = Vendor::new("clock");
    let key = vendor.issue("Clock Co", 1);
    let server = vendor.serve(&[]);
    let app = App::new(&vendor, "clock-1");
    let t = now();
    app.licensing().activate(&server.client(), &key, t).unwrap();
    // Seen five days later: remembered.
    assert!(matches!(
        app.licensing().status(t + 5 * DAY).unwrap(),
        Status::Grace(_)
    ));
    // Back to three days later: more than a day behind the highest time seen.
    match app.licensing().status(t + 3 * DAY).unwrap() {
        Status::NeedsServer {
            reason: NeedsServer::ClockBehind { now, highest_seen },
            ..
        } => assert_eq!((now, highest_seen), (t + 3 * DAY, t + 5 * DAY)),
        other => panic!("rollback not caught: {other:?}"),
    }
    // Within a day back is tolerated (time zones, small fixes).
    assert!(matches!(
        app.licensing().status(t + 4 * DAY + 1).unwrap(),
        Status::Grace(_)
    ));

    // Deleting the clock record does not reset it: work stops until the server answers.
    std::fs::remove_file(app.dir.file(StoredFile::Clock)).unwrap();
    assert!(matches!(
        app.licensing().status(t + 3 * DAY).unwrap(),
        Status::NeedsServer {
            reason: NeedsServer::StateInvalid,
            ..
        }
    ));
    // Even without the record, the lease's server-signed issue time is a floor.
    assert!(matches!(
        app.licensing().status(t - 2 * DAY).unwrap(),
        Status::NeedsServer {
            reason: NeedsServer::ClockBehind { .. },
            ..
        }
    ));
    // The server vouches for the time again.
    let r = app.licensing().refresh(&server.client(), t + 60).unwrap();
    assert!(matches!(r.status, Status::Active(_)), "{r:?}");

    // Hand-editing the record (a lower highest time) breaks its MAC.
    app.licensing().status(t + 5 * DAY).unwrap();
    let path = app.dir.file(StoredFile::Clock);
    let text = std::fs::read_to_string(&path).unwrap();
    let edited = text.replace(&(t + 5 * DAY).to_string(), &t.to_string());
    assert_ne!(edited, text);
    std::fs::write(&path, edited).unwrap();
    assert!(matches!(
        app.licensing().status(t + 60).unwrap(),
        Status::NeedsServer {
            reason: NeedsServer::StateInvalid,
            ..
        }
    ));
    // A record copied from another computer is refused the same way.
    let other = App::new(&vendor, "clock-2");
    other
        .licensing()
        .activate(&server.client(), &key, t)
        .unwrap_err();
    std::fs::copy(&path, other.dir.file(StoredFile::Clock)).unwrap();
    std::fs::copy(
        app.dir.file(StoredFile::Key),
        other.dir.file(StoredFile::Key),
    )
    .unwrap();
    std::fs::copy(
        app.dir.file(StoredFile::Lease),
        other.dir.file(StoredFile::Lease),
    )
    .unwrap();
    assert!(matches!(
        other.licensing().status(t + 60).unwrap(),
        Status::NeedsServer {
            reason: NeedsServer::LeaseInvalid,
            ..
        }
    ));
}

#[test]
fn expired_leases_are_reclaimed() {
    let vendor = Vendor::new("reclaim");
    let key = vendor.issue("Short Leases", 1);
    let server = vendor.serve(&["--lease-seconds", "2", "--renew-seconds", "1"]);
    let a = App::new(&vendor, "reclaim-a");
    let b = App::new(&vendor, "reclaim-b");
    let t = now();
    let l = licensed(&a.licensing().activate(&server.client(), &key, t).unwrap()).clone();
    assert!(l.lease_until <= t + 3);
    assert!(matches!(
        b.licensing().activate(&server.client(), &key, t),
        Err(Error::SeatsExhausted { .. })
    ));
    std::thread::sleep(Duration::from_millis(3100));
    // A's lease ended without renewal: its seat goes to B.
    let st = b
        .licensing()
        .activate(&server.client(), &key, now())
        .unwrap();
    assert_eq!(licensed(&st).seat, 1);
    let acts = vendor.activations(&key);
    assert_eq!(acts.len(), 1);
    assert_eq!(acts[0]["machine"], b.machine.hash().as_str());
    // A, back online, finds the seat taken.
    let r = a.licensing().refresh(&server.client(), now()).unwrap();
    assert!(
        matches!(r.error, Some(Error::SeatsExhausted { seats: 1 })),
        "{r:?}"
    );
    assert!(r.status.is_demo());
}

#[test]
fn concurrent_activations_never_exceed_the_seats() {
    let vendor = Vendor::new("race");
    let key = vendor.issue("Race Condition Ltd", 10);
    let server = vendor.serve(&["--rate", "100000", "--burst", "100000"]);
    let parsed = vendor.parse(&key);
    let trust = vendor.trust();
    let results: Vec<Result<u32, Error>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..40)
            .map(|i| {
                let (client, parsed, trust) = (server.client(), &parsed, &trust);
                s.spawn(move || {
                    let m = callhelper_licence::Machine::from_machine_id(&format!("race-{i}"));
                    client
                        .activate(parsed, &m, trust)
                        .map(|(_, lease)| lease.seat)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut seats: Vec<u32> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().copied())
        .collect();
    seats.sort();
    assert_eq!(
        seats,
        (1..=10).collect::<Vec<_>>(),
        "each seat given exactly once"
    );
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(Error::SeatsExhausted { seats: 10 })))
        .count();
    assert_eq!(refused, 30, "{results:?}");
    assert_eq!(vendor.activations(&key).len(), 10);
}

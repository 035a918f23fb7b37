//! Through a real Kamailio registrar with digest auth: registration over UDP, TCP and TLS,
//! the clear errors (wrong password, blocked account, silent registrar), re-registration,
//! and calls to a registered baresip with audio both ways and DTMF checked on its side.

use std::time::Duration;

use callhelper_phone::{
    AudioIo, CallOptions, CallState, DtmfMethod, Event, PhoneConfig, RegistrationFailure,
    RegistrationState, Tls, Transport,
};

use crate::support::audio::{check_speech, check_tone, speech, write_tone};
use crate::support::sip_peers::{account, baresip, kamailio};
use crate::support::{Party, SEC, Scratch, loopback_config};

/// Our engine with `accounts` set up, playing a tone and recording what it hears.
fn agent(dir: &Scratch, configure: impl FnOnce(&mut PhoneConfig)) -> Party {
    let tone = write_tone(&dir.join("tone.wav"), 440.0, 5.0);
    let audio = AudioIo::Files {
        play: Some(tone),
        speaker: Some(dir.join("heard.wav")),
    };
    let mut config = loopback_config(&dir.join("agent"), audio);
    configure(&mut config);
    Party::start("agent", config)
}

/// The next settled registration state of `name` (see [`settled`]).
fn registration_of(
    p: &mut Party,
    name: &str,
    timeout: Duration,
) -> (RegistrationState, Option<u16>) {
    p.wait("registration", timeout, |e| match e {
        Event::Registration {
            account,
            state,
            sip_code,
        } if account == name && settled(state) => Some((state.clone(), *sip_code)),
        _ => None,
    })
}

/// A state that ends an attempt (not "in progress", not "down while the network changes").
fn settled(state: &RegistrationState) -> bool {
    !matches!(state, RegistrationState::Progress | RegistrationState::None)
}

const USERS: &[(&str, &str)] = &[
    ("agent", "agent-pass"),
    ("bob", "bob-pass"),
    ("blocked", "x"),
];

#[test]
fn register_then_call_a_registered_baresip_with_audio_and_dtmf() {
    let dir = Scratch::new("kamailio-call");
    let reg = kamailio(&dir, USERS, false);
    let mut bob = baresip(&dir, &reg, "bob", "bob-pass", &speech());
    let mut me = agent(&dir, |c| {
        c.accounts.push(account(
            &reg.addr(Transport::Udp),
            "work",
            "agent",
            "agent-pass",
            Transport::Udp,
        ))
    });
    assert_eq!(
        registration_of(&mut me, "work", 10 * SEC).0,
        RegistrationState::Ok
    );

    // "bob" alone is dialled at the account's domain and routed by the registrar.
    let call = me
        .phone
        .call(
            "bob",
            CallOptions {
                account: Some("work".into()),
                ..Default::default()
            },
        )
        .unwrap();
    me.wait_state(call, |s| *s == CallState::Connected, 10 * SEC);
    std::thread::sleep(2 * SEC);
    me.phone
        .send_dtmf(call, "159#", Some(DtmfMethod::Rfc4733))
        .unwrap();
    std::thread::sleep(3 * SEC);
    me.phone.hang_up(call).unwrap();
    me.wait_state(call, |s| s.is_ended(), 5 * SEC);

    let log = bob.peer.output();
    // baresip -v logs each RFC 4733 event: "received event: '5' (end=1)" when the key is let go.
    let digits: String = log
        .lines()
        .filter(|l| l.ends_with("(end=1)"))
        .filter_map(|l| {
            l.split("received event: '")
                .nth(1)
                .and_then(|r| r.chars().next())
        })
        .collect();
    assert_eq!(digits, "159#", "baresip log:\n{}", bob.peer.tail());
    // Audio both ways: our tone in baresip's recording, its speech in ours.
    check_tone(&bob.heard(), 440.0).unwrap();
    drop(me);
    check_speech(&dir.join("heard.wav")).unwrap();
    bob.peer.wait_output("terminated", 2 * SEC);
}

/// Register `user` with `password` at a fresh Kamailio; the settled outcome.
fn register_as(name: &str, user: &str, password: &str) -> (RegistrationState, Option<u16>) {
    let dir = Scratch::new(name);
    let reg = kamailio(&dir, USERS, false);
    let addr = reg.addr(Transport::Udp);
    let mut me = agent(&dir, |c| {
        c.accounts
            .push(account(&addr, "work", user, password, Transport::Udp))
    });
    registration_of(&mut me, "work", 10 * SEC)
}

#[test]
fn a_wrong_password_is_a_clear_error() {
    let failure = RegistrationFailure::BadCredentials;
    assert_eq!(
        register_as("kamailio-401", "agent", "not-the-password"),
        (RegistrationState::Failed { failure }, Some(401))
    );
}

#[test]
fn a_refused_account_is_reported_as_forbidden() {
    let failure = RegistrationFailure::Forbidden;
    assert_eq!(
        register_as("kamailio-403", "blocked", "x"),
        (RegistrationState::Failed { failure }, Some(403))
    );
}

#[test]
fn a_silent_registrar_is_reported_as_a_timeout() {
    let dir = Scratch::new("silent-registrar");
    // Something holds the port and never answers.
    let hole = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = hole.local_addr().unwrap().to_string();
    let mut me = agent(&dir, |c| {
        c.register_timeout = 3 * SEC;
        c.accounts.push(account(
            &addr,
            "work",
            "agent",
            "agent-pass",
            Transport::Udp,
        ));
    });
    let started = std::time::Instant::now();
    assert_eq!(
        registration_of(&mut me, "work", 10 * SEC).0,
        RegistrationState::Failed {
            failure: RegistrationFailure::Timeout
        }
    );
    assert!(started.elapsed() < 6 * SEC);
}

#[test]
fn registration_over_tcp_and_tls() {
    let dir = Scratch::new("kamailio-tls");
    let reg = kamailio(&dir, USERS, true);
    let ca = reg.ca.clone().unwrap();
    let mut me = agent(&dir, |c| {
        c.tls = Tls {
            root_ca: Some(ca),
            verify: true,
        };
        c.accounts.push(account(
            &reg.addr(Transport::Tcp),
            "over-tcp",
            "agent",
            "agent-pass",
            Transport::Tcp,
        ));
        c.accounts.push(account(
            &reg.addr(Transport::Tls),
            "over-tls",
            "bob",
            "bob-pass",
            Transport::Tls,
        ));
    });
    let mut ok = Vec::new();
    while ok.len() < 2 {
        let (name, state) = me.wait("registrations", 10 * SEC, |e| match e {
            Event::Registration { account, state, .. } if settled(state) => {
                Some((account.clone(), state.clone()))
            }
            _ => None,
        });
        assert_eq!(state, RegistrationState::Ok, "{name}");
        ok.push(name);
    }
    ok.sort();
    assert_eq!(ok, ["over-tcp", "over-tls"]);
    let log = reg.peer.output();
    assert!(!log.contains("ERROR"), "kamailio complained:\n{log}");
}

#[test]
fn registration_is_refreshed_before_expiry_and_after_a_network_change() {
    let dir = Scratch::new("kamailio-refresh");
    let reg = kamailio(&dir, USERS, false);
    let mut me = agent(&dir, |c| {
        let mut a = account(
            &reg.addr(Transport::Udp),
            "work",
            "agent",
            "agent-pass",
            Transport::Udp,
        );
        a.expires = 4;
        c.accounts.push(a);
    });
    assert_eq!(
        registration_of(&mut me, "work", 10 * SEC).0,
        RegistrationState::Ok
    );
    // liblinphone refreshes before the 4 s run out: a second OK arrives without asking.
    assert_eq!(
        registration_of(&mut me, "work", 6 * SEC).0,
        RegistrationState::Ok
    );
    me.phone.network_changed().unwrap();
    me.wait("network event", 2 * SEC, |e| {
        matches!(e, Event::Network { .. }).then_some(())
    });
    assert_eq!(
        registration_of(&mut me, "work", 10 * SEC).0,
        RegistrationState::Ok
    );
}

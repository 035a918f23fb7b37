//! Our engine against SIPp scenarios: each SIPp run is a scripted far end that checks
//! our side of the dialogue (its exit status) while we check our events.

use std::time::Duration;

use callhelper_phone::{
    Account, AudioIo, CallId, CallOptions, CallState, CallSummary, DtmfMethod, EndReason, Event,
    Hold, RegistrationFailure, RegistrationState, Secret, Transport,
};

use crate::support::audio::{check_tone, write_tone, write_ulaw_tone};
use crate::support::peer::Peer;
use crate::support::{Party, SEC, Scratch, free_port, loopback_config, scenarios, sipp};

fn caller(dir: &Scratch) -> Party {
    let tone = write_tone(&dir.join("tone.wav"), 440.0, 5.0);
    let audio = AudioIo::Files {
        play: Some(tone),
        speaker: Some(dir.join("heard.wav")),
    };
    Party::start("caller", loopback_config(&dir.join("caller"), audio))
}

fn ended(reason: EndReason) -> impl Fn(&CallState) -> bool {
    move |s| *s == CallState::Ended { reason }
}

fn is_ended(s: &CallState) -> bool {
    s.is_ended()
}

/// A call from our engine to a SIPp scenario, under way.
struct Scene {
    dir: Scratch,
    far: Peer,
    me: Party,
    call: CallId,
}

/// Start SIPp with `scenario` (echoing RTP when `echo`), and call it from our engine,
/// which plays a 440 Hz tone and records what it hears to `heard.wav`.
fn dial(dir: Scratch, scenario: &str, echo: bool) -> Scene {
    let mp = free_port().to_string();
    let mut args = vec!["-mp", mp.as_str()];
    if echo {
        args.push("-rtp_echo");
    }
    let (far, port) = sipp(&dir, "sipp", scenario, &args);
    let me = caller(&dir);
    let call = me
        .phone
        .call(
            &format!("sip:service@127.0.0.1:{port}"),
            CallOptions::default(),
        )
        .unwrap();
    Scene { dir, far, me, call }
}

fn summary_of(me: &mut Party, call: CallId) -> CallSummary {
    me.wait("call summary", 5 * SEC, |e| match e {
        Event::CallEnded { call: c, summary } if *c == call => Some(summary.clone()),
        _ => None,
    })
}

#[test]
fn answer_with_rtp_echo_carries_our_audio_there_and_back() {
    let Scene {
        dir,
        mut far,
        mut me,
        call,
    } = dial(Scratch::new("sipp-echo"), "uas", true);
    me.wait_state(call, |s| *s == CallState::Connected, 5 * SEC);
    std::thread::sleep(3 * SEC);
    me.phone.hang_up(call).unwrap();
    let summary = summary_of(&mut me, call);
    far.expect_success(10 * SEC);
    me.pump();
    assert_eq!(
        me.states(call),
        ["dialing", "ringing", "connected", "ended"]
    );
    assert_eq!(summary.reason, EndReason::HungUpLocally);
    assert!(summary.answered && summary.talk_ms >= 2900, "{summary:?}");
    assert!(
        summary.quality.samples >= 2 && summary.quality.mos_min > 3.5,
        "{summary:?}"
    );
    assert!(!summary.media_stalled, "{summary:?}");
    assert!(
        !me.seen.iter().any(|e| matches!(e, Event::Media { .. })),
        "no media alarm expected: {:?}",
        me.seen
    );
    // What we heard is our own tone, echoed by SIPp.
    drop(me);
    check_tone(&dir.join("heard.wav"), 440.0).unwrap();
}

fn rejected_with(status: &str, want: EndReason) {
    let dir = Scratch::new("sipp-reject");
    let template = std::fs::read_to_string(scenarios().join("reject.xml")).unwrap();
    let scenario = dir.join("reject.xml");
    std::fs::write(&scenario, template.replace("STATUS", status)).unwrap();
    let Scene {
        mut far,
        mut me,
        call,
        ..
    } = dial(dir, scenario.to_str().unwrap(), false);
    me.wait_state(call, ended(want), 5 * SEC);
    far.expect_success(10 * SEC);
}

#[test]
fn busy_486_ends_the_call_as_busy() {
    rejected_with("486 Busy Here", EndReason::Busy);
}

#[test]
fn decline_603_ends_the_call_as_declined() {
    rejected_with("603 Decline", EndReason::Declined);
}

#[test]
fn cancel_before_answer() {
    let Scene {
        mut far,
        mut me,
        call,
        ..
    } = dial(Scratch::new("sipp-cancel"), "cancel.xml", false);
    me.wait_state(call, |s| *s == CallState::Ringing, 5 * SEC);
    me.phone.hang_up(call).unwrap();
    me.wait_state(call, ended(EndReason::CancelledLocally), 5 * SEC);
    far.expect_success(10 * SEC);
    assert_eq!(me.states(call), ["dialing", "ringing", "ended"]);
}

#[test]
fn remote_bye_mid_call() {
    let Scene {
        mut far,
        mut me,
        call,
        ..
    } = dial(Scratch::new("sipp-bye"), "remote_bye.xml", true);
    me.wait_state(call, |s| *s == CallState::Connected, 5 * SEC);
    me.wait_state(call, ended(EndReason::HungUpRemotely), 10 * SEC);
    let summary = summary_of(&mut me, call);
    far.expect_success(10 * SEC);
    assert!((1800..4000).contains(&summary.talk_ms), "{summary:?}");
}

#[test]
fn hold_and_resume_by_the_far_end() {
    let Scene {
        mut far,
        mut me,
        call,
        ..
    } = dial(Scratch::new("sipp-hold"), "remote_hold.xml", true);
    me.wait_state(call, |s| *s == CallState::Connected, 5 * SEC);
    let held = me.wait_state(call, |s| matches!(s, CallState::OnHold(_)), 5 * SEC);
    assert_eq!(
        held,
        CallState::OnHold(Hold {
            local: false,
            remote: true
        })
    );
    // The far end's hold is not ours to lift.
    assert!(me.phone.resume(call).is_err());
    me.wait_state(call, |s| *s == CallState::Connected, 5 * SEC);
    me.phone.hang_up(call).unwrap();
    me.wait_state(call, is_ended, 5 * SEC);
    far.expect_success(10 * SEC);
    assert_eq!(
        me.states(call),
        ["dialing", "connected", "on_hold", "connected", "ended"]
    );
}

#[test]
fn ringing_with_early_media_then_answer() {
    let dir = Scratch::new("sipp-early");
    write_ulaw_tone(&dir.join("ringback.ulaw"), 1000.0, 10.0);
    let Scene {
        dir,
        mut far,
        mut me,
        call,
    } = dial(dir, "early_media.xml", false);
    me.wait_state(call, |s| *s == CallState::EarlyMedia, 5 * SEC);
    let early_at = std::time::Instant::now();
    me.wait_state(call, |s| *s == CallState::Connected, 5 * SEC);
    assert!(
        early_at.elapsed() >= Duration::from_millis(2000),
        "answered too early: {:?}",
        early_at.elapsed()
    );
    std::thread::sleep(SEC);
    me.phone.hang_up(call).unwrap();
    me.wait_state(call, is_ended, 5 * SEC);
    far.expect_success(10 * SEC);
    assert_eq!(
        me.states(call),
        ["dialing", "early_media", "connected", "ended"]
    );
    drop(me);
    // The 1 kHz "ring-back" played before the answer reached us.
    check_tone(&dir.join("heard.wav"), 1000.0).unwrap();
}

fn sipp_account(port: u16, password: &str) -> Account {
    Account {
        name: "sipp".into(),
        username: "alice".into(),
        domain: "callhelper.test".into(),
        password: Secret::new(password),
        auth_username: None,
        realm: None,
        registrar: Some(format!("127.0.0.1:{port}")),
        transport: Transport::Udp,
        display_name: None,
        expires: 60,
        register: true,
    }
}

fn registration(e: &Event) -> Option<RegistrationState> {
    match e {
        Event::Registration { state, .. } if *state != RegistrationState::Progress => {
            Some(state.clone())
        }
        _ => None,
    }
}

/// Register `alice` with `password` at a SIPp registrar that knows her as `s3cret`;
/// returns the final registration state and the SIP dialogue SIPp logged.
fn register_at_sipp(name: &str, password: &str) -> (RegistrationState, String) {
    let dir = Scratch::new(name);
    let (mut far, port) = sipp(
        &dir,
        "sipp",
        "register_auth.xml",
        &["-key", "user", "alice", "-key", "password", "s3cret"],
    );
    let audio = AudioIo::Files {
        play: None,
        speaker: None,
    };
    let mut config = loopback_config(&dir.join("me"), audio);
    config.accounts.push(sipp_account(port, password));
    let mut me = Party::start("me", config);
    let state = me.wait("registration", 10 * SEC, registration);
    far.wait_exit(10 * SEC);
    (
        state,
        std::fs::read_to_string(dir.join("sipp-messages.log")).unwrap(),
    )
}

#[test]
fn registration_answers_a_401_challenge_with_the_right_digest() {
    let (state, dialogue) = register_at_sipp("sipp-401", "s3cret");
    assert_eq!(state, RegistrationState::Ok);
    assert!(
        dialogue.contains("401 Unauthorized") && dialogue.contains("SIP/2.0 200 OK"),
        "{dialogue}"
    );
    assert!(!dialogue.contains("403 Wrong Digest"), "{dialogue}");
}

#[test]
fn a_wrong_digest_is_refused_and_reported() {
    let (state, dialogue) = register_at_sipp("sipp-401-wrong", "wrong");
    assert_eq!(
        state,
        RegistrationState::Failed {
            failure: RegistrationFailure::Forbidden
        }
    );
    // SIPp's own check of the digest refused it: it was wrong, not lost.
    assert!(
        dialogue.contains("username=\"alice\"") && dialogue.contains("403 Wrong Digest"),
        "{dialogue}"
    );
}

#[test]
fn dtmf_by_sip_info_is_what_sipp_receives() {
    let Scene {
        mut far,
        mut me,
        call,
        ..
    } = dial(Scratch::new("sipp-info"), "dtmf_info.xml", true);
    me.wait_state(call, |s| *s == CallState::Connected, 5 * SEC);
    me.phone
        .send_dtmf(call, "5#", Some(DtmfMethod::SipInfo))
        .unwrap();
    // SIPp checks each INFO body in order; give the digits time to go out.
    std::thread::sleep(SEC);
    me.phone.hang_up(call).unwrap();
    me.wait_state(call, is_ended, 5 * SEC);
    far.expect_success(10 * SEC);
}

//! Our engine against other instances of our engine on loopback: audio both ways checked
//! on the recordings (with a silent control), call recording, DTMF, hold, mute, the
//! no-audio watch and devices.

use std::path::PathBuf;

use callhelper_phone::{
    AnswerOptions, AudioIo, CallId, CallOptions, CallState, Decline, DevicePreferences, DtmfMethod,
    EndReason, Event, Hold, Warning,
};

use crate::support::audio::{
    check_speech, check_tone, check_tones_present, speech, write_silence, write_tone,
};
use crate::support::{Party, SEC, Scratch, loopback_config};

/// One of our engines playing `play` and recording what it hears to `<name>-heard.wav`.
pub(crate) fn party(dir: &Scratch, name: &'static str, play: Option<PathBuf>) -> Party {
    let audio = AudioIo::Files {
        play,
        speaker: Some(dir.join(&format!("{name}-heard.wav"))),
    };
    Party::start(name, loopback_config(&dir.join(name), audio))
}

/// `from` calls `to`, which answers; returns both call ids once both are connected.
pub(crate) fn connect(from: &mut Party, to: &mut Party, options: CallOptions) -> (CallId, CallId) {
    let out = from.phone.call(&to.uri("agent"), options).unwrap();
    let inc = to.wait_incoming(5 * SEC);
    to.phone.answer(inc, AnswerOptions::default()).unwrap();
    from.wait_state(out, |s| *s == CallState::Connected, 5 * SEC);
    to.wait_state(inc, |s| *s == CallState::Connected, 5 * SEC);
    (out, inc)
}

pub(crate) fn hang_up(from: &mut Party, call: CallId) {
    from.phone.hang_up(call).unwrap();
    from.wait_state(call, |s| s.is_ended(), 5 * SEC);
}

/// A tone from `a`, `b_plays` from `b`, four seconds of talk; returns the two "heard" files.
fn talk(dir: &Scratch, b_plays: PathBuf) -> (PathBuf, PathBuf) {
    let tone = write_tone(&dir.join("tone.wav"), 440.0, 5.0);
    let mut a = party(dir, "a", Some(tone));
    let mut b = party(dir, "b", Some(b_plays));
    let (call, _) = connect(&mut a, &mut b, CallOptions::default());
    std::thread::sleep(4 * SEC);
    hang_up(&mut a, call);
    drop((a, b));
    (dir.join("a-heard.wav"), dir.join("b-heard.wav"))
}

#[test]
fn audio_flows_both_ways_a_tone_one_way_speech_the_other() {
    let dir = Scratch::new("ours-audio");
    let (a_heard, b_heard) = talk(&dir, speech());
    check_speech(&a_heard).unwrap();
    check_tone(&b_heard, 440.0).unwrap();
}

#[test]
fn control_a_silent_source_fails_the_same_checks() {
    let dir = Scratch::new("ours-silent");
    let silence = write_silence(&dir.join("silence.wav"), 5.0);
    let (a_heard, _) = talk(&dir, silence);
    let err = check_speech(&a_heard).unwrap_err();
    assert!(err.contains("expected speech"), "{err}");
    assert!(check_tone(&a_heard, 440.0).is_err());
}

#[test]
fn the_call_recording_holds_both_directions() {
    let dir = Scratch::new("ours-recording");
    let low = write_tone(&dir.join("440.wav"), 440.0, 5.0);
    let high = write_tone(&dir.join("1000.wav"), 1000.0, 5.0);
    let silence = write_silence(&dir.join("silence.wav"), 5.0);
    for (b_plays, both) in [(high, true), (silence, false)] {
        let rec = dir.join(&format!("call-{both}.wav"));
        let mut a = party(&dir, "a", Some(low.clone()));
        let mut b = party(&dir, "b", Some(b_plays));
        let (call, _) = connect(
            &mut a,
            &mut b,
            CallOptions {
                record: Some(rec.clone()),
                ..Default::default()
            },
        );
        a.wait("recording started", 2 * SEC, |e| {
            matches!(e, Event::Recording { active: true, .. }).then_some(())
        });
        std::thread::sleep(3 * SEC);
        hang_up(&mut a, call);
        let summary = a.wait("summary", 2 * SEC, |e| match e {
            Event::CallEnded { summary, .. } => Some(summary.clone()),
            _ => None,
        });
        assert_eq!(summary.recording.as_deref(), Some(rec.as_path()));
        drop((a, b));
        assert!(
            check_tones_present(&rec, &[440.0]).is_ok(),
            "our side is always in the recording"
        );
        // The far end's 1 kHz is there when it played it — and the check fails on silence.
        assert_eq!(
            check_tones_present(&rec, &[440.0, 1000.0]).is_ok(),
            both,
            "{:?}",
            check_tones_present(&rec, &[1000.0])
        );
    }
}

fn digits_heard(b: &mut Party, call: CallId, n: usize) -> String {
    let mut got = String::new();
    while got.len() < n {
        got.push(b.wait("DTMF", 5 * SEC, |e| match e {
            Event::Dtmf { call: c, digit } if *c == call => Some(*digit),
            _ => None,
        }));
    }
    got
}

#[test]
fn dtmf_reaches_the_far_end_by_rfc4733_and_by_sip_info() {
    let dir = Scratch::new("ours-dtmf");
    let tone = write_tone(&dir.join("tone.wav"), 440.0, 5.0);
    let mut a = party(&dir, "a", Some(tone));
    let mut b = party(&dir, "b", Some(speech()));
    let (out, inc) = connect(&mut a, &mut b, CallOptions::default());
    a.phone
        .send_dtmf(out, "1 2 3 #", Some(DtmfMethod::Rfc4733))
        .unwrap();
    assert_eq!(digits_heard(&mut b, inc, 4), "123#");
    a.phone
        .send_dtmf(out, "*9d", Some(DtmfMethod::SipInfo))
        .unwrap();
    assert_eq!(digits_heard(&mut b, inc, 3), "*9D");
    // And the other way, with the phone's default method.
    b.phone.send_dtmf(inc, "0", None).unwrap();
    assert_eq!(digits_heard(&mut a, out, 1), "0");
    assert!(a.phone.send_dtmf(out, "12x", None).is_err());
    hang_up(&mut a, out);
}

#[test]
fn hold_resume_and_mute_from_our_side() {
    let dir = Scratch::new("ours-hold");
    let tone = write_tone(&dir.join("tone.wav"), 440.0, 5.0);
    let mut a = party(&dir, "a", Some(tone));
    let mut b = party(&dir, "b", Some(speech()));
    let (out, inc) = connect(&mut a, &mut b, CallOptions::default());
    a.phone.hold(out).unwrap();
    assert_eq!(
        a.wait_state(out, |s| matches!(s, CallState::OnHold(_)), 5 * SEC),
        CallState::OnHold(Hold {
            local: true,
            remote: false
        })
    );
    assert_eq!(
        b.wait_state(inc, |s| matches!(s, CallState::OnHold(_)), 5 * SEC),
        CallState::OnHold(Hold {
            local: false,
            remote: true
        })
    );
    // Quiet while on hold is expected: no media alarm.
    std::thread::sleep(3 * SEC);
    a.phone.resume(out).unwrap();
    a.wait_state(out, |s| *s == CallState::Connected, 5 * SEC);
    b.wait_state(inc, |s| *s == CallState::Connected, 5 * SEC);
    a.phone.set_muted(out, true).unwrap();
    std::thread::sleep(3 * SEC);
    a.phone.set_muted(out, false).unwrap();
    hang_up(&mut a, out);
    b.wait_state(
        inc,
        |s| {
            *s == CallState::Ended {
                reason: EndReason::HungUpRemotely,
            }
        },
        5 * SEC,
    );
    for p in [&a, &b] {
        assert!(
            !p.seen.iter().any(|e| matches!(e, Event::Media { .. })),
            "{}: no media alarm expected: {:?}",
            p.name,
            p.seen
        );
    }
}

#[test]
fn a_connected_call_without_audio_is_reported() {
    let dir = Scratch::new("ours-no-audio");
    // No file and no sound card: liblinphone connects the call but sends no audio.
    let mut a = party(&dir, "a", None);
    let mut b = party(&dir, "b", Some(speech()));
    let (out, inc) = connect(&mut a, &mut b, CallOptions::default());
    let dir_of = |e: &Event, call: CallId| match e {
        Event::Media {
            call: c,
            alarm: callhelper_phone::quality::MediaAlarm::Stalled { direction, .. },
        } if *c == call => Some(*direction),
        _ => None,
    };
    use callhelper_phone::quality::MediaDirection;
    assert_eq!(
        a.wait("media alarm", 6 * SEC, |e| dir_of(e, out)),
        MediaDirection::Outgoing
    );
    assert_eq!(
        b.wait("media alarm", 6 * SEC, |e| dir_of(e, inc)),
        MediaDirection::Incoming
    );
    hang_up(&mut a, out);
    let summary = a.wait("summary", 2 * SEC, |e| match e {
        Event::CallEnded { summary, .. } => Some(summary.clone()),
        _ => None,
    });
    assert!(summary.media_stalled);
}

#[test]
fn no_sound_card_is_said_at_start() {
    let dir = Scratch::new("ours-devices");
    let prefs = DevicePreferences {
        capture: vec!["USB headset".into()],
        ..Default::default()
    };
    let mut a = Party::start(
        "a",
        loopback_config(&dir.join("a"), AudioIo::Devices(prefs)),
    );
    let devices = a.phone.devices().unwrap();
    eprintln!("devices here: {devices:?}");
    if devices.iter().any(|d| d.can_capture) && devices.iter().any(|d| d.can_play) {
        // A machine with sound: the first choice is announced instead.
        a.wait("device choice", 2 * SEC, |e| {
            matches!(e, Event::Device(_)).then_some(())
        });
    } else {
        a.wait("no-device warning", 2 * SEC, |e| {
            matches!(
                e,
                Event::Warning {
                    warning: Warning::NoAudioDevice
                }
            )
            .then_some(())
        });
    }
}

#[test]
fn busy_decline_and_a_missed_call_between_our_engines() {
    let dir = Scratch::new("ours-decline");
    let mut a = party(&dir, "a", Some(speech()));
    let mut b = party(&dir, "b", Some(speech()));
    // B is busy.
    let out = a
        .phone
        .call(&b.uri("agent"), CallOptions::default())
        .unwrap();
    let inc = b.wait_incoming(5 * SEC);
    b.phone.decline(inc, Decline::Busy).unwrap();
    assert_eq!(
        a.wait_state(out, |s| s.is_ended(), 5 * SEC),
        CallState::Ended {
            reason: EndReason::Busy
        }
    );
    assert_eq!(
        b.wait_state(inc, |s| s.is_ended(), 5 * SEC),
        CallState::Ended {
            reason: EndReason::DeclinedLocally
        }
    );
    // A gives up before B answers: a missed call for B.
    let out = a
        .phone
        .call(&b.uri("agent"), CallOptions::default())
        .unwrap();
    let inc = b.wait_incoming(5 * SEC);
    b.wait_state(inc, |s| *s == CallState::Ringing, 2 * SEC);
    a.phone.hang_up(out).unwrap();
    assert_eq!(
        a.wait_state(out, |s| s.is_ended(), 5 * SEC),
        CallState::Ended {
            reason: EndReason::CancelledLocally
        }
    );
    assert_eq!(
        b.wait_state(inc, |s| s.is_ended(), 5 * SEC),
        CallState::Ended {
            reason: EndReason::CancelledRemotely
        }
    );
    // Answering a call that is gone is refused, not a crash.
    assert!(b.phone.answer(inc, AnswerOptions::default()).is_err());
}

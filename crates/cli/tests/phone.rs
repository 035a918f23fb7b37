//! `callhelper phone`: calls through the real engine to the demo line (a second engine on
//! loopback), read back as the JSON events a script would read.

use std::path::Path;

use serde_json::Value;

use crate::{callhelper_in, repo};

/// The JSON events a run printed, one a line; panics on a line that is not JSON.
fn events(out: &std::process::Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn named<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == name).collect()
}

/// The RMS of a 16-bit PCM WAV's samples, full scale = 1; the header must match the file.
fn rms(path: &Path) -> f64 {
    let bytes = std::fs::read(path).expect("the recording exists");
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        if id == b"data" {
            // A finished recording's header tells its true sizes.
            assert_eq!(at + 8 + len, bytes.len(), "the data chunk's size");
            let riff = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
            assert_eq!(riff + 8, bytes.len(), "the RIFF size");
            let samples: Vec<f64> = bytes[at + 8..]
                .chunks_exact(2)
                .map(|c| f64::from(i16::from_le_bytes([c[0], c[1]])) / 32768.0)
                .collect();
            return (samples.iter().map(|s| s * s).sum::<f64>() / samples.len().max(1) as f64)
                .sqrt();
        }
        at += 8 + len + (len & 1);
    }
    panic!("{}: no data chunk", path.display())
}

#[test]
fn a_call_to_the_demo_line_connects_and_records_the_client() {
    let dir = tempdir("phone-demo");
    let rec = dir.join("call.wav");
    let voice = repo("crates/phone/assets/client-voice.wav");
    let out = callhelper_in(
        &dir,
        &[
            "phone",
            "call",
            "demo",
            "--play",
            &voice,
            "--record",
            rec.to_str().unwrap(),
            "--dtmf",
            "12#",
            "--hangup-after",
            "2",
        ],
        "",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    let ev = events(&out);
    assert!(!named(&ev, "listening").is_empty(), "{ev:?}");
    assert_eq!(named(&ev, "demo_line").len(), 1, "{ev:?}");
    let states: Vec<&str> = named(&ev, "call_state")
        .iter()
        .filter_map(|e| e["state"].as_str())
        .collect();
    assert_eq!(
        states,
        ["dialing", "ringing", "connected", "ended"],
        "{ev:?}"
    );
    let ended = named(&ev, "call_ended");
    let summary = &ended[0]["summary"];
    assert_eq!(summary["answered"], true, "{summary}");
    assert_eq!(summary["reason"], "hung_up_locally", "{summary}");
    assert_eq!(summary["media_stalled"], false, "{summary}");
    let talk = summary["talk_ms"].as_u64().unwrap();
    assert!((1500..6000).contains(&talk), "talk time {talk} ms");
    let mos = summary["quality"]["mos_avg"].as_f64().unwrap();
    assert!(mos > 3.5, "loopback quality should be good: MOS {mos}");
    assert_eq!(named(&ev, "done")[0]["outcome"], "completed", "{ev:?}");
    // The demo client speaks: the recording of both directions is not silence.
    let level = rms(&rec);
    assert!(level > 0.01, "the recording is too quiet: RMS {level}");
}

#[test]
fn a_call_with_nothing_to_send_is_reported_as_having_no_audio() {
    // No sound card here and no file to play: the call connects but we send nothing,
    // which the engine must notice and the command must fail on.
    let dir = tempdir("phone-silent");
    let out = callhelper_in(&dir, &["phone", "call", "demo", "--hangup-after", "4"], "");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let ev = events(&out);
    let stalled = named(&ev, "media");
    assert!(
        stalled
            .iter()
            .any(|e| e["media"] == "stalled" && e["direction"] == "outgoing"),
        "{ev:?}"
    );
    assert_eq!(named(&ev, "done")[0]["outcome"], "no_audio", "{ev:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("sending no audio"), "{stderr}");
}

#[test]
fn without_a_licence_only_the_demo_line_can_be_used() {
    let dir = tempdir("phone-unlicensed");
    for args in [
        &["phone", "call", "sip:1002@127.0.0.1:5060"][..],
        &["phone", "answer", "--wait", "1"],
    ] {
        let out = callhelper_in(&dir, args, "");
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        // Refused before the engine starts: not a single event.
        assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("Demo mode") && stderr.contains("phone call demo"),
            "{args:?}: {stderr}"
        );
    }
}

/// A fresh scratch folder for one test.
fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("callhelper-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

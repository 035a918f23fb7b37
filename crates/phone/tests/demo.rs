//! The demo line answers like a client would and talks: the product works with no SIP
//! provider.

use std::time::Instant;

use callhelper_phone::demo::{DemoLine, RING_FOR};
use callhelper_phone::{CallOptions, CallState};

use crate::ours::{hang_up, party};
use crate::support::audio::{check_speech, write_tone};
use crate::support::{SEC, Scratch};

#[test]
fn the_demo_line_rings_answers_and_speaks() {
    let dir = Scratch::new("demo-line");
    let line = DemoLine::start(&dir.join("demo")).unwrap();
    let tone = write_tone(&dir.join("tone.wav"), 440.0, 5.0);
    let mut agent = party(&dir, "agent", Some(tone));
    let started = Instant::now();
    let call = agent
        .phone
        .call(line.uri(), CallOptions::default())
        .unwrap();
    agent.wait_state(call, |s| *s == CallState::Ringing, 5 * SEC);
    agent.wait_state(call, |s| *s == CallState::Connected, 5 * SEC);
    assert!(
        started.elapsed() >= RING_FOR,
        "answered after {:?}",
        started.elapsed()
    );
    std::thread::sleep(4 * SEC);
    // A phone with no video loads no video plugins (Debian's Qt/OpenGL video window would
    // map Qt5 into the process), and the call still speaks (checked below).
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    for lib in ["libmsqogl", "libQt5"] {
        assert!(!maps.contains(lib), "{lib} is loaded");
    }
    hang_up(&mut agent, call);
    drop(agent);
    drop(line);
    check_speech(&dir.join("agent-heard.wav")).unwrap();
}

//! What the integration tests share: scratch folders, free ports, peer processes that die
//! with the test, our own engine as a test party, and audio checks on WAV files.

#![allow(dead_code)]

pub mod audio;
pub mod peer;
pub mod sip_peers;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use callhelper_phone::{AudioIo, CallId, CallState, Event, Listen, Phone, PhoneConfig, Port};

/// A scratch folder, removed when the test passes (kept when it fails, for the logs, or
/// when `PHONE_TEST_KEEP` is set).
pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir()
            .join("callhelper-phone-tests")
            .join(format!(
                "{name}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create scratch folder");
        Scratch { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("PHONE_TEST_KEEP").is_some() {
            eprintln!("test files kept in {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A port free for both UDP and TCP on 127.0.0.1 right now (the peer binds it next).
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", port + 2)).is_ok()
        {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1");
}

/// Send liblinphone's warnings (and ours) to the test output once.
pub fn init_logging() {
    struct Stderr;
    impl log::Log for Stderr {
        fn enabled(&self, m: &log::Metadata) -> bool {
            m.level() <= log::max_level()
        }
        fn log(&self, r: &log::Record) {
            // Wall-clock seconds, to line the log up with packet captures.
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            eprintln!(
                "{}.{:06} [{} {}] {}",
                t.as_secs(),
                t.subsec_micros(),
                r.level(),
                r.target(),
                r.args()
            );
        }
        fn flush(&self) {}
    }
    static LOGGER: Stderr = Stderr;
    if log::set_logger(&LOGGER).is_ok() {
        let level = std::env::var("PHONE_TEST_LOG")
            .ok()
            .and_then(|l| l.parse().ok())
            .unwrap_or(log::LevelFilter::Error);
        log::set_max_level(level);
    }
}

/// A loopback configuration for one of our engines in `folder`.
pub fn loopback_config(folder: &Path, audio: AudioIo) -> PhoneConfig {
    init_logging();
    let mut c = PhoneConfig::new(folder);
    c.bind = Some("127.0.0.1".parse().unwrap());
    c.listen = Listen {
        udp: Port::Random,
        tcp: Port::Random,
        tls: Port::Off,
    };
    c.audio = audio;
    c.engine_log = log::max_level();
    c.media_grace = Duration::from_secs(2);
    c.quality_every = Duration::from_secs(1);
    c
}

/// One of our engines with a record of every event it reported.
pub struct Party {
    pub name: &'static str,
    pub phone: Phone,
    pub seen: Vec<Event>,
}

impl Party {
    pub fn start(name: &'static str, config: PhoneConfig) -> Party {
        let phone =
            Phone::start(config).unwrap_or_else(|e| panic!("{name}: the phone did not start: {e}"));
        Party {
            name,
            phone,
            seen: Vec::new(),
        }
    }

    /// Its UDP SIP address for user `user`.
    pub fn uri(&self, user: &str) -> String {
        format!(
            "sip:{user}@127.0.0.1:{}",
            self.phone.ports().udp.expect("udp enabled")
        )
    }

    /// Wait for the first event (from now on) matching `pick`, which returns what to keep.
    pub fn wait<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut pick: impl FnMut(&Event) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let log: Vec<String> = self
                    .seen
                    .iter()
                    .map(|e| serde_json::to_string(e).unwrap())
                    .collect();
                panic!(
                    "{}: no {what} within {timeout:?}; events so far:\n  {}",
                    self.name,
                    log.join("\n  ")
                );
            }
            if let Some(ev) = self.phone.next_event(left.min(Duration::from_millis(50))) {
                let hit = pick(&ev);
                self.seen.push(ev);
                if let Some(v) = hit {
                    return v;
                }
            }
        }
    }

    /// Take whatever events are pending, without waiting.
    pub fn pump(&mut self) {
        while let Some(ev) = self.phone.next_event(Duration::ZERO) {
            self.seen.push(ev);
        }
    }

    /// Wait until `call` reaches a state matching `want`.
    pub fn wait_state(
        &mut self,
        call: CallId,
        want: impl Fn(&CallState) -> bool,
        timeout: Duration,
    ) -> CallState {
        self.wait("call state", timeout, |e| match e {
            Event::CallState { call: c, state } if *c == call && want(state) => Some(*state),
            _ => None,
        })
    }

    /// Like [`Party::wait_state`], but a state already reported counts too.
    pub fn reached(
        &mut self,
        call: CallId,
        want: impl Fn(&CallState) -> bool,
        timeout: Duration,
    ) -> CallState {
        let seen = self.seen.iter().find_map(|e| match e {
            Event::CallState { call: c, state } if *c == call && want(state) => Some(*state),
            _ => None,
        });
        seen.unwrap_or_else(|| self.wait_state(call, want, timeout))
    }

    /// Wait for an incoming call and return its id.
    pub fn wait_incoming(&mut self, timeout: Duration) -> CallId {
        self.wait("incoming call", timeout, |e| match e {
            Event::Incoming { call, .. } => Some(*call),
            _ => None,
        })
    }

    /// The states `call` went through so far, by name.
    pub fn states(&self, call: CallId) -> Vec<&'static str> {
        self.seen
            .iter()
            .filter_map(|e| match e {
                Event::CallState { call: c, state } if *c == call => Some(state.name()),
                _ => None,
            })
            .collect()
    }
}

/// Fail with an install hint when a peer program is missing.
pub fn require(program: &str, package: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "`{program}` is not installed: this test needs it as a real SIP peer. \
             Install the Debian package `{package}` (apt-get install {package}), or run `cargo xtask test` as root."
        )
    })
}

pub const SEC: Duration = Duration::from_secs(1);

/// The folder of our SIPp scenarios.
pub fn scenarios() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp")
}

/// Start SIPp as a UAS running `scenario` (a file in `tests/sipp`, a path, or a built-in
/// name such as `uas`) for one call on 127.0.0.1. Returns the peer and its SIP port.
pub fn sipp(dir: &Scratch, name: &str, scenario: &str, extra: &[&str]) -> (peer::Peer, u16) {
    let bin = require("sipp", "sip-tester");
    let port = free_port();
    let mut cmd = std::process::Command::new(bin);
    cmd.current_dir(dir.path());
    if scenario.ends_with(".xml") {
        cmd.arg("-sf").arg(scenarios().join(scenario));
    } else {
        cmd.args(["-sn", scenario]);
    }
    cmd.args([
        "-i",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-m",
        "1",
        "-nostdin",
    ])
    .args([
        "-timeout",
        "40s",
        "-timeout_error",
        "-trace_err",
        "-trace_msg",
    ])
    .arg("-error_file")
    .arg(dir.join(&format!("{name}-errors.log")))
    .arg("-message_file")
    .arg(dir.join(&format!("{name}-messages.log")))
    .args(extra);
    let mut peer = peer::Peer::spawn(name, cmd, dir.path());
    wait_bound(&mut peer, port);
    (peer, port)
}

/// Wait until something listens on UDP `port` (the peer finished starting).
pub fn wait_bound(peer: &mut peer::Peer, port: u16) {
    if !bound(port) {
        panic!("the peer never listened on UDP {port}:\n{}", peer.tail());
    }
}

/// Whether something listens on UDP `port` within 5 seconds.
pub fn bound(port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_err() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

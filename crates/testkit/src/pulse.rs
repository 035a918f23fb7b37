//! A private PulseAudio server for tests of real sound devices.
//!
//! [`PulseServer::start`] runs a `pulseaudio` daemon of its own in a folder the test owns
//! (its runtime dir, home and config: nothing of the user's session is touched), reachable
//! only through a Unix socket in that folder. Its one microphone is a pipe source the
//! server fills in real time, [`RATE`] Hz mono 16-bit, with a half-scale 440 Hz tone or
//! digital silence ([`PulseServer::set_tone`]); its one speaker is a pipe sink whose
//! output is collected ([`PulseServer::played`]). Point a program at it with
//! `PULSE_SERVER=`[`PulseServer::server`]. Dropping the server stops the feeding, kills
//! the daemon's process group and removes the socket and pipes.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The sample rate of the microphone and the speaker (mono, signed 16-bit little-endian).
pub const RATE: u32 = 16_000;

/// How long the daemon may take to create its socket and pipes.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running private PulseAudio server (see the [module](self) documentation).
#[derive(Debug)]
pub struct PulseServer {
    daemon: Child,
    socket: PathBuf,
    mic: PathBuf,
    speaker: PathBuf,
    log: PathBuf,
    tone: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    played: Arc<Mutex<Vec<u8>>>,
    threads: Vec<JoinHandle<()>>,
}

impl PulseServer {
    /// Start a server in `dir` (created if missing; a temporary folder the test owns):
    /// the socket `native`, the pipes `mic.fifo` and `speaker.fifo` and the daemon's log
    /// `pulseaudio.log` go there. The microphone hears the tone from the start when
    /// `tone`, else silence. Panics, with what to install or the daemon's log, when the
    /// server cannot start.
    pub fn start(dir: &Path, tone: bool) -> PulseServer {
        std::fs::create_dir_all(dir).expect("create the sound server's folder");
        let socket = dir.join("native");
        let mic = dir.join("mic.fifo");
        let speaker = dir.join("speaker.fifo");
        let log = dir.join("pulseaudio.log");
        let out = File::create(&log).expect("create the sound server's log");
        let err = out.try_clone().expect("clone the log handle");
        let mut daemon = Command::new("pulseaudio")
            .args([
                "-n",
                "--daemonize=no",
                "--exit-idle-time=-1",
                "--use-pid-file=no",
                "--log-target=stderr",
            ])
            .arg(format!(
                "--load=module-native-protocol-unix auth-anonymous=1 socket={}",
                socket.display()
            ))
            .arg(format!(
                "--load=module-pipe-source source_name=testmic file={} format=s16le rate={RATE} channels=1",
                mic.display()
            ))
            .arg(format!(
                "--load=module-pipe-sink sink_name=testspeaker file={} format=s16le rate={RATE} channels=1 use_system_clock_for_timing=yes",
                speaker.display()
            ))
            .env("HOME", dir)
            .env("PULSE_RUNTIME_PATH", dir)
            .env("XDG_RUNTIME_DIR", dir)
            .env("XDG_CONFIG_HOME", dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("pulseaudio is missing ({e}): apt-get install pulseaudio (or cargo xtask deps)")
            });
        let deadline = Instant::now() + START_TIMEOUT;
        while !(socket.exists() && mic.exists() && speaker.exists()) {
            let exited = daemon.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() > deadline {
                let why = exited.map_or("did not start in time".to_string(), |st| {
                    format!("exited ({st})")
                });
                let output = std::fs::read_to_string(&log).unwrap_or_default();
                let _ = daemon.kill();
                let _ = daemon.wait();
                panic!("the sound server {why}:\n{output}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let tone = Arc::new(AtomicBool::new(tone));
        let stop = Arc::new(AtomicBool::new(false));
        let played = Arc::new(Mutex::new(Vec::new()));
        let threads = vec![
            feed(mic.clone(), tone.clone(), stop.clone()),
            collect(speaker.clone(), played.clone(), stop.clone()),
        ];
        PulseServer {
            daemon,
            socket,
            mic,
            speaker,
            log,
            tone,
            stop,
            played,
            threads,
        }
    }

    /// The value for `PULSE_SERVER` that reaches this server.
    pub fn server(&self) -> String {
        format!("unix:{}", self.socket.display())
    }

    /// What the microphone hears from now on: the tone (`true`) or digital silence.
    pub fn set_tone(&self, on: bool) {
        self.tone.store(on, Ordering::Relaxed);
    }

    /// The speaker's output so far (16-bit little-endian samples at [`RATE`] Hz, mono).
    pub fn played(&self) -> Vec<u8> {
        self.played
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The daemon's output so far, for failure messages.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stop feeding and reading, and stop the server; everything the speaker played.
    pub fn finish(mut self) -> Vec<u8> {
        self.stop_threads();
        self.played()
    }

    fn stop_threads(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    fn signal_group(&self, sig: i32) {
        // SAFETY: a plain syscall; the group is the one created for this daemon.
        unsafe { libc::kill(-(self.daemon.id() as i32), sig) };
    }
}

impl Drop for PulseServer {
    fn drop(&mut self) {
        self.stop_threads();
        if matches!(self.daemon.try_wait(), Ok(None)) {
            self.signal_group(libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline && matches!(self.daemon.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.signal_group(libc::SIGKILL);
        let _ = self.daemon.wait();
        for f in [&self.socket, &self.mic, &self.speaker] {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// The sample `n` of the microphone's tone: a half-scale 440 Hz sine (−9.03 dBFS RMS,
/// −6.02 dBFS peak).
pub fn tone_sample(n: usize) -> i16 {
    let t = n as f64 / f64::from(RATE);
    (0.5 * 32767.0 * (std::f64::consts::TAU * 440.0 * t).sin()) as i16
}

/// Open one of the server's pipes for writing or reading, non-blocking: the open does not
/// wait for the server, a read never hangs, and a write to a full pipe fails (the chunk
/// is dropped) rather than block.
fn open_pipe(path: &Path, write: bool) -> Option<File> {
    OpenOptions::new()
        .write(write)
        .read(!write)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .ok()
}

/// Write the tone or silence into the microphone's pipe in real time, 20 ms at a time.
fn feed(mic: PathBuf, tone: Arc<AtomicBool>, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let Some(mut f) = open_pipe(&mic, true) else {
            return;
        };
        let chunk = (RATE / 50) as usize;
        let t0 = Instant::now();
        let mut i = 0usize;
        while !stop.load(Ordering::Relaxed) {
            let on = tone.load(Ordering::Relaxed);
            let mut b = Vec::with_capacity(chunk * 2);
            for n in i..i + chunk {
                let v = if on { tone_sample(n) } else { 0 };
                b.extend_from_slice(&v.to_le_bytes());
            }
            // A full pipe (the server not reading) drops the chunk rather than block.
            let _ = f.write(&b);
            i += chunk;
            let due = t0 + Duration::from_secs_f64(i as f64 / f64::from(RATE));
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
    })
}

/// Read the speaker's pipe into `played` until stopped.
fn collect(speaker: PathBuf, played: Arc<Mutex<Vec<u8>>>, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let Some(mut f) = open_pipe(&speaker, false) else {
            return;
        };
        let mut buf = [0u8; 4096];
        while !stop.load(Ordering::Relaxed) {
            match f.read(&mut buf) {
                Ok(n) if n > 0 => played
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&buf[..n]),
                _ => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    })
}

//! The demo line: a second phone on loopback that answers every call after a short ring
//! and plays a prerecorded client («Алло? Да, слушаю вас...»), so the product's main job
//! — an agent talking to a client through a script — runs with no SIP provider.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::engine::{AnswerOptions, AudioIo, Listen, Phone, PhoneConfig, Port};
use crate::error::StartError;
use crate::event::Event;

/// The prerecorded client: 9 s of synthesised Russian speech, 8 kHz mono (see
/// `assets/README.md`).
pub const CLIENT_VOICE: &[u8] = include_bytes!("../assets/client-voice.wav");

/// How long the demo client lets the phone ring before answering.
pub const RING_FOR: Duration = Duration::from_millis(1500);

/// A running demo line. Dropping it hangs up and stops it.
#[derive(Debug)]
pub struct DemoLine {
    uri: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DemoLine {
    /// Start the demo line with its files in `folder` (its own engine folder and the
    /// voice file). It listens on a free UDP port of 127.0.0.1.
    pub fn start(folder: &Path) -> Result<DemoLine, StartError> {
        std::fs::create_dir_all(folder).map_err(|source| StartError::Folder {
            path: folder.into(),
            source,
        })?;
        let voice = folder.join("client-voice.wav");
        if std::fs::read(&voice).ok().as_deref() != Some(CLIENT_VOICE) {
            std::fs::write(&voice, CLIENT_VOICE).map_err(|source| StartError::Folder {
                path: voice.clone(),
                source,
            })?;
        }
        let mut config = PhoneConfig::new(folder.join("engine"));
        config.bind = Some(std::net::Ipv4Addr::LOCALHOST.into());
        config.listen = Listen {
            udp: Port::Random,
            tcp: Port::Off,
            tls: Port::Off,
        };
        config.audio = AudioIo::Files {
            play: Some(voice),
            speaker: None,
        };
        config.user_agent = "CallHelper demo line".into();
        let phone = Phone::start(config)?;
        let port = phone.ports().udp.expect("the demo line listens on UDP");
        let uri = format!("sip:client@127.0.0.1:{port}");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("demo-line".into())
            .spawn(move || answer_calls(phone, &flag))
            .map_err(StartError::Thread)?;
        Ok(DemoLine {
            uri,
            stop,
            thread: Some(thread),
        })
    }

    /// The address to call.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The voice file the line plays (written into its folder).
    pub fn voice(folder: &Path) -> PathBuf {
        folder.join("client-voice.wav")
    }
}

impl Drop for DemoLine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Answer every incoming call once it has rung for [`RING_FOR`].
fn answer_calls(phone: Phone, stop: &AtomicBool) {
    let mut ringing = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        if let Some(Event::Incoming { call, .. }) = phone.next_event(Duration::from_millis(50)) {
            ringing.push((call, Instant::now() + RING_FOR));
        }
        let now = Instant::now();
        ringing.retain(|(call, due)| {
            if now < *due {
                return true;
            }
            if let Err(e) = phone.answer(*call, AnswerOptions::default()) {
                log::warn!("demo line: cannot answer {call}: {e}");
            }
            false
        });
    }
    phone.shutdown();
}

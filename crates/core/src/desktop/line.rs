//! The workspace's phone line: one softphone engine for the app's lifetime, and the demo
//! line, started on the first call to it.
//!
//! The engine lives on a thread of its own that does two things: it runs the jobs the
//! workspace sends (place a call, hang up...) and forwards the engine's events to the
//! workspace's event thread. That thread never takes the workspace's lock, so a command
//! that holds the lock and waits for its job cannot deadlock with an event being handled.

use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use callhelper_phone::demo::DemoLine;
use callhelper_phone::{AudioIo, Event, Phone, PhoneConfig, Port, StartError, Transport};
use callhelper_script::{Text, text};

use crate::Error;
use crate::paths::DataDir;
use crate::phone::PhoneSettings;

/// The environment variable naming a WAV file to play into calls instead of the
/// microphone (tests and machines without a sound card, like the command line's `--play`).
pub const PLAY_ENV: &str = "CALLHELPER_PHONE_PLAY";

/// What a job runs against.
pub(super) struct Engine {
    pub(super) phone: Phone,
    demo: Option<DemoLine>,
    demo_folder: PathBuf,
}

impl Engine {
    /// The demo line's address, starting it on first use.
    pub(super) fn demo_uri(&mut self) -> Result<String, Error> {
        if self.demo.is_none() {
            let line = DemoLine::start(&self.demo_folder).map_err(start_error)?;
            log::info!("desktop: demo line started");
            self.demo = Some(line);
        }
        Ok(self.demo.as_ref().expect("just started").uri().to_owned())
    }
}

type Job = Box<dyn FnOnce(&mut Engine) + Send>;

/// A running phone line. Dropping it hangs up, stops the demo line and the engine.
pub(super) struct Line {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Line").finish_non_exhaustive()
    }
}

/// How long the engine thread waits for an event before it looks for jobs again: the
/// worst added latency of a command.
const POLL: Duration = Duration::from_millis(15);

impl Line {
    /// Start the engine with the settings of `phone/phone.json`, on loopback only when
    /// `loopback` (demo mode: only the demo line can be called). Events go to `events`.
    pub(super) fn start(
        data: &DataDir,
        loopback: bool,
        events: mpsc::Sender<Event>,
    ) -> Result<Line, Error> {
        let settings = PhoneSettings::load(data)?;
        let folder = data.part("phone")?;
        let mut config = PhoneConfig::new(folder.join("engine"));
        if let Some(p) = settings.sip_port {
            config.listen.udp = Port::Fixed(p);
            config.listen.tcp = Port::Fixed(p);
        }
        config.audio = match std::env::var_os(PLAY_ENV).filter(|v| !v.is_empty()) {
            Some(play) => AudioIo::Files {
                play: Some(play.into()),
                speaker: None,
            },
            None => AudioIo::Devices(settings.devices.clone()),
        };
        config.accounts = if loopback {
            Vec::new()
        } else {
            settings.accounts.clone()
        };
        config.dtmf = settings.dtmf;
        config.tls.root_ca = settings.tls_root_ca.clone();
        config.engine_log = log::LevelFilter::Warn;
        if loopback {
            config.bind = Some(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let phone = Phone::start(config).map_err(start_error)?;
        let mut engine = Engine {
            phone,
            demo: None,
            demo_folder: folder.join("demo"),
        };
        let (jobs, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("desk-phone".into())
            .spawn(move || {
                loop {
                    loop {
                        match rx.try_recv() {
                            Ok(job) => job(&mut engine),
                            Err(mpsc::TryRecvError::Empty) => break,
                            Err(mpsc::TryRecvError::Disconnected) => {
                                drop(engine.demo.take());
                                engine.phone.shutdown();
                                return;
                            }
                        }
                    }
                    let mut wait = POLL;
                    while let Some(e) = engine.phone.next_event(wait) {
                        if events.send(e).is_err() {
                            drop(engine.demo.take());
                            engine.phone.shutdown();
                            return;
                        }
                        wait = Duration::ZERO;
                    }
                }
            })
            .map_err(|e| {
                Error::new(
                    "phone.start_failed",
                    text!("the phone did not start: {e}"; "телефон не запустился: {e}"),
                )
            })?;
        Ok(Line {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Run `f` on the engine thread and wait for its result.
    pub(super) fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Engine) -> T + Send + 'static,
    ) -> Result<T, Error> {
        let (tx, rx) = mpsc::channel();
        let job: Job = Box::new(move |e| {
            let _ = tx.send(f(e));
        });
        self.jobs
            .as_ref()
            .and_then(|j| j.send(job).ok())
            .ok_or_else(stopped)?;
        rx.recv().map_err(|_| stopped())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn stopped() -> Error {
    Error::new(
        "phone.stopped",
        Text::new(
            "the phone has stopped; restart the app",
            "телефон остановился; перезапустите программу",
        ),
    )
}

pub(super) use crate::phone::command_error;

fn start_error(e: StartError) -> Error {
    match e {
        StartError::Listen => Error::new(
            "phone.port_in_use",
            Text::new(
                "cannot open the SIP port: another program uses it (change sip_port in phone.json)",
                "не удалось открыть порт SIP: он занят другой программой (измените sip_port в phone.json)",
            ),
        ),
        StartError::Account(e) => command_error(e),
        other => Error::new(
            "phone.start_failed",
            text!("the phone did not start: {other}"; "телефон не запустился: {other}"),
        ),
    }
}

/// A transport's name in the settings file.
pub(super) fn transport_name(t: Transport) -> &'static str {
    match t {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp",
        Transport::Tls => "tls",
    }
}

/// The user part of a SIP or tel address (`sip:+74950000000@pbx` → `+74950000000`).
pub(super) fn user_part(address: &str) -> &str {
    let a = address.trim();
    let a = a
        .rsplit_once('<')
        .map_or(a, |(_, r)| r.trim_end_matches('>'));
    let a = a
        .strip_prefix("sips:")
        .or_else(|| a.strip_prefix("sip:"))
        .or_else(|| a.strip_prefix("tel:"))
        .unwrap_or(a);
    let end = a.find(['@', ';', '>']).unwrap_or(a.len());
    &a[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_parts() {
        assert_eq!(
            user_part("sip:+74950000000@pbx.example.com"),
            "+74950000000"
        );
        assert_eq!(user_part("\"Ирина\" <sip:1001@pbx;transport=tcp>"), "1001");
        assert_eq!(user_part("tel:+7-495-000-00-00"), "+7-495-000-00-00");
        assert_eq!(user_part("89161234567"), "89161234567");
    }
}

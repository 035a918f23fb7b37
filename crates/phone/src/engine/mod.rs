//! The edge: a [`Phone`] owns one liblinphone core on a thread of its own. Every
//! liblinphone call, and `linphone_core_iterate`, happens on that thread; the rest of the
//! program sends [`Command`]s and reads [`Event`]s over channels.

mod callbacks;
mod classify;
mod driver;
mod ffi;
mod logging;
mod media_clock;
mod plugins;
mod soundcheck;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

pub use logging::{TARGET as LOG_TARGET, set_engine_log_level};

use crate::account::Account;
use crate::call::CallId;
use crate::devices::{AudioDevice, DevicePreferences};
use crate::dtmf::DtmfMethod;
use crate::error::{PhoneError, StartError};
use crate::event::Event;
use crate::redact::Address;
use crate::soundcheck::SoundCheck;

/// A SIP listening port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Port {
    /// Do not listen on this transport.
    Off,
    /// Any free port the system picks (see [`Phone::ports`]).
    #[default]
    Random,
    /// This port.
    Fixed(u16),
}

/// Where the phone listens for SIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen {
    /// UDP.
    pub udp: Port,
    /// TCP.
    pub tcp: Port,
    /// TLS.
    pub tls: Port,
}

impl Default for Listen {
    fn default() -> Listen {
        Listen {
            udp: Port::Random,
            tcp: Port::Random,
            tls: Port::Off,
        }
    }
}

/// The ports the phone actually listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ports {
    /// UDP, if enabled.
    pub udp: Option<u16>,
    /// TCP, if enabled.
    pub tcp: Option<u16>,
    /// TLS, if enabled.
    pub tls: Option<u16>,
}

/// Where call audio comes from and goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioIo {
    /// Sound devices, chosen from ranked preferences (with echo cancellation).
    Devices(DevicePreferences),
    /// Files instead of devices (tests, the demo line, a machine with no sound card).
    Files {
        /// A 16-bit WAV played into every call in place of the microphone (looped);
        /// `None` sends silence... or nothing at all, which the media watch reports.
        play: Option<PathBuf>,
        /// A WAV file that receives what the far end says, in place of the speaker.
        speaker: Option<PathBuf>,
    },
}

/// TLS settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    /// A PEM file of the certificate authorities to trust (the system's when `None`).
    pub root_ca: Option<PathBuf>,
    /// Check the server's certificate (never turn off outside tests).
    pub verify: bool,
}

/// How a phone is set up.
#[derive(Debug, Clone)]
pub struct PhoneConfig {
    /// The folder for liblinphone's files (its configuration and databases). Never the
    /// home folder: each phone (the app, the demo line, a test peer) gets its own.
    pub folder: PathBuf,
    /// SIP listening ports.
    pub listen: Listen,
    /// The address to bind SIP and RTP to and to advertise (`127.0.0.1` for loopback
    /// peers); all interfaces when `None`.
    pub bind: Option<IpAddr>,
    /// The RTP port range; random ports when `None`.
    pub rtp_ports: Option<(u16, u16)>,
    /// Audio devices or files.
    pub audio: AudioIo,
    /// The accounts to add at start.
    pub accounts: Vec<Account>,
    /// How DTMF is sent unless a command says otherwise.
    pub dtmf: DtmfMethod,
    /// The audio packet duration we send, in milliseconds, when the far end asks for
    /// none; the codec's default (20 ms) when `None`. The first packet of a call leaves
    /// one packet duration after the media starts: 10 ms halves that wait for about 20%
    /// more bandwidth.
    pub ptime: Option<u16>,
    /// How long a connected call may go without audio in a direction before
    /// [`Event::Media`] reports it.
    pub media_grace: Duration,
    /// How often a connected call's quality is reported ([`Event::Quality`]).
    pub quality_every: Duration,
    /// How long a registration may stay unanswered before it is reported as
    /// [`crate::RegistrationFailure::Timeout`] (liblinphone keeps trying).
    pub register_timeout: Duration,
    /// The `User-Agent` product name.
    pub user_agent: String,
    /// TLS settings.
    pub tls: Tls,
    /// liblinphone's own log level, routed through the `log` facade (target `linphone`).
    pub engine_log: log::LevelFilter,
    /// Turn liblinphone's crank on this fixed period instead of the adaptive cadence
    /// ([`crate::cadence`]); only for comparisons (the call set-up benchmark).
    pub fixed_tick: Option<Duration>,
}

impl PhoneConfig {
    /// Defaults for a phone keeping its files in `folder`: random ports on all
    /// interfaces, sound devices in system order, RFC 4733 DTMF.
    pub fn new(folder: impl Into<PathBuf>) -> PhoneConfig {
        PhoneConfig {
            folder: folder.into(),
            listen: Listen::default(),
            bind: None,
            rtp_ports: None,
            audio: AudioIo::Devices(DevicePreferences::default()),
            accounts: Vec::new(),
            dtmf: DtmfMethod::Rfc4733,
            ptime: None,
            media_grace: Duration::from_secs(3),
            quality_every: Duration::from_secs(5),
            register_timeout: Duration::from_secs(15),
            user_agent: "CallHelper".into(),
            tls: Tls {
                root_ca: None,
                verify: true,
            },
            engine_log: log::LevelFilter::Warn,
            fixed_tick: None,
        }
    }
}

/// Options for an outgoing call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallOptions {
    /// Which account to call from (the first account when `None`).
    pub account: Option<String>,
    /// Record the call (both directions, mixed) to this WAV file once it connects.
    pub record: Option<PathBuf>,
}

/// Options for answering a call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnswerOptions {
    /// Record the call (both directions, mixed) to this WAV file.
    pub record: Option<PathBuf>,
}

/// How to turn an incoming call down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decline {
    /// 486 Busy Here.
    Busy,
    /// 603 Decline.
    Decline,
}

/// What the phone can be asked to do.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Command {
    /// Add an account (and register it if it says so).
    AddAccount(Account),
    /// Unregister and remove an account.
    RemoveAccount(String),
    /// Send a fresh REGISTER for an account now.
    Register(String),
    /// Place a call to a SIP address (`sip:bob@pbx`) or a number/user name (`bob`, dialled
    /// at the account's domain). Replies with the new call's id.
    Call {
        /// Whom to call.
        to: Address,
        /// Options.
        options: CallOptions,
    },
    /// Answer a ringing incoming call.
    Answer {
        /// Which call.
        call: CallId,
        /// Options.
        options: AnswerOptions,
    },
    /// Turn down a ringing incoming call.
    Decline {
        /// Which call.
        call: CallId,
        /// How.
        how: Decline,
    },
    /// Hang up (or cancel, before the answer).
    HangUp(CallId),
    /// Put a call on hold.
    Hold(CallId),
    /// Take a call off hold.
    Resume(CallId),
    /// Mute or unmute our microphone in a call.
    Mute {
        /// Which call.
        call: CallId,
        /// Muted or not.
        muted: bool,
    },
    /// Send DTMF digits.
    Dtmf {
        /// Which call.
        call: CallId,
        /// `0`–`9`, `*`, `#`, `A`–`D`.
        digits: String,
        /// How; the phone's default when `None`.
        method: Option<DtmfMethod>,
    },
    /// Blind transfer: ask the far end to call `to` instead; our leg ends when it does.
    Transfer {
        /// The call to hand over.
        call: CallId,
        /// Where to.
        to: Address,
    },
    /// Attended transfer: connect the far ends of two of our calls to each other.
    TransferAttended {
        /// The call whose far end is sent on (usually the one on hold).
        call: CallId,
        /// The call whose far end receives it.
        to: CallId,
    },
    /// Start recording a call to the file chosen when it was placed or answered.
    StartRecording(CallId),
    /// Stop recording a call.
    StopRecording(CallId),
    /// List the audio devices present now.
    ListDevices,
    /// Replace the ranked device preferences.
    SetDevicePreferences(DevicePreferences),
    /// The network changed: refresh transports and registrations.
    NetworkChanged,
    /// Start a microphone or speaker test (stopping one under way); see
    /// [`crate::soundcheck`]. [`Event::SoundCheck`] tells when it runs and stops.
    StartSoundCheck(SoundCheck),
    /// Stop the test under way, if any.
    StopSoundCheck,
}

/// A command's answer.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Reply {
    /// Done (or under way; events tell the rest).
    Done,
    /// The call placed.
    Call(CallId),
    /// The devices present.
    Devices(Vec<AudioDevice>),
}

enum Request {
    Command(Box<Command>, mpsc::Sender<Result<Reply, PhoneError>>),
    Shutdown,
}

/// A running softphone: one liblinphone core on its own thread.
#[derive(Debug)]
pub struct Phone {
    requests: mpsc::Sender<Request>,
    events: mpsc::Receiver<Event>,
    thread: Option<JoinHandle<()>>,
    ports: Ports,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Request::Command(c, _) => f.debug_tuple("Command").field(c).finish(),
            Request::Shutdown => f.write_str("Shutdown"),
        }
    }
}

impl Phone {
    /// Start a phone. Returns once the core is up and listening (accounts start
    /// registering in the background; watch [`Event::Registration`]).
    pub fn start(config: PhoneConfig) -> Result<Phone, StartError> {
        set_engine_log_level(config.engine_log);
        std::fs::create_dir_all(&config.folder).map_err(|source| StartError::Folder {
            path: config.folder.clone(),
            source,
        })?;
        if let AudioIo::Files { play: Some(p), .. } = &config.audio {
            if !p.is_file() {
                return Err(StartError::MissingFile(p.clone()));
            }
        }
        let (req_tx, req_rx) = mpsc::channel();
        let (ev_tx, ev_rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("phone".into())
            .spawn(move || driver::run(config, req_rx, ev_tx, ready_tx))
            .map_err(StartError::Thread)?;
        match ready_rx.recv() {
            Ok(Ok(ports)) => Ok(Phone {
                requests: req_tx,
                events: ev_rx,
                thread: Some(thread),
                ports,
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(StartError::Engine(-1))
            }
        }
    }

    /// The ports the phone listens on.
    pub fn ports(&self) -> Ports {
        self.ports
    }

    /// Carry out a command on the engine thread and wait for its answer (milliseconds:
    /// the command is started, its outcome arrives as events).
    pub fn execute(&self, command: Command) -> Result<Reply, PhoneError> {
        let (tx, rx) = mpsc::channel();
        self.requests
            .send(Request::Command(Box::new(command), tx))
            .map_err(|_| PhoneError::Stopped)?;
        rx.recv().map_err(|_| PhoneError::Stopped)?
    }

    fn done(&self, command: Command) -> Result<(), PhoneError> {
        self.execute(command).map(|_| ())
    }

    /// The next event, waiting up to `timeout`.
    pub fn next_event(&self, timeout: Duration) -> Option<Event> {
        self.events.recv_timeout(timeout).ok()
    }

    /// The event channel itself (for `select`-style loops).
    pub fn events(&self) -> &mpsc::Receiver<Event> {
        &self.events
    }

    /// See [`Command::AddAccount`].
    pub fn add_account(&self, account: Account) -> Result<(), PhoneError> {
        self.done(Command::AddAccount(account))
    }

    /// See [`Command::RemoveAccount`].
    pub fn remove_account(&self, name: &str) -> Result<(), PhoneError> {
        self.done(Command::RemoveAccount(name.into()))
    }

    /// See [`Command::Register`].
    pub fn register(&self, name: &str) -> Result<(), PhoneError> {
        self.done(Command::Register(name.into()))
    }

    /// See [`Command::Call`].
    pub fn call(&self, to: &str, options: CallOptions) -> Result<CallId, PhoneError> {
        match self.execute(Command::Call {
            to: Address::new(to),
            options,
        })? {
            Reply::Call(id) => Ok(id),
            _ => Err(PhoneError::Refused("place the call")),
        }
    }

    /// See [`Command::Answer`].
    pub fn answer(&self, call: CallId, options: AnswerOptions) -> Result<(), PhoneError> {
        self.done(Command::Answer { call, options })
    }

    /// See [`Command::Decline`].
    pub fn decline(&self, call: CallId, how: Decline) -> Result<(), PhoneError> {
        self.done(Command::Decline { call, how })
    }

    /// See [`Command::HangUp`].
    pub fn hang_up(&self, call: CallId) -> Result<(), PhoneError> {
        self.done(Command::HangUp(call))
    }

    /// See [`Command::Hold`].
    pub fn hold(&self, call: CallId) -> Result<(), PhoneError> {
        self.done(Command::Hold(call))
    }

    /// See [`Command::Resume`].
    pub fn resume(&self, call: CallId) -> Result<(), PhoneError> {
        self.done(Command::Resume(call))
    }

    /// See [`Command::Mute`].
    pub fn set_muted(&self, call: CallId, muted: bool) -> Result<(), PhoneError> {
        self.done(Command::Mute { call, muted })
    }

    /// See [`Command::Dtmf`].
    pub fn send_dtmf(
        &self,
        call: CallId,
        digits: &str,
        method: Option<DtmfMethod>,
    ) -> Result<(), PhoneError> {
        self.done(Command::Dtmf {
            call,
            digits: digits.into(),
            method,
        })
    }

    /// See [`Command::Transfer`].
    pub fn transfer(&self, call: CallId, to: &str) -> Result<(), PhoneError> {
        self.done(Command::Transfer {
            call,
            to: Address::new(to),
        })
    }

    /// See [`Command::TransferAttended`].
    pub fn transfer_attended(&self, call: CallId, to: CallId) -> Result<(), PhoneError> {
        self.done(Command::TransferAttended { call, to })
    }

    /// See [`Command::ListDevices`].
    pub fn devices(&self) -> Result<Vec<AudioDevice>, PhoneError> {
        match self.execute(Command::ListDevices)? {
            Reply::Devices(d) => Ok(d),
            _ => Ok(Vec::new()),
        }
    }

    /// See [`Command::SetDevicePreferences`].
    pub fn set_device_preferences(&self, prefs: DevicePreferences) -> Result<(), PhoneError> {
        self.done(Command::SetDevicePreferences(prefs))
    }

    /// See [`Command::NetworkChanged`].
    pub fn network_changed(&self) -> Result<(), PhoneError> {
        self.done(Command::NetworkChanged)
    }

    /// See [`Command::StartSoundCheck`].
    pub fn start_sound_check(&self, check: SoundCheck) -> Result<(), PhoneError> {
        self.done(Command::StartSoundCheck(check))
    }

    /// See [`Command::StopSoundCheck`].
    pub fn stop_sound_check(&self) -> Result<(), PhoneError> {
        self.done(Command::StopSoundCheck)
    }

    /// Hang up every call, unregister, and stop the engine (also done on drop).
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.requests.send(Request::Shutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Phone {
    fn drop(&mut self) {
        self.stop();
    }
}

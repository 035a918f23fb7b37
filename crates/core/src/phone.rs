//! The softphone as the app uses it: place a call, answer one, register an account, each
//! reported as a stream of [`PhoneEvent`]s (one JSON object per line on the command line).
//!
//! Settings live in the data folder's `phone/` part:
//!
//! ```text
//! <data>/phone/phone.json    the settings below (optional; no file = no accounts)
//! <data>/phone/engine/       liblinphone's own files (databases), never in $HOME
//! <data>/phone/demo/         the demo line's engine and voice file
//! ```
//!
//! `phone.json` (unknown keys are refused, so a typo is an error, not a silent default):
//!
//! ```json
//! {
//!   "accounts": [
//!     { "name": "work", "username": "1001", "domain": "pbx.example.com",
//!       "password": "secret", "registrar": "pbx.example.com:5060",
//!       "transport": "udp", "expires": 600 }
//!   ],
//!   "devices": { "capture": ["USB headset", "default"], "playback": ["USB headset"],
//!                "ringer": ["Speakers"] },
//!   "dtmf": "rfc4733",
//!   "sip_port": 5060,
//!   "ptime": 20,
//!   "tls_root_ca": "/etc/ssl/certs/ca-certificates.crt"
//! }
//! ```
//!
//! Account fields: `name` (ours), `username`, `domain`, `password`, and optionally
//! `auth_username`, `realm`, `registrar` (`host[:port]`, default the domain),
//! `transport` (`udp`, `tcp`, `tls`), `display_name`, `expires` (seconds, default 600),
//! `register` (default true). `dtmf` is `rfc4733` or `sip_info`. `ptime` is the audio
//! packet duration we send in milliseconds (default 20; 10 makes the first audio packet
//! of a call leave about 10 ms sooner, for some 20% more bandwidth). Device lists are ranked:
//! the first one present is used, and a vanished device falls back to the next. The file
//! holds passwords: the `phone/` folder is private to the user.
//!
//! The address `demo` calls the built-in demo line (a client that answers and talks), so
//! everything works with no SIP provider.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use callhelper_phone::demo::DemoLine;
use callhelper_phone::quality::{MediaAlarm, MediaDirection};
use callhelper_phone::{
    AnswerOptions, AudioIo, CallOptions, CallState, Phone, PhoneConfig, PhoneError, Port,
    StartError,
};
use callhelper_script::{Text, text};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::paths::DataDir;

pub use callhelper_phone::{
    Account, CallId, CallSummary, DevicePreferences, DtmfMethod, EndReason, Event,
    RegistrationFailure, RegistrationState, Transport,
};

/// The settings file in the `phone/` part of the data folder.
pub const SETTINGS_FILE: &str = "phone.json";

/// The address that calls the demo line.
pub const DEMO: &str = "demo";

/// The phone's settings (`phone/phone.json`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhoneSettings {
    /// SIP accounts.
    #[serde(default)]
    pub accounts: Vec<Account>,
    /// Ranked audio device preferences.
    #[serde(default)]
    pub devices: DevicePreferences,
    /// How DTMF is sent.
    #[serde(default)]
    pub dtmf: DtmfMethod,
    /// A fixed SIP port (UDP and TCP); a free one when absent.
    #[serde(default)]
    pub sip_port: Option<u16>,
    /// Certificate authorities for TLS registrars (the system's when absent).
    #[serde(default)]
    pub tls_root_ca: Option<PathBuf>,
    /// Audio packet duration we send, in ms (default 20; 10 starts audio ~10 ms sooner).
    #[serde(default)]
    pub ptime: Option<u16>,
}

impl PhoneSettings {
    /// Read the settings from the data folder; no file means default settings.
    pub fn load(data: &DataDir) -> Result<PhoneSettings, Error> {
        let path = data.part("phone")?.join(SETTINGS_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(PhoneSettings::default());
            }
            Err(e) => {
                let p = path.display();
                return Err(Error::new(
                    "phone.settings_unreadable",
                    text!("cannot read {p}: {e}"; "не удалось прочитать {p}: {e}"),
                ));
            }
        };
        PhoneSettings::parse(&text, &path)
    }

    /// Parse settings text (`path` names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<PhoneSettings, Error> {
        serde_json::from_str(text).map_err(|e| {
            let (p, line, col) = (path.display(), e.line(), e.column());
            Error::new(
                "phone.settings_invalid",
                text!("{p}:{line}:{col}: {e}"; "{p}:{line}:{col}: ошибка в настройках телефона: {e}"),
            )
        })
    }

    /// The account named `name`.
    pub fn account(&self, name: &str) -> Result<&Account, Error> {
        self.accounts.iter().find(|a| a.name == name).ok_or_else(|| {
            let known = self.accounts.iter().map(|a| a.name.as_str()).collect::<Vec<_>>().join(", ");
            let message = if known.is_empty() {
                text!("there is no account named {name:?}: no SIP accounts are set up yet (add them to {SETTINGS_FILE} in the data folder's phone part)";
                      "нет учётной записи {name:?}: учётные записи SIP ещё не настроены (добавьте их в {SETTINGS_FILE} в разделе phone папки данных)")
            } else {
                text!("there is no account named {name:?} in {SETTINGS_FILE} (accounts: {known})";
                      "в {SETTINGS_FILE} нет учётной записи {name:?} (есть: {known})")
            };
            Error::new("phone.no_such_account", message)
        })
    }

    fn engine_config(
        &self,
        folder: PathBuf,
        audio: AudioIo,
        accounts: Vec<Account>,
    ) -> PhoneConfig {
        let mut c = PhoneConfig::new(folder);
        if let Some(p) = self.sip_port {
            c.listen.udp = Port::Fixed(p);
            c.listen.tcp = Port::Fixed(p);
        }
        c.audio = audio;
        c.accounts = accounts;
        c.dtmf = self.dtmf;
        c.tls.root_ca = self.tls_root_ca.clone();
        c.ptime = self.ptime;
        c.engine_log = log::max_level();
        c
    }
}

/// Events of the command line that are not the engine's.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum SessionEvent {
    /// Where the phone listens (for `answer`: where to call).
    Listening {
        /// UDP port.
        udp: Option<u16>,
        /// TCP port.
        tcp: Option<u16>,
    },
    /// The demo line was started for this call.
    DemoLine {
        /// Its address.
        uri: String,
    },
    /// The operation is over.
    Done {
        /// How it went.
        outcome: Outcome,
    },
}

/// One line of a phone session's report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhoneEvent {
    /// Milliseconds since the session started.
    pub t_ms: u64,
    /// What happened.
    #[serde(flatten)]
    pub what: Reported,
    /// What it means for the user, when it needs saying (errors, warnings, outcomes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<Text>,
}

/// An engine event or a session event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Reported {
    /// From the phone engine.
    Engine(Event),
    /// From the session.
    Session(SessionEvent),
}

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The call was answered and ended normally; the account registered.
    Completed,
    /// The call was not answered or failed; the registration failed.
    Failed,
    /// The call was answered but audio did not flow.
    NoAudio,
}

/// `callhelper phone call`. `Debug` masks the number called.
#[derive(Clone, Default)]
pub struct CallRequest {
    /// A SIP address, a number or user at the account's domain, or [`DEMO`].
    pub to: String,
    /// The account to call from (the first one configured when absent).
    pub account: Option<String>,
    /// Play this WAV instead of the microphone.
    pub play: Option<PathBuf>,
    /// Record the call (both directions) to this WAV.
    pub record: Option<PathBuf>,
    /// DTMF digits to send once the call is answered.
    pub dtmf: Option<String>,
    /// Hang up this long after the answer (else wait for the far end to hang up).
    pub hangup_after: Option<Duration>,
}

impl std::fmt::Debug for CallRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallRequest")
            .field("to", &callhelper_phone::Address::new(self.to.clone()))
            .field("account", &self.account)
            .field("play", &self.play)
            .field("record", &self.record)
            .field("dtmf", &self.dtmf.as_ref().map(|_| "***"))
            .field("hangup_after", &self.hangup_after)
            .finish()
    }
}

/// `callhelper phone answer`.
#[derive(Debug, Clone, Default)]
pub struct AnswerRequest {
    /// Play this WAV instead of the microphone.
    pub play: Option<PathBuf>,
    /// Record the call (both directions) to this WAV.
    pub record: Option<PathBuf>,
    /// Give up when no call arrives within this time (wait for ever when absent).
    pub wait: Option<Duration>,
}

/// A running phone and the clock of its report.
struct Session<'a> {
    phone: Phone,
    started: Instant,
    report: &'a mut dyn FnMut(&PhoneEvent),
}

impl Session<'_> {
    fn say(&mut self, what: Reported) {
        let message = match &what {
            Reported::Engine(e) => explain(e),
            Reported::Session(SessionEvent::Done { outcome }) => Some(outcome_text(*outcome)),
            Reported::Session(_) => None,
        };
        let t_ms = self.started.elapsed().as_millis() as u64;
        (self.report)(&PhoneEvent {
            t_ms,
            what,
            message,
        });
    }

    /// The next engine event (reported), waiting up to `timeout`.
    fn next(&mut self, timeout: Duration) -> Option<Event> {
        let e = self.phone.next_event(timeout)?;
        self.say(Reported::Engine(e.clone()));
        Some(e)
    }

    fn done(&mut self, outcome: Outcome) -> Outcome {
        self.say(Reported::Session(SessionEvent::Done { outcome }));
        outcome
    }

    /// Wait until `account` registers (or fails to).
    fn registered(&mut self, account: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            if let Some(Event::Registration {
                account: a, state, ..
            }) = self.next(left)
            {
                if a == account {
                    match state {
                        RegistrationState::Ok => return true,
                        RegistrationState::Failed { .. } => return false,
                        _ => {}
                    }
                }
            }
        }
        false
    }
}

fn start(config: PhoneConfig, report: &mut dyn FnMut(&PhoneEvent)) -> Result<Session<'_>, Error> {
    let phone = Phone::start(config).map_err(start_error)?;
    let mut s = Session {
        phone,
        started: Instant::now(),
        report,
    };
    let p = s.phone.ports();
    s.say(Reported::Session(SessionEvent::Listening {
        udp: p.udp,
        tcp: p.tcp,
    }));
    Ok(s)
}

fn audio(play: &Option<PathBuf>, settings: &PhoneSettings) -> AudioIo {
    match play {
        Some(p) => AudioIo::Files {
            play: Some(p.clone()),
            speaker: None,
        },
        None => AudioIo::Devices(settings.devices.clone()),
    }
}

/// Calls other than to the demo line, answering and registering need a licence in force:
/// without one the app is in demo mode (see [`crate::licence`]).
fn require_licence(data: &DataDir) -> Result<(), Error> {
    let status = crate::licence::status(data)?;
    if !status.is_demo() {
        return Ok(());
    }
    let why = crate::licence::describe(&status);
    Err(Error::new(
        "phone.licence_required",
        text!("{} Only `callhelper phone call demo` works until then (`callhelper licence activate KEY`).", why.en;
              "{} До тех пор работает только `callhelper phone call demo` (`callhelper licence activate КЛЮЧ`).", why.ru),
    ))
}

/// How long to wait for a registration before calling anyway is pointless.
const REGISTER_WAIT: Duration = Duration::from_secs(20);

/// Place a call and follow it to its end.
pub fn call(
    data: &DataDir,
    req: CallRequest,
    report: &mut dyn FnMut(&PhoneEvent),
) -> Result<Outcome, Error> {
    let demo = req.to.trim() == DEMO;
    let settings = PhoneSettings::load(data)?;
    let folder = data.part("phone")?;
    let account = match (&req.account, demo) {
        (Some(name), _) => Some(settings.account(name)?.clone()),
        (None, false) => settings.accounts.first().cloned(),
        (None, true) => None,
    };
    if !demo {
        require_licence(data)?;
    }
    let line = if demo {
        Some(DemoLine::start(&folder.join("demo")).map_err(start_error)?)
    } else {
        None
    };
    let mut config = settings.engine_config(
        folder.join("engine"),
        audio(&req.play, &settings),
        account.iter().cloned().collect(),
    );
    if demo {
        // The demo line is on loopback: keep our side there too.
        config.bind = Some(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let mut s = start(config, report)?;
    let to = match &line {
        Some(l) => {
            s.say(Reported::Session(SessionEvent::DemoLine {
                uri: l.uri().into(),
            }));
            l.uri().to_string()
        }
        None => req.to.clone(),
    };
    if let Some(a) = account.as_ref().filter(|a| a.register) {
        if !s.registered(&a.name, REGISTER_WAIT) {
            return Ok(s.done(Outcome::Failed));
        }
    }
    let options = CallOptions {
        account: account.map(|a| a.name),
        record: req.record.clone(),
    };
    let id = s.phone.call(&to, options).map_err(command_error)?;
    let mut hang_up_at = None;
    let outcome = loop {
        let wait = hang_up_at.map_or(Duration::from_millis(200), |t: Instant| {
            t.saturating_duration_since(Instant::now())
                .min(Duration::from_millis(200))
        });
        match s.next(wait) {
            Some(Event::CallState {
                call,
                state: CallState::Connected,
            }) if call == id && hang_up_at.is_none() => {
                hang_up_at = Some(Instant::now() + req.hangup_after.unwrap_or(Duration::MAX / 4));
                if let Some(d) = &req.dtmf {
                    s.phone.send_dtmf(id, d, None).map_err(command_error)?;
                }
            }
            Some(Event::CallEnded { call, summary }) if call == id => break judge(&summary),
            _ => {}
        }
        if hang_up_at.is_some_and(|t| Instant::now() >= t) {
            hang_up_at = Some(Instant::now() + Duration::from_secs(3600));
            s.phone.hang_up(id).map_err(command_error)?;
        }
    };
    drop(line);
    Ok(s.done(outcome))
}

/// Wait for one call, answer it, and follow it to its end.
pub fn answer(
    data: &DataDir,
    req: AnswerRequest,
    report: &mut dyn FnMut(&PhoneEvent),
) -> Result<Outcome, Error> {
    require_licence(data)?;
    let settings = PhoneSettings::load(data)?;
    let folder = data.part("phone")?;
    let config = settings.engine_config(
        folder.join("engine"),
        audio(&req.play, &settings),
        settings.accounts.clone(),
    );
    let mut s = start(config, report)?;
    let deadline = req.wait.map(|w| Instant::now() + w);
    let mut ours = None;
    let outcome = loop {
        if ours.is_none() && deadline.is_some_and(|d| Instant::now() >= d) {
            break Outcome::Failed;
        }
        match s.next(Duration::from_millis(200)) {
            Some(Event::Incoming { call, .. }) if ours.is_none() => {
                s.phone
                    .answer(
                        call,
                        AnswerOptions {
                            record: req.record.clone(),
                        },
                    )
                    .map_err(command_error)?;
                ours = Some(call);
            }
            Some(Event::CallEnded { call, summary }) if Some(call) == ours => {
                break judge(&summary);
            }
            _ => {}
        }
    };
    Ok(s.done(outcome))
}

/// Register one account, report how it went, and unregister.
pub fn register(
    data: &DataDir,
    account: &str,
    report: &mut dyn FnMut(&PhoneEvent),
) -> Result<Outcome, Error> {
    let settings = PhoneSettings::load(data)?;
    let mut a = settings.account(account)?.clone();
    require_licence(data)?;
    a.register = true;
    let folder = data.part("phone")?;
    let config = settings.engine_config(
        folder.join("engine"),
        AudioIo::Files {
            play: None,
            speaker: None,
        },
        vec![a],
    );
    let mut s = start(config, report)?;
    let ok = s.registered(account, REGISTER_WAIT);
    Ok(s.done(if ok {
        Outcome::Completed
    } else {
        Outcome::Failed
    }))
}

fn judge(summary: &CallSummary) -> Outcome {
    if !summary.answered {
        Outcome::Failed
    } else if summary.media_stalled {
        Outcome::NoAudio
    } else {
        Outcome::Completed
    }
}

fn start_error(e: StartError) -> Error {
    match e {
        StartError::MissingFile(p) => {
            let p = p.display();
            Error::new(
                "phone.file_missing",
                text!("the file {p} does not exist"; "файл {p} не существует"),
            )
        }
        StartError::Listen => Error::new(
            "phone.port_in_use",
            text!("cannot open the SIP port: another program uses it (change sip_port in {SETTINGS_FILE})";
                  "не удалось открыть порт SIP: он занят другой программой (измените sip_port в {SETTINGS_FILE})"),
        ),
        StartError::Account(e) => command_error(e),
        other => Error::new(
            "phone.start_failed",
            text!("the phone did not start: {other}"; "телефон не запустился: {other}"),
        ),
    }
}

/// A phone command's error, in both languages.
pub(crate) fn command_error(e: PhoneError) -> Error {
    let code = match &e {
        PhoneError::NoSuchAccount(_) => "phone.no_such_account",
        PhoneError::InvalidAccount { .. } => "phone.invalid_account",
        PhoneError::InvalidAddress => "phone.invalid_address",
        PhoneError::InvalidDigit(_) => "phone.invalid_dtmf",
        PhoneError::NoSuchDevice(_) => "phone.no_such_device",
        _ => "phone.command_failed",
    };
    let ru = match &e {
        PhoneError::InvalidAddress => "это не адрес SIP и не номер".to_string(),
        PhoneError::InvalidDigit(d) => {
            format!("{:?} — не клавиша DTMF (допустимы 0-9, *, #, A-D)", d.0)
        }
        PhoneError::InvalidAccount { name, what } => format!("учётная запись {name:?}: {what}"),
        PhoneError::NoSuchDevice(id) => format!("нет звукового устройства {id:?}"),
        other => format!("телефон не выполнил команду: {other}"),
    };
    Error::new(code, Text::new(e.to_string(), ru))
}

fn outcome_text(o: Outcome) -> Text {
    match o {
        Outcome::Completed => Text::new("done", "готово"),
        Outcome::Failed => Text::new("failed", "не удалось"),
        Outcome::NoAudio => Text::new(
            "the call connected but audio did not flow",
            "звонок соединился, но звук не проходил",
        ),
    }
}

/// What an engine event means for the user, when it needs saying.
pub fn explain(e: &Event) -> Option<Text> {
    Some(match e {
        Event::Registration {
            account: a,
            state: RegistrationState::Ok,
            ..
        } => {
            text!("account {a} is registered"; "учётная запись {a} зарегистрирована")
        }
        Event::Registration {
            account: a,
            state: RegistrationState::Failed { failure },
            ..
        } => registration_failure(a, failure),
        Event::Media {
            alarm:
                MediaAlarm::Stalled {
                    direction: MediaDirection::Outgoing,
                    ..
                },
            ..
        } => Text::new(
            "we are sending no audio: check the microphone (or the file played)",
            "мы не передаём звук: проверьте микрофон (или воспроизводимый файл)",
        ),
        Event::Media {
            alarm:
                MediaAlarm::Stalled {
                    direction: MediaDirection::Incoming,
                    ..
                },
            ..
        } => Text::new(
            "no audio arrives from the other side (a network or firewall problem?)",
            "от собеседника не приходит звук (проблема сети или межсетевого экрана?)",
        ),
        Event::Media {
            alarm: MediaAlarm::Recovered { .. },
            ..
        } => Text::new("audio flows again", "звук снова проходит"),
        Event::Warning {
            warning: callhelper_phone::Warning::NoAudioDevice,
        } => Text::new(
            "no microphone or speaker found: calls will have no sound",
            "не найдены микрофон или динамик: в звонках не будет звука",
        ),
        Event::Device(s) if s.why == callhelper_phone::devices::SwitchReason::Vanished => {
            let from = s.from.as_deref().unwrap_or("-");
            let to = s.to.as_deref().unwrap_or("none");
            text!("the audio device {from} disappeared; now using {to}";
                  "аудиоустройство {from} пропало; теперь используется {to}")
        }
        Event::CallEnded { summary, .. } => return end_text(summary.reason),
        _ => return None,
    })
}

fn registration_failure(a: &str, f: &RegistrationFailure) -> Text {
    match f {
        RegistrationFailure::BadCredentials => text!(
            "account {a}: the registrar refused the user name or password (401); check them";
            "учётная запись {a}: сервер отверг имя пользователя или пароль (401); проверьте их"),
        RegistrationFailure::Forbidden => text!(
            "account {a}: the registrar refuses this account (403); ask your administrator";
            "учётная запись {a}: сервер запрещает эту учётную запись (403); обратитесь к администратору"),
        RegistrationFailure::UnknownUser => text!(
            "account {a}: the registrar does not know this user (404)";
            "учётная запись {a}: сервер не знает такого пользователя (404)"),
        RegistrationFailure::Timeout => text!(
            "account {a}: no answer from the registrar; check its address and the network";
            "учётная запись {a}: сервер не отвечает; проверьте его адрес и сеть"),
        RegistrationFailure::Unreachable => text!(
            "account {a}: cannot reach the registrar (connection refused, name or TLS certificate problem)";
            "учётная запись {a}: сервер недоступен (соединение отклонено, ошибка имени или сертификата TLS)"),
        RegistrationFailure::Rejected { sip_code } => text!(
            "account {a}: the registrar answered {sip_code}";
            "учётная запись {a}: сервер ответил {sip_code}"),
        _ => {
            text!("account {a}: registration failed"; "учётная запись {a}: регистрация не удалась")
        }
    }
}

fn end_text(reason: EndReason) -> Option<Text> {
    Some(match reason {
        EndReason::Busy => Text::new("the line is busy", "линия занята"),
        EndReason::Declined => Text::new("the call was declined", "вызов отклонён"),
        EndReason::NoAnswer => Text::new("nobody answered", "никто не ответил"),
        EndReason::NotFound => {
            Text::new("no such number or address", "такого номера или адреса нет")
        }
        EndReason::Unreachable => Text::new(
            "the other side or the network could not be reached",
            "не удалось связаться с собеседником или сетью",
        ),
        EndReason::CancelledRemotely => Text::new("missed call", "пропущенный вызов"),
        EndReason::Failed { sip_code } => {
            let code = sip_code.map_or_else(|| "-".to_string(), |c| c.to_string());
            text!("the call failed ({code})"; "вызов не удался ({code})")
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_with_defaults_and_refuse_typos() {
        let s = PhoneSettings::parse(
            r#"{"accounts":[{"name":"work","username":"1001","domain":"pbx.example.com","password":"p"}],
                "dtmf":"sip_info","devices":{"capture":["USB"]}}"#,
            Path::new("phone.json"),
        )
        .unwrap();
        assert_eq!(s.accounts[0].expires, 600);
        assert_eq!(s.dtmf, DtmfMethod::SipInfo);
        assert_eq!(s.devices.capture, ["USB"]);
        assert!(s.account("work").is_ok());
        let e = s.account("home").unwrap_err();
        assert_eq!(e.code, "phone.no_such_account");
        assert!(e.message.en.contains("work") && e.message.ru.contains("work"));

        let e = PhoneSettings::parse("{\n \"acounts\": []}", Path::new("phone.json")).unwrap_err();
        assert_eq!(e.code, "phone.settings_invalid");
        assert!(
            e.message.en.starts_with("phone.json:2:"),
            "{}",
            e.message.en
        );
    }

    #[test]
    fn missing_settings_are_empty_settings() {
        let dir = tempfile::tempdir().unwrap();
        let s = PhoneSettings::load(&DataDir::at(dir.path())).unwrap();
        assert!(s.accounts.is_empty());
    }

    #[test]
    fn failures_are_explained_in_both_languages() {
        let e = Event::Registration {
            account: "work".into(),
            state: RegistrationState::Failed {
                failure: RegistrationFailure::BadCredentials,
            },
            sip_code: Some(401),
        };
        let t = explain(&e).unwrap();
        assert!(
            t.en.contains("password") && t.ru.contains("пароль"),
            "{t:?}"
        );
        let json = serde_json::to_value(PhoneEvent {
            t_ms: 5,
            what: Reported::Engine(e),
            message: Some(t),
        })
        .unwrap();
        assert_eq!(json["event"], "registration");
        assert_eq!(json["failure"], "bad_credentials");
        assert_eq!(json["t_ms"], 5);
        assert!(json["message"]["ru"].is_string());
    }

    /// The whole path the command line takes, against the demo line: no provider needed.
    #[test]
    fn a_call_to_the_demo_line_is_answered_and_completes() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::at(dir.path());
        let play = dir.path().join("agent.wav");
        std::fs::write(&play, callhelper_phone::demo::CLIENT_VOICE).unwrap();
        let record = dir.path().join("call.wav");
        let mut lines = Vec::new();
        let req = CallRequest {
            to: DEMO.into(),
            play: Some(play),
            record: Some(record.clone()),
            dtmf: Some("12".into()),
            hangup_after: Some(Duration::from_secs(2)),
            ..Default::default()
        };
        let outcome = call(&data, req, &mut |e| {
            lines.push(serde_json::to_value(e).unwrap())
        })
        .unwrap();
        assert_eq!(outcome, Outcome::Completed, "{lines:#?}");
        let kinds: Vec<&str> = lines.iter().filter_map(|l| l["event"].as_str()).collect();
        for k in [
            "listening",
            "demo_line",
            "outgoing",
            "call_state",
            "call_ended",
            "done",
        ] {
            assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
        }
        let ended = lines.iter().find(|l| l["event"] == "call_ended").unwrap();
        assert_eq!(ended["summary"]["answered"], true);
        assert!(
            std::fs::metadata(&record).unwrap().len() > 10_000,
            "the call was recorded"
        );
        // liblinphone worked in the data folder (and keeps no databases there).
        assert!(dir.path().join("phone/engine").is_dir());
        assert!(!dir.path().join("phone/engine/linphone.db").exists());
    }

    #[test]
    fn an_unknown_account_is_an_error_before_anything_starts() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::at(dir.path());
        let req = CallRequest {
            to: "sip:x@127.0.0.1".into(),
            account: Some("nope".into()),
            ..Default::default()
        };
        let err = call(&data, req, &mut |_| {}).unwrap_err();
        assert_eq!(err.code, "phone.no_such_account");
    }
}

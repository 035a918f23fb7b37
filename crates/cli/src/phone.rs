//! `callhelper phone …`: place a call, answer one, register an account. Each prints one
//! JSON object per line (state changes, DTMF received, registration, the call's quality
//! figures, and a final `done`), so it can be scripted, and exits non-zero on failure:
//! 1 for an error (bad settings, a missing file, a busy port), 2 when the call or the
//! registration failed, 3 when a call connected but audio did not flow.
//!
//! Accounts and devices come from `phone/phone.json` in the data folder (see
//! `callhelper_core::phone` for its format). `CALLHELPER_LOG=warn|info|debug` sends the
//! engine's log to standard error (it may then contain SIP addresses).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use callhelper_core::phone::{
    self, AnswerRequest, CallRequest, Outcome, PhoneEvent, Reported, SessionEvent,
};
use clap::Subcommand;

use crate::Ctx;

/// Phone subcommands.
#[derive(Debug, Subcommand)]
pub enum PhoneCommand {
    /// Call URI and follow the call to its end.
    Call {
        /// A SIP address (sip:bob@pbx.example.com), a number or user name dialled at the
        /// account's domain, or `demo` for the built-in demo line.
        uri: String,
        /// The account to call from (default: the first in phone.json).
        #[arg(long, value_name = "NAME")]
        account: Option<String>,
        /// Play this WAV file (16-bit PCM) into the call instead of the microphone.
        #[arg(long, value_name = "WAV")]
        play: Option<PathBuf>,
        /// Record the call, both directions, to this WAV file.
        #[arg(long, value_name = "WAV")]
        record: Option<PathBuf>,
        /// Send these DTMF keys (0-9, *, #, A-D) once the call is answered.
        #[arg(long, value_name = "DIGITS")]
        dtmf: Option<String>,
        /// Hang up this many seconds after the answer (default: wait for the other side).
        #[arg(long, value_name = "SECONDS", value_parser = seconds)]
        hangup_after: Option<Duration>,
    },
    /// Wait for one incoming call, answer it, and follow it to its end.
    Answer {
        /// Play this WAV file (16-bit PCM) into the call instead of the microphone.
        #[arg(long, value_name = "WAV")]
        play: Option<PathBuf>,
        /// Record the call, both directions, to this WAV file.
        #[arg(long, value_name = "WAV")]
        record: Option<PathBuf>,
        /// Give up when no call arrives within this many seconds (default: wait).
        #[arg(long, value_name = "SECONDS", value_parser = seconds)]
        wait: Option<Duration>,
    },
    /// Register an account, report how it went, and unregister.
    Register {
        /// The account's name in phone.json.
        #[arg(long, value_name = "NAME")]
        account: String,
    },
}

fn seconds(s: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{s:?} is not a number of seconds"))
}

/// Run a phone subcommand.
pub fn run(cmd: PhoneCommand, ctx: &Ctx) -> ExitCode {
    init_log();
    let data = match ctx.data_dir() {
        Ok(d) => d,
        Err(e) => return fail(ctx, &e),
    };
    let mut last_message = None;
    let mut print = |e: &PhoneEvent| {
        if let Ok(line) = serde_json::to_string(e) {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
        // The reason a failure happened, not the final "failed".
        let done = matches!(e.what, Reported::Session(SessionEvent::Done { .. }));
        if let Some(m) = e
            .message
            .as_ref()
            .filter(|_| !done || last_message.is_none())
        {
            last_message = Some(m.get(ctx.lang).to_string());
        }
    };
    let result = match cmd {
        PhoneCommand::Call {
            uri,
            account,
            play,
            record,
            dtmf,
            hangup_after,
        } => {
            let req = CallRequest {
                to: uri,
                account,
                play,
                record,
                dtmf,
                hangup_after,
            };
            phone::call(&data, req, &mut print)
        }
        PhoneCommand::Answer { play, record, wait } => {
            phone::answer(&data, AnswerRequest { play, record, wait }, &mut print)
        }
        PhoneCommand::Register { account } => phone::register(&data, &account, &mut print),
    };
    match result {
        Ok(Outcome::Completed) => ExitCode::SUCCESS,
        Ok(outcome) => {
            if let Some(m) = last_message {
                eprintln!("callhelper: {m}");
            }
            ExitCode::from(if outcome == Outcome::NoAudio { 3 } else { 2 })
        }
        Err(e) => fail(ctx, &e),
    }
}

fn fail(ctx: &Ctx, e: &callhelper_core::Error) -> ExitCode {
    eprintln!("callhelper: {}", e.message(ctx.lang));
    ExitCode::FAILURE
}

/// Log to standard error at the level in `CALLHELPER_LOG` (off by default: the JSON on
/// standard output is the report).
fn init_log() {
    struct Stderr;
    impl log::Log for Stderr {
        fn enabled(&self, m: &log::Metadata) -> bool {
            m.level() <= log::max_level()
        }
        fn log(&self, r: &log::Record) {
            eprintln!("[{} {}] {}", r.level(), r.target(), r.args());
        }
        fn flush(&self) {}
    }
    static LOGGER: Stderr = Stderr;
    let level = std::env::var("CALLHELPER_LOG")
        .ok()
        .and_then(|l| l.parse().ok())
        .unwrap_or(log::LevelFilter::Off);
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}

//! `callhelper licence …`: activate a licence key, show the status, deactivate.

use std::io::Read;
use std::process::ExitCode;

use callhelper_core::licence::{self, Deactivated, Status};
use callhelper_core::script::text;
use clap::Subcommand;

use crate::Ctx;

/// Licence subcommands.
#[derive(Debug, Subcommand)]
pub enum LicenceCommand {
    /// Activate a licence key on this computer (takes one seat on the licence server).
    Activate {
        /// The licence key (`CHK1-…`), or `-` to read it from standard input.
        key: String,
        /// The licence server's address (default: CALLHELPER_LICENCE_SERVER, else the
        /// one used before). It is remembered for renewals.
        #[arg(long, value_name = "URL")]
        server: Option<String>,
    },
    /// Show the licence status, renewing the lease first when it is due.
    ///
    /// Exits 0 when the licence is in force, 2 in demo mode or when work is stopped,
    /// 1 on errors.
    Status {
        /// Do not contact the licence server.
        #[arg(long)]
        offline: bool,
        /// Print the status as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Free this computer's seat on the licence server and remove the licence here.
    Deactivate {
        /// The licence server's address (default: as for `activate`).
        #[arg(long, value_name = "URL")]
        server: Option<String>,
        /// Remove the licence here even if the server cannot be told (its seat then
        /// frees itself when the lease ends).
        #[arg(long)]
        forget: bool,
    },
}

fn fail(ctx: &Ctx, e: &callhelper_core::Error) -> ExitCode {
    eprintln!("callhelper: {}", e.message(ctx.lang));
    ExitCode::FAILURE
}

fn show(ctx: &Ctx, status: &Status, json: bool) -> ExitCode {
    if json {
        match serde_json::to_string_pretty(status) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("callhelper: {e}"),
        }
    } else {
        println!("{}", licence::describe(status).get(ctx.lang));
    }
    if status.is_demo() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

/// Run a licence subcommand.
pub fn run(cmd: LicenceCommand, ctx: &Ctx) -> ExitCode {
    let data = match ctx.data_dir() {
        Ok(d) => d,
        Err(e) => return fail(ctx, &e),
    };
    match cmd {
        LicenceCommand::Activate { key, server } => {
            let key = if key == "-" {
                let mut s = String::new();
                if let Err(e) = std::io::stdin().take(64 * 1024).read_to_string(&mut s) {
                    eprintln!("callhelper: {e}");
                    return ExitCode::FAILURE;
                }
                s
            } else {
                key
            };
            match licence::activate(&data, &key, server.as_deref()) {
                Ok(st) => show(ctx, &st, false),
                Err(e) => fail(ctx, &e),
            }
        }
        LicenceCommand::Status { offline, json } => {
            let status = if offline {
                licence::status(&data)
            } else {
                licence::check(&data).map(|c| {
                    if let Some(p) = &c.problem {
                        eprintln!("callhelper: {}", p.message(ctx.lang));
                    }
                    c.status
                })
            };
            match status {
                Ok(st) => show(ctx, &st, json),
                Err(e) => fail(ctx, &e),
            }
        }
        LicenceCommand::Deactivate { server, forget } => {
            match licence::deactivate(&data, server.as_deref(), forget) {
                Ok(done) => {
                    let t = match done {
                        Deactivated::SeatFreed => text!(
                            "Deactivated: the seat is free and the licence is removed from this computer.";
                            "Лицензия деактивирована: место освобождено, лицензия удалена с этого компьютера."
                        ),
                        Deactivated::NoSeatHeld => text!(
                            "The licence is removed from this computer (the server held no seat for it).";
                            "Лицензия удалена с этого компьютера (место на сервере за ним уже не числилось)."
                        ),
                        _ => text!(
                            "The licence is removed from this computer; the server was not told, so its seat frees itself when the lease ends.";
                            "Лицензия удалена с этого компьютера; сервер не уведомлён, поэтому место освободится само по окончании аренды."
                        ),
                    };
                    println!("{}", t.get(ctx.lang));
                    ExitCode::SUCCESS
                }
                Err(e) => fail(ctx, &e),
            }
        }
    }
}

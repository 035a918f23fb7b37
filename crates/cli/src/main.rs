//! `callhelper`: the command-line program. It builds without the desktop's system
//! libraries and calls the same API as the desktop app (`callhelper-core`).
//!
//! Each area has its own module with its subcommands; this file only wires them up.

use std::path::PathBuf;
use std::process::ExitCode;

use callhelper_core::paths::DataDir;
use callhelper_core::script::Lang;
use clap::{Parser, Subcommand};

mod crm;
mod data;
mod licence;
mod phone;
mod script;

/// CallHelper: a softphone for call-centre agents with a call-script runner.
#[derive(Debug, Parser)]
#[command(name = "callhelper", version, about, propagate_version = true)]
struct Cli {
    /// Where CallHelper keeps its data (default: the OS's data folder; also
    /// CALLHELPER_DATA_DIR).
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Interface language: ru or en (default: from LANG).
    #[arg(long, global = true, value_name = "LANG")]
    lang: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Call scripts: lint, run, print the format's JSON Schema.
    #[command(subcommand)]
    Script(script::ScriptCommand),
    /// The licence: activate a key, show the status, deactivate.
    #[command(subcommand)]
    Licence(licence::LicenceCommand),
    /// The collected database: export, import, personal-data requests, users, status.
    Data(data::DataCommand),
    /// CRM sync: connect, status, retry, deliver now, fields and mapping, click-to-call.
    #[command(subcommand)]
    Crm(crm::CrmCommand),
    /// The softphone: call, answer, register (one JSON event per line).
    #[command(subcommand)]
    Phone(phone::PhoneCommand),
}

/// What every subcommand gets: the language and the data folder.
#[derive(Debug)]
pub struct Ctx {
    /// The interface language.
    pub lang: Lang,
    data_dir: Option<PathBuf>,
}

impl Ctx {
    /// The data folder (resolved on first use, so commands that need none never fail on it).
    pub fn data_dir(&self) -> Result<DataDir, callhelper_core::Error> {
        DataDir::resolve(self.data_dir.as_deref())
    }
}

fn language(explicit: Option<&str>) -> Lang {
    explicit
        .map(str::to_owned)
        .or_else(|| std::env::var("CALLHELPER_LANG").ok())
        .or_else(|| std::env::var("LC_ALL").ok().filter(|v| !v.is_empty()))
        .or_else(|| std::env::var("LC_MESSAGES").ok().filter(|v| !v.is_empty()))
        .or_else(|| std::env::var("LANG").ok())
        .and_then(|t| Lang::parse(&t))
        .unwrap_or_default()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ctx = Ctx {
        lang: language(cli.lang.as_deref()),
        data_dir: cli.data_dir,
    };
    match cli.command {
        Command::Script(cmd) => script::run(cmd, &ctx),
        Command::Licence(cmd) => licence::run(cmd, &ctx),
        Command::Data(cmd) => data::run(cmd, &ctx),
        Command::Crm(cmd) => crm::run(cmd, &ctx),
        Command::Phone(cmd) => phone::run(cmd, &ctx),
    }
}

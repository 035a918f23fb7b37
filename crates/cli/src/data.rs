//! `callhelper data …`: the collected database from the command line: set it up, export
//! and import, answer personal-data requests, manage users, check it.
//!
//! Every command signs in first: `--user` (or `CALLHELPER_USER`) and the password from
//! `CALLHELPER_PASSWORD` or typed at the prompt. The database key comes from the OS
//! keychain, or from `CALLHELPER_DB_PASSPHRASE` on installations set up with a passphrase.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use callhelper_core::Error;
use callhelper_core::data::store::contacts::ContactChange;
use callhelper_core::data::store::export::{Filter, Format, Progress};
use callhelper_core::data::store::{self, Pii, Role, Session, Store};
use callhelper_core::data::{self, KeyChoice};
use callhelper_core::script::{Lang, Timestamp, text};
use clap::{Args, Subcommand, ValueEnum};

use crate::Ctx;

/// The collected database.
#[derive(Debug, Args)]
pub struct DataCommand {
    /// Sign in as this user (default: CALLHELPER_USER).
    #[arg(long, global = true, value_name = "LOGIN")]
    user: Option<String>,
    #[command(subcommand)]
    command: DataSub,
}

#[derive(Debug, Subcommand)]
enum DataSub {
    /// Create the encrypted database of a new installation and its first administrator.
    ///
    /// The key is a random key kept in the OS keychain. Where no keychain can be reached,
    /// pass --passphrase and choose a passphrase (also CALLHELPER_DB_PASSPHRASE); it is
    /// then needed at every start.
    Init {
        /// The first administrator's login.
        #[arg(long, value_name = "LOGIN")]
        admin: String,
        /// Protect the database with a passphrase instead of the OS keychain.
        #[arg(long)]
        passphrase: bool,
    },
    /// Export runs: one row per run, one column per field (blocked people never appear).
    Export {
        /// File format.
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// The file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[command(flatten)]
        filter: FilterArgs,
        /// Leave out contacts, personal fields and notes (for analytics).
        #[arg(long)]
        without_personal_data: bool,
    },
    /// Per-step analytics of finished runs: how many reach, leave and end on each step,
    /// answers chosen, time per step, outcomes and conversion by script version. Holds
    /// no personal data; runs of blocked people are left out.
    Analytics {
        /// How to show them: a table to read, CSV or JSON.
        #[arg(long, value_enum, default_value = "text")]
        format: AnalyticsFormat,
        /// The file to write (default: standard output).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Import contacts from CSV (header row with name, phone, email, ...) or JSON.
    Import {
        /// The file.
        file: PathBuf,
    },
    /// Export everything held about one person, as JSON (policy §8.1).
    Subject {
        /// The person's phone number.
        #[arg(long)]
        phone: String,
        /// The file to write (default: standard output).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Change a person's data (§5.1).
    Change {
        /// The person's phone number.
        #[arg(long)]
        phone: String,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        /// New e-mail address.
        #[arg(long)]
        email: Option<String>,
        /// New phone number.
        #[arg(long, value_name = "PHONE")]
        new_phone: Option<String>,
        /// Set another field: KEY=VALUE (repeatable; an empty VALUE removes it).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Destroy a person's data irreversibly (§5.2); a record without personal data stays.
    Delete {
        /// The person's phone number.
        #[arg(long)]
        phone: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Block a person: no calls, no CRM sync, no export, until unblocked.
    Block {
        /// The person's phone number.
        #[arg(long)]
        phone: String,
    },
    /// Lift a block.
    Unblock {
        /// The person's phone number.
        #[arg(long)]
        phone: String,
    },
    /// Record consent given (or withdrawn) by a person (§3.1, §4.12).
    Consent {
        /// The person's phone number.
        #[arg(long)]
        phone: String,
        /// What the consent is for.
        #[arg(long)]
        purpose: String,
        /// The consent was withdrawn.
        #[arg(long)]
        withdrawn: bool,
    },
    /// Show or set the retention period, and apply it now (§2.1.4).
    Retention {
        /// Keep data this many days (0 = keep until deleted).
        #[arg(long)]
        days: Option<u32>,
    },
    /// Users and roles.
    #[command(subcommand)]
    User(UserSub),
    /// The latest audit log entries.
    Audit {
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Where the database is, how it is protected, and an integrity check.
    Status,
}

#[derive(Debug, Subcommand)]
enum UserSub {
    /// List users.
    List,
    /// Add a user (the password is asked for, or CALLHELPER_NEW_PASSWORD).
    Add {
        /// Login.
        login: String,
        /// Role.
        #[arg(long, value_enum)]
        role: RoleArg,
    },
    /// Change a user's role.
    Role {
        /// Login.
        login: String,
        /// New role.
        #[arg(value_enum)]
        role: RoleArg,
    },
    /// Give a support user read-only access for a number of hours (§4.11).
    Support {
        /// Login (a user with the role support).
        login: String,
        /// For how long.
        #[arg(long, default_value_t = 24)]
        hours: u32,
    },
    /// Disable a user.
    Disable {
        /// Login.
        login: String,
    },
}

/// Which runs an export or the analytics take.
#[derive(Debug, Args)]
struct FilterArgs {
    /// Runs from this date (2026-03-01 or 2026-03-01T09:00, UTC).
    #[arg(long, value_name = "DATE")]
    from: Option<String>,
    /// Runs up to this date, inclusive.
    #[arg(long, value_name = "DATE")]
    to: Option<String>,
    /// Runs of this script (its id).
    #[arg(long, value_name = "ID")]
    script: Option<String>,
    /// Runs with this outcome.
    #[arg(long)]
    outcome: Option<String>,
    /// Runs by this agent (login).
    #[arg(long, value_name = "LOGIN")]
    agent: Option<String>,
}

impl FilterArgs {
    fn filter(self, without_personal_data: bool) -> Result<Filter, Error> {
        Ok(Filter {
            from: self
                .from
                .as_deref()
                .map(|d| data::parse_date(d, false))
                .transpose()?,
            to: self
                .to
                .as_deref()
                .map(|d| data::parse_date(d, true))
                .transpose()?,
            script: self.script,
            outcome: self.outcome,
            agent: self.agent,
            without_personal_data,
        })
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum AnalyticsFormat {
    Text,
    Csv,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ExportFormat {
    Csv,
    Xlsx,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RoleArg {
    Agent,
    Manager,
    Admin,
    Support,
}

impl RoleArg {
    fn role(self) -> Role {
        match self {
            RoleArg::Agent => Role::Agent,
            RoleArg::Manager => Role::Manager,
            RoleArg::Admin => Role::Admin,
            RoleArg::Support => Role::Support,
        }
    }
}

/// Run a data subcommand.
pub fn run(cmd: DataCommand, ctx: &Ctx) -> ExitCode {
    match execute(cmd, ctx) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}: {}", err_word(ctx.lang), e.message(ctx.lang));
            ExitCode::FAILURE
        }
    }
}

fn err_word(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "error",
        Lang::Ru => "ошибка",
    }
}

/// Read a secret: from `env` when set, else typed at the terminal without echo, else one
/// line of standard input.
fn secret(prompt: &str, env: &str) -> Result<String, Error> {
    if let Ok(v) = std::env::var(env)
        && !v.is_empty()
    {
        return Ok(v);
    }
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    if tty {
        eprint!("{prompt}: ");
        let _ = std::io::stderr().flush();
        echo(false);
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if tty {
        echo(true);
        eprintln!();
    }
    read.map_err(|e| {
        Error::new(
            "data.input",
            text!("cannot read the input: {e}"; "не удалось прочитать ввод: {e}"),
        )
    })?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Turn terminal echo off or on (Unix; elsewhere the password shows as typed).
fn echo(on: bool) {
    if cfg!(unix) {
        let _ = std::process::Command::new("stty")
            .arg(if on { "echo" } else { "-echo" })
            .stdin(std::process::Stdio::inherit())
            .status();
    }
}

fn sign_in(store: &Store, user: Option<&str>, lang: Lang) -> Result<Session, Error> {
    let login = user
        .map(str::to_owned)
        .or_else(|| std::env::var("CALLHELPER_USER").ok().filter(|u| !u.is_empty()))
        .ok_or_else(|| {
            Error::new(
                "data.no_user",
                text!("sign in with --user LOGIN (or set CALLHELPER_USER)"; "войдите: --user ЛОГИН (или задайте CALLHELPER_USER)"),
            )
        })?;
    let prompt = match lang {
        Lang::En => format!("Password for {login}"),
        Lang::Ru => format!("Пароль пользователя {login}"),
    };
    let password = secret(&prompt, "CALLHELPER_PASSWORD")?;
    data::login(store, &login, &password)
}

/// A progress bar on standard error when it is a terminal.
struct Bar {
    on: bool,
    started: Instant,
    last: Option<Instant>,
}

impl Bar {
    fn update(&mut self, p: Progress) {
        if !self.on {
            return;
        }
        let now = Instant::now();
        if p.done != p.total
            && self
                .last
                .is_some_and(|l| now.duration_since(l).as_millis() < 100)
        {
            return;
        }
        self.last = Some(now);
        let frac = if p.total == 0 {
            1.0
        } else {
            p.done as f64 / p.total as f64
        };
        let filled = (frac * 30.0).round() as usize;
        eprint!(
            "\r[{}{}] {:>3}% {}/{} {:.0}s ",
            "#".repeat(filled),
            "-".repeat(30 - filled.min(30)),
            (frac * 100.0).round(),
            p.done,
            p.total,
            self.started.elapsed().as_secs_f64()
        );
        if p.done == p.total {
            eprintln!();
        }
    }
}

fn execute(cmd: DataCommand, ctx: &Ctx) -> Result<(), Error> {
    let lang = ctx.lang;
    let dir = ctx.data_dir()?;
    let say = |t: callhelper_core::script::Text| println!("{}", t.get(lang));
    if let DataSub::Init { admin, passphrase } = &cmd.command {
        let key = if *passphrase {
            let p = secret(
                "Database passphrase / Пароль базы данных",
                data::PASSPHRASE_ENV,
            )?;
            KeyChoice::Passphrase(p)
        } else {
            KeyChoice::from_env()
        };
        let password = secret(
            "Administrator password / Пароль администратора",
            "CALLHELPER_PASSWORD",
        )?;
        let (store, _) = data::init(&dir, &key, admin, &password)?;
        let path = store.path().display().to_string();
        say(
            text!("Created the encrypted database {path} with the administrator «{admin}».";
                  "Создана зашифрованная база данных {path} с администратором «{admin}»."),
        );
        return Ok(());
    }
    let key = match KeyChoice::from_env() {
        KeyChoice::Keychain if data::needs_passphrase(&dir)? => KeyChoice::Passphrase(secret(
            "Database passphrase / Пароль базы данных",
            data::PASSPHRASE_ENV,
        )?),
        k => k,
    };
    let store = data::open(&dir, &key)?;
    let s = sign_in(&store, cmd.user.as_deref(), lang)?;
    match cmd.command {
        DataSub::Init { .. } => unreachable!("handled above"),
        DataSub::Export {
            format,
            out,
            filter,
            without_personal_data,
        } => {
            let filter = filter.filter(without_personal_data)?;
            let format = match format {
                ExportFormat::Csv => Format::Csv,
                ExportFormat::Xlsx => Format::Xlsx,
                ExportFormat::Json => Format::Json,
            };
            let mut bar = Bar {
                on: std::io::stderr().is_terminal(),
                started: Instant::now(),
                last: None,
            };
            let sum = store.export(&s, format, &filter, &out, &mut |p| bar.update(p))?;
            let (rows, path, blocked) = (sum.rows, out.display(), sum.blocked_left_out);
            say(
                text!("Exported {rows} run(s) to {path} ({blocked} of blocked people left out).";
                      "Выгружено разговоров: {rows}, файл {path} (не выгружено из-за блокировки: {blocked})."),
            );
        }
        DataSub::Analytics {
            format,
            out,
            filter,
        } => {
            let a = store.analytics(&s, &filter.filter(true)?)?;
            let mut bytes = Vec::new();
            match format {
                AnalyticsFormat::Text => analytics_table(&a, lang, &mut bytes),
                AnalyticsFormat::Csv => a.write_csv(&mut bytes)?,
                AnalyticsFormat::Json => {
                    bytes = serde_json::to_vec_pretty(&a)
                        .map_err(|e| Error::from(store::StoreError::from(e)))?;
                    bytes.push(b'\n');
                }
            }
            match out {
                Some(path) => std::fs::write(&path, bytes).map_err(|e| {
                    let shown = path.display();
                    Error::new(
                        "data.write_failed",
                        text!("cannot write {shown}: {e}"; "не удалось записать {shown}: {e}"),
                    )
                })?,
                None => {
                    let _ = std::io::stdout().write_all(&bytes);
                }
            }
        }
        DataSub::Import { file } => {
            let r = store.import_contacts(&s, &file)?;
            for b in &r.bad {
                eprintln!("{}:{}: {}", file.display(), b.line, b.message.get(lang));
            }
            for line in &r.blocked {
                let t = text!("the person is blocked; left as is"; "обработка данных человека заблокирована; строка пропущена");
                eprintln!("{}:{line}: {}", file.display(), t.get(lang));
            }
            let (a, u, n, b) = (r.added, r.updated, r.unchanged, r.bad.len());
            say(
                text!("Imported: {a} new, {u} updated, {n} unchanged; {b} bad row(s).";
                      "Загружено: новых {a}, обновлено {u}, без изменений {n}; ошибочных строк {b}."),
            );
            if !r.bad.is_empty() {
                return Err(Error::new(
                    "data.import_bad_rows",
                    text!("{b} row(s) were not imported (see above)"; "строк не загружено: {b} (см. выше)"),
                ));
            }
        }
        DataSub::Subject { phone, out } => match out {
            Some(path) => {
                data::subject_access_file(&store, &s, &phone, &path)?;
                let p = path.display();
                say(
                    text!("Wrote everything held about the person to {p}."; "Все данные о человеке записаны в {p}."),
                );
            }
            None => {
                let report = store.subject_access(&s, &phone)?;
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                );
            }
        },
        DataSub::Change {
            phone,
            name,
            email,
            new_phone,
            set,
        } => {
            let id = store.contact_id_by_phone(&s, &phone)?;
            let mut change = ContactChange {
                phone: new_phone.map(Pii::new),
                name: name.map(Pii::new),
                email: email.map(Pii::new),
                ..Default::default()
            };
            for kv in set {
                let Some((k, v)) = kv.split_once('=') else {
                    return Err(Error::new(
                        "data.bad_set",
                        text!("--set takes KEY=VALUE"; "--set принимает КЛЮЧ=ЗНАЧЕНИЕ"),
                    ));
                };
                change.extra.insert(
                    k.trim().to_owned(),
                    (!v.is_empty()).then(|| Pii::new(v.to_owned())),
                );
            }
            store.change_contact(&s, id, &change)?;
            say(text!("Changed."; "Изменено."));
        }
        DataSub::Delete { phone, yes } => {
            let id = store.contact_id_by_phone(&s, &phone)?;
            if !yes {
                let q = text!("This destroys the person's data irreversibly. Type yes to go on";
                              "Данные человека будут уничтожены безвозвратно. Введите yes, чтобы продолжить");
                eprint!("{}: ", q.get(lang));
                let _ = std::io::stderr().flush();
                let mut answer = String::new();
                let _ = std::io::stdin().lock().read_line(&mut answer);
                if !matches!(answer.trim(), "yes" | "да") {
                    say(text!("Nothing was destroyed."; "Ничего не уничтожено."));
                    return Ok(());
                }
            }
            let d = store.destroy_person(&s, id)?;
            let (runs, calls, rec) = (d.runs, d.calls, d.id);
            say(
                text!("Destroyed the person's data: {runs} run(s), {calls} call(s). Destruction record {rec}.";
                      "Данные человека уничтожены: разговоров {runs}, звонков {calls}. Акт уничтожения № {rec}."),
            );
        }
        DataSub::Block { phone } => {
            store.block(&s, store.contact_id_by_phone(&s, &phone)?)?;
            say(
                text!("Blocked: no calls, no sync, no export until unblocked."; "Заблокировано: без звонков, синхронизации и выгрузки до разблокировки."),
            );
        }
        DataSub::Unblock { phone } => {
            store.unblock(&s, store.contact_id_by_phone(&s, &phone)?)?;
            say(text!("Unblocked."; "Разблокировано."));
        }
        DataSub::Consent {
            phone,
            purpose,
            withdrawn,
        } => {
            let contact = store.contact_id_by_phone(&s, &phone)?;
            store.record_consent(
                &s,
                &store::consent::NewConsent {
                    contact,
                    given: !withdrawn,
                    purpose,
                    at: store.now(),
                    method: store::consent::ConsentMethod::Manual,
                },
            )?;
            say(text!("Recorded."; "Записано."));
        }
        DataSub::Retention { days } => {
            if let Some(d) = days {
                store.set_setting(&s, "retention_days", &d.to_string())?;
            }
            match store.retention_days()? {
                Some(d) => {
                    let done = store.apply_retention(store.now())?;
                    let (r, c, k) = (done.runs, done.calls, done.contacts);
                    say(
                        text!("Data is kept {d} day(s). Destroyed now: {r} run(s), {c} call(s), {k} contact(s).";
                              "Данные хранятся {d} дн. Сейчас уничтожено: разговоров {r}, звонков {c}, контактов {k}."),
                    );
                }
                None => say(
                    text!("No retention period is set: data is kept until deleted."; "Срок хранения не задан: данные хранятся до удаления."),
                ),
            }
        }
        DataSub::User(u) => user(&store, &s, u, lang)?,
        DataSub::Audit { limit } => {
            for e in store.audit_log(&s, limit)? {
                let who = e
                    .user
                    .map_or_else(|| "system".to_owned(), |u| format!("user {}", u.0));
                println!("{} {who} {} {}", store::time::iso(e.at), e.action, e.detail);
            }
        }
        DataSub::Status => {
            let problems = store.integrity_check()?;
            println!("database: {}", store.path().display());
            println!("schema:   {}", store.schema_version()?);
            println!("cipher:   SQLCipher {}", store.cipher_version()?);
            let key = match store::key::read_marker(store.path())? {
                Some(store::KeyMarker::Keychain { .. }) => "OS keychain",
                Some(store::KeyMarker::Passphrase) => "passphrase",
                _ => "given key",
            };
            println!("key:      {key}");
            let o = store.outbox().counts()?;
            println!(
                "crm:      {} queued, {} sent, {} failed",
                o.queued, o.sent, o.failed
            );
            if problems.is_empty() {
                println!("check:    ok");
            } else {
                for p in &problems {
                    println!("check:    {p}");
                }
                return Err(Error::new(
                    "data.damaged",
                    text!("the integrity check found problems"; "проверка целостности нашла ошибки"),
                ));
            }
        }
    }
    Ok(())
}

/// The analytics as a table to read: per script version, its runs and outcomes, then a
/// line per step.
fn analytics_table(a: &store::analytics::Analytics, lang: Lang, out: &mut Vec<u8>) {
    let mut w = |line: String| {
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    };
    let secs = |ms: u64| format!("{:.1}", ms as f64 / 1000.0);
    if a.scripts.is_empty() {
        w(
            text!("No finished runs match."; "Нет завершённых разговоров по этим условиям.")
                .get(lang)
                .to_owned(),
        );
    }
    for s in &a.scripts {
        let (id, v, name, runs) = (&s.script_id, s.version, &s.name, s.runs);
        let conv = format!("{:.1}", s.conversion * 100.0);
        let outcomes = s
            .outcomes
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        w(
            text!("{id} v{v} «{name}»: {runs} run(s), success {conv}% ({outcomes})";
                "{id} v{v} «{name}»: разговоров {runs}, успех {conv}% ({outcomes})")
            .get(lang)
            .to_owned(),
        );
        let row = |cells: [&str; 6]| {
            let [step, reached, left, ended, median, p90] = cells;
            format!("  {step:<20} {reached:>8} {left:>7} {ended:>6} {median:>10} {p90:>7}")
        };
        w(row(match lang {
            Lang::Ru => ["шаг", "дошли", "дальше", "конец", "медиана с", "p90 с"],
            Lang::En => ["step", "reached", "left", "ended", "median s", "p90 s"],
        }));
        for st in &s.steps {
            let step = match &st.objection {
                Some(o) => format!("{o}/{}", st.step),
                None => st.step.clone(),
            };
            let n = [st.reached, st.left, st.ended_here].map(|n| n.to_string());
            let t = [st.time.median_ms, st.time.p90_ms].map(secs);
            w(row([&step, &n[0], &n[1], &n[2], &t[0], &t[1]]));
        }
    }
    let (u, b) = (a.unfinished, a.blocked_left_out);
    w(
        text!("Not counted: {u} unfinished run(s), {b} of blocked people.";
            "Не учтены: незавершённых разговоров {u}, заблокированных людей {b}.")
        .get(lang)
        .to_owned(),
    );
}

fn user(store: &Store, s: &Session, cmd: UserSub, lang: Lang) -> Result<(), Error> {
    match cmd {
        UserSub::List => {
            for u in store.users(s)? {
                let until = u
                    .access_until
                    .map(|t| format!(" until {}", store::time::iso(t)))
                    .unwrap_or_default();
                let off = if u.disabled { " (disabled)" } else { "" };
                println!("{}\t{}\t{}{until}{off}", u.id.0, u.login, u.role);
            }
        }
        UserSub::Add { login, role } => {
            let prompt = match lang {
                Lang::En => format!("Password for the new user {login}"),
                Lang::Ru => format!("Пароль нового пользователя {login}"),
            };
            let password = secret(&prompt, "CALLHELPER_NEW_PASSWORD")?;
            store.add_user(s, &login, &password, role.role())?;
        }
        UserSub::Role { login, role } => {
            let id = store.user_id(s, &login)?;
            store.set_role(s, id, role.role())?;
        }
        UserSub::Support { login, hours } => {
            let id = store.user_id(s, &login)?;
            let until = Timestamp(store.now().0 + i64::from(hours) * 3_600_000);
            store.grant_support_access(s, id, until)?;
        }
        UserSub::Disable { login } => {
            let id = store.user_id(s, &login)?;
            store.set_disabled(s, id, true)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        data: super::DataCommand,
    }

    #[test]
    fn arguments_parse() {
        let c = Cli::try_parse_from([
            "x",
            "--user",
            "anna",
            "export",
            "--format",
            "xlsx",
            "--out",
            "a.xlsx",
            "--to",
            "2026-03-31",
        ])
        .unwrap();
        assert!(format!("{c:?}").contains("Xlsx"));
        assert!(Cli::try_parse_from(["x", "export", "--format", "pdf", "--out", "a"]).is_err());
        assert!(Cli::try_parse_from(["x", "user", "add", "bob", "--role", "support"]).is_ok());
    }
}

//! `callhelper crm …`: connect a CRM, see what is queued, sent or failed, retry, deliver
//! now, list the CRM's fields and map a script's fields to them, and show the
//! click-to-call token for a CRM widget.
//!
//! Secrets (tokens, webhook URLs, shared secrets) are read from environment variables or
//! standard input, never from the command line.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use callhelper_core::Error;
use callhelper_core::crm::{self, Connection, CrmKind, OAuthApp, Secret};
use callhelper_core::data::store::{Session, Store};
use callhelper_core::data::{self, KeyChoice};
use callhelper_core::paths::DataDir;
use callhelper_core::script::{Lang, text};
use clap::{Subcommand, ValueEnum};

use crate::Ctx;

/// Which CRM.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Kind {
    /// amoCRM (API v4).
    Amocrm,
    /// Bitrix24 (REST).
    Bitrix24,
    /// A signed JSON webhook.
    Webhook,
}

/// CRM subcommands.
#[derive(Debug, Subcommand)]
pub enum CrmCommand {
    /// Connect a CRM and check the connection works.
    ///
    /// The secret comes from the environment variable named by --secret-env (default
    /// CALLHELPER_CRM_SECRET) or, with --stdin, from standard input: the amoCRM
    /// long-lived token, the Bitrix24 inbound webhook URL, the webhook's shared secret,
    /// or with --client-id the OAuth application's secret.
    Connect {
        /// Which CRM.
        crm: Kind,
        /// amoCRM: the account's address (https://SUBDOMAIN.amocrm.ru); Bitrix24 with
        /// OAuth: the portal's; webhook: where to post.
        #[arg(long, value_name = "URL", default_value = "")]
        url: String,
        /// The environment variable holding the secret.
        #[arg(long, value_name = "VAR", default_value = "CALLHELPER_CRM_SECRET")]
        secret_env: String,
        /// Read the secret from standard input instead.
        #[arg(long)]
        stdin: bool,
        /// OAuth: the application's client id.
        #[arg(long, value_name = "ID")]
        client_id: Option<String>,
        /// amoCRM OAuth: the redirect URI registered with the integration.
        #[arg(long, value_name = "URI", default_value = "")]
        redirect_uri: String,
        /// amoCRM OAuth: the environment variable holding the authorisation code.
        #[arg(long, value_name = "VAR")]
        code_env: Option<String>,
        /// amoCRM: the responsible user's id; Bitrix24: the portal user's id.
        #[arg(long, value_name = "ID")]
        crm_user: Option<u64>,
        /// The language of notes and tasks in the CRM: ru or en.
        #[arg(long, default_value = "ru")]
        crm_lang: String,
    },
    /// Show how many items are queued, sent and failed, and the latest ones with the
    /// CRM's messages.
    Status {
        /// Sign in as this user (default: CALLHELPER_USER; password: CALLHELPER_PASSWORD).
        #[arg(long, value_name = "LOGIN")]
        user: Option<String>,
        /// How many items to list.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Retry now: one item by id, or every item not sent.
    Retry {
        /// The item's id (from `crm status`).
        id: Option<i64>,
        /// Sign in as this user (default: CALLHELPER_USER).
        #[arg(long, value_name = "LOGIN")]
        user: Option<String>,
    },
    /// Deliver what is due now.
    Sync,
    /// List the CRM's contact fields (ids for `crm map`).
    Fields {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Map a script's fields to CRM fields and check the mapping against the CRM.
    Map {
        /// The script file.
        script: PathBuf,
        /// Rules `FIELD=CRM_FIELD` (replaces the script's mapping); none: only check.
        #[arg(value_name = "FIELD=CRM_FIELD")]
        rules: Vec<String>,
    },
    /// Print this installation's click-to-call token (for the CRM widget's settings).
    DialToken,
}

fn fail(ctx: &Ctx, e: &Error) -> ExitCode {
    eprintln!("callhelper: {}", e.message(ctx.lang));
    ExitCode::FAILURE
}

fn env_secret(var: &str, stdin: bool) -> Result<Secret, Error> {
    let s = if stdin {
        let mut s = String::new();
        std::io::stdin()
            .take(64 * 1024)
            .read_to_string(&mut s)
            .map_err(|e| Error::new("crm.secret_missing", text!("cannot read standard input: {e}"; "не удалось прочитать стандартный ввод: {e}")))?;
        s
    } else {
        std::env::var(var).unwrap_or_default()
    };
    let s = s.trim();
    if s.is_empty() {
        return Err(Error::new(
            "crm.secret_missing",
            text!("set {var} to the token, webhook URL or secret (or pass --stdin)";
                  "задайте {var}: токен, адрес вебхука или секрет (или укажите --stdin)"),
        ));
    }
    Ok(Secret::new(s))
}

/// Open the database and sign in (password from CALLHELPER_PASSWORD).
fn open(dir: &DataDir, user: Option<&str>) -> Result<(Store, Session), Error> {
    let key = match KeyChoice::from_env() {
        KeyChoice::Keychain if data::needs_passphrase(dir)? => {
            return Err(Error::new(
                "data.passphrase_needed",
                text!("set {} to the database passphrase", data::PASSPHRASE_ENV; "задайте {} — пароль базы данных", data::PASSPHRASE_ENV),
            ));
        }
        k => k,
    };
    let store = data::open(dir, &key)?;
    let login = user
        .map(str::to_owned)
        .or_else(|| std::env::var("CALLHELPER_USER").ok().filter(|u| !u.is_empty()))
        .ok_or_else(|| Error::new("data.no_user", text!("sign in with --user LOGIN (or set CALLHELPER_USER)"; "войдите: --user ЛОГИН (или задайте CALLHELPER_USER)")))?;
    let password = std::env::var("CALLHELPER_PASSWORD").unwrap_or_default();
    let session = data::login(&store, &login, &password)?;
    Ok((store, session))
}

/// Run a CRM subcommand.
pub fn run(cmd: CrmCommand, ctx: &Ctx) -> ExitCode {
    let dir = match ctx.data_dir() {
        Ok(d) => d,
        Err(e) => return fail(ctx, &e),
    };
    match exec(cmd, ctx, &dir) {
        Ok(code) => code,
        Err(e) => fail(ctx, &e),
    }
}

fn exec(cmd: CrmCommand, ctx: &Ctx, dir: &DataDir) -> Result<ExitCode, Error> {
    let lang = ctx.lang;
    match cmd {
        CrmCommand::Connect {
            crm,
            url,
            secret_env,
            stdin,
            client_id,
            redirect_uri,
            code_env,
            crm_user,
            crm_lang,
        } => {
            let kind = match crm {
                Kind::Amocrm => CrmKind::AmoCrm,
                Kind::Bitrix24 => CrmKind::Bitrix24,
                Kind::Webhook => CrmKind::Webhook,
            };
            let mut conn = crm::connection(dir)?
                .filter(|c| c.crm == kind)
                .unwrap_or_else(|| Connection::new(kind, ""));
            conn.url = url;
            conn.crm_user_id = crm_user.or(conn.crm_user_id);
            conn.lang = crm_lang;
            conn.oauth = client_id.map(|id| OAuthApp {
                client_id: id,
                redirect_uri,
                oauth_url: String::new(),
            });
            let secret = env_secret(&secret_env, stdin)?;
            let code = code_env.map(|v| env_secret(&v, false)).transpose()?;
            let name = crm::connect(dir, &conn, secret, code)?;
            let crm = kind.name();
            let m = text!("Connected to {crm} ({name})."; "Подключено: {crm} ({name}).");
            println!("{}", m.get(lang));
            Ok(ExitCode::SUCCESS)
        }
        CrmCommand::Status { user, limit, json } => {
            let (store, s) = open(dir, user.as_deref())?;
            let st = crm::status(dir, &store, &s, limit)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&st).unwrap_or_default());
                return Ok(ExitCode::SUCCESS);
            }
            let crm = st.crm.map(|c| c.name()).unwrap_or("-");
            let (q, sent, f, r) = (st.queued, st.sent, st.failed, st.retrying);
            let m = text!("CRM: {crm}. Queued: {q} (retrying: {r}), sent: {sent}, failed: {f}.";
                          "CRM: {crm}. В очереди: {q} (с повтором: {r}), отправлено: {sent}, ошибок: {f}.");
            println!("{}", m.get(lang));
            for it in &st.items {
                let state = match (it.state, lang) {
                    (callhelper_core::data::store::OutboxState::Queued, Lang::En) => "queued",
                    (callhelper_core::data::store::OutboxState::Queued, Lang::Ru) => "в очереди",
                    (callhelper_core::data::store::OutboxState::Sent, Lang::En) => "sent",
                    (callhelper_core::data::store::OutboxState::Sent, Lang::Ru) => "отправлено",
                    (_, Lang::En) => "failed",
                    (_, Lang::Ru) => "ошибка",
                };
                let err = it
                    .last_error
                    .as_ref()
                    .map(|e| format!(" — {}", e.get(lang)))
                    .unwrap_or_default();
                println!("#{} {state} ({}){err}", it.id, it.attempts);
            }
            Ok(ExitCode::SUCCESS)
        }
        CrmCommand::Retry { id, user } => {
            let (store, s) = open(dir, user.as_deref())?;
            let n = crm::retry(&store, &s, id)?;
            println!(
                "{}",
                text!("{n} item(s) will be sent now."; "Записей к отправке сейчас: {n}.").get(lang)
            );
            Ok(ExitCode::SUCCESS)
        }
        CrmCommand::Sync => {
            let key = KeyChoice::from_env();
            let store = data::open(dir, &key)?;
            let t = crm::sync(dir, &store)?;
            let (sent, failed, skipped) = (t.sent, t.failed, t.skipped);
            println!("{}", text!("Sent: {sent}, failed and still queued: {failed}, skipped (blocked): {skipped}.";
                                  "Отправлено: {sent}, с ошибкой (остаются в очереди): {failed}, пропущено (блокировка): {skipped}.").get(lang));
            Ok(if failed > 0 {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            })
        }
        CrmCommand::Fields { json } => {
            let fields = crm::crm_fields(dir)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&fields).unwrap_or_default()
                );
            } else {
                for f in fields {
                    let options: Vec<&str> = f.options.iter().map(|(_, l)| l.as_str()).collect();
                    let options = if options.is_empty() {
                        String::new()
                    } else {
                        format!(" [{}]", options.join(", "))
                    };
                    println!("{}\t{}\t{:?}{options}", f.id, f.name, f.kind);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        CrmCommand::Map { script, rules } => {
            let report = callhelper_core::scripts::lint_file(&script);
            let Some(sc) = report.script else {
                return Err(report.unreadable.unwrap_or_else(|| {
                    Error::new("script.invalid", text!("the script cannot be read; run `callhelper script lint`"; "сценарий не читается; выполните `callhelper script lint`"))
                }));
            };
            if !rules.is_empty() {
                let mut conn = crm::connection(dir)?.ok_or_else(|| {
                    Error::new(
                        "crm.not_connected",
                        text!("connect a CRM first"; "сначала подключите CRM"),
                    )
                })?;
                let mut map = callhelper_crm_map(&rules)?;
                map.rules.dedup();
                conn.mappings.insert(sc.id.clone(), map);
                crm::save_connection(dir, &conn)?;
            }
            let problems = crm::check_mapping(dir, &sc)?;
            for p in &problems {
                eprintln!("callhelper: {}", p.get(lang));
            }
            if problems.is_empty() {
                println!("{}", text!("The mapping fits the CRM's fields."; "Сопоставление подходит к полям CRM.").get(lang));
                Ok(ExitCode::SUCCESS)
            } else {
                Ok(ExitCode::FAILURE)
            }
        }
        CrmCommand::DialToken => {
            let t = crm::dial_token(dir)?;
            println!("{}", t.expose());
            eprintln!(
                "{}",
                text!("Click-to-call: POST http://127.0.0.1:{}/dial with Authorization: Bearer <token>", crm::DIAL_PORT;
                      "Звонок из CRM: POST http://127.0.0.1:{}/dial с заголовком Authorization: Bearer <токен>", crm::DIAL_PORT)
                .get(lang)
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn callhelper_crm_map(rules: &[String]) -> Result<crm::FieldMap, Error> {
    let mut map = crm::FieldMap::default();
    for r in rules {
        let Some((f, c)) = r
            .split_once('=')
            .filter(|(f, c)| !f.is_empty() && !c.is_empty())
        else {
            return Err(Error::new(
                "crm.bad_rule",
                text!("a rule is FIELD=CRM_FIELD, not \"{r}\""; "правило пишется ПОЛЕ=ПОЛЕ_CRM, а не «{r}»"),
            ));
        };
        map.rules.push(crm::FieldRule {
            field: f.into(),
            crm_field: c.into(),
        });
    }
    Ok(map)
}

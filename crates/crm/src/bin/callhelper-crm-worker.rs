//! `callhelper-crm-worker`: deliver a journal outbox to a CRM, then exit.
//!
//! A development tool, and the worker process the soak test kills and restarts. The app
//! runs the same [`Worker`] in-process over the store's outbox.
//!
//! ```text
//! callhelper-crm-worker --journal FILE --crm amocrm|bitrix24|webhook --url URL
//!     [--tokens FILE] [--rate-scale F] [--timeout-ms N] [--retry-base-ms N] [--seed N]
//!     [--stats FILE]
//! ```
//! Secrets come from the environment, never the command line: `CALLHELPER_CRM_SECRET`
//! (amoCRM long-lived token, Bitrix24 webhook URL, or webhook secret). With `--tokens`,
//! amoCRM uses OAuth with `CALLHELPER_CRM_CLIENT_ID`, `CALLHELPER_CRM_CLIENT_SECRET` and
//! `CALLHELPER_CRM_REDIRECT_URI`, keeping the rotating tokens in that file.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use callhelper_crm::amo::{Amo, AmoAuth, AmoSettings};
use callhelper_crm::bitrix::{Bitrix, BitrixAuth, BitrixSettings};
use callhelper_crm::http::{Clock, HttpConfig, SystemClock};
use callhelper_crm::oauth::{FileTokenStore, write_private_atomic};
use callhelper_crm::pace::{Backoff, RetrySchedule};
use callhelper_crm::webhook::{Webhook, WebhookSettings};
use callhelper_crm::{Adapter, CrmKind, JournalOutbox, Outbox, Secret, Worker};

struct Args {
    journal: String,
    crm: CrmKind,
    url: String,
    tokens: Option<String>,
    rate_scale: f64,
    timeout_ms: u64,
    retry_base_ms: u64,
    seed: u64,
    stats: Option<String>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        journal: String::new(),
        crm: CrmKind::Webhook,
        url: String::new(),
        tokens: None,
        rate_scale: 1.0,
        timeout_ms: 30_000,
        retry_base_ms: 2_000,
        seed: 1,
        stats: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().ok_or(format!("{k} needs a value"))?;
        let num = |v: &str| v.parse::<u64>().map_err(|_| format!("{k}: not a number"));
        match k.as_str() {
            "--journal" => a.journal = v,
            "--crm" => a.crm = CrmKind::parse(&v).ok_or("--crm: amocrm, bitrix24 or webhook")?,
            "--url" => a.url = v,
            "--tokens" => a.tokens = Some(v),
            "--rate-scale" => a.rate_scale = v.parse().map_err(|_| "--rate-scale: not a number")?,
            "--timeout-ms" => a.timeout_ms = num(&v)?,
            "--retry-base-ms" => a.retry_base_ms = num(&v)?,
            "--seed" => a.seed = num(&v)?,
            "--stats" => a.stats = Some(v),
            _ => return Err(format!("unknown option {k}")),
        }
    }
    if a.journal.is_empty() || (a.url.is_empty() && a.crm != CrmKind::Bitrix24) {
        return Err("--journal and --url are required".into());
    }
    Ok(a)
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("callhelper-crm-worker: {e}");
            return ExitCode::from(2);
        }
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::default());
    let mut http = HttpConfig::for_crm(args.crm);
    http.timeout = Duration::from_millis(args.timeout_ms);
    http.limit = http.limit.scaled(args.rate_scale);
    http.refusal_backoff = Backoff {
        base_ms: (1000.0 / args.rate_scale) as u64,
        max_ms: (60_000.0 / args.rate_scale) as u64,
    };
    let secret = Secret::new(env("CALLHELPER_CRM_SECRET"));
    let adapter: Box<dyn Adapter> = match args.crm {
        CrmKind::AmoCrm => {
            let mut s = AmoSettings::new(&args.url);
            s.http = http;
            s.mappings = std::env::var("CALLHELPER_CRM_MAPPINGS")
                .ok()
                .and_then(|m| serde_json::from_str(&m).ok())
                .unwrap_or_default();
            let auth = match &args.tokens {
                Some(path) => AmoAuth::OAuth {
                    client_id: env("CALLHELPER_CRM_CLIENT_ID"),
                    client_secret: Secret::new(env("CALLHELPER_CRM_CLIENT_SECRET")),
                    redirect_uri: env("CALLHELPER_CRM_REDIRECT_URI"),
                    tokens: Box::new(FileTokenStore::new(path)),
                },
                None => AmoAuth::LongLived(secret),
            };
            Box::new(Amo::new(s, auth, clock.clone(), args.seed))
        }
        CrmKind::Bitrix24 => {
            let s = BitrixSettings {
                http,
                mappings: std::env::var("CALLHELPER_CRM_MAPPINGS")
                    .ok()
                    .and_then(|m| serde_json::from_str(&m).ok())
                    .unwrap_or_default(),
                ..BitrixSettings::default()
            };
            Box::new(Bitrix::new(
                s,
                BitrixAuth::Webhook(secret),
                clock.clone(),
                args.seed,
            ))
        }
        _ => {
            let mut s = WebhookSettings::new(&args.url, secret);
            s.http = http;
            Box::new(Webhook::new(s, clock.clone(), args.seed))
        }
    };
    let mut outbox = match JournalOutbox::open(&args.journal) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("callhelper-crm-worker: {e}");
            return ExitCode::from(1);
        }
    };
    let schedule = RetrySchedule {
        transient: Backoff {
            base_ms: args.retry_base_ms,
            max_ms: args.retry_base_ms * 40,
        },
        ..RetrySchedule::default()
    };
    let mut worker = Worker::new(adapter, clock.clone(), schedule, args.seed);
    worker.idle_ms = args.retry_base_ms.clamp(10, 1000);
    loop {
        let r = worker.tick(&mut outbox);
        if let Some(path) = &args.stats {
            let stats = serde_json::to_vec(&worker.adapter().stats()).unwrap_or_default();
            let _ = write_private_atomic(std::path::Path::new(path), &stats);
        }
        match r {
            Ok(t) if t.claimed > 0 => continue,
            Ok(_) => {}
            Err(e) => {
                eprintln!("callhelper-crm-worker: {e}");
                return ExitCode::from(1);
            }
        }
        match outbox.next_due() {
            Ok(None) => break,
            Ok(Some(next)) => {
                // Sleep through the backoff of failed items, then go on.
                let wait = u64::try_from(next.0 - clock.now().0).unwrap_or(0);
                clock.sleep_ms(wait.clamp(1, worker.idle_ms));
            }
            Err(e) => {
                eprintln!("callhelper-crm-worker: {e}");
                return ExitCode::from(1);
            }
        }
    }
    ExitCode::SUCCESS
}

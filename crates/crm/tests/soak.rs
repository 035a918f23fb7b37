//! The soak test: 10,000 finished runs through each adapter while the local server
//! injects faults at random (seeded) and the worker process is killed (SIGKILL) and
//! restarted several times. Afterwards every run is in the server exactly once, nothing
//! is lost, and the rate limit was never exceeded.
//!
//! Time runs faster for the rate limits (amoCRM: 7 requests per 100 ms instead of per
//! second, Bitrix24: a burst of 50 then 40 a second instead of 2): the servers and the
//! worker are scaled by the same factor, so the limits bind exactly as they would, in
//! minutes instead of hours. `CALLHELPER_SOAK_RUNS` changes the number of runs.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use callhelper_crm::JournalOutbox;
use callhelper_crm::http::HttpStats;
use callhelper_crm::rng::Rng;
use callhelper_crm_fakes::{
    AmoConfig, AmoServer, BitrixConfig, BitrixServer, FaultPlan, WebhookConfig, WebhookServer,
};
use callhelper_script::Timestamp;
use serde_json::Value;

use crate::support::*;

const KILLS: usize = 4;
const PHONES: usize = 200;

fn runs() -> usize {
    std::env::var("CALLHELPER_SOAK_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

fn plan(seed: u64) -> FaultPlan {
    FaultPlan {
        seed,
        per_mille: 30,
        hang: Duration::from_millis(500),
    }
}

struct Figures {
    name: &'static str,
    runs: usize,
    secs: f64,
    stats: HttpStats,
    failed_attempts: u64,
    faults: u64,
    kills: usize,
}

impl Figures {
    /// Straight to standard error, past the test harness's capture, so the figures show
    /// in every run (CI included).
    fn print(&self) {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "soak {:<9} {} runs in {:.1} s = {:.0} runs/s; {} requests, {} rate-limit answers waited out, \
             {} network failures, {} failed attempts rescheduled, {} faults injected, {} kills",
            self.name,
            self.runs,
            self.secs,
            self.runs as f64 / self.secs,
            self.stats.requests,
            self.stats.refusals,
            self.stats.network_failures,
            self.failed_attempts,
            self.faults,
            self.kills
        );
    }
}

/// Fill a journal, then run the worker process, killing it `KILLS` times at random.
fn drive(
    name: &'static str,
    crm: &str,
    url: &str,
    secret: &str,
    scale: f64,
    mappings: Option<String>,
    faults: impl Fn() -> u64,
) -> Figures {
    let n = runs();
    let dir = temp_dir(&format!("soak-{name}"));
    let journal = dir.join("outbox.jsonl");
    {
        let mut outbox = JournalOutbox::open(&journal).unwrap();
        for i in 0..n {
            outbox
                .enqueue(job(i, &phone(i % PHONES)), Timestamp(T0))
                .unwrap();
        }
    }
    let spawn = |k: usize| -> Child {
        let mut c = Command::new(env!("CARGO_BIN_EXE_callhelper-crm-worker"));
        c.args([
            "--journal",
            journal.to_str().unwrap(),
            "--crm",
            crm,
            "--url",
            url,
        ])
        .args([
            "--rate-scale",
            &scale.to_string(),
            "--timeout-ms",
            "400",
            "--retry-base-ms",
            "50",
        ])
        .args(["--seed", &(k as u64 + 1).to_string()])
        .args([
            "--stats",
            dir.join(format!("stats-{k}.json")).to_str().unwrap(),
        ])
        .env("CALLHELPER_CRM_SECRET", secret)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
        if let Some(m) = &mappings {
            c.env("CALLHELPER_CRM_MAPPINGS", m);
        }
        c.spawn().expect("the worker starts")
    };
    let started = Instant::now();
    let mut rng = Rng::new(0x50A4);
    let mut kills = 0;
    for k in 0..KILLS {
        let mut child = spawn(k);
        std::thread::sleep(Duration::from_millis(1_500 + rng.up_to(3_500)));
        if child.try_wait().unwrap().is_none() {
            child.kill().expect("SIGKILL");
            kills += 1;
        }
        let _ = child.wait();
    }
    let mut last = spawn(KILLS);
    let deadline = Instant::now() + Duration::from_secs(900);
    let status = loop {
        if let Some(s) = last.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: the worker did not finish in 15 minutes"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let secs = started.elapsed().as_secs_f64();
    assert!(status.success(), "{name}: the worker failed: {status}");
    let outbox = JournalOutbox::open(&journal).unwrap();
    let summary = outbox.summary();
    assert_eq!(
        (summary.sent, summary.queued, summary.failed),
        (n, 0, 0),
        "{name}: everything sent"
    );
    let failed_attempts = outbox.list().iter().map(|v| u64::from(v.failures)).sum();
    let mut stats = HttpStats::default();
    for k in 0..=KILLS {
        if let Ok(b) = std::fs::read(dir.join(format!("stats-{k}.json"))) {
            let s: Value = serde_json::from_slice(&b).unwrap();
            let get = |f: &str| s[f].as_u64().unwrap_or(0);
            stats.requests += get("requests");
            stats.refusals += get("refusals");
            stats.network_failures += get("network_failures");
            stats.paced_ms += get("paced_ms");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Figures {
        name,
        runs: n,
        secs,
        stats,
        failed_attempts,
        faults: faults(),
        kills,
    }
}

fn exactly_once(name: &str, what: &str, counts: &BTreeMap<String, usize>, expected: usize) {
    let twice: Vec<_> = counts.iter().filter(|(_, c)| **c != 1).take(5).collect();
    assert!(
        twice.is_empty(),
        "{name}: {what} not exactly once: {twice:?}"
    );
    assert_eq!(counts.len(), expected, "{name}: {what}: some are missing");
}

fn count<'a>(items: impl Iterator<Item = &'a str>) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for s in items {
        *m.entry(s.to_owned()).or_insert(0) += 1;
    }
    m
}

fn soak_amo() -> Figures {
    let server = AmoServer::start(AmoConfig {
        long_lived_token: Some("soak-token".into()),
        window: Duration::from_millis(100),
        faults: plan(2024),
        ..AmoConfig::default()
    })
    .unwrap();
    for i in (0..PHONES).step_by(3) {
        server.fake.add_contact("Known", &phone(i));
    }
    let mappings = serde_json::to_string(&amo_mappings()).unwrap();
    let fig = drive(
        "amoCRM",
        "amocrm",
        &server.url(),
        "soak-token",
        10.0,
        Some(mappings),
        || server.fake.faults.total(),
    );
    let n = fig.runs;
    let snap = server.fake.snapshot();
    let contacts = snap["contacts"].as_array().unwrap();
    let phones = count(
        contacts
            .iter()
            .filter_map(|c| c["custom_fields_values"][0]["values"][0]["value"].as_str()),
    );
    exactly_once("amoCRM", "contacts", &phones, PHONES.min(n));
    let notes = snap["notes"].as_array().unwrap();
    let calls = count(
        notes
            .iter()
            .filter(|x| x["note_type"] == "call_out")
            .filter_map(|x| x["params"]["uniq"].as_str()),
    );
    exactly_once("amoCRM", "calls", &calls, n);
    exactly_once(
        "amoCRM",
        "transcript notes",
        &marker_counts(notes.iter().filter_map(|x| x["params"]["text"].as_str())),
        n,
    );
    let tasks = marker_counts(
        snap["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| t["text"].as_str()),
    );
    exactly_once("amoCRM", "callback tasks", &tasks, n.div_ceil(5));
    assert_eq!(
        server.fake.stats.limit_violations.load(Ordering::Relaxed),
        0,
        "amoCRM: the rate limit was exceeded"
    );
    assert_eq!(server.fake.stats.bad_requests.load(Ordering::Relaxed), 0);
    fig
}

fn soak_bitrix() -> Figures {
    let server = BitrixServer::start(BitrixConfig {
        per_sec: 40.0,
        faults: plan(2025),
        ..BitrixConfig::default()
    })
    .unwrap();
    for i in (0..PHONES).step_by(3) {
        server.fake.add_contact("Known", &phone(i));
    }
    let mappings = serde_json::to_string(&bitrix_mappings()).unwrap();
    let fig = drive(
        "Bitrix24",
        "bitrix24",
        "",
        &server.webhook_url(),
        20.0,
        Some(mappings),
        || server.fake.faults.total(),
    );
    let n = fig.runs;
    let snap = server.fake.snapshot();
    let phones = count(
        snap["contacts"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["PHONE"][0]["VALUE"].as_str()),
    );
    exactly_once("Bitrix24", "contacts", &phones, PHONES.min(n));
    let finished = count(
        snap["calls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| !c["finished"].is_null())
            .filter_map(|c| c["params"]["CALL_START_DATE"].as_str()),
    );
    exactly_once("Bitrix24", "finished calls", &finished, n);
    let comments = marker_counts(
        snap["comments"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["COMMENT"].as_str()),
    );
    exactly_once("Bitrix24", "timeline comments", &comments, n);
    let todos = marker_counts(
        snap["activities"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|a| a["DESCRIPTION"].as_str()),
    );
    exactly_once("Bitrix24", "callback to-dos", &todos, n.div_ceil(5));
    assert_eq!(
        server.fake.stats.limit_violations.load(Ordering::Relaxed),
        0,
        "Bitrix24: the rate limit was exceeded"
    );
    assert_eq!(server.fake.stats.ignored_fields.load(Ordering::Relaxed), 0);
    fig
}

fn soak_webhook() -> Figures {
    let cfg = WebhookConfig {
        faults: plan(2026),
        ..WebhookConfig::default()
    };
    let secret = cfg.secret.clone();
    let server = WebhookServer::start(cfg).unwrap();
    let fig = drive(
        "webhook",
        "webhook",
        &server.url(),
        &secret,
        100.0,
        None,
        || server.fake.faults.total(),
    );
    let kept = server.fake.deliveries();
    assert_eq!(
        kept.len(),
        fig.runs,
        "webhook: every run kept once by its delivery id"
    );
    assert!(kept.keys().all(|k| k.starts_with("run-")));
    assert_eq!(server.fake.stats.bad_signatures.load(Ordering::Relaxed), 0);
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "soak webhook: {} deliveries repeated after a lost answer (the receiver keeps each once by X-CallHelper-Delivery)",
        server.fake.stats.duplicates.load(Ordering::Relaxed)
    );
    fig
}

#[test]
fn soak_10000_runs_through_each_adapter_with_faults_and_kills() {
    let figs = [soak_amo(), soak_bitrix(), soak_webhook()];
    for f in &figs {
        f.print();
        assert!(f.faults > 0, "{}: no fault was injected", f.name);
        assert!(f.kills > 0, "{}: the worker was never killed", f.name);
    }
}

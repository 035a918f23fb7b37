//! Bitrix24 against the local Bitrix24.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use callhelper_crm::bitrix::{Bitrix, BitrixAuth, BitrixSettings};
use callhelper_crm::pace::Backoff;
use callhelper_crm::{Adapter, JournalOutbox, Secret, Worker};
use callhelper_crm_fakes::{BitrixConfig, BitrixServer, Fault, FaultPlan};
use callhelper_script::Timestamp;

use crate::amo::fast_schedule;
use crate::support::*;

fn settings() -> BitrixSettings {
    let mut s = BitrixSettings {
        mappings: bitrix_mappings(),
        ..BitrixSettings::default()
    };
    s.http.timeout = Duration::from_millis(300);
    s.http.limit = s.http.limit.scaled(20.0);
    s.http.refusal_backoff = Backoff {
        base_ms: 20,
        max_ms: 200,
    };
    s
}

fn fake(faults: FaultPlan) -> BitrixServer {
    BitrixServer::start(BitrixConfig {
        per_sec: 40.0,
        faults,
        ..BitrixConfig::default()
    })
    .expect("the fake starts")
}

fn adapter(server: &BitrixServer, seed: u64) -> Box<dyn Adapter> {
    adapter_with(server, seed, settings())
}

fn adapter_with(server: &BitrixServer, seed: u64, settings: BitrixSettings) -> Box<dyn Adapter> {
    Box::new(Bitrix::new(
        settings,
        BitrixAuth::Webhook(Secret::new(server.webhook_url())),
        clock(),
        seed,
    ))
}

fn run_all(adapter: Box<dyn Adapter>, outbox: &mut JournalOutbox) -> Worker {
    let mut w = Worker::new(adapter, clock(), fast_schedule(), 9);
    w.idle_ms = 20;
    w.run(outbox, &AtomicBool::new(false), true)
        .expect("the worker runs");
    w
}

#[test]
fn a_run_arrives_once_as_contact_call_record_comment_and_todo() {
    let server = fake(FaultPlan::default());
    let dir = temp_dir("b24-once");
    let mut outbox = JournalOutbox::open(dir.join("outbox.jsonl")).unwrap();
    outbox.enqueue(job(10, &phone(2)), Timestamp(T0)).unwrap();
    outbox.enqueue(job(13, &phone(2)), Timestamp(T0)).unwrap();
    run_all(adapter(&server, 1), &mut outbox);
    assert_eq!(outbox.summary().sent, 2);
    let snap = server.fake.snapshot();
    let contacts = snap["contacts"].as_array().unwrap();
    assert_eq!(contacts.len(), 1, "both runs found the same contact");
    assert_eq!(
        contacts[0]["UF_CRM_INTEREST"], "46",
        "the later run (13) said Low"
    );
    assert_eq!(contacts[0]["UF_CRM_AGREED"], "N");
    let calls = snap["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert!(
        calls
            .iter()
            .all(|c| c["finished"]["CALL_FAILED_CODE"] == "200")
    );
    assert_eq!(
        calls
            .iter()
            .filter(|c| c["records"].as_array().unwrap().len() == 1)
            .count(),
        1,
        "run 13 has a recording"
    );
    assert_eq!(
        calls[0]["params"]["CALL_START_DATE"],
        "2024-05-17T14:03:10+03:00"
    );
    let comments = marker_counts(
        snap["comments"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["COMMENT"].as_str()),
    );
    assert_eq!(comments.len(), 2);
    let todos = snap["activities"].as_array().unwrap();
    assert_eq!(todos.len(), 1, "run 10 asked for a callback");
    assert_eq!(todos[0]["DEADLINE"], "2024-05-20T10:00:00+03:00");
    assert_eq!(server.fake.stats.ignored_fields.load(Ordering::Relaxed), 0);
    assert_eq!(
        server.fake.stats.limit_violations.load(Ordering::Relaxed),
        0
    );
}

#[test]
fn query_limit_exceeded_three_times_is_waited_out() {
    let server = fake(FaultPlan::default());
    server
        .fake
        .faults
        .push(&[Fault::RateLimited, Fault::RateLimited, Fault::RateLimited]);
    let dir = temp_dir("b24-limit");
    let mut outbox = JournalOutbox::open(dir.join("outbox.jsonl")).unwrap();
    outbox.enqueue(job(1, &phone(5)), Timestamp(T0)).unwrap();
    let w = run_all(adapter(&server, 2), &mut outbox);
    assert_eq!(outbox.summary().sent, 1);
    assert_eq!(w.adapter().stats().refusals, 3);
    assert_eq!(
        outbox.list()[0].failures,
        0,
        "waited out in place, not rescheduled"
    );
}

#[test]
fn random_faults_never_duplicate_anything() {
    let server = fake(FaultPlan {
        seed: 11,
        per_mille: 250,
        hang: Duration::from_millis(400),
    });
    let dir = temp_dir("b24-faults");
    let mut outbox = JournalOutbox::open(dir.join("outbox.jsonl")).unwrap();
    for n in 0..40 {
        outbox
            .enqueue(job(n, &phone(n % 8)), Timestamp(T0))
            .unwrap();
    }
    // Small batches: more requests, more faults.
    run_all(
        adapter_with(
            &server,
            3,
            BitrixSettings {
                batch: 4,
                ..settings()
            },
        ),
        &mut outbox,
    );
    assert_eq!(outbox.summary().sent, 40);
    let snap = server.fake.snapshot();
    assert_eq!(snap["contacts"].as_array().unwrap().len(), 8);
    let finished: Vec<_> = snap["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| !c["finished"].is_null())
        .collect();
    let mut starts: Vec<String> = finished
        .iter()
        .map(|c| c["params"]["CALL_START_DATE"].to_string())
        .collect();
    starts.sort();
    starts.dedup();
    assert_eq!(
        (finished.len(), starts.len()),
        (40, 40),
        "every call finished once"
    );
    let comments = marker_counts(
        snap["comments"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["COMMENT"].as_str()),
    );
    assert!(
        comments.len() == 40 && comments.values().all(|c| *c == 1),
        "{comments:?}"
    );
    let todos = marker_counts(
        snap["activities"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|a| a["DESCRIPTION"].as_str()),
    );
    assert!(
        todos.len() == 8 && todos.values().all(|c| *c == 1),
        "{todos:?}"
    );
    assert!(server.fake.faults.total() > 5);
    assert_eq!(
        server.fake.stats.limit_violations.load(Ordering::Relaxed),
        0
    );
}

#[test]
fn a_wrong_webhook_key_is_an_error_to_act_on() {
    let server = fake(FaultPlan::default());
    let wrong = server.webhook_url().replace("x7k2", "zzzz");
    let mut b = Bitrix::new(
        settings(),
        BitrixAuth::Webhook(Secret::new(wrong)),
        clock(),
        4,
    );
    let e = b.check().unwrap_err();
    assert_eq!(e.code(), "crm.unauthorized");
    assert!(
        e.message().en.contains("INVALID_CREDENTIALS")
            && e.message().en.contains("Reconnect Bitrix24")
    );
    // The key never shows in errors.
    assert!(!format!("{e:?} {e}").contains("zzzz"));
}

#[test]
fn oauth_tokens_rotate_and_a_used_refresh_token_asks_to_reconnect() {
    use callhelper_crm::oauth::{FileTokenStore, OAuthTokens, TokenStore};
    let server = fake(FaultPlan::default());
    let (access, refresh) = server.fake.issue_tokens();
    server.fake.expire_access_tokens();
    let old = OAuthTokens {
        access: Secret::new(access),
        refresh: Secret::new(refresh.clone()),
        expires_at: Timestamp(i64::MAX / 2),
    };
    let dir = temp_dir("b24-oauth");
    let path = dir.join("tokens.json");
    FileTokenStore::new(&path).save(&old).unwrap();
    let cfg = BitrixConfig::default();
    let auth = |store: FileTokenStore| BitrixAuth::OAuth {
        portal_url: server.url(),
        oauth_url: server.url(),
        client_id: cfg.client_id.clone(),
        client_secret: Secret::new(cfg.client_secret.clone()),
        tokens: Box::new(store),
    };
    // The portal says the token expired: renew, store the new pair, go on.
    let mut b = Bitrix::new(settings(), auth(FileTokenStore::new(&path)), clock(), 1);
    assert_eq!(b.check().unwrap().name, "Test Agent");
    assert_eq!(server.fake.stats.refreshes.load(Ordering::Relaxed), 1);
    let stored = FileTokenStore::new(&path).load().unwrap().unwrap();
    assert_ne!(
        stored.refresh.expose(),
        refresh,
        "the rotated refresh token was stored"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // Another copy still holding the old pair: the portal refuses the used token.
    server.fake.expire_access_tokens();
    let stale_path = dir.join("stale.json");
    FileTokenStore::new(&stale_path).save(&old).unwrap();
    let mut stale = Bitrix::new(
        settings(),
        auth(FileTokenStore::new(&stale_path)),
        clock(),
        2,
    );
    let e = stale.check().unwrap_err();
    assert_eq!(e.code(), "crm.unauthorized");
    assert!(
        e.message().en.contains("invalid_grant") && e.message().en.contains("Reconnect Bitrix24")
    );
    assert_eq!(
        server
            .fake
            .stats
            .reused_refresh_tokens
            .load(Ordering::Relaxed),
        1
    );
}

#[test]
fn an_unreachable_portal_never_shows_the_webhook_key() {
    let url = "http://127.0.0.1:1/rest/1/topsecretkey42/";
    let mut b = Bitrix::new(
        settings(),
        BitrixAuth::Webhook(Secret::new(url)),
        clock(),
        5,
    );
    let e = b.check().unwrap_err();
    assert_eq!(e.code(), "crm.unreachable");
    let shown = format!("{e} {e:?} {}", e.message().ru);
    assert!(!shown.contains("topsecretkey42"), "{shown}");
    assert!(e.message().en.contains("stays queued"));
}

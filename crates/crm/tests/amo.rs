//! amoCRM against the local amoCRM.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use callhelper_crm::amo::{Amo, AmoAuth, AmoSettings};
use callhelper_crm::mapping::{FieldMap, FieldRule, MappingProblem, validate};
use callhelper_crm::oauth::{MemoryTokenStore, OAuthTokens, TokenStore};
use callhelper_crm::outbox::ItemState;
use callhelper_crm::pace::{Backoff, RetrySchedule};
use callhelper_crm::{Adapter, JournalOutbox, Secret, Worker};
use callhelper_crm_fakes::{AmoConfig, AmoServer, FaultPlan};
use callhelper_script::Timestamp;
use serde_json::Value;

use crate::support::*;

fn settings(url: &str) -> AmoSettings {
    let mut s = AmoSettings::new(url);
    s.mappings = amo_mappings();
    s.http.timeout = Duration::from_millis(300);
    s.http.limit = s.http.limit.scaled(10.0);
    s.http.refusal_backoff = Backoff {
        base_ms: 20,
        max_ms: 200,
    };
    s
}

fn fake(faults: FaultPlan) -> AmoServer {
    AmoServer::start(AmoConfig {
        long_lived_token: Some("long-lived".into()),
        window: Duration::from_millis(100),
        faults,
        ..AmoConfig::default()
    })
    .expect("the fake starts")
}

pub fn fast_schedule() -> RetrySchedule {
    RetrySchedule {
        transient: Backoff {
            base_ms: 10,
            max_ms: 200,
        },
        needs_user: Backoff {
            base_ms: 60_000,
            max_ms: 60_000,
        },
    }
}

fn run_all(adapter: Box<dyn Adapter>, outbox: &mut JournalOutbox) -> Worker {
    let mut w = Worker::new(adapter, clock(), fast_schedule(), 9);
    w.idle_ms = 20;
    let stop = AtomicBool::new(false);
    w.run(outbox, &stop, true).expect("the worker runs");
    assert!(!stop.load(Ordering::SeqCst));
    w
}

#[test]
fn a_run_arrives_once_with_contact_fields_call_note_and_task() {
    let server = fake(FaultPlan::default());
    let store = MemoryTokenStore::default();
    let (access, refresh) = server.fake.issue_tokens();
    store
        .save(&OAuthTokens {
            access: Secret::new(access),
            refresh: Secret::new(refresh),
            expires_at: Timestamp(i64::MAX / 2),
        })
        .unwrap();
    let cfg = AmoConfig::default();
    let auth = AmoAuth::OAuth {
        client_id: cfg.client_id,
        client_secret: Secret::new(cfg.client_secret),
        redirect_uri: cfg.redirect_uri,
        tokens: Box::new(store),
    };
    let dir = temp_dir("amo-once");
    let mut outbox = JournalOutbox::open(dir.join("outbox.jsonl")).unwrap();
    let p = phone(1);
    outbox.enqueue(job(5, &p), Timestamp(T0)).unwrap();
    let w = run_all(
        Box::new(Amo::new(settings(&server.url()), auth, clock(), 1)),
        &mut outbox,
    );
    assert_eq!(outbox.summary().sent, 1);
    let snap = server.fake.snapshot();
    let contacts = snap["contacts"].as_array().unwrap();
    assert_eq!(contacts.len(), 1);
    let fields = contacts[0]["custom_fields_values"].as_array().unwrap();
    let value_of = |id: u64| {
        fields
            .iter()
            .find(|f| f["field_id"] == id)
            .map(|f| f["values"][0].clone())
    };
    assert_eq!(value_of(200).unwrap()["value"], "5000");
    assert_eq!(value_of(201).unwrap()["enum_id"], 12, "run 5 said Low");
    assert_eq!(value_of(204).unwrap()["value"], false);
    let notes = snap["notes"].as_array().unwrap();
    let calls: Vec<&Value> = notes
        .iter()
        .filter(|n| n["note_type"] == "call_out")
        .collect();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["params"]["uniq"], "run-00005");
    assert_eq!(
        calls[0]["params"]["call_status"], 2,
        "a callback: call back later"
    );
    assert_eq!(calls[0]["params"]["source"], "CallHelper");
    let common: Vec<&str> = notes
        .iter()
        .filter(|n| n["note_type"] == "common")
        .filter_map(|n| n["params"]["text"].as_str())
        .collect();
    assert_eq!(common.len(), 1);
    assert!(
        common[0].contains("Sales") && common[0].ends_with("[callhelper:run:run-00005]"),
        "{}",
        common[0]
    );
    let tasks = snap["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0]["task_type_id"], 1);
    // 2024-05-20 10:00 at UTC+3.
    assert_eq!(tasks[0]["complete_till"], 1_716_188_400);
    assert_eq!(
        server.fake.stats.limit_violations.load(Ordering::Relaxed),
        0
    );
    assert_eq!(w.adapter().stats().refusals, 0);
}

#[test]
fn random_faults_never_duplicate_anything() {
    let server = fake(FaultPlan {
        seed: 7,
        per_mille: 250,
        hang: Duration::from_millis(400),
    });
    let dir = temp_dir("amo-faults");
    let mut outbox = JournalOutbox::open(dir.join("outbox.jsonl")).unwrap();
    for n in 0..40 {
        outbox
            .enqueue(job(n, &phone(n % 8)), Timestamp(T0))
            .unwrap();
    }
    // Two contacts exist already.
    server.fake.add_contact("Known", &phone(0));
    server.fake.add_contact("Known too", &phone(1));
    let w = run_all(
        Box::new(Amo::new(
            settings(&server.url()),
            AmoAuth::LongLived(Secret::new("long-lived")),
            clock(),
            2,
        )),
        &mut outbox,
    );
    assert_eq!(outbox.summary().sent, 40);
    let snap = server.fake.snapshot();
    assert_eq!(
        snap["contacts"].as_array().unwrap().len(),
        8,
        "one contact a phone"
    );
    let notes = snap["notes"].as_array().unwrap();
    let mut uniq: Vec<&str> = notes
        .iter()
        .filter(|n| n["note_type"] == "call_out")
        .filter_map(|n| n["params"]["uniq"].as_str())
        .collect();
    uniq.sort_unstable();
    let before = uniq.len();
    uniq.dedup();
    assert_eq!((before, uniq.len()), (40, 40), "every call once");
    let in_notes = marker_counts(notes.iter().filter_map(|n| n["params"]["text"].as_str()));
    assert_eq!(in_notes.len(), 40);
    assert!(
        in_notes.values().all(|c| *c == 1),
        "a transcript twice: {in_notes:?}"
    );
    let in_tasks = marker_counts(
        snap["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| t["text"].as_str()),
    );
    assert_eq!(in_tasks.len(), 8, "runs 0, 5, 10, ... have callbacks");
    assert!(in_tasks.values().all(|c| *c == 1));
    assert!(server.fake.faults.total() > 10, "faults were injected");
    assert_eq!(
        server.fake.stats.limit_violations.load(Ordering::Relaxed),
        0
    );
    assert_eq!(server.fake.stats.bad_requests.load(Ordering::Relaxed), 0);
    let _ = w;
}

#[test]
fn the_rotated_refresh_token_is_stored_and_a_used_one_asks_to_reconnect() {
    let server = fake(FaultPlan::default());
    let (access, refresh) = server.fake.issue_tokens();
    server.fake.expire_access_tokens();
    let old = OAuthTokens {
        access: Secret::new(access),
        refresh: Secret::new(refresh),
        expires_at: Timestamp(i64::MAX / 2),
    };
    let cfg = AmoConfig::default();
    let auth = |store: MemoryTokenStore| AmoAuth::OAuth {
        client_id: cfg.client_id.clone(),
        client_secret: Secret::new(cfg.client_secret.clone()),
        redirect_uri: cfg.redirect_uri.clone(),
        tokens: Box::new(store),
    };
    // The access token is rejected (401): the adapter refreshes, stores, goes on.
    let dir = temp_dir("amo-rotate");
    let mut outbox = JournalOutbox::open(dir.join("outbox.jsonl")).unwrap();
    outbox.enqueue(job(1, &phone(3)), Timestamp(T0)).unwrap();
    let mut amo = Amo::new(
        settings(&server.url()),
        auth(MemoryTokenStore::new(Some(old.clone()))),
        clock(),
        3,
    );
    amo.check().expect("the check refreshes the token");
    assert_eq!(server.fake.stats.refreshes.load(Ordering::Relaxed), 1);
    run_all(Box::new(amo), &mut outbox);
    assert_eq!(outbox.summary().sent, 1);
    // A copy of the app that still holds the old (now used) refresh token.
    server.fake.expire_access_tokens();
    outbox.enqueue(job(2, &phone(3)), Timestamp(T0)).unwrap();
    let stale = Amo::new(
        settings(&server.url()),
        auth(MemoryTokenStore::new(Some(old))),
        clock(),
        4,
    );
    let mut w = Worker::new(Box::new(stale), clock(), fast_schedule(), 1);
    w.tick(&mut outbox).unwrap();
    assert_eq!(
        server
            .fake
            .stats
            .reused_refresh_tokens
            .load(Ordering::Relaxed),
        1
    );
    let item = outbox
        .list()
        .into_iter()
        .find(|v| v.run_id == "run-00002")
        .unwrap();
    assert_eq!(item.state, ItemState::Failed, "the work stays queued");
    let e = item.last_error.unwrap();
    assert_eq!(e.code, "crm.unauthorized");
    assert!(
        e.en.contains("Token has been revoked") && e.en.contains("Reconnect amoCRM"),
        "{}",
        e.en
    );
    assert!(e.ru.contains("Подключите amoCRM заново"), "{}", e.ru);
}

#[test]
fn the_mapping_is_checked_against_the_crm_fields() {
    let server = fake(FaultPlan::default());
    let mut amo = Amo::new(
        settings(&server.url()),
        AmoAuth::LongLived(Secret::new("long-lived")),
        clock(),
        5,
    );
    let fields = amo.fields().unwrap();
    assert!(fields.iter().any(|f| f.id == "201" && f.options.len() == 2));
    assert!(validate(&amo_mappings()["sales"], &fields, None).is_empty());
    let bad = FieldMap {
        rules: vec![
            FieldRule {
                field: "budget".into(),
                crm_field: "999".into(),
            },
            FieldRule {
                field: "interest".into(),
                crm_field: "202".into(),
            },
            FieldRule {
                field: "agreed".into(),
                crm_field: "202".into(),
            },
        ],
    };
    let problems = validate(&bad, &fields, None);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        matches!(&problems[0], MappingProblem::UnknownCrmField { crm_field, .. } if crm_field == "999")
    );
    assert!(matches!(
        &problems[1],
        MappingProblem::DuplicateTarget { .. }
    ));
    assert!(problems[0].message().ru.contains("которого в CRM нет"));
}

#[test]
fn a_value_the_crm_refuses_fails_with_its_words_and_stays_queued() {
    let server = fake(FaultPlan::default());
    let mut s = settings(&server.url());
    // "Interest" goes to the date field: amoCRM refuses the value.
    s.mappings.get_mut("sales").unwrap().rules[1].crm_field = "203".into();
    let dir = temp_dir("amo-refused");
    let mut outbox = JournalOutbox::open(dir.join("outbox.jsonl")).unwrap();
    outbox.enqueue(job(1, &phone(4)), Timestamp(T0)).unwrap();
    let mut w = Worker::new(
        Box::new(Amo::new(
            s,
            AmoAuth::LongLived(Secret::new("long-lived")),
            clock(),
            6,
        )),
        clock(),
        fast_schedule(),
        1,
    );
    w.tick(&mut outbox).unwrap();
    let item = &outbox.list()[0];
    assert_eq!(item.state, ItemState::Failed);
    let e = item.last_error.clone().unwrap();
    assert_eq!(e.code, "crm.settings");
    assert!(
        e.en.contains("Callback date") && e.en.contains("does not fit"),
        "{}",
        e.en
    );
    assert!(item.next_attempt.is_some());
}

#[test]
fn connecting_with_an_authorisation_code_stores_tokens_and_a_spent_code_is_refused() {
    let server = fake(FaultPlan::default());
    let cfg = AmoConfig::default();
    let auth = || AmoAuth::OAuth {
        client_id: cfg.client_id.clone(),
        client_secret: Secret::new(cfg.client_secret.clone()),
        redirect_uri: cfg.redirect_uri.clone(),
        tokens: Box::new(callhelper_crm::oauth::FileTokenStore::new(
            temp_dir("amo-code").join("tokens.json"),
        )),
    };
    let mut amo = Amo::new(settings(&server.url()), auth(), clock(), 7);
    let e = amo.check().unwrap_err();
    assert_eq!(e.code(), "crm.unauthorized", "not connected yet");
    amo.authorize(&Secret::new(cfg.auth_code.clone())).unwrap();
    assert_eq!(amo.check().unwrap().name, "CallHelper test");
    let mut again = Amo::new(settings(&server.url()), auth(), clock(), 8);
    let e = again
        .authorize(&Secret::new(cfg.auth_code.clone()))
        .unwrap_err();
    assert!(
        e.message()
            .en
            .contains("Authorization code has been revoked"),
        "{}",
        e.message().en
    );
}

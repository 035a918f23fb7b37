//! The signed webhook against the local receiver.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use callhelper_crm::outbox::ItemState;
use callhelper_crm::pace::Backoff;
use callhelper_crm::webhook::{Webhook, WebhookSettings, json_schema};
use callhelper_crm::{JournalOutbox, Secret, Worker};
use callhelper_crm_fakes::{WebhookConfig, WebhookServer};
use callhelper_script::Timestamp;

use crate::amo::fast_schedule;
use crate::support::*;

fn settings(url: &str, secret: &str) -> WebhookSettings {
    let mut s = WebhookSettings::new(url, Secret::new(secret));
    s.http.timeout = Duration::from_millis(300);
    s.http.refusal_backoff = Backoff {
        base_ms: 20,
        max_ms: 200,
    };
    s
}

#[test]
fn deliveries_are_signed_and_a_refusal_stays_queued_until_retried() {
    let server = WebhookServer::start(WebhookConfig::default()).unwrap();
    let dir = temp_dir("hook");
    let mut outbox = JournalOutbox::open(dir.join("outbox.jsonl")).unwrap();
    outbox.enqueue(job(1, &phone(1)), Timestamp(T0)).unwrap();
    server
        .fake
        .reject_all(Some((422, "field `budget` must be a string")));
    let secret = WebhookConfig::default().secret;
    let mut w = Worker::new(
        Box::new(Webhook::new(settings(&server.url(), &secret), clock(), 1)),
        clock(),
        fast_schedule(),
        1,
    );
    w.tick(&mut outbox).unwrap();
    let item = &outbox.list()[0];
    assert_eq!(item.state, ItemState::Failed);
    let e = item.last_error.clone().unwrap();
    assert_eq!(e.code, "crm.rejected");
    assert!(
        e.en.contains("HTTP 422")
            && e.en.contains("must be a string")
            && e.en.contains("Retry now"),
        "{}",
        e.en
    );
    // Fixed on the CRM's side; "retry now" sends it at once.
    server.fake.reject_all(None);
    assert_eq!(outbox.retry_now(Timestamp(0)).unwrap(), 1);
    w.tick(&mut outbox).unwrap();
    assert_eq!(outbox.summary().sent, 1);
    let kept = server.fake.deliveries();
    let body = &kept["run-00001"];
    assert_eq!(body["schema"], "callhelper-crm-webhook/1");
    assert_eq!(body["run"]["outcome"], "success");
    assert_eq!(body["fields"]["interest"], "Low");
    assert!(
        body["transcript"]
            .as_str()
            .unwrap()
            .ends_with("[callhelper:run:run-00001]")
    );
    assert_eq!(server.fake.stats.bad_signatures.load(Ordering::Relaxed), 0);
}

#[test]
fn a_wrong_secret_is_refused_by_the_receiver() {
    let server = WebhookServer::start(WebhookConfig::default()).unwrap();
    let dir = temp_dir("hook-secret");
    let mut outbox = JournalOutbox::open(dir.join("outbox.jsonl")).unwrap();
    outbox.enqueue(job(1, &phone(1)), Timestamp(T0)).unwrap();
    let mut w = Worker::new(
        Box::new(Webhook::new(settings(&server.url(), "wrong"), clock(), 1)),
        clock(),
        fast_schedule(),
        1,
    );
    w.run(&mut outbox, &AtomicBool::new(true), true).unwrap();
    w.tick(&mut outbox).unwrap();
    assert_eq!(server.fake.stats.bad_signatures.load(Ordering::Relaxed), 1);
    let e = outbox.list()[0].last_error.clone().unwrap();
    assert_eq!(e.code, "crm.unauthorized");
    assert!(server.fake.deliveries().is_empty());
}

#[test]
fn the_published_json_schema_matches_the_types() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/webhook-schema.json");
    let generated = serde_json::to_string_pretty(&json_schema()).unwrap() + "\n";
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let published = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        published == generated,
        "docs/webhook-schema.json is out of date: run `UPDATE_SCHEMA=1 cargo test -p callhelper-crm --test crm the_published_json_schema`"
    );
    for key in ["delivery_id", "contact", "run", "fields", "transcript"] {
        assert!(generated.contains(&format!("\"{key}\"")), "{key} missing");
    }
}

#[test]
fn connecting_with_a_wrong_secret_or_url_says_what_to_fix() {
    use callhelper_crm::Adapter;
    let server = WebhookServer::start(WebhookConfig::default()).unwrap();
    let mut w = Webhook::new(settings(&server.url(), "wrong"), clock(), 1);
    let e = w.check().unwrap_err();
    assert_eq!(e.code(), "crm.unauthorized");
    assert!(
        e.message().en.contains("Reconnect webhook"),
        "{}",
        e.message().en
    );
    let mut w = Webhook::new(
        settings(
            &server.url().replace("/hook", "/nope"),
            &WebhookConfig::default().secret,
        ),
        clock(),
        1,
    );
    let e = w.check().unwrap_err();
    assert_eq!(e.code(), "crm.settings");
    assert!(e.message().en.contains("check the address"));
    let mut w = Webhook::new(
        settings(&server.url(), &WebhookConfig::default().secret),
        clock(),
        1,
    );
    assert_eq!(
        w.check().unwrap().name,
        format!("{}/…", server.url().trim_end_matches("/hook"))
    );
}

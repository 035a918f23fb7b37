//! The worker and the outbox: blocked and destroyed people, restarts.

use std::sync::atomic::AtomicBool;

use callhelper_crm::webhook::{Webhook, WebhookSettings};
use callhelper_crm::{JournalOutbox, Secret, Worker};
use callhelper_crm_fakes::{WebhookConfig, WebhookServer};
use callhelper_script::Timestamp;

use crate::amo::fast_schedule;
use crate::support::*;

#[test]
fn blocked_people_are_not_sent_and_destroyed_people_lose_their_queued_work() {
    let server = WebhookServer::start(WebhookConfig::default()).unwrap();
    let dir = temp_dir("worker-block");
    let path = dir.join("outbox.jsonl");
    let mut outbox = JournalOutbox::open(&path).unwrap();
    let (a, b, c) = (phone(1), phone(2), phone(3));
    outbox.enqueue(job(1, &a), Timestamp(T0)).unwrap();
    outbox.enqueue(job(2, &b), Timestamp(T0)).unwrap();
    outbox.enqueue(job(3, &c), Timestamp(T0)).unwrap();
    outbox.block(&format!("person-{b}")).unwrap();
    outbox.remove_person(&format!("person-{c}")).unwrap();
    // Reopen: the journal replays the same state.
    drop(outbox);
    let mut outbox = JournalOutbox::open(&path).unwrap();
    let s = WebhookSettings::new(server.url(), Secret::new(WebhookConfig::default().secret));
    let mut w = Worker::new(
        Box::new(Webhook::new(s, clock(), 1)),
        clock(),
        fast_schedule(),
        1,
    );
    w.idle_ms = 10;
    w.run(&mut outbox, &AtomicBool::new(false), true).unwrap();
    let kept = server.fake.deliveries();
    assert_eq!(kept.keys().collect::<Vec<_>>(), ["run-00001"]);
    assert_eq!(
        outbox.list().len(),
        2,
        "the destroyed person's item is gone"
    );
    let s = outbox.summary();
    assert_eq!(
        (s.sent, s.queued),
        (1, 1),
        "the blocked person's item waits"
    );
    outbox.unblock(&format!("person-{b}")).unwrap();
    w.run(&mut outbox, &AtomicBool::new(false), true).unwrap();
    assert_eq!(server.fake.deliveries().len(), 2);
}

#[test]
fn a_partial_line_left_by_a_kill_is_dropped() {
    let dir = temp_dir("worker-partial");
    let path = dir.join("outbox.jsonl");
    {
        let mut outbox = JournalOutbox::open(&path).unwrap();
        outbox.enqueue(job(1, &phone(1)), Timestamp(T0)).unwrap();
    }
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b"{\"op\":\"sent\",\"id\":1,")
        .unwrap();
    let outbox = JournalOutbox::open(&path).unwrap();
    assert_eq!(outbox.summary().queued, 1);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.ends_with('\n'));
}

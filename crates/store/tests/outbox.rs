//! The CRM outbox: work queued with the finished run in one transaction, claimed with a
//! lease, marked sent or failed, retried.

use std::sync::Arc;
use std::time::Duration;

use callhelper_script::Timestamp;
use callhelper_store::outbox::{CrmPlanner, NewOutboxItem, OutboxState};
use callhelper_store::runs::FinishedRun;

use crate::common::{self, PEOPLE};

struct Planner;

impl CrmPlanner for Planner {
    fn plan_run(&self, run: &FinishedRun<'_>) -> Vec<NewOutboxItem> {
        ["amocrm", "bitrix24"]
            .into_iter()
            .map(|t| NewOutboxItem {
                target: t.into(),
                kind: "run_finished".into(),
                payload: serde_json::json!({ "run": run.run.0, "outcome": run.record.outcome }),
                idempotency_key: format!("run:{}:{t}", run.run.0),
                contact: run.contact.map(|c| c.id.0),
            })
            .collect()
    }
    fn plan_call(&self, _: &callhelper_store::calls::Call) -> Vec<NewOutboxItem> {
        Vec::new()
    }
}

#[test]
fn queued_with_the_run_claimed_sent_failed_retried() {
    let f = common::fixture();
    f.store.set_crm_planner(Arc::new(Planner));
    let ids = f.people();
    let run = common::full_run(
        &f.store,
        &f.admin,
        Some(ids[0]),
        PEOPLE[0].0,
        "150",
        1_770_000_000_000,
    );
    let items = f.store.outbox().list(None, 10).unwrap();
    assert_eq!(items.len(), 2);
    assert!(
        items
            .iter()
            .all(|i| i.run == Some(run.0) && i.state == OutboxState::Queued)
    );
    assert_eq!(items[0].payload["outcome"], "success");
    // Queuing the same key again does nothing.
    let again = f.store.outbox().enqueue(&[NewOutboxItem {
        target: "amocrm".into(),
        kind: "run_finished".into(),
        payload: serde_json::json!({}),
        idempotency_key: format!("run:{}:amocrm", run.0),
        contact: None,
    }]);
    assert_eq!(again.unwrap(), vec![]);
    // A claim leases: a second worker gets nothing until the lease ends.
    let claimed = f
        .store
        .outbox()
        .claim_due(Some("amocrm"), 10, Duration::from_secs(30))
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(
        f.store
            .outbox()
            .claim_due(Some("amocrm"), 10, Duration::from_secs(30))
            .unwrap()
            .is_empty()
    );
    f.store
        .outbox()
        .mark_sent(claimed[0].id, Some("crm-42"))
        .unwrap();
    let b = f
        .store
        .outbox()
        .claim_due(Some("bitrix24"), 10, Duration::from_secs(30))
        .unwrap();
    let now = f.store.now().0;
    f.store
        .outbox()
        .mark_failed(
            b[0].id,
            "503 QUERY_LIMIT_EXCEEDED",
            Some(Timestamp(now + 5000)),
        )
        .unwrap();
    assert!(
        f.store
            .outbox()
            .claim_due(None, 10, Duration::from_secs(30))
            .unwrap()
            .is_empty(),
        "not due yet"
    );
    f.store
        .outbox()
        .mark_failed(b[0].id, "400 bad field", None)
        .unwrap();
    let failed = f.store.outbox().get(b[0].id).unwrap().unwrap();
    assert_eq!(
        (failed.state, failed.attempts, failed.last_error.as_deref()),
        (OutboxState::Failed, 2, Some("400 bad field"))
    );
    f.store.outbox_retry_now(&f.admin, b[0].id).unwrap();
    assert_eq!(
        f.store
            .outbox()
            .claim_due(None, 10, Duration::from_secs(30))
            .unwrap()
            .len(),
        1
    );
    let counts = f.store.outbox().counts().unwrap();
    assert_eq!((counts.queued, counts.sent, counts.failed), (1, 1, 0));
}

#[test]
fn a_failed_finish_queues_nothing() {
    let f = common::fixture();
    f.store.set_crm_planner(Arc::new(Planner));
    let run = common::full_run(&f.store, &f.admin, None, "x", "150", 1_770_000_000_000);
    // Finishing again fails, and the transaction (events, outbox) is rolled back.
    let stored = f.store.run(&f.admin, run).unwrap();
    let err = f
        .store
        .finish_run(&f.admin, run, &[], stored.record.as_ref().unwrap())
        .unwrap_err();
    assert_eq!(err.code(), "store.run_finished");
    assert_eq!(f.store.outbox().counts().unwrap().queued, 2);
}

#[test]
fn progress_is_saved_with_the_item_and_blocked_people_are_flagged() {
    let f = common::fixture();
    f.store.set_crm_planner(Arc::new(Planner));
    let ids = f.people();
    for (i, at) in [(0, 1_770_000_000_000), (1, 1_770_000_100_000)] {
        common::person_run(&f, &ids, i, at);
    }
    let outbox = f.store.outbox();
    let lease = Duration::from_secs(30);
    let claimed = outbox.claim_due(Some("amocrm"), 10, lease).unwrap();
    assert_eq!(claimed.len(), 2);
    assert!(claimed.iter().all(|i| i.progress.is_none() && !i.blocked));
    // Progress is saved (one transaction) and handed back by get, list and the next claim.
    let p0 = serde_json::json!({ "contact_id": "77", "stages": { "call": "attempted" } });
    let p1 = serde_json::json!({ "contact_id": "78" });
    assert_eq!(
        outbox
            .save_progress(&[(claimed[0].id, &p0), (claimed[1].id, &p1)])
            .unwrap(),
        2
    );
    assert_eq!(
        outbox.get(claimed[0].id).unwrap().unwrap().progress,
        Some(p0.clone())
    );
    let now = f.store.now().0;
    outbox
        .mark_failed(claimed[0].id, "timeout", Some(Timestamp(now)))
        .unwrap();
    let again = outbox.claim_due(Some("amocrm"), 10, lease).unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(
        again[0].progress,
        Some(p0.clone()),
        "a retry resumes from it"
    );
    // "Retry now" keeps it; a sent item's progress is not overwritten.
    outbox.retry_now(claimed[0].id).unwrap();
    assert_eq!(
        outbox.get(claimed[0].id).unwrap().unwrap().progress,
        Some(p0.clone())
    );
    outbox.mark_sent(claimed[0].id, Some("crm-1")).unwrap();
    let late = serde_json::json!({ "late": true });
    assert_eq!(outbox.save_progress(&[(claimed[0].id, &late)]).unwrap(), 0);
    assert_eq!(
        outbox.get(claimed[0].id).unwrap().unwrap().progress,
        Some(p0)
    );
    // Blocked after the claim: the item says so, is not handed out, and is not due.
    f.store.block(&f.admin, ids[1]).unwrap();
    let held = outbox.get(claimed[1].id).unwrap().unwrap();
    assert!(held.blocked && held.state == OutboxState::Queued);
    assert!(outbox.list(None, 10).unwrap().iter().any(|i| i.blocked));
    assert!(!format!("{held:?}").contains(PEOPLE[1].0));
    let later = Duration::from_secs(3600);
    f.store
        .set_clock(Arc::new(move || Timestamp(now + 7_200_000)));
    assert!(
        outbox
            .claim_due(Some("amocrm"), 10, later)
            .unwrap()
            .is_empty()
    );
    assert_eq!(outbox.next_due(Some("amocrm")).unwrap(), None);
    f.store.unblock(&f.admin, ids[1]).unwrap();
    assert!(outbox.next_due(Some("amocrm")).unwrap().is_some());
    let back = outbox.claim_due(Some("amocrm"), 10, later).unwrap();
    assert_eq!((back.len(), back[0].blocked), (1, false));
    assert_eq!(back[0].progress, Some(p1));
    // Destroyed: the item and its progress are gone.
    f.store.destroy_person(&f.admin, ids[1]).unwrap();
    assert!(outbox.get(claimed[1].id).unwrap().is_none());
    assert_eq!(outbox.save_progress(&[(claimed[1].id, &late)]).unwrap(), 0);
}

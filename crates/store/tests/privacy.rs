//! Personal-data rights: destruction leaves nothing findable, blocking stops calls, sync
//! and export, retention destroys old data, subject access gathers everything, and no
//! personal data reaches the logs.

use std::sync::Arc;

use callhelper_script::Timestamp;
use callhelper_store::calls::{CallEnd, Direction, NewCall};
use callhelper_store::consent::{ConsentMethod, NewConsent};
use callhelper_store::export::{Filter, Format};
use callhelper_store::outbox::{CrmPlanner, NewOutboxItem};
use callhelper_store::runs::FinishedRun;
use callhelper_store::{Pii, Store, StoreError};

use crate::common::{self, PEOPLE};

/// Queues one CRM item per finished run and call.
struct OneItem;

impl CrmPlanner for OneItem {
    fn plan_run(&self, run: &FinishedRun<'_>) -> Vec<NewOutboxItem> {
        // A careless planner that logs what it gets: still no personal data.
        log::debug!("test planner: {run:?}");
        vec![NewOutboxItem {
            target: "webhook".into(),
            kind: "run_finished".into(),
            payload: serde_json::to_value(run.record).unwrap(),
            idempotency_key: format!("run:{}", run.run.0),
            contact: run.contact.map(|c| c.id.0),
        }]
    }
    fn plan_call(&self, call: &callhelper_store::calls::Call) -> Vec<NewOutboxItem> {
        log::debug!("test planner: {call:?}");
        vec![NewOutboxItem {
            target: "webhook".into(),
            kind: "call_finished".into(),
            payload: serde_json::json!({ "number": call.remote_number.expose() }),
            idempotency_key: format!("call:{}", call.id.0),
            contact: call.contact.map(|c| c.0),
        }]
    }
}

fn call(
    store: &Store,
    s: &callhelper_store::Session,
    phone: &str,
) -> Result<callhelper_store::calls::CallId, StoreError> {
    store.start_call(
        s,
        &NewCall {
            direction: Direction::Outbound,
            local_number: "100".into(),
            remote_number: Pii::new(phone.into()),
            started_at: Timestamp(1_770_000_000_000),
            sip_call_id: Some("abc@pbx".into()),
        },
    )
}

fn export_text(
    store: &Store,
    s: &callhelper_store::Session,
    dir: &std::path::Path,
    format: Format,
) -> String {
    let out = dir.join(format!("out.{}", format.as_str()));
    store
        .export(s, format, &Filter::default(), &out, &mut |_| {})
        .unwrap();
    if format == Format::Xlsx {
        return common::xlsx_text(&out);
    }
    std::fs::read_to_string(out).unwrap()
}

#[test]
fn destroyed_person_cannot_be_found_anywhere() {
    let f = common::fixture();
    f.store.set_crm_planner(Arc::new(OneItem));
    let ids = f.people();
    let (name, phone, email) = PEOPLE[0];
    let run = common::full_run(
        &f.store,
        &f.admin,
        Some(ids[0]),
        name,
        "150",
        1_770_000_000_000,
    );
    common::full_run(
        &f.store,
        &f.admin,
        Some(ids[1]),
        PEOPLE[1].0,
        "50",
        1_770_000_100_000,
    );
    let c = call(&f.store, &f.admin, phone).unwrap();
    f.store
        .finish_call(
            &f.admin,
            c,
            &CallEnd {
                ended_at: Timestamp(1_770_000_060_000),
                ..Default::default()
            },
        )
        .unwrap();
    f.store
        .record_consent(
            &f.admin,
            &NewConsent {
                contact: ids[0],
                given: true,
                purpose: "calls about offers".into(),
                at: Timestamp(1_770_000_000_500),
                method: ConsentMethod::Script {
                    script_id: "survey".into(),
                    script_version: 1,
                    step: "greet".into(),
                    run: Some(run),
                },
            },
        )
        .unwrap();
    assert!(f.store.outbox().counts().unwrap().queued >= 3);
    for format in [Format::Csv, Format::Json, Format::Xlsx] {
        let text = export_text(&f.store, &f.admin, f.dir.path(), format);
        assert!(text.contains(name), "{format:?} holds the person before");
    }

    let d = f.store.destroy_person(&f.admin, ids[0]).unwrap();
    assert_eq!((d.contacts, d.runs, d.calls), (1, 1, 1));
    assert!(d.other >= 3, "consent, CRM work, events: {d:?}");
    // The WAL was checkpointed and truncated: no old page lingers there.
    assert_eq!(
        std::fs::metadata(f.dir.path().join("callhelper.db-wal"))
            .unwrap()
            .len(),
        0
    );

    let gone: Vec<String> = vec![
        name.into(),
        email.into(),
        "+79165550123".into(),
        "Кувшинникова".into(),
    ];
    // No query finds them...
    assert!(f.store.contact_by_phone(&f.admin, phone).unwrap().is_none());
    assert!(
        f.store
            .search_contacts(&f.admin, "Кувшин", 10)
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        f.store.subject_access(&f.admin, phone).unwrap_err(),
        StoreError::NoSuchContact
    ));
    assert!(matches!(
        f.store.run(&f.admin, run).unwrap_err(),
        StoreError::NotFound { .. }
    ));
    assert!(
        f.store
            .outbox()
            .list(None, 100)
            .unwrap()
            .iter()
            .all(|i| i.contact != Some(ids[0].0))
    );
    // ... no export, in any format ...
    for format in [Format::Csv, Format::Json, Format::Xlsx] {
        common::assert_absent(
            &export_text(&f.store, &f.admin, f.dir.path(), format),
            &gone,
            "export",
        );
    }
    // ... and no row of any table holds them. Only the destruction record remains.
    common::assert_absent(&common::all_text(&f.path()), &gone, "the database");
    let records = f.store.destructions(&f.admin).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].reason, "request");
    // The erasure is audited, by ids and counts only.
    let audit = f.store.audit_log(&f.admin, 100).unwrap();
    let erased = audit
        .iter()
        .find(|e| e.action == "destroyed")
        .expect("the destruction is audited");
    assert_eq!(
        (erased.user, erased.detail["destruction"].as_i64()),
        (Some(f.admin.user()), Some(records[0].id))
    );
    assert!(
        common::all_text(&f.path()).contains(PEOPLE[1].0),
        "others are untouched"
    );
}

#[test]
fn blocked_person_is_refused_by_calls_sync_and_export() {
    let f = common::fixture();
    f.store.set_crm_planner(Arc::new(OneItem));
    let ids = f.people();
    let (name, phone, _) = PEOPLE[1];
    common::full_run(
        &f.store,
        &f.admin,
        Some(ids[1]),
        name,
        "150",
        1_770_000_000_000,
    );
    let queued_before = f.store.outbox().counts().unwrap().queued;
    f.store.block(&f.admin, ids[1]).unwrap();

    // The call path.
    assert!(f.store.is_blocked(phone).unwrap());
    assert!(
        f.store.is_blocked("+79037774412").unwrap(),
        "any spelling of the number"
    );
    assert!(!f.store.is_blocked(PEOPLE[0].1).unwrap());
    assert!(matches!(
        call(&f.store, &f.admin, phone).unwrap_err(),
        StoreError::Blocked
    ));
    // Sync: queued work is not handed out, new work is refused.
    let due = f
        .store
        .outbox()
        .claim_due(None, 100, std::time::Duration::from_secs(60))
        .unwrap();
    assert!(due.iter().all(|i| i.contact != Some(ids[1].0)));
    assert!(queued_before > 0);
    let item = NewOutboxItem {
        target: "webhook".into(),
        kind: "x".into(),
        payload: serde_json::json!({}),
        idempotency_key: "k".into(),
        contact: Some(ids[1].0),
    };
    assert!(matches!(
        f.store.outbox().enqueue(&[item]).unwrap_err(),
        StoreError::Blocked
    ));
    // Export: left out, and counted.
    let out = f.dir.path().join("out.csv");
    let summary = f
        .store
        .export(&f.admin, Format::Csv, &Filter::default(), &out, &mut |_| {})
        .unwrap();
    assert_eq!((summary.rows, summary.blocked_left_out), (0, 1));
    assert!(!std::fs::read_to_string(&out).unwrap().contains(name));
    // No new run; a correction of the data is still allowed (terms «b»).
    let program = common::program();
    let (run, events) =
        callhelper_script::Run::start(program.clone(), Default::default(), Timestamp(1));
    let new = callhelper_store::runs::NewRun {
        program: &program,
        contact: Some(ids[1]),
        call: None,
        context: run.context(),
        events: &events,
    };
    assert!(matches!(
        f.store.start_run(&f.admin, &new).unwrap_err(),
        StoreError::Blocked
    ));
    f.store
        .change_contact(
            &f.admin,
            ids[1],
            &callhelper_store::contacts::ContactChange {
                name: Some(Pii::new("B. Quilliam".into())),
                ..Default::default()
            },
        )
        .unwrap();
    // Unblocked: everything works again.
    f.store.unblock(&f.admin, ids[1]).unwrap();
    assert!(!f.store.is_blocked(phone).unwrap());
    let summary = f
        .store
        .export(&f.admin, Format::Csv, &Filter::default(), &out, &mut |_| {})
        .unwrap();
    assert_eq!(summary.rows, 1);
    let actions: Vec<String> = f
        .store
        .audit_log(&f.admin, 100)
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    for a in ["blocked", "unblocked", "exported", "contact_changed"] {
        assert!(actions.iter().any(|x| x == a), "{a} audited: {actions:?}");
    }
}

#[test]
fn retention_destroys_what_is_older_than_the_period() {
    let f = common::fixture();
    let ids = f.people();
    let day = 86_400_000i64;
    let now = 1_770_000_000_000i64;
    // Contact 0: a run 100 days ago. Contact 1: a run 10 days ago. Contact 2: no runs,
    // created "now" by the fixture's clock.
    let old = common::full_run(
        &f.store,
        &f.admin,
        Some(ids[0]),
        PEOPLE[0].0,
        "150",
        now - 100 * day,
    );
    let recent = common::full_run(
        &f.store,
        &f.admin,
        Some(ids[1]),
        PEOPLE[1].0,
        "150",
        now - 10 * day,
    );
    assert_eq!(
        f.store.apply_retention(Timestamp(now)).unwrap().id,
        0,
        "no period set: nothing happens"
    );
    f.store
        .set_setting(&f.admin, "retention_days", "30")
        .unwrap();
    // 31 days later, contact 0 (updated "now") is not stale yet, but the old run is.
    let d = f.store.apply_retention(Timestamp(now)).unwrap();
    assert_eq!((d.runs, d.contacts), (1, 0));
    assert!(f.store.run(&f.admin, old).is_err());
    assert!(f.store.run(&f.admin, recent).is_ok());
    // Much later, everything is past the period.
    let d = f.store.apply_retention(Timestamp(now + 60 * day)).unwrap();
    assert_eq!((d.runs, d.contacts), (1, 3));
    common::assert_absent(
        &common::all_text(&f.path()),
        &common::pii_needles(),
        "the database after retention",
    );
    let records = f.store.destructions(&f.admin).unwrap();
    assert!(
        records
            .iter()
            .all(|r| r.reason == "retention" && r.user.is_none())
    );
}

#[test]
fn subject_access_gathers_everything_about_one_person() {
    let f = common::fixture();
    let ids = f.people();
    let (name, phone, email) = PEOPLE[2];
    let run = common::full_run(
        &f.store,
        &f.admin,
        Some(ids[2]),
        name,
        "150",
        1_770_000_000_000,
    );
    call(&f.store, &f.admin, phone).unwrap();
    f.store
        .record_consent(
            &f.admin,
            &NewConsent {
                contact: ids[2],
                given: true,
                purpose: "offers".into(),
                at: Timestamp(5),
                method: ConsentMethod::Manual,
            },
        )
        .unwrap();
    let report = f.store.subject_access(&f.admin, "8 926 111 99 88").unwrap();
    let json = serde_json::to_string(&report).unwrap();
    assert!(json.contains(name) && json.contains(email) && json.contains("+79261119988"));
    assert_eq!(report.runs.len(), 1);
    assert_eq!(report.runs[0].id, run);
    assert!(report.runs[0].events.len() > 3);
    assert_eq!((report.calls.len(), report.consents.len()), (1, 1));
    assert!(!json.contains(PEOPLE[0].0), "nobody else");
    // Debug of the report shows no personal data.
    common::assert_absent(
        &format!("{report:?}"),
        &common::pii_needles(),
        "Debug of the report",
    );
    assert_eq!(common::audited(&f, "subject_access"), 1);
}

#[test]
fn logs_of_a_full_session_hold_no_personal_data() {
    let f = common::fixture();
    f.store.set_crm_planner(Arc::new(OneItem));
    let ids = f.people();
    let mut shown = String::new();
    for (i, (name, phone, _)) in PEOPLE.iter().enumerate() {
        let r = common::full_run(
            &f.store,
            &f.admin,
            Some(ids[i]),
            name,
            "150",
            1_770_000_000_000,
        );
        shown += &format!("{:?}\n", f.store.run(&f.admin, r).unwrap());
        shown += &format!("{:?}\n", f.store.contact_by_phone(&f.admin, phone).unwrap());
        shown += &format!("{:?}\n", call(&f.store, &f.admin, phone));
    }
    shown += &format!("{:?}\n", f.store.outbox().list(None, 100).unwrap());
    f.store.block(&f.admin, ids[0]).unwrap();
    shown += &format!(
        "{:?} {}\n",
        call(&f.store, &f.admin, PEOPLE[0].1),
        call(&f.store, &f.admin, PEOPLE[0].1).unwrap_err()
    );
    shown += &format!("{:?}\n", f.store.subject_access(&f.admin, PEOPLE[1].1));
    shown += &format!("{:?}\n", f.store.destroy_person(&f.admin, ids[2]));
    shown += &format!("{:?}\n", f.store.audit_log(&f.admin, 1000).unwrap());
    let contact = f.store.contact(&f.admin, ids[1]).unwrap();
    let ctx = callhelper_script::Context {
        contact: contact.script_variables(),
        agent: Default::default(),
    };
    let program = common::program();
    let (_, events) = callhelper_script::Run::start(program.clone(), ctx.clone(), Timestamp(1));
    let new = callhelper_store::runs::NewRun {
        program: &program,
        contact: Some(ids[1]),
        call: None,
        context: &ctx,
        events: &events,
    };
    shown += &format!("{new:?} {contact:?}\n");
    let logs = common::logs().lock().unwrap().clone();
    assert!(
        logs.contains("run") && logs.contains("finished"),
        "the store does log: {logs}"
    );
    common::assert_absent(&logs, &common::pii_needles(), "the log");
    common::assert_absent(&shown, &common::pii_needles(), "Debug output");
}

#[test]
fn consent_records_say_who_when_how_and_for_what() {
    let f = common::fixture();
    let ids = f.people();
    let agent = f.user("anna", callhelper_store::Role::Agent);
    let run = common::full_run(
        &f.store,
        &agent,
        Some(ids[0]),
        PEOPLE[0].0,
        "150",
        1_770_000_000_000,
    );
    let by_script = NewConsent {
        contact: ids[0],
        given: true,
        purpose: "calls about offers".into(),
        at: Timestamp(1_770_000_001_000),
        method: ConsentMethod::Script {
            script_id: "survey".into(),
            script_version: 1,
            step: "greet".into(),
            run: Some(run),
        },
    };
    f.store.record_consent(&agent, &by_script).unwrap();
    // A withdrawal is a new record; the first one stays.
    f.store
        .record_consent(
            &f.admin,
            &NewConsent {
                given: false,
                at: Timestamp(1_770_000_500_000),
                method: ConsentMethod::Manual,
                ..by_script.clone()
            },
        )
        .unwrap();
    let records = f.store.consents(&f.admin, ids[0]).unwrap();
    assert_eq!(records.len(), 2);
    let first = &records[0];
    assert_eq!(
        (
            first.given,
            first.purpose.as_str(),
            first.at,
            first.recorded_by
        ),
        (
            true,
            "calls about offers",
            Timestamp(1_770_000_001_000),
            Some(agent.user())
        )
    );
    assert_eq!(first.method, by_script.method);
    assert_eq!(
        (records[1].given, &records[1].method, records[1].recorded_by),
        (false, &ConsentMethod::Manual, Some(f.admin.user()))
    );
    // No purpose, no record; support may not record one; unknown people are refused.
    assert!(
        f.store
            .record_consent(
                &agent,
                &NewConsent {
                    purpose: "  ".into(),
                    ..by_script.clone()
                }
            )
            .is_err()
    );
    let support = f.user("helpdesk", callhelper_store::Role::Support);
    assert!(matches!(
        f.store.record_consent(&support, &by_script).unwrap_err(),
        StoreError::Forbidden { .. }
    ));
    assert!(matches!(
        f.store
            .record_consent(
                &agent,
                &NewConsent {
                    contact: callhelper_store::contacts::ContactId(999),
                    ..by_script.clone()
                }
            )
            .unwrap_err(),
        StoreError::NotFound { .. }
    ));
    assert_eq!(common::audited(&f, "consent_recorded"), 2);
    // The records go into the person's subject-access report.
    let report = f.store.subject_access(&f.admin, PEOPLE[0].1).unwrap();
    assert_eq!(report.consents, records);
}

//! Runs: events in order, field values kept current, resume after a restart.

use callhelper_script::{Context, Run, Timestamp};
use callhelper_store::runs::{NewRun, RunState};
use callhelper_store::{Role, Store};

use crate::common::{self, PEOPLE};

#[test]
fn a_run_survives_a_restart_and_resumes() {
    let f = common::fixture();
    let ids = f.people();
    let agent = f.user("anna", Role::Agent);
    let program = common::program();
    let contact = f.store.contact(&agent, ids[0]).unwrap();
    let ctx = Context {
        contact: contact.script_variables(),
        agent: Default::default(),
    };
    let (mut run, events) = Run::start(program.clone(), ctx.clone(), Timestamp(1000));
    assert!(
        run.view(Default::default())
            .say
            .unwrap()
            .text
            .contains(PEOPLE[0].0)
    );
    let id = f
        .store
        .start_run(
            &agent,
            &NewRun {
                program: &program,
                contact: Some(ids[0]),
                call: None,
                context: &ctx,
                events: &events,
            },
        )
        .unwrap();
    let ev = run
        .choose(callhelper_script::AnswerRef::Key("1"), Timestamp(2000))
        .unwrap();
    f.store
        .append_events(&agent, id, &ev, Some(&run.record().fields))
        .unwrap();
    let ev = run
        .set_field_input("budget", "120", Timestamp(3000))
        .unwrap();
    f.store
        .append_events(&agent, id, &ev, Some(&run.record().fields))
        .unwrap();
    let path = f.path();
    drop(f.store);

    let store = Store::open(&path, &common::key()).unwrap();
    let agent = store.login("anna", "password-123").unwrap();
    let unfinished = store.unfinished_runs(&agent, true).unwrap();
    assert_eq!(unfinished.len(), 1);
    let u = &unfinished[0];
    assert_eq!(
        (u.id, u.state, u.contact),
        (id, RunState::Active, Some(ids[0]))
    );
    let mut resumed = Run::replay(program.clone(), u.context.clone(), &u.events).unwrap();
    assert_eq!(resumed.current().id, "ask");
    assert_eq!(
        resumed
            .field("budget")
            .map(|v| v.display(Default::default()))
            .as_deref(),
        Some("120")
    );
    let ev = resumed.proceed(Timestamp(4000)).unwrap();
    store
        .finish_run(&agent, id, &ev, &resumed.record())
        .unwrap();
    let stored = store.run(&agent, id).unwrap();
    assert_eq!(stored.state, RunState::Finished);
    assert_eq!(stored.outcome.as_deref(), Some("success"));
    assert!(store.unfinished_runs(&agent, true).unwrap().is_empty());
    // Nothing can be added to a finished run.
    assert_eq!(
        store
            .append_events(&agent, id, &ev, None)
            .unwrap_err()
            .code(),
        "store.run_finished"
    );
}

#[test]
fn a_callback_is_recorded_when_a_run_agrees_one() {
    let f = common::fixture();
    let ids = f.people();
    let program = common::program();
    let (mut run, events) = Run::start(program.clone(), Context::default(), Timestamp(1000));
    let id = f
        .store
        .start_run(
            &f.admin,
            &NewRun {
                program: &program,
                contact: Some(ids[2]),
                call: None,
                context: run.context(),
                events: &events,
            },
        )
        .unwrap();
    let mut all = Vec::new();
    all.extend(
        run.choose(callhelper_script::AnswerRef::Key("2"), Timestamp(2000))
            .unwrap(),
    );
    all.extend(
        run.set_field_input("callback_on", "31.03.2026", Timestamp(3000))
            .unwrap(),
    );
    all.extend(run.proceed(Timestamp(4000)).unwrap());
    f.store
        .finish_run(&f.admin, id, &all, &run.record())
        .unwrap();
    let cbs = f.store.pending_callbacks(&f.admin).unwrap();
    assert_eq!(cbs.len(), 1);
    assert_eq!(
        (cbs[0].due.as_str(), cbs[0].contact),
        ("2026-03-31", Some(ids[2]))
    );
    f.store.close_callback(&f.admin, cbs[0].id, true).unwrap();
    assert!(f.store.pending_callbacks(&f.admin).unwrap().is_empty());
}

//! Users and roles (§4.10) and support access (§4.11): read-only, time-limited, audited.

use std::sync::Arc;

use callhelper_script::Timestamp;
use callhelper_store::contacts::{ContactChange, NewContact};
use callhelper_store::export::{Filter, Format};
use callhelper_store::{Pii, Role, StoreError};

use crate::common::{self, PEOPLE};

#[test]
fn support_can_view_but_not_change_or_export() {
    let f = common::fixture();
    let ids = f.people();
    let support = f.user("helpdesk", Role::Support);
    // Views work, and each is audited.
    assert!(
        f.store
            .contact_by_phone(&support, PEOPLE[0].1)
            .unwrap()
            .is_some()
    );
    assert!(f.store.contact(&support, ids[1]).is_ok());
    // Every write and every export fails.
    let forbidden = |e: StoreError| {
        assert!(
            matches!(
                e,
                StoreError::Forbidden {
                    role: Role::Support,
                    ..
                }
            ),
            "{e:?}"
        )
    };
    forbidden(
        f.store
            .add_contact(
                &support,
                &NewContact {
                    phone: Pii::new("+79160000000".into()),
                    ..Default::default()
                },
            )
            .unwrap_err(),
    );
    forbidden(
        f.store
            .change_contact(
                &support,
                ids[0],
                &ContactChange {
                    name: Some(Pii::new("x".into())),
                    ..Default::default()
                },
            )
            .unwrap_err(),
    );
    forbidden(f.store.block(&support, ids[0]).unwrap_err());
    forbidden(f.store.destroy_person(&support, ids[0]).unwrap_err());
    let out = f.dir.path().join("x.csv");
    forbidden(
        f.store
            .export(&support, Format::Csv, &Filter::default(), &out, &mut |_| {})
            .unwrap_err(),
    );
    assert!(!out.exists(), "no file written");
    forbidden(f.store.subject_access(&support, PEOPLE[0].1).unwrap_err());
    let csv = f.dir.path().join("in.csv");
    std::fs::write(&csv, "name,phone,email\nA,+79160000001,\n").unwrap();
    forbidden(f.store.import_contacts(&support, &csv).unwrap_err());
    forbidden(
        f.store
            .add_user(&support, "x", "password-123", Role::Admin)
            .unwrap_err(),
    );
    let program = common::program();
    let (run, events) =
        callhelper_script::Run::start(program.clone(), Default::default(), Timestamp(1));
    let new = callhelper_store::runs::NewRun {
        program: &program,
        contact: None,
        call: None,
        context: run.context(),
        events: &events,
    };
    forbidden(f.store.start_run(&support, &new).unwrap_err());
    let audit = f.store.audit_log(&f.admin, 1000).unwrap();
    let support_id = support.user();
    assert!(
        audit
            .iter()
            .filter(|e| e.user == Some(support_id) && e.action == "support_viewed")
            .count()
            >= 2
    );
    assert!(
        audit
            .iter()
            .filter(|e| e.user == Some(support_id) && e.action == "denied")
            .count()
            >= 8
    );
}

#[test]
fn support_access_expires() {
    let f = common::fixture();
    let support = f.user("helpdesk", Role::Support);
    let now = f.store.now().0;
    f.store
        .set_clock(Arc::new(move || Timestamp(now + 3_600_001)));
    assert!(matches!(
        f.store.contact_by_phone(&support, PEOPLE[0].1).unwrap_err(),
        StoreError::AccessExpired
    ));
    assert!(matches!(
        f.store.login("helpdesk", "password-123").unwrap_err(),
        StoreError::AccessExpired
    ));
    let id = f.store.user_id(&f.admin, "helpdesk").unwrap();
    f.store
        .grant_support_access(&f.admin, id, Timestamp(now + 7_200_000))
        .unwrap();
    assert!(f.store.login("helpdesk", "password-123").is_ok());
}

#[test]
fn roles_passwords_and_audited_role_changes() {
    let f = common::fixture();
    let agent = f.user("anna", Role::Agent);
    assert!(matches!(
        f.store.login("anna", "wrong-password").unwrap_err(),
        StoreError::BadCredentials
    ));
    assert!(matches!(
        f.store.login("nobody", "password-123").unwrap_err(),
        StoreError::BadCredentials
    ));
    f.people();
    let out = f.dir.path().join("x.csv");
    assert!(matches!(
        f.store
            .export(&agent, Format::Csv, &Filter::default(), &out, &mut |_| {})
            .unwrap_err(),
        StoreError::Forbidden {
            role: Role::Agent,
            ..
        }
    ));
    // Promoted: the same session may export at once (roles are checked live).
    f.store
        .set_role(&f.admin, agent.user(), Role::Manager)
        .unwrap();
    f.store
        .export(&agent, Format::Csv, &Filter::default(), &out, &mut |_| {})
        .unwrap();
    // The last administrator cannot be demoted.
    assert!(
        f.store
            .set_role(&f.admin, f.admin.user(), Role::Agent)
            .is_err()
    );
    // A disabled account cannot sign in.
    f.store.set_disabled(&f.admin, agent.user(), true).unwrap();
    assert!(matches!(
        f.store.login("anna", "password-123").unwrap_err(),
        StoreError::BadCredentials
    ));
    assert!(f.store.contact_by_phone(&agent, PEOPLE[0].1).is_err());
    let audit = f.store.audit_log(&f.admin, 100).unwrap();
    let change = audit
        .iter()
        .find(|e| e.action == "role_changed")
        .expect("role change audited");
    assert_eq!(change.detail["to"], "manager");
    // Passwords are stored as argon2id hashes.
    let text = common::all_text(&f.path());
    assert!(text.contains("$argon2id$") && !text.contains("password-123"));
    assert!(
        f.store
            .add_user(&f.admin, "short", "1234", Role::Agent)
            .is_err(),
        "short passwords refused"
    );
}

#[test]
fn audit_log_is_append_only() {
    let f = common::fixture();
    drop(f.store);
    let conn = rusqlite::Connection::open(f.dir.path().join("callhelper.db")).unwrap();
    conn.execute_batch(&format!("PRAGMA key = \"x'{}'\"", common::KEY_HEX))
        .unwrap();
    assert!(conn.execute("DELETE FROM audit_log", []).is_err());
    assert!(
        conn.execute("UPDATE audit_log SET action = 'x'", [])
            .is_err()
    );
}

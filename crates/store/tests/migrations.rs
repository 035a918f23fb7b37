//! Migrations: a database left at every earlier schema version, with data in it, reaches
//! the same schema as a new one and keeps its data.

use callhelper_store::{SCHEMA_VERSION, Store};

use crate::common;

fn schema(path: &std::path::Path) -> Vec<(String, String)> {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(&format!("PRAGMA key = \"x'{}'\"", common::KEY_HEX))
        .unwrap();
    conn.prepare("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn from_every_earlier_version() {
    let fresh = common::fixture();
    let want = schema(&fresh.path());
    assert_eq!(fresh.store.schema_version().unwrap(), SCHEMA_VERSION);
    for from in 0..SCHEMA_VERSION {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("callhelper.db");
        {
            let old = Store::open_at_version(&path, &common::key(), from).unwrap();
            assert_eq!(old.schema_version().unwrap(), from);
            if from >= 1 {
                // Data written by that version: a user and a contact.
                let admin = old.create_first_admin("admin", "admin-password").unwrap();
                old.add_contact(
                    &admin,
                    &callhelper_store::contacts::NewContact {
                        phone: callhelper_store::Pii::new("+7 916 000-00-01".into()),
                        ..Default::default()
                    },
                )
                .unwrap();
            }
            if from >= 2 {
                // And CRM work queued before the outbox kept its progress.
                old.outbox()
                    .enqueue(&[callhelper_store::NewOutboxItem {
                        target: "webhook".into(),
                        kind: "run_finished".into(),
                        payload: serde_json::json!({ "run": 1 }),
                        idempotency_key: "run:1:webhook".into(),
                        contact: None,
                    }])
                    .unwrap();
            }
        }
        let store = Store::open(&path, &common::key()).unwrap();
        assert_eq!(
            store.schema_version().unwrap(),
            SCHEMA_VERSION,
            "from {from}"
        );
        assert_eq!(schema(&path), want, "schema after migrating from {from}");
        if from >= 1 {
            let admin = store.login("admin", "admin-password").unwrap();
            assert!(
                store
                    .contact_by_phone(&admin, "89160000001")
                    .unwrap()
                    .is_some(),
                "data kept from {from}"
            );
        }
        if from >= 2 {
            let items = store.outbox().list(None, 10).unwrap();
            assert_eq!(items.len(), 1, "CRM work kept from {from}");
            assert_eq!(
                (items[0].progress.as_ref(), items[0].blocked),
                (None, false)
            );
        }
        assert_eq!(store.integrity_check().unwrap(), Vec::<String>::new());
    }
}

//! The file is encrypted: raw bytes hold no plaintext; a wrong key or a damaged file is a
//! clear error that changes nothing.

use callhelper_store::{DbKey, Passphrase, Store, StoreError, Unlock};

use crate::common::{self, PEOPLE};

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn database_and_wal_hold_no_plaintext() {
    let f = common::fixture();
    let ids = f.people();
    for (i, (name, _, _)) in PEOPLE.iter().enumerate() {
        common::full_run(
            &f.store,
            &f.admin,
            Some(ids[i]),
            name,
            "150",
            1_770_000_000_000 + i as i64,
        );
    }
    assert!(!f.store.cipher_version().unwrap().is_empty());
    let wal = f.dir.path().join("callhelper.db-wal");
    let mut bytes = std::fs::read(f.path()).unwrap();
    let wal_bytes = std::fs::read(&wal).unwrap();
    assert!(!wal_bytes.is_empty(), "the WAL holds the recent writes");
    bytes.extend_from_slice(&wal_bytes);
    let mut needles = common::pii_needles();
    needles.extend(["survey", "full_name", "CREATE TABLE", "SQLite format 3"].map(String::from));
    for n in &needles {
        assert!(!contains(&bytes, n.as_bytes()), "raw bytes contain {n:?}");
    }
    // And the data is really there, readable with the key.
    assert!(
        f.store
            .contact_by_phone(&f.admin, PEOPLE[0].1)
            .unwrap()
            .is_some()
    );
}

#[test]
fn wrong_key_is_a_clear_error_and_changes_nothing() {
    let f = common::fixture();
    f.people();
    let path = f.path();
    drop(f.store);
    let before = std::fs::read(&path).unwrap();
    let wrong = Unlock::Key(DbKey::generate().unwrap());
    let err = Store::open(&path, &wrong).unwrap_err();
    assert!(
        matches!(err, StoreError::WrongKeyOrDamaged { .. }),
        "{err:?}"
    );
    assert_eq!(err.code(), "store.wrong_key");
    assert!(err.message().en.contains("Nothing was changed"));
    assert!(err.message().ru.contains("Ничего не изменено"));
    let pass = Unlock::Passphrase(Passphrase::new("not the passphrase".into()).unwrap());
    assert!(matches!(
        Store::open(&path, &pass).unwrap_err(),
        StoreError::WrongKeyOrDamaged { .. }
    ));
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the file is untouched"
    );
    // The right key still opens it.
    let store = Store::open(&path, &common::key()).unwrap();
    assert_eq!(store.integrity_check().unwrap(), Vec::<String>::new());
}

#[test]
fn damaged_file_is_refused_and_left_alone() {
    let f = common::fixture();
    f.people();
    let path = f.path();
    f.store.checkpoint().unwrap();
    drop(f.store);
    let mut bytes = std::fs::read(&path).unwrap();
    for b in &mut bytes[..4096] {
        *b ^= 0x5a;
    }
    std::fs::write(&path, &bytes).unwrap();
    let err = Store::open(&path, &common::key()).unwrap_err();
    assert!(
        matches!(err, StoreError::WrongKeyOrDamaged { .. }),
        "{err:?}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "never overwritten");
    // An empty file is not taken for a new database either.
    std::fs::write(&path, b"").unwrap();
    assert!(matches!(
        Store::open(&path, &common::key()).unwrap_err(),
        StoreError::WrongKeyOrDamaged { .. }
    ));
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
}

#[test]
fn passphrase_database_round_trip_and_marker_holds_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("callhelper.db");
    let pass = || Unlock::Passphrase(Passphrase::new("correct horse battery".into()).unwrap());
    {
        let store = Store::open(&path, &pass()).unwrap();
        store.create_first_admin("admin", "admin-password").unwrap();
    }
    let marker = std::fs::read_to_string(callhelper_store::key::marker_path(&path)).unwrap();
    assert!(
        marker.contains("passphrase") && !marker.contains("horse"),
        "{marker}"
    );
    let store = Store::open(&path, &pass()).unwrap();
    assert!(store.has_users().unwrap());
    drop(store);
    // Asking for the keychain on a passphrase database says a passphrase is needed.
    assert!(matches!(
        Store::open(&path, &Unlock::Keychain).unwrap_err(),
        StoreError::PassphraseRequired
    ));
}

#[test]
fn a_newer_schema_is_refused_untouched() {
    let f = common::fixture();
    let path = f.path();
    drop(f.store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA key = \"x'{}'\"; PRAGMA user_version = 999;",
        common::KEY_HEX
    ))
    .unwrap();
    drop(conn);
    let err = Store::open(&path, &common::key()).unwrap_err();
    assert!(
        matches!(err, StoreError::TooNew { found: 999, .. }),
        "{err:?}"
    );
}

#[test]
fn a_page_damaged_deeper_in_the_file_is_named_and_left_alone() {
    let f = common::fixture();
    let csv = f.dir.path().join("people.csv");
    let mut text = String::from("name,phone,email\n");
    for i in 0..3000 {
        text.push_str(&format!("Person {i},+7 916 {i:07},p{i}@example.org\n"));
    }
    std::fs::write(&csv, text).unwrap();
    f.store.import_contacts(&f.admin, &csv).unwrap();
    let path = f.path();
    f.store.checkpoint().unwrap();
    drop(f.store);
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 20 * 4096, "{} bytes", bytes.len());
    let page = 10 * 4096;
    for b in &mut bytes[page + 100..page + 200] {
        *b ^= 0xff;
    }
    std::fs::write(&path, &bytes).unwrap();
    // Page 1 is sound, so the file opens; the check finds the damage, and reading the
    // damaged page is a named error.
    let store = Store::open(&path, &common::key()).unwrap();
    assert!(
        !store.integrity_check().unwrap().is_empty(),
        "the damage is found"
    );
    let e = store.login("admin", "admin-password").unwrap_err();
    assert_eq!(e.code(), "store.damaged", "{e:?}");
    assert!(e.message().en.contains("restore the file from a backup"));
    assert!(e.message().ru.contains("резервной копии"));
    drop(store);
    assert_eq!(
        std::fs::read(&path).unwrap()[page..page + 4096],
        bytes[page..page + 4096],
        "the damaged page was not overwritten"
    );
}

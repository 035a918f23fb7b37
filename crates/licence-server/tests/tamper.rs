//! Tampered keys and leases, every byte flipped in turn, against the real server's
//! documents; and the server's answers to keys it must not tell apart.

use callhelper_licence::key::{key_bytes, key_text};
use callhelper_licence::lease::{lease_bytes, lease_text};
use callhelper_licence::protocol::{self, LeaseRequest};
use callhelper_licence::status::NeedsServer;
use callhelper_licence::store::StoredFile;
use callhelper_licence::time::now;
use callhelper_licence::{Error, LicenceKey, Status};

use crate::common::{App, Vendor};

fn request(key: &str, machine: &str) -> Vec<u8> {
    serde_json::to_vec(&LeaseRequest {
        key: key.into(),
        machine: machine.into(),
    })
    .unwrap()
}

#[test]
fn every_flipped_key_byte_is_refused_by_app_and_server() {
    let vendor = Vendor::new("tamper-key");
    let key = vendor.issue("Tamper Proof", 2);
    let server = vendor.serve(&["--rate", "100000", "--burst", "100000"]);
    let trust = vendor.trust();
    let app = App::new(&vendor, "tamper-key-1");
    let machine = app.machine.hash().as_str().to_owned();
    let bytes = key_bytes(&key).unwrap();
    assert!(bytes.len() > 64 + 100, "signature and payload");
    let (ok_status, _) = server.raw("POST", protocol::ACTIVATE, &request(&key, &machine));
    assert_eq!(ok_status, 200);

    for i in 0..bytes.len() {
        for mask in [0x01u8, 0x80] {
            let mut b = bytes.clone();
            b[i] ^= mask;
            let text = key_text(&b);
            assert!(
                LicenceKey::parse(&text, &trust).is_err(),
                "byte {i} ^ {mask:#x} accepted by the app"
            );
            let (status, body) = server.raw("POST", protocol::ACTIVATE, &request(&text, &machine));
            assert_eq!(
                (status, body.as_str()),
                (403, r#"{"code":"licence_invalid"}"#),
                "byte {i}"
            );
        }
    }
    // The text form too: every character changed (skipping none).
    for (i, c) in key.char_indices() {
        let mut t = key.clone().into_bytes();
        t[i] ^= 0x01;
        let t = String::from_utf8(t).unwrap();
        assert!(
            LicenceKey::parse(&t, &trust).is_err(),
            "char {i} {c:?} accepted"
        );
    }
    // Through the app's activation: a clear error, nothing stored.
    let mut b = bytes.clone();
    let last = b.len() - 1;
    b[last] ^= 1;
    match app
        .licensing()
        .activate(&server.client(), &key_text(&b), now())
    {
        Err(Error::Key(callhelper_licence::KeyError::BadSignature)) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(app.licensing().status(now()).unwrap(), Status::Demo);
}

#[test]
fn every_flipped_lease_byte_is_refused() {
    let vendor = Vendor::new("tamper-lease");
    let key = vendor.issue("Tamper Lease", 1);
    let server = vendor.serve(&[]);
    let app = App::new(&vendor, "tamper-lease-1");
    let t = now();
    app.licensing().activate(&server.client(), &key, t).unwrap();
    server.stop();
    let path = app.dir.file(StoredFile::Lease);
    let original = std::fs::read_to_string(&path).unwrap();
    let bytes = lease_bytes(original.trim()).unwrap();
    assert!(matches!(
        app.licensing().status(t).unwrap(),
        Status::Active(_)
    ));

    let refused = |what: &str| {
        let st = app.licensing().status(t).unwrap();
        assert!(
            matches!(
                st,
                Status::NeedsServer {
                    reason: NeedsServer::LeaseInvalid,
                    ..
                }
            ),
            "{what}: {st:?}"
        );
        assert!(st.is_demo());
    };
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x01;
        std::fs::write(&path, lease_text(&b)).unwrap();
        refused(&format!("lease byte {i}"));
    }
    // Every byte of the file as stored (except the final newline, which is whitespace).
    let raw = original.as_bytes();
    for i in 0..raw.len() - 1 {
        let mut b = raw.to_vec();
        b[i] ^= 0x01;
        std::fs::write(&path, &b).unwrap();
        refused(&format!("file byte {i}"));
    }
    std::fs::write(&path, &original).unwrap();
    assert!(matches!(
        app.licensing().status(t).unwrap(),
        Status::Active(_)
    ));

    // A tampered key file is caught as well.
    let key_path = app.dir.file(StoredFile::Key);
    let k = std::fs::read_to_string(&key_path).unwrap();
    let mut chars: Vec<char> = k.chars().collect();
    let mid = chars.len() / 2;
    let mid = if chars[mid] == '-' { mid + 1 } else { mid };
    chars[mid] = if chars[mid] == 'Q' { 'R' } else { 'Q' };
    std::fs::write(&key_path, chars.into_iter().collect::<String>()).unwrap();
    assert!(matches!(
        app.licensing().status(t).unwrap(),
        Status::NeedsServer {
            licence: None,
            reason: NeedsServer::KeyInvalid
        }
    ));
}

#[test]
fn unknown_and_foreign_licences_get_the_same_answer() {
    let vendor = Vendor::new("exists");
    let known = vendor.issue("Known Customer", 1);
    // Same signing key, different database: validly signed, unknown to this server.
    let twin = Vendor::new_sqlite("exists-twin");
    std::fs::copy(
        vendor.dir.path("licence-signing.key"),
        twin.dir.path("licence-signing.key.copy"),
    )
    .unwrap();
    std::fs::rename(
        twin.dir.path("licence-signing.key.copy"),
        twin.dir.path("licence-signing.key"),
    )
    .unwrap();
    let unknown = twin.issue("Other Customer", 1);
    assert!(LicenceKey::parse(&unknown, &vendor.trust()).is_ok());
    // Signed by another vendor key.
    let foreign = Vendor::new_sqlite("exists-foreign").issue("Foreign Customer", 1);

    let server = vendor.serve(&["--rate", "100000", "--burst", "100000"]);
    let machine = "ab".repeat(32);
    for path in [protocol::ACTIVATE, protocol::RENEW, protocol::DEACTIVATE] {
        let answers: Vec<(u16, String)> = [
            unknown.as_str(),
            foreign.as_str(),
            "CHK1-AAAAA",
            "not a key",
        ]
        .iter()
        .map(|k| server.raw("POST", path, &request(k, &machine)))
        .collect();
        for a in &answers {
            assert_eq!(
                a,
                &(403, r#"{"code":"licence_invalid"}"#.to_owned()),
                "{path}"
            );
        }
        // The known licence is accepted on the same route.
        assert_eq!(
            server.raw("POST", path, &request(&known, &machine)).0,
            200,
            "{path}"
        );
    }
}

//! Rate limiting and input limits on every endpoint.

use callhelper_licence::Error;
use callhelper_licence::protocol;
use callhelper_licence::time::now;

use crate::common::{App, Vendor};

const ROUTES: [(&str, &str); 4] = [
    ("POST", protocol::ACTIVATE),
    ("POST", protocol::RENEW),
    ("POST", protocol::DEACTIVATE),
    ("GET", protocol::HEALTH),
];

#[test]
fn every_endpoint_is_rate_limited() {
    let vendor = Vendor::new("rate");
    let key = vendor.issue("Rate Limited", 1);
    for (method, path) in ROUTES {
        let server = vendor.serve(&["--rate", "0.01", "--burst", "3"]);
        for i in 0..3 {
            let (status, _) = server.raw(method, path, b"{}");
            assert_ne!(status, 429, "{path} request {i}");
        }
        let (status, body) = server.raw(method, path, b"{}");
        assert_eq!(status, 429, "{path}");
        assert!(body.contains(r#""code":"rate_limited""#), "{body}");
        // The app reports it as such.
        if path == protocol::ACTIVATE {
            let app = App::new(&vendor, "rate-1");
            match app.licensing().activate(&server.client(), &key, now()) {
                Err(Error::RateLimited { retry_after }) => assert!(retry_after >= 1),
                other => panic!("{other:?}"),
            }
        }
    }
}

#[test]
fn malformed_and_oversized_input_is_refused_on_every_endpoint() {
    let vendor = Vendor::new("input");
    let key = vendor.issue("Input Limits", 1);
    let server = vendor.serve(&["--rate", "100000", "--burst", "100000"]);
    let machine = "0".repeat(64);
    let huge_key = "A".repeat(protocol::MAX_BODY);
    for (_, path) in &ROUTES[..3] {
        let cases: Vec<(Vec<u8>, u16)> = vec![
            (b"".to_vec(), 400),
            (b"not json".to_vec(), 400),
            (b"[]".to_vec(), 400),
            (format!(r#"{{"key":"{key}"}}"#).into_bytes(), 400),
            (
                format!(r#"{{"key":"{key}","machine":"xyz"}}"#).into_bytes(),
                400,
            ),
            (
                format!(r#"{{"key":"{key}","machine":"{}"}}"#, "A".repeat(64)).into_bytes(),
                400,
            ),
            (
                format!(r#"{{"key":"{key}","machine":"{machine}","extra":1}}"#).into_bytes(),
                400,
            ),
            (
                format!(r#"{{"key":"{huge_key}","machine":"{machine}"}}"#).into_bytes(),
                413,
            ),
            (vec![b'x'; 1 << 20], 413),
        ];
        for (body, want) in cases {
            let (status, _) = server.raw("POST", path, &body);
            assert_eq!(status, want, "{path} with {} bytes", body.len());
        }
        // Wrong method and unknown paths get no detail.
        assert_eq!(server.raw("GET", path, b"").0, 405, "{path}");
    }
    assert_eq!(server.raw("GET", "/v1/licences", b"").0, 404);
    // After all that, the server still serves.
    let ok = format!(r#"{{"key":"{key}","machine":"{machine}"}}"#);
    assert_eq!(server.raw("POST", protocol::ACTIVATE, ok.as_bytes()).0, 200);
    assert_eq!(server.raw("GET", protocol::HEALTH, b"").1, "ok");
}

#[test]
fn admin_command_line_checks_its_input() {
    let vendor = Vendor::new("admin");
    for args in [
        vec!["issue", "--customer", "X", "--seats", "0", "--days", "30"],
        vec!["issue", "--customer", "", "--seats", "1", "--days", "30"],
        vec![
            "issue",
            "--customer",
            "X",
            "--seats",
            "1",
            "--expires",
            "2020-01-01",
        ],
        vec![
            "issue",
            "--customer",
            "X",
            "--seats",
            "1",
            "--expires",
            "2030-02-30",
        ],
        vec![
            "issue",
            "--customer",
            "X",
            "--seats",
            "1",
            "--days",
            "30",
            "--feature",
            "Bad Name",
        ],
        vec!["activations", "not-an-id"],
    ] {
        vendor.admin_fails(&args);
    }
    // keygen never overwrites the signing key.
    assert!(
        vendor
            .admin_fails(&["keygen"])
            .contains("never overwritten")
    );
    let key = vendor.admin(&[
        "issue",
        "--customer",
        "Until 2099",
        "--seats",
        "1",
        "--expires",
        "2099-12-31",
    ]);
    let parsed = vendor.parse(key.trim());
    assert_eq!(
        callhelper_licence::time::format_date(parsed.licence().expires - 1),
        "2099-12-31"
    );
    let id = parsed.licence().id.to_string();
    assert_eq!(vendor.admin(&["show-key", &id]).trim(), key.trim());
    assert!(vendor.admin(&["list"]).contains("Until 2099"));
}

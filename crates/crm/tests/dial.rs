//! Click-to-call: the local endpoint a CRM widget calls.

use std::sync::{Arc, Mutex};

use callhelper_crm::Secret;
use callhelper_crm::dial::{DialEndpoint, DialRequest, dialable};

fn post(url: &str, token: Option<&str>, origin: Option<&str>, body: &str) -> (u16, String) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut r = agent.post(url).header("content-type", "application/json");
    if let Some(t) = token {
        r = r.header("authorization", &format!("Bearer {t}"));
    }
    if let Some(o) = origin {
        r = r.header("origin", o);
    }
    let mut resp = r.send(body.as_bytes()).expect("the endpoint answers");
    let status = resp.status().as_u16();
    let allow = resp
        .headers()
        .get("access-control-allow-origin")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let _ = resp.body_mut().read_to_string();
    (status, allow)
}

#[test]
fn a_crm_widget_with_the_token_starts_a_call() {
    let got: Arc<Mutex<Vec<DialRequest>>> = Arc::default();
    let sink = got.clone();
    let ep = DialEndpoint::start(
        0,
        Secret::new("install-token"),
        vec!["https://callhelper.amocrm.ru".into()],
        Arc::new(move |r| {
            sink.lock().unwrap().push(r);
            true
        }),
    )
    .unwrap();
    assert!(ep.addr().ip().is_loopback());
    let url = format!("http://{}/dial", ep.addr());
    let body = r#"{"phone": "+7 (912) 345-67-89", "crm": "amocrm", "entity_id": "1001"}"#;
    assert_eq!(post(&url, None, None, body).0, 401);
    assert_eq!(post(&url, Some("wrong"), None, body).0, 401);
    assert_eq!(
        post(
            &url,
            Some("install-token"),
            Some("https://evil.example"),
            body
        )
        .0,
        403
    );
    assert_eq!(
        post(
            &url,
            Some("install-token"),
            None,
            r#"{"phone": "call me; rm -rf"}"#
        )
        .0,
        400
    );
    assert_eq!(post(&url, Some("install-token"), None, "not json").0, 400);
    assert!(got.lock().unwrap().is_empty(), "nothing dialled yet");
    let (status, allow) = post(
        &url,
        Some("install-token"),
        Some("https://callhelper.amocrm.ru"),
        body,
    );
    assert_eq!(
        (status, allow.as_str()),
        (202, "https://callhelper.amocrm.ru")
    );
    let got = got.lock().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].phone, "+7 (912) 345-67-89");
    assert_eq!(got[0].entity_id.as_deref(), Some("1001"));
    assert!(
        !format!("{:?}", got[0]).contains("912"),
        "no number in Debug"
    );
}

#[test]
fn a_busy_app_answers_503() {
    let ep = DialEndpoint::start(0, Secret::new("t"), vec![], Arc::new(|_| false)).unwrap();
    let url = format!("http://{}/dial", ep.addr());
    assert_eq!(post(&url, Some("t"), None, r#"{"phone": "112"}"#).0, 503);
    assert!(dialable("8-800-555-35-35") && !dialable("12") && !dialable("+7 912 <script>"));
}

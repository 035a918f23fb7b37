//! The settings page in the real window: connecting a CRM (the local amoCRM fake of
//! `callhelper-crm-fakes`) and editing a script's field mapping, proved in effect by a
//! finished demo run arriving at the fake with the mapped field; and the microphone and
//! speaker test through the phone engine, on a private PulseAudio server whose microphone
//! is a FIFO this test feeds (a tone, then silence — the control).

use std::time::{Duration, Instant};

use callhelper_crm_fakes::{AmoConfig, AmoServer};
use callhelper_testkit::pulse::{PulseServer, RATE};
use fantoccini::Client;

use crate::harness::{self, Desktop, K, find, finish, js, k, press, text, type_text, until_text};
use crate::serial;

const AMO_TOKEN: &str = "e2e-amo-long-lived-token";

/// Open the administration part of the settings with the demo administrator's password.
async fn open_admin(c: &Client) {
    press(c, &[k(K::Alt), '5']).await;
    find(c, "[data-testid=open-admin]", 10)
        .await
        .click()
        .await
        .unwrap();
    harness::give_demo_admin_password(c).await;
    until_text(c, "[data-testid=licence]", 10, |t| !t.is_empty()).await;
}

/// Click an element and type into it.
async fn fill(c: &Client, css: &str, value: &str) {
    find(c, css, 5)
        .await
        .click()
        .await
        .expect("focus the input");
    type_text(c, value).await;
}

/// The field 200 ("Budget") of the amoCRM contacts, as the fake holds them.
fn budgets(amo: &AmoServer) -> Vec<serde_json::Value> {
    let snap = amo.fake.snapshot();
    let mut out = Vec::new();
    for contact in snap["contacts"].as_array().into_iter().flatten() {
        for f in contact["custom_fields_values"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if f["field_id"] == 200 {
                out.push(f["values"].clone());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crm_is_connected_and_a_saved_field_mapping_carries_a_run_to_it() {
    let _one = serial().await;
    harness::limit(300, async {
        let amo = AmoServer::start(AmoConfig {
            long_lived_token: Some(AMO_TOKEN.into()),
            ..AmoConfig::default()
        })
        .expect("the amoCRM fake starts");
        let mut d = Desktop::new("settings_crm");
        let c = d.session(&[]).await;
        find(&c, "[data-testid=demo-banner]", 30).await;
        open_admin(&c).await;

        // Connect: amoCRM, the fake's address and its token.
        find(&c, "[data-testid=crm-kind]", 5)
            .await
            .select_by_value("amocrm")
            .await
            .unwrap();
        fill(&c, "[data-testid=crm-url]", &amo.url()).await;
        fill(&c, "[data-testid=crm-secret]", AMO_TOKEN).await;
        press(&c, &[k(K::Enter)]).await;
        let status = until_text(&c, "[data-testid=crm-status]", 20, |t| {
            t.contains("Connected")
        })
        .await;
        assert!(
            status.contains("amocrm") && status.contains(&amo.url()),
            "{status}"
        );
        d.shot(&c, "crm-connected").await;

        // The mapping editor: the script's "employees" field into the CRM's "Budget" (200),
        // chosen from the field list the CRM gave.
        let file = "b2b-cold-call.en.yaml";
        find(&c, "[data-testid=crm-mapping-script]", 10)
            .await
            .select_by_value(file)
            .await
            .unwrap();
        let employees = find(&c, "[data-testid=map-employees]", 10).await;
        let options = employees.html(false).await.unwrap();
        assert!(
            options.contains("Budget") && options.contains("Interest"),
            "the CRM's own fields are offered: {options}"
        );
        employees.select_by_value("200").await.unwrap();
        find(&c, "[data-testid=crm-mapping-save]", 5)
            .await
            .click()
            .await
            .unwrap();
        until_text(&c, "[role=status]", 10, |t| t.contains("Saved")).await;
        d.shot(&c, "crm-mapping-saved").await;

        // Read back through the app: choosing the script again shows the saved choice.
        find(&c, "[data-testid=crm-mapping-script]", 5)
            .await
            .select_by_value("")
            .await
            .unwrap();
        find(&c, "[data-testid=crm-mapping-script]", 5)
            .await
            .select_by_value(file)
            .await
            .unwrap();
        // (The editor is fetched again: wait for it.)
        let deadline = Instant::now() + Duration::from_secs(10);
        let chosen = loop {
            let v = js(
                &c,
                "(() => { const s = document.querySelector('[data-testid=map-employees]'); return s ? s.value : null; })()",
            )
            .await;
            if !v.is_null() || Instant::now() > deadline {
                break v;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(chosen, serde_json::json!("200"), "the mapping was saved");
        let conn = callhelper_core::crm::connection(&callhelper_core::paths::DataDir::at(&d.data))
            .expect("read the connection")
            .expect("a connection is saved");
        let rules = format!("{:?}", conn.mappings);
        assert!(
            rules.contains("employees") && rules.contains("200"),
            "{rules}"
        );
        assert!(budgets(&amo).is_empty(), "nothing delivered yet");

        // In effect: a demo call walked to an outcome with 300 employees reaches the CRM
        // with 300 in "Budget".
        press(&c, &[k(K::Alt), '1']).await;
        press(&c, &[k(K::Control), 'l']).await;
        type_text(&c, "demo").await;
        press(&c, &[k(K::Enter)]).await;
        find(&c, "[data-testid=call][data-phase=connected]", 30).await;
        harness::step_is_title(&c, "Greeting").await;
        harness::focus_panel(&c).await;
        press(&c, &['1']).await;
        harness::step_is_title(&c, "Meeting the decision maker").await;
        press(&c, &['1']).await;
        harness::step_is_title(&c, "Qualification").await;
        find(&c, "[data-testid=field-accounting]", 5)
            .await
            .select_by_value("in_house")
            .await
            .unwrap();
        find(&c, "[data-testid=field-employees]", 5)
            .await
            .click()
            .await
            .unwrap();
        type_text(&c, "300").await;
        press(&c, &[k(K::Enter)]).await;
        until_text(&c, "[data-testid=continue]", 5, |t| t.contains("Continue")).await;
        press(&c, &[k(K::Enter)]).await;
        harness::step_is_title(&c, "Large company").await;
        press(&c, &['2']).await;
        until_text(&c, "[data-testid=finished]", 10, |t| t.contains("Refusal")).await;
        press(&c, &[k(K::Control), k(K::Alt), 'h']).await;
        find(&c, "[data-testid=call][data-phase=ended]", 15).await;

        let deadline = Instant::now() + Duration::from_secs(60);
        let delivered = loop {
            let b = budgets(&amo);
            if !b.is_empty() {
                break b;
            }
            assert!(
                Instant::now() < deadline,
                "the run never reached the CRM with the mapped field: {}",
                amo.fake.snapshot()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        let shown = format!("{delivered:?}");
        assert!(shown.contains("300"), "Budget carries the employees: {shown}");
        d.shot(&c, "crm-delivered").await;
        finish(c).await;
    })
    .await;
}

/// Tenths of a second of the speaker's output carrying a tone (RMS above −20 dBFS).
fn tenths_with_sound(bytes: &[u8]) -> usize {
    use callhelper_phone::level;
    let tenth = RATE as usize / 10;
    level::samples_of(bytes)
        .chunks(tenth)
        .filter(|c| level::measure(c).rms_dbfs > -20.0)
        .count()
}

/// Choose the option of a device list whose value contains `kind` ("FIFO source": the
/// sound server's microphone, "FIFO sink": its speaker).
async fn choose_device(c: &Client, css: &str, kind: &str) {
    let list = find(c, css, 10).await;
    let options = list.html(false).await.unwrap();
    let id = options
        .split("value=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .find(|v| v.contains(kind))
        .unwrap_or_else(|| panic!("no {kind} offered: {options}"))
        .replace("&amp;", "&");
    list.select_by_value(&id).await.unwrap();
}

/// The meter's reading in dBFS while the microphone test runs.
async fn meter(c: &Client) -> Option<f64> {
    let v = js(
        c,
        "(() => { const m = document.querySelector('[data-testid=mic-level]'); return m ? m.dataset.rms : null; })()",
    )
    .await;
    v.as_str().and_then(|s| s.parse().ok())
}

/// Wait until the meter reads `ok` (the last reading when it never does).
async fn meter_until(c: &Client, secs: u64, ok: impl Fn(f64) -> bool) -> Result<f64, Option<f64>> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut last = None;
    while Instant::now() < deadline {
        last = meter(c).await;
        if last.is_some_and(&ok) {
            return Ok(last.unwrap_or_default());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_microphone_test_moves_the_meter_for_a_real_source_and_not_for_silence() {
    let _one = serial().await;
    harness::limit(300, async {
        let mut d = Desktop::new("settings_sound");
        let sound = PulseServer::start(d.home.path(), true);
        d.extra_env.push(("PULSE_SERVER".into(), sound.server()));
        let c = d.session(&[]).await;
        find(&c, "[data-testid=demo-banner]", 30).await;
        press(&c, &[k(K::Alt), '5']).await;

        // The engine lists the server's FIFO microphone; choose it.
        choose_device(&c, "[data-testid=device-capture]", "FIFO source").await;

        // Keyboard: Tab reaches the test button (focus visible), Enter starts it.
        find(&c, "[data-testid=mic-test]", 5).await;
        js(
            &c,
            "(document.querySelector('[data-testid=mic-test]').focus(), 0)",
        )
        .await;
        press(&c, &[k(K::Enter)]).await;
        until_text(&c, "[data-testid=mic-test]", 10, |t| t.contains("Stop")).await;
        let loud = meter_until(&c, 10, |db| db > -20.0)
            .await
            .unwrap_or_else(|last| panic!("the meter never rose for the tone: {last:?}"));
        assert!(
            (-12.0..=-6.0).contains(&loud),
            "a half-scale sine is about −9 dBFS: {loud}"
        );
        let width = js(
            &c,
            "document.querySelector('[data-testid=mic-level] span').style.width",
        )
        .await;
        d.shot(&c, "mic-test-tone").await;
        assert_ne!(width, serde_json::json!("0%"), "the bar moved");

        // The control: silence at the same microphone must fail the same check.
        sound.set_tone(false);
        let quiet = meter_until(&c, 10, |db| db <= -90.0)
            .await
            .unwrap_or_else(|last| panic!("the meter never fell for silence: {last:?}"));
        assert!(quiet <= -20.0, "silence is not above the tone's threshold");
        d.shot(&c, "mic-test-silence").await;

        press(&c, &[k(K::Enter)]).await;
        until_text(&c, "[data-testid=mic-test]", 10, |t| {
            t.contains("Test microphone")
        })
        .await;
        assert_eq!(meter(&c).await, None, "the meter is off once stopped");

        // The speaker test plays its tone into the chosen speaker and ends by itself.
        choose_device(&c, "[data-testid=device-playback]", "FIFO sink").await;
        let before = sound.played();
        assert_eq!(
            tenths_with_sound(&before),
            0,
            "the speaker is silent before the test"
        );
        find(&c, "[data-testid=speaker-test]", 5)
            .await
            .click()
            .await
            .unwrap();
        until_text(&c, "[data-testid=speaker-test]", 10, |t| t.contains("Stop")).await;
        d.shot(&c, "speaker-test").await;
        until_text(&c, "[data-testid=speaker-test]", 15, |t| t.contains("Play")).await;
        let ended = text(&c, "[data-testid=sound-test-ended]").await;
        assert!(ended.contains("Finished"), "{ended}");
        let played = sound.played()[before.len()..].to_vec();
        let tenths = tenths_with_sound(&played);
        harness::trace(&format!(
            "the speaker played {tenths} tenths of a second with sound"
        ));
        assert!(
            tenths >= 20,
            "the 3 s tone reached the speaker: {tenths} tenths of a second with sound"
        );
        finish(c).await;
    })
    .await;
}

//! End-to-end tests of the built desktop app in a real WebKit window (Xvfb, WebDriver):
//! the demo on a first start, a call to the demo line walked through a script by hotkeys
//! to an outcome, the run in the history and in the database; a hang-up in the middle of a
//! script; a broken script shown with the linter's message; `tel:` links to a running
//! copy; the administrator's password guard; the Reports page counting the demo run.
//! Each saves screenshots of the screens it passes under `test-output/e2e/<test>/`.
//!
//! The tests run one at a time (each starts a whole desktop session); see `SERIAL`.

mod harness;
mod settings;
mod shell;

use std::time::Duration;

use callhelper_core::script::Value;
use fantoccini::Locator;
use harness::{
    Desktop, K, find, finish, give_demo_admin_password, js, k, open_store, press, text, type_text,
    until_text,
};

/// One desktop session at a time: two cores, and one X server and app each.
/// (An async lock: it is held across awaits, and each test has its own runtime.)
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.lock().await
}

async fn wait_phase(c: &fantoccini::Client, phase: &str, secs: u64) {
    find(c, &format!("[data-testid=call][data-phase={phase}]"), secs).await;
}

async fn step_is(c: &fantoccini::Client, title: &str) {
    harness::step_is_title(c, title).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_call_walks_a_script_by_hotkeys_and_lands_in_history_and_database() {
    let _one = serial().await;
    harness::limit(300, async {
        let mut d = Desktop::new("demo_call");
        let c = d.session(&[]).await;

        // First start: the demo, signed in, with the example scripts and the demo line.
        let banner = text(&c, "[data-testid=demo-banner]").await;
        assert!(banner.contains("callhelper-demo"), "{banner}");
        find(&c, "[data-testid=call-demo]", 10).await;
        d.shot(&c, "start").await;

        // Ctrl+L goes to the dialer; "demo" and Enter call the demo line.
        press(&c, &[k(K::Control), 'l']).await;
        type_text(&c, "demo").await;
        press(&c, &[k(K::Enter)]).await;
        wait_phase(&c, "connected", 30).await;
        let who = text(&c, "[data-testid=call-who]").await;
        assert_eq!(who, "Ирина Смирнова", "the demo line is the sample client");
        step_is(&c, "Greeting").await;
        let say = text(&c, "[data-testid=say]").await;
        assert!(
            say.contains("ООО «Ромашка»"),
            "placeholders filled from the contact: {say}"
        );
        d.shot(&c, "call-script").await;

        // Walk by hotkeys: 1 (put through), 1 (happy to listen), fields, Enter, 2 (not interested).
        harness::focus_panel(&c).await;
        press(&c, &['1']).await;
        step_is(&c, "Meeting the decision maker").await;
        press(&c, &['1']).await;
        step_is(&c, "Qualification").await;
        let accounting = find(&c, "[data-testid=field-accounting]", 5).await;
        accounting
            .select_by_value("in_house")
            .await
            .expect("choose how they keep the books");
        let employees = find(&c, "[data-testid=field-employees]", 5).await;
        employees.click().await.expect("focus the field");
        // Digits typed into a field are the field's, not answers.
        type_text(&c, "300").await;
        press(&c, &[k(K::Enter)]).await;
        until_text(&c, "[data-testid=continue]", 5, |t| t.contains("Continue")).await;
        press(&c, &[k(K::Enter)]).await;
        step_is(&c, "Large company").await;
        d.shot(&c, "script-step").await;
        press(&c, &['2']).await;
        let finished =
            until_text(&c, "[data-testid=finished]", 10, |t| t.contains("Refusal")).await;
        assert!(finished.contains("Everything is saved"), "{finished}");
        d.shot(&c, "script-finished").await;

        let samples = js(
            &c,
            "window.__callhelperPerf ? window.__callhelperPerf.keyToPaint : []",
        )
        .await;
        let samples: Vec<f64> = serde_json::from_value(samples).expect("numbers");
        assert!(samples.len() >= 4, "every hotkey was timed: {samples:?}");
        println!("key→paint (ms) in the walk: {samples:?}");

        // Ctrl+Alt+H hangs up.
        press(&c, &[k(K::Control), k(K::Alt), 'h']).await;
        wait_phase(&c, "ended", 15).await;

        // The history has the call, with the run and its outcome.
        press(&c, &[k(K::Alt), '2']).await;
        let outcome = until_text(&c, "[data-testid=history-outcome]", 10, |t| t != "—").await;
        assert_eq!(outcome, "Refusal");
        let row_text = text(&c, "[data-testid=history-row]").await;
        assert!(
            row_text.contains("Ирина Смирнова") && row_text.contains("b2b-cold-call-en v3"),
            "{row_text}"
        );
        // Search narrows the history; Tab reaches the row and Enter opens it.
        find(&c, "[data-testid=history-search]", 5)
            .await
            .click()
            .await
            .expect("search");
        type_text(&c, "Nobody-by-this-name").await;
        until_text(&c, "[data-testid=history-page]", 10, |t| {
            !t.contains("Ирина Смирнова")
        })
        .await;
        c.execute(
            "document.querySelector('[data-testid=history-search]').select()",
            vec![],
        )
        .await
        .expect("select the search text");
        type_text(&c, "Смирнова").await;
        until_text(&c, "[data-testid=history]", 10, |t| {
            t.contains("Ирина Смирнова")
        })
        .await;
        press(&c, &[k(K::Tab)]).await;
        press(&c, &[k(K::Enter)]).await;
        let detail = text(&c, "tr.detail").await;
        assert!(
            detail.contains("employees") && detail.contains("300"),
            "{detail}"
        );
        d.shot(&c, "history").await;

        // Contacts, with consent and blocking.
        press(&c, &[k(K::Alt), '3']).await;
        until_text(&c, "[data-testid=contacts]", 10, |t| t.contains("Кузнецов")).await;
        d.shot(&c, "contacts").await;

        // Blocking a person is a manager's act: the password prompt, then the row says so.
        let baker = "[data-testid=contact-row][data-phone='+442079460000']";
        find(&c, &format!("{baker} [data-testid=block]"), 5)
            .await
            .click()
            .await
            .expect("block");
        give_demo_admin_password(&c).await;
        until_text(&c, baker, 10, |t| {
            t.contains("blocked") && t.contains("Unblock")
        })
        .await;
        d.shot(&c, "contact-blocked").await;

        // Reports (Alt+6) once the password has lapsed (forgotten here, as after ten idle
        // minutes): the prompt again, then the demo run counted, step by step.
        js(&c, "window.__TAURI_INTERNALS__.invoke('drop_elevation')").await;
        press(&c, &[k(K::Alt), '6']).await;
        give_demo_admin_password(&c).await;
        let report = until_text(&c, "[data-testid=report-script]", 10, |t| {
            t.contains("b2b-cold-call-en")
        })
        .await;
        assert!(report.contains("Refusal 1"), "{report}");
        assert_eq!(text(&c, "[data-testid=report-runs]").await, "1");
        let steps = c
            .find_all(Locator::Css("[data-testid=report-step]"))
            .await
            .expect("step rows");
        assert_eq!(steps.len(), 5, "intro … refusal");
        // Reached once each: in the script's order, by the titles of its file.
        let first = steps[0].text().await.expect("the first row");
        assert!(first.starts_with("Greeting intro"), "{first}");
        let left_out = text(&c, "[data-testid=report-left-out]").await;
        assert!(left_out.contains("0 unfinished"), "{left_out}");
        // The analytics to the default file (the home folder here: no Documents folder).
        find(&c, "[data-testid=export-write]", 5)
            .await
            .click()
            .await
            .expect("write");
        let done = until_text(&c, "[data-testid=export-done]", 10, |t| !t.is_empty()).await;
        assert!(done.contains("6 row(s)"), "{done}");
        let written = std::fs::read_dir(d.home.path())
            .expect("home")
            .filter_map(|e| e.ok())
            .find(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("callhelper-analytics-")
            })
            .expect("the analytics file");
        assert!(
            done.contains(&written.path().display().to_string()),
            "{done}"
        );
        d.shot(&c, "reports").await;

        finish(c).await;

        // The database holds what the screen showed.
        // The rotating log file is there, and holds no number or name of the call.
        let log =
            std::fs::read_to_string(d.data.join("logs/callhelper.log")).expect("the log file");
        assert!(log.contains("desktop: call 1 placed"), "{log}");
        for personal in [
            "74950000000",
            "495 000",
            "Смирнова",
            "Ирина",
            "Ромашка",
            "+442079460000",
        ] {
            assert!(
                !log.contains(personal),
                "the log holds personal data ({personal})"
            );
        }

        let (store, admin) = open_store(&d.data);
        assert!(
            store.is_blocked("+442079460000").expect("blocked?"),
            "the block is stored"
        );
        let calls = store.recent_calls(&admin, 10).expect("calls");
        assert_eq!(calls.len(), 1);
        let call = &calls[0];
        assert_eq!(call.outcome.as_deref(), Some("refusal"));
        assert!(call.answered_at.is_some() && call.ended_at.is_some());
        let runs = store
            .runs_of_contact(&admin, call.contact.expect("the call has the demo contact"))
            .expect("runs");
        assert_eq!(runs.len(), 1);
        let run = &runs[0];
        assert_eq!(run.call, Some(call.id));
        assert_eq!(run.outcome.as_deref(), Some("refusal"));
        let record = run.record.as_ref().expect("a finished run has its record");
        let path: Vec<&str> = record.path.iter().map(|v| v.step.as_str()).collect();
        assert_eq!(
            path,
            ["intro", "lpr_intro", "qualify", "enterprise", "refusal"]
        );
        assert_eq!(record.fields["employees"], Value::Number(300.0));
        assert_eq!(record.fields["accounting"], Value::Text("in_house".into()));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hang_up_in_the_middle_of_a_script_keeps_the_run_where_it_stopped() {
    let _one = serial().await;
    harness::limit(300, async {
        let mut d = Desktop::new("mid_call_hangup");
        let c = d.session(&[]).await;
        find(&c, "[data-testid=call-demo]", 30)
            .await
            .click()
            .await
            .expect("call");
        wait_phase(&c, "connected", 30).await;
        step_is(&c, "Greeting").await;
        harness::focus_panel(&c).await;
        press(&c, &['1']).await;
        step_is(&c, "Meeting the decision maker").await;
        find(&c, "[data-testid=hang-up]", 5)
            .await
            .click()
            .await
            .expect("hang up");
        let ended = until_text(&c, "[data-testid=finished]", 15, |t| {
            t.contains("You hung up")
        })
        .await;
        assert!(ended.contains("«Meeting the decision maker»"), "{ended}");
        d.shot(&c, "stopped-mid-script").await;
        press(&c, &[k(K::Alt), '2']).await;
        let row = until_text(&c, "[data-testid=history-row]", 10, |t| {
            t.contains("stopped at")
        })
        .await;
        assert!(row.contains("stopped at «lpr_intro»"), "{row}");
        finish(c).await;

        let (store, admin) = open_store(&d.data);
        let call = &store.recent_calls(&admin, 1).expect("calls")[0];
        let run = &store
            .runs_of_contact(&admin, call.contact.unwrap())
            .expect("runs")[0];
        let record = run.record.as_ref().expect("ended runs have a record");
        assert_eq!(record.ended_at_step.as_deref(), Some("lpr_intro"));
        assert_eq!(
            record.end_reason,
            Some(callhelper_core::script::EndReason::AgentHangup)
        );
        assert_eq!(
            record.answers.len(),
            1,
            "the answer given before the hang-up is kept"
        );
    })
    .await;
}

/// A script whose only answer leads to a step that does not exist (line 11).
const BROKEN: &str = "format: callhelper-script/1
id: broken
name: Broken
version: 1
locale: en
start: a
steps:
  - id: a
    say: Hello
    answers:
      - { label: Yes, key: \"1\", next: nowhere }
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_script_shows_the_linters_message_instead_of_crashing() {
    let _one = serial().await;
    harness::limit(300, async {
        let mut d = Desktop::new("broken_script");
        let scripts = d.data.join("scripts");
        std::fs::create_dir_all(&scripts).unwrap();
        std::fs::write(
            scripts.join("good.en.yaml"),
            include_str!("../../../scripts-examples/inbound-support.en.yaml"),
        )
        .unwrap();
        std::fs::write(scripts.join("broken.yaml"), BROKEN).unwrap();
        let c = d.session(&[]).await;
        find(&c, "[data-testid=demo-banner]", 30).await;
        press(&c, &[k(K::Alt), '4']).await;
        let broken = find(&c, "[data-file='broken.yaml'] [data-testid=problems]", 10).await;
        let msg = broken.text().await.unwrap();
        assert!(msg.contains("broken.yaml:11:"), "file:line:column: {msg}");
        assert!(
            msg.contains("nowhere"),
            "the missing target is named: {msg}"
        );
        let entry = text(&c, "[data-file='broken.yaml']").await;
        assert!(entry.contains("cannot run"), "{entry}");
        d.shot(&c, "scripts-with-broken").await;
        // The broken script is not offered for calls; the good one is.
        press(&c, &[k(K::Alt), '1']).await;
        let options = find(&c, "[data-testid=dial-script]", 5)
            .await
            .html(false)
            .await
            .unwrap();
        assert!(
            options.contains("good.en.yaml") && !options.contains("broken.yaml"),
            "{options}"
        );
        finish(c).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tel_link_given_to_a_second_copy_dials_in_the_running_one() {
    let _one = serial().await;
    harness::limit(300, async {
        let mut d = Desktop::new("tel_link");
        let c = d.session(&[]).await;
        find(&c, "[data-testid=demo-banner]", 30).await;
        // A second copy with a link hands it over and exits.
        let second = std::process::Command::new(harness::app_binary())
            .arg("tel:+7%20912%20000-11-22")
            .envs(d.env())
            .output()
            .expect("the second copy runs");
        assert!(second.status.success(), "{second:?}");
        until_text(&c, "[data-testid=call-who]", 20, |t| t == "Сергей Петров").await;
        wait_phase(&c, "connected", 30).await;
        d.shot(&c, "call-from-link").await;
        finish(c).await;
        let (store, admin) = open_store(&d.data);
        let call = &store.recent_calls(&admin, 1).unwrap()[0];
        assert_eq!(call.remote_number.expose(), "+79120001122");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn administration_asks_for_the_administrators_password() {
    let _one = serial().await;
    harness::limit(300, async {
        let mut d = Desktop::new("settings_guard");
        let c = d.session(&[]).await;
        find(&c, "[data-testid=demo-banner]", 30).await;
        press(&c, &[k(K::Alt), '5']).await;
        find(&c, "[data-testid=open-admin]", 10)
            .await
            .click()
            .await
            .unwrap();
        find(&c, "[data-testid=guard]", 10).await;
        d.shot(&c, "password-prompt").await;
        type_text(&c, "admin").await;
        find(&c, "[data-testid=guard-password]", 5)
            .await
            .click()
            .await
            .unwrap();
        type_text(&c, "wrong password").await;
        press(&c, &[k(K::Enter)]).await;
        until_text(&c, "[data-testid=guard] [role=alert]", 10, |t| {
            !t.is_empty()
        })
        .await;
        find(&c, "[data-testid=guard-password]", 5)
            .await
            .click()
            .await
            .unwrap();
        type_text(&c, "callhelper-demo").await;
        press(&c, &[k(K::Enter)]).await;
        let licence = until_text(&c, "[data-testid=licence]", 10, |t| !t.is_empty()).await;
        assert!(licence.contains("Demo mode"), "{licence}");
        assert!(
            c.find(Locator::Css("[data-testid=guard]")).await.is_err(),
            "the prompt closed"
        );
        d.shot(&c, "settings-admin").await;
        // Russian, from the settings.
        find(&c, "[data-testid=lang]", 5)
            .await
            .select_by_value("ru")
            .await
            .unwrap();
        until_text(&c, "[data-testid=nav-settings]", 10, |t| {
            t.contains("Настройки")
        })
        .await;
        d.shot(&c, "settings-russian").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        finish(c).await;
    })
    .await;
}

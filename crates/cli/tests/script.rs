//! `callhelper script lint|run|schema`.

use crate::{callhelper, repo};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn lint_is_clean_on_the_examples() {
    let files: Vec<String> = std::fs::read_dir(repo("scripts-examples"))
        .expect("examples")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| p.display().to_string())
        .collect();
    let mut args = vec!["script", "lint"];
    args.extend(files.iter().map(String::as_str));
    let out = callhelper(&args, "");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).contains("0 error(s), 0 warning(s)"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn lint_prints_positions_and_exits_1_on_problems() {
    let fixture = repo("crates/script/tests/fixtures/lint/missing-target.yaml");
    let out = callhelper(&["script", "lint", &fixture], "");
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let first = text.lines().next().expect("a finding");
    assert!(
        first.ends_with("missing-target.yaml:6:8: error: `start` names the step `begin`, which does not exist [missing-target]"),
        "{first}"
    );
    let ru = callhelper(&["--lang", "ru", "script", "lint", &fixture], "");
    assert!(
        stdout(&ru).contains("шага `sucess` нет; может быть, `success`?"),
        "{}",
        stdout(&ru)
    );
}

#[test]
fn lint_exits_2_on_unreadable_input() {
    let dir = std::env::temp_dir().join(format!("callhelper-lint-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let junk = dir.join("junk.yaml");
    std::fs::write(&junk, [0u8, 159, 146, 150, 1, 2, 3]).expect("written");
    let big = dir.join("big.yaml");
    let f = std::fs::File::create(&big).expect("created");
    f.set_len(50 * 1024 * 1024).expect("sparse 50 MB file");
    let missing = dir.join("missing.yaml");
    let out = callhelper(
        &[
            "script",
            "lint",
            &junk.display().to_string(),
            &big.display().to_string(),
            &missing.display().to_string(),
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(2));
    let text = stdout(&out);
    assert!(
        text.contains("junk.yaml: error: not a text file: binary data at byte offset 0"),
        "{text}"
    );
    assert!(
        text.contains("big.yaml: error: the file is 52.4 MB; a script may be at most 16 MB"),
        "{text}"
    );
    assert!(text.contains("missing.yaml: error: cannot read"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn lint_json_output_is_machine_readable() {
    let fixture = repo("crates/script/tests/fixtures/lint/no-exit.yaml");
    let out = callhelper(&["script", "lint", "--format", "json", &fixture], "");
    assert_eq!(out.status.code(), Some(1));
    let reports: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    let diags = reports[0]["diagnostics"].as_array().expect("a list");
    assert_eq!(diags.len(), 4);
    assert_eq!(diags[0]["rule"], "no-exit");
    assert_eq!(diags[0]["line"], 12);
    assert!(
        diags[0]["message"]["ru"]
            .as_str()
            .expect("text")
            .contains("зациклится")
    );
}

#[test]
fn a_scripted_run_prints_the_finished_run_as_json() {
    let out = callhelper(
        &[
            "script",
            "run",
            &repo("scripts-examples/payment-reminder.ru.yaml"),
            "--contact",
            &repo("scripts-examples/contacts/debtor.json"),
            "--answers",
            "1,reason=forgot,>,promise_date=01.12.2026,promise_amount=12 400,pay_method=bank,>,1",
            "--fake-clock",
            "1764000000000",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let run: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(run["script_id"], "payment-reminder");
    assert_eq!(run["script_version"], 5);
    assert_eq!(run["outcome"], "promise_to_pay");
    assert_eq!(run["end_reason"], "terminal");
    assert_eq!(run["ended_at_step"], "promised");
    assert_eq!(run["fields"]["promise_date"], "2026-12-01");
    assert_eq!(run["fields"]["promise_amount"], 12400.0);
    let path: Vec<&str> = run["path"]
        .as_array()
        .expect("a path")
        .iter()
        .map(|v| v["step"].as_str().expect("step"))
        .collect();
    assert_eq!(
        path,
        ["identify", "remind", "ask_promise", "confirm", "promised"]
    );
    assert_eq!(run["answers"][0]["label"], "Да, это он(а)");
    assert_eq!(run["duration_ms"], 8000);
    assert_eq!(run["time_per_step"]["remind"], 2000);
}

#[test]
fn answers_on_standard_input_and_an_early_end() {
    let out = callhelper(
        &[
            "script",
            "run",
            &repo("scripts-examples/b2b-cold-call.en.yaml"),
            "--fake-clock",
            "0",
        ],
        "1\nlpr_name=Jane, of course\n!unforeseen Asked whether we work with sole traders\n!end remote_hangup\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let run: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(run["end_reason"], "remote_hangup");
    assert_eq!(run["ended_at_step"], "lpr_intro");
    assert_eq!(run["fields"]["lpr_name"], "Jane, of course");
    assert_eq!(
        run["unforeseen"][0]["text"],
        "Asked whether we work with sole traders"
    );
    assert!(run.get("outcome").is_none());
}

#[test]
fn a_refused_action_names_the_action_and_the_step() {
    let out = callhelper(
        &[
            "script",
            "run",
            &repo("scripts-examples/appointment-booking.en.yaml"),
            "--answers",
            "1,>",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(
            "action 2 («>») at step `client`: fill in first: «Client's name», «Make and model»"
        ),
        "{}",
        stderr(&out)
    );
    // The run so far is still printed.
    let run: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(run["path"][1]["step"], "client");
}

#[test]
fn running_a_broken_script_is_refused_with_its_first_error() {
    let out = callhelper(
        &[
            "script",
            "run",
            &repo("crates/script/tests/fixtures/lint/dead-end.yaml"),
            "--answers",
            "1",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("dead-end.yaml:8:9:"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("run `callhelper script lint"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_interactive_runner_asks_for_fields_and_shows_the_answers() {
    let out = callhelper(
        &[
            "--lang",
            "ru",
            "script",
            "run",
            &repo("scripts-examples/appointment-booking.ru.yaml"),
            "--contact",
            &repo("scripts-examples/contacts/demo-contact.json"),
            "--interactive",
            "--fake-clock",
            "0",
        ],
        "1\nПётр\nKia Rio\nмного\n80000\n\nmaintenance\n\n2026-12-03\n11:00\nнет\n\nда\n1\n",
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(
        text.contains("Скажите: «Добрый день, Ирина! Автосервис «Гарант»"),
        "{text}"
    );
    assert!(text.contains("[1] Да, удобно"), "{text}");
    assert!(text.contains("[F1] «Сколько стоит?»"), "{text}");
    assert!(
        text.contains("! в поле «Пробег, км» должно быть число"),
        "{text}"
    );
    assert!(
        text.contains("Записываю: 2026-12-03 в 11:00, Kia Rio."),
        "{text}"
    );
    assert!(text.contains("Завершено: Успех"), "{text}");
}

#[test]
fn schema_prints_the_published_schema() {
    let out = callhelper(&["script", "schema"], "");
    assert_eq!(out.status.code(), Some(0));
    let printed: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    let published: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo("docs/script-schema.json")).expect("published"),
    )
    .expect("JSON");
    assert_eq!(printed, published);
}

//! `callhelper data …` as an administrator runs it: set-up with a passphrase, contact
//! import with bad rows, export in three formats with filters (a progress bar only on a
//! terminal), subject access, blocking, destruction, and a support user who may look but
//! not export or change.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use callhelper_core::data::{self, KeyChoice};
use callhelper_core::paths::DataDir;
use callhelper_core::script::{Dialect, Program, Timestamp, load_str};
use callhelper_core::scripts::Action;

const PASSPHRASE: &str = "a long test passphrase";

/// The example script the runs follow.
const SCRIPT: &str = "scripts-examples/payment-reminder.en.yaml";

/// `callhelper` with its data in `dir`, in English, unlocked with the passphrase and
/// signing in with `CALLHELPER_PASSWORD`.
fn command(program: &str, dir: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.env("CALLHELPER_DATA_DIR", dir)
        .env("CALLHELPER_DB_PASSPHRASE", PASSPHRASE)
        .env("CALLHELPER_PASSWORD", "password-123")
        .env("LANG", "en_GB.UTF-8")
        .env_remove("CALLHELPER_LANG")
        .env_remove("LC_ALL")
        .stdin(Stdio::null());
    cmd
}

/// Run `callhelper data …` as `user` (password `CALLHELPER_PASSWORD`).
fn data_cmd(dir: &Path, user: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = command(env!("CARGO_BIN_EXE_callhelper"), dir);
    cmd.arg("data").args(["--user", user]).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the binary runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", text(o));
    text(o)
}

/// Three finished runs of the example script through the app's API: two promises to
/// pay by the admin, one wrong number by the agent `anna`.
fn runs(dir: &Path) {
    let data = DataDir::at(dir);
    let key = KeyChoice::Passphrase(PASSPHRASE.into());
    let store = data::open(&data, &key).unwrap();
    let yaml = std::fs::read_to_string(crate::repo(SCRIPT)).unwrap();
    let program = Arc::new(Program::new(load_str(&yaml, Dialect::Yaml).script.unwrap()).unwrap());
    let promise = "1,reason=forgot,>,promise_date=2026-12-01,promise_amount=500,>,1";
    let day = 86_400_000;
    let t0 = 1_772_323_200_000; // 2026-03-01
    for (user, phone, answers, at) in [
        ("admin", "+7 916 555-01-23", promise, t0),
        ("admin", "+7 903 777-44-12", promise, t0 + day),
        ("anna", "+7 926 111-99-88", "3", t0 + 2 * day),
    ] {
        let s = data::login(&store, user, "password-123").unwrap();
        let mut run = data::start_run(
            &store,
            &s,
            program.clone(),
            Some(phone),
            None,
            Timestamp(at),
        )
        .unwrap();
        for (k, a) in answers.split(',').enumerate() {
            let action = match a.split_once('=') {
                Some((field, input)) => Action::Set {
                    field: field.into(),
                    input: input.into(),
                },
                None if a == ">" => Action::Continue,
                None => Action::Answer(a.into()),
            };
            data::act(
                &store,
                &s,
                &mut run,
                &action,
                Timestamp(at + 1000 * (k as i64 + 1)),
            )
            .unwrap();
        }
        assert!(run.run().is_finished());
    }
}

fn csv_rows(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .map(str::to_owned)
        .collect()
}

#[test]
fn an_administrators_day_with_the_data_commands() {
    let tmp = std::env::temp_dir().join(format!("callhelper-cli-data-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let dir = tmp.join("data");

    // Set-up: an encrypted database with a passphrase, its first administrator.
    let init = command(env!("CARGO_BIN_EXE_callhelper"), &dir)
        .args(["data", "init", "--admin", "admin", "--passphrase"])
        .output()
        .unwrap();
    assert!(ok(&init).contains("Created the encrypted database"));
    ok(&data_cmd(
        &dir,
        "admin",
        &["user", "add", "anna", "--role", "agent"],
        &[("CALLHELPER_NEW_PASSWORD", "password-123")],
    ));
    // A wrong passphrase: a clear error.
    let wrong = data_cmd(
        &dir,
        "admin",
        &["status"],
        &[("CALLHELPER_DB_PASSPHRASE", "not the passphrase")],
    );
    assert!(!wrong.status.success());
    assert!(
        text(&wrong).contains("cannot be decrypted"),
        "{}",
        text(&wrong)
    );

    // Import: bad rows by line number, good rows in; again: nothing new.
    let people = tmp.join("people.csv");
    std::fs::write(
        &people,
        "name,phone,email,city\n\
         Зинаида Кувшинникова,+7 916 555-01-23,zinaida@example.org,Москва\n\
         No Phone,,x@example.org,\n\
         Bartholomew Quilliam,8 (903) 777-44-12,bart@example.net,London\n\
         Bad Mail,+7 926 111 99 88,not-an-email,\n",
    )
    .unwrap();
    let path = people.display().to_string();
    let first = data_cmd(&dir, "admin", &["import", &path], &[]);
    assert_eq!(first.status.code(), Some(1), "bad rows make it fail");
    let t = text(&first);
    assert!(t.contains("Imported: 2 new"), "{t}");
    assert!(
        t.contains(&format!("{path}:3: the phone is missing")),
        "{t}"
    );
    assert!(t.contains(&format!("{path}:5: the e-mail address")), "{t}");
    assert!(!t.contains("not-an-email"), "values are never quoted: {t}");
    let again = data_cmd(&dir, "admin", &["import", &path], &[]);
    assert!(text(&again).contains("0 new, 0 updated, 2 unchanged"));

    runs(&dir);

    // Exports, with each filter.
    let out = tmp.join("runs.csv");
    let out_s = out.display().to_string();
    let export = |extra: &[&str]| {
        let mut args = vec!["export", "--format", "csv", "--out", &out_s];
        args.extend_from_slice(extra);
        let o = data_cmd(&dir, "admin", &args, &[]);
        ok(&o);
        assert!(!text(&o).contains('\r'), "no progress bar off a terminal");
        csv_rows(&out)
    };
    let all = export(&[]);
    assert_eq!(all.len(), 3);
    assert!(
        all[0].contains("Зинаида Кувшинникова,+79165550123"),
        "{}",
        all[0]
    );
    assert_eq!(export(&["--outcome", "wrong_number"]).len(), 1);
    assert_eq!(export(&["--agent", "anna"]).len(), 1);
    assert_eq!(export(&["--script", "payment-reminder-en"]).len(), 3);
    assert_eq!(export(&["--script", "other"]).len(), 0);
    assert_eq!(
        export(&["--from", "2026-03-02", "--to", "2026-03-02"]).len(),
        1
    );
    assert_eq!(export(&["--from", "2026-03-02"]).len(), 2);
    let bad_date = data_cmd(
        &dir,
        "admin",
        &[
            "export",
            "--format",
            "csv",
            "--out",
            &out_s,
            "--from",
            "01/03/2026",
        ],
        &[],
    );
    assert!(
        text(&bad_date).contains("is not a date"),
        "{}",
        text(&bad_date)
    );
    let analytics = export(&["--without-personal-data"]);
    assert!(!analytics.iter().any(|r| r.contains("Кувшинникова")));

    let xlsx = tmp.join("runs.xlsx");
    ok(&data_cmd(
        &dir,
        "admin",
        &[
            "export",
            "--format",
            "xlsx",
            "--out",
            &xlsx.display().to_string(),
        ],
        &[],
    ));
    assert_eq!(&std::fs::read(&xlsx).unwrap()[..2], b"PK");
    let json = tmp.join("runs.json");
    ok(&data_cmd(
        &dir,
        "admin",
        &[
            "export",
            "--format",
            "json",
            "--out",
            &json.display().to_string(),
        ],
        &[],
    ));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let path: Vec<&str> = v[0]["record"]["path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        path,
        ["identify", "remind", "ask_promise", "confirm", "promised"],
        "JSON keeps the full path"
    );

    // Per-step analytics: a table to read, and CSV; no personal data in either.
    let table = ok(&data_cmd(&dir, "admin", &["analytics"], &[]));
    assert!(table.contains("3 run(s), success"), "{table}");
    let identify = table
        .lines()
        .find(|l| l.trim_start().starts_with("identify "))
        .unwrap_or_else(|| panic!("a line for the first step: {table}"));
    let cells: Vec<&str> = identify.split_whitespace().collect();
    assert_eq!(cells[..4], ["identify", "3", "3", "0"], "{table}");
    assert!(table.contains("Not counted: 0 unfinished run(s), 0 of blocked people."));
    let figures = tmp.join("analytics.csv");
    ok(&data_cmd(
        &dir,
        "admin",
        &[
            "analytics",
            "--format",
            "csv",
            "--out",
            &figures.display().to_string(),
            "--from",
            "2026-03-02",
        ],
        &[],
    ));
    let rows = std::fs::read_to_string(&figures).unwrap();
    assert!(rows.starts_with("script,version,step,"), "{rows}");
    assert!(
        rows.lines().nth(1).unwrap().contains(",,,2,"),
        "two runs from 2 March: {rows}"
    );
    for needle in ["Кувшинникова", "Quilliam", "+7916", "+7903", "example"] {
        assert!(
            !table.contains(needle) && !rows.contains(needle),
            "{needle}"
        );
    }
    let refused = data_cmd(
        &dir,
        "anna",
        &["analytics"],
        &[("CALLHELPER_PASSWORD", "password-123")],
    );
    assert!(!refused.status.success(), "agents see no analytics");

    // On a terminal (through `script`), the export draws a progress bar.
    if Path::new("/usr/bin/script").exists() {
        let line = format!(
            "{} data --user admin export --format csv --out {}",
            env!("CARGO_BIN_EXE_callhelper"),
            out_s
        );
        let tty = command("/usr/bin/script", &dir)
            .args(["-qec", &line, "/dev/null"])
            .output()
            .unwrap();
        let t = ok(&tty);
        assert!(t.contains("100% 3/3"), "a progress bar: {t:?}");
    }

    // Subject access (§8.1): everything about one person, nobody else.
    let subject = ok(&data_cmd(
        &dir,
        "admin",
        &["subject", "--phone", "89165550123"],
        &[],
    ));
    assert!(subject.contains("Зинаида Кувшинникова") && subject.contains("\"events\""));
    assert!(!subject.contains("Quilliam"));

    // Blocking: left out of exports until unblocked.
    ok(&data_cmd(
        &dir,
        "admin",
        &["block", "--phone", "+79037774412"],
        &[],
    ));
    let blocked = ok(&data_cmd(
        &dir,
        "admin",
        &["export", "--format", "csv", "--out", &out_s],
        &[],
    ));
    assert!(
        blocked.contains("Exported 2 run(s)") && blocked.contains("1 of blocked people"),
        "{blocked}"
    );
    assert!(!std::fs::read_to_string(&out).unwrap().contains("Quilliam"));
    ok(&data_cmd(
        &dir,
        "admin",
        &["unblock", "--phone", "+79037774412"],
        &[],
    ));

    // Support: read-only and time-limited; export and change are refused, nothing written.
    ok(&data_cmd(
        &dir,
        "admin",
        &["user", "add", "helpdesk", "--role", "support"],
        &[("CALLHELPER_NEW_PASSWORD", "password-123")],
    ));
    ok(&data_cmd(
        &dir,
        "admin",
        &["user", "support", "helpdesk", "--hours", "1"],
        &[],
    ));
    let support_out = tmp.join("support.csv");
    let refused = data_cmd(
        &dir,
        "helpdesk",
        &[
            "export",
            "--format",
            "csv",
            "--out",
            &support_out.display().to_string(),
        ],
        &[],
    );
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("may not export data"),
        "{}",
        text(&refused)
    );
    assert!(!support_out.exists());
    let refused = data_cmd(
        &dir,
        "helpdesk",
        &["change", "--phone", "89165550123", "--name", "X"],
        &[],
    );
    assert!(
        text(&refused).contains("may not change data"),
        "{}",
        text(&refused)
    );
    let refused = data_cmd(
        &dir,
        "helpdesk",
        &["subject", "--phone", "89165550123"],
        &[],
    );
    assert!(!refused.status.success() && !text(&refused).contains("Кувшинникова"));

    // Destruction: the person is gone from every command; a record stays.
    let gone = ok(&data_cmd(
        &dir,
        "admin",
        &["delete", "--phone", "89165550123", "--yes"],
        &[],
    ));
    assert!(
        gone.contains("Destroyed the person's data: 1 run(s)"),
        "{gone}"
    );
    let after = data_cmd(&dir, "admin", &["subject", "--phone", "89165550123"], &[]);
    assert!(!after.status.success());
    assert!(
        text(&after).contains("no contact with that phone number"),
        "{}",
        text(&after)
    );
    export(&[]);
    assert!(
        !std::fs::read_to_string(&out)
            .unwrap()
            .contains("Кувшинникова")
    );

    // The audit log has the exports, the block, the erasure and the refusals, by id only.
    let audit = ok(&data_cmd(&dir, "admin", &["audit", "--limit", "500"], &[]));
    for action in [
        "exported",
        "blocked",
        "unblocked",
        "destroyed",
        "denied",
        "imported",
        "subject_access",
    ] {
        assert!(audit.contains(&format!(" {action} ")), "{action}: {audit}");
    }
    assert!(!audit.contains("Кувшинникова") && !audit.contains("79165550123"));
    let status = ok(&data_cmd(&dir, "admin", &["status"], &[]));
    assert!(
        status.contains("check:    ok") && status.contains("key:      passphrase"),
        "{status}"
    );
    let _ = std::fs::remove_dir_all(&tmp);
}

//! Export: one row per run, one column per field, filters, the three formats.

use callhelper_script::Timestamp;
use callhelper_store::Role;
use callhelper_store::export::{Filter, Format};

use crate::common::{self, PEOPLE};

fn setup() -> (common::Fixture, Vec<callhelper_store::contacts::ContactId>) {
    let f = common::fixture();
    let ids = f.people();
    let agent = f.user("anna", Role::Agent);
    common::full_run(
        &f.store,
        &f.admin,
        Some(ids[0]),
        PEOPLE[0].0,
        "150",
        1_770_000_000_000,
    );
    common::full_run(
        &f.store,
        &agent,
        Some(ids[1]),
        PEOPLE[1].0,
        "50",
        1_770_086_400_000,
    );
    common::full_run(
        &f.store,
        &agent,
        None,
        "Anonymous",
        "1 000,5",
        1_770_172_800_000,
    );
    (f, ids)
}

#[test]
fn csv_has_a_row_per_run_and_a_column_per_field() {
    let (f, _) = setup();
    let out = f.dir.path().join("runs.csv");
    let mut seen = Vec::new();
    let s = f
        .store
        .export(&f.admin, Format::Csv, &Filter::default(), &out, &mut |p| {
            seen.push(p)
        })
        .unwrap();
    assert_eq!(s.rows, 3);
    assert_eq!(seen.last().map(|p| (p.done, p.total)), Some((3, 3)));
    let text = std::fs::read_to_string(&out).unwrap();
    let mut lines = text.lines();
    expect_test::expect![[r#"run,script,version,started_at,ended_at,state,outcome,agent,contact_name,contact_phone,contact_email,budget,full_name,callback_on"#]]
        .assert_eq(lines.next().unwrap());
    expect_test::expect![[r#"1,survey,1,2026-02-02T02:40:00Z,2026-02-02T02:40:04Z,finished,success,admin,Зинаида Кувшинникова,+79165550123,zinaida.kuv@example.org,150,Зинаида Кувшинникова,"#]]
        .assert_eq(lines.next().unwrap());
    let last = lines.nth(1).unwrap();
    assert!(
        last.starts_with("3,survey,1,2026-02-04")
            && last.contains(",success,anna,,,,1000.5,Anonymous,"),
        "{last}"
    );
    assert!(!f.dir.path().join("runs.csv.partial").exists());
}

#[test]
fn filters_by_date_script_outcome_and_agent() {
    let (f, _) = setup();
    let out = f.dir.path().join("runs.csv");
    let count = |filter: Filter| {
        f.store
            .export(&f.admin, Format::Csv, &filter, &out, &mut |_| {})
            .unwrap()
            .rows
    };
    assert_eq!(
        count(Filter {
            outcome: Some("refusal".into()),
            ..Default::default()
        }),
        1
    );
    assert_eq!(
        count(Filter {
            outcome: Some("success".into()),
            ..Default::default()
        }),
        2
    );
    assert_eq!(
        count(Filter {
            agent: Some("anna".into()),
            ..Default::default()
        }),
        2
    );
    assert_eq!(
        count(Filter {
            agent: Some("admin".into()),
            outcome: Some("success".into()),
            ..Default::default()
        }),
        1
    );
    assert_eq!(
        count(Filter {
            script: Some("other".into()),
            ..Default::default()
        }),
        0
    );
    assert_eq!(
        count(Filter {
            from: Some(Timestamp(1_770_086_400_000)),
            to: Some(Timestamp(1_770_172_800_000)),
            ..Default::default()
        }),
        1
    );
    assert!(
        f.store
            .export(
                &f.admin,
                Format::Csv,
                &Filter {
                    agent: Some("ghost".into()),
                    ..Default::default()
                },
                &out,
                &mut |_| {}
            )
            .is_err()
    );
}

#[test]
fn json_keeps_the_full_path_and_analytics_leave_out_personal_data() {
    let (f, _) = setup();
    let out = f.dir.path().join("runs.json");
    f.store
        .export(
            &f.admin,
            Format::Json,
            &Filter::default(),
            &out,
            &mut |_| {},
        )
        .unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let runs = v.as_array().unwrap();
    assert_eq!(runs.len(), 3);
    let path: Vec<&str> = runs[0]["record"]["path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["step"].as_str().unwrap())
        .collect();
    assert_eq!(path, ["greet", "ask", "won"]);
    assert_eq!(runs[0]["fields"]["budget"], 150.0);
    assert_eq!(runs[0]["contact_phone"], "+79165550123");
    // Without personal data: no contact columns, no `personal: true` field.
    f.store
        .export(
            &f.admin,
            Format::Json,
            &Filter {
                without_personal_data: true,
                ..Default::default()
            },
            &out,
            &mut |_| {},
        )
        .unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    common::assert_absent(&text, &common::pii_needles(), "an analytics export");
    assert!(text.contains("\"budget\":150"));
}

#[test]
fn xlsx_is_a_workbook_with_all_rows() {
    let (f, _) = setup();
    let out = f.dir.path().join("runs.xlsx");
    let s = f
        .store
        .export(
            &f.admin,
            Format::Xlsx,
            &Filter::default(),
            &out,
            &mut |_| {},
        )
        .unwrap();
    assert_eq!((s.rows, s.columns), (3, 14));
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(&bytes[..2], b"PK", "a zip container");
    let text = common::xlsx_text(&out);
    assert!(text.contains("<worksheet"), "a worksheet inside");
    assert!(text.contains(PEOPLE[0].0), "the contact's name in a cell");
    assert!(
        text.contains("<v>150</v>"),
        "a number field as a number cell"
    );
    let audit = f.store.audit_log(&f.admin, 10).unwrap();
    let e = audit.iter().find(|e| e.action == "exported").unwrap();
    assert_eq!(
        (e.detail["format"].as_str(), e.detail["rows"].as_u64()),
        (Some("xlsx"), Some(3))
    );
}

#[test]
fn analytics_count_each_step_and_leave_out_blocked_people() {
    let (f, ids) = setup();
    // A run begun and not finished is not counted, only reported.
    let program = common::program();
    let (run, events) = callhelper_script::Run::start(
        program.clone(),
        Default::default(),
        Timestamp(1_770_300_000_000),
    );
    f.store
        .start_run(
            &f.admin,
            &callhelper_store::runs::NewRun {
                program: &program,
                contact: Some(ids[0]),
                call: None,
                context: run.context(),
                events: &events,
            },
        )
        .unwrap();
    f.store.block(&f.admin, ids[1]).unwrap();

    let a = f.store.analytics(&f.admin, &Filter::default()).unwrap();
    assert_eq!((a.unfinished, a.blocked_left_out), (1, 1));
    assert_eq!(a.scripts.len(), 1);
    let s = &a.scripts[0];
    assert_eq!(
        (s.script_id.as_str(), s.version, s.name.as_str(), s.runs),
        ("survey", 1, "Survey", 2)
    );
    assert_eq!(s.outcomes["success"], 2);
    assert_eq!(s.conversion, 1.0);
    let steps: Vec<(&str, u64, u64, u64)> = s
        .steps
        .iter()
        .map(|st| (st.step.as_str(), st.reached, st.left, st.ended_here))
        .collect();
    assert_eq!(
        steps,
        [("ask", 2, 2, 0), ("greet", 2, 2, 0), ("won", 2, 0, 2)]
    );
    let greet = s.steps.iter().find(|st| st.step == "greet").unwrap();
    assert_eq!(greet.answers.values().sum::<u64>(), 2);
    assert_eq!(greet.time.median_ms, 1_000, "answered a second in");
    let ask = s.steps.iter().find(|st| st.step == "ask").unwrap();
    assert_eq!(ask.time.median_ms, 3_000);

    // Unblocked, the person's refusal counts again; filters apply as in exports.
    f.store.unblock(&f.admin, ids[1]).unwrap();
    let a = f.store.analytics(&f.admin, &Filter::default()).unwrap();
    let s = &a.scripts[0];
    assert_eq!((s.runs, a.blocked_left_out), (3, 0));
    assert!((s.conversion - 2.0 / 3.0).abs() < 1e-9);
    let refused = s.steps.iter().find(|st| st.step == "refused").unwrap();
    assert_eq!((refused.reached, refused.ended_here), (1, 1));
    let only_agent = Filter {
        agent: Some("anna".into()),
        ..Filter::default()
    };
    assert_eq!(
        f.store.analytics(&f.admin, &only_agent).unwrap().scripts[0].runs,
        2
    );
    let other = Filter {
        script: Some("nope".into()),
        ..Filter::default()
    };
    assert!(
        f.store
            .analytics(&f.admin, &other)
            .unwrap()
            .scripts
            .is_empty()
    );

    // No personal data in the figures, whatever was collected.
    let mut csv = Vec::new();
    a.write_csv(&mut csv).unwrap();
    let csv = String::from_utf8(csv).unwrap();
    common::assert_absent(
        &(csv + &serde_json::to_string(&a).unwrap()),
        &PEOPLE
            .iter()
            .flat_map(|p| [p.0.into(), p.1.into(), p.2.into()])
            .collect::<Vec<String>>(),
        "analytics",
    );

    // Managers and administrators only; audited like an export.
    for role in [Role::Agent, Role::Support] {
        let who = f.user(&format!("{role:?}").to_lowercase(), role);
        assert!(
            f.store.analytics(&who, &Filter::default()).is_err(),
            "{role:?}"
        );
    }
    let audit = f.store.audit_log(&f.admin, 50).unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "exported" && e.detail["format"] == "analytics")
    );
}

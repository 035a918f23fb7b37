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

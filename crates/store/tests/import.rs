//! Contact import: bad rows reported by line, good rows imported together, no duplicates
//! on a second import.

use callhelper_store::Role;

use crate::common;

const CSV: &str = "name,phone,email,company\n\
Зинаида Кувшинникова,+7 916 555-01-23,zinaida.kuv@example.org,ООО Ромашка\n\
No Phone,,nophone@example.org,\n\
Bad Phone,12-34,bad@example.org,\n\
Bad Mail,+7 903 777 44 12,not-an-email,\n\
Too,Many,Values,Here,Extra\n\
\n\
Ефросинья Тяпкина,89261119988,,\"Acme, Inc\"\n";

#[test]
fn bad_rows_are_reported_by_line_and_good_ones_imported_once() {
    let f = common::fixture();
    let path = f.dir.path().join("people.csv");
    std::fs::write(&path, CSV).unwrap();
    let r = f.store.import_contacts(&f.admin, &path).unwrap();
    assert_eq!((r.added, r.updated, r.unchanged), (2, 0, 0));
    let lines: Vec<u64> = r.bad.iter().map(|b| b.line).collect();
    assert_eq!(lines, [3, 4, 5, 6]);
    assert!(r.bad[0].message.en.contains("phone is missing"));
    assert!(r.bad[3].message.ru.contains("значений"));
    // The report never quotes the values.
    common::assert_absent(
        &format!("{r:?}"),
        &[
            "12-34".into(),
            "not-an-email".into(),
            "nophone@example.org".into(),
        ],
        "the report",
    );
    let c = f
        .store
        .contact_by_phone(&f.admin, "+79261119988")
        .unwrap()
        .unwrap();
    assert_eq!(
        c.extra.expose().get("company").map(String::as_str),
        Some("Acme, Inc")
    );
    // Again: nothing new.
    let r2 = f.store.import_contacts(&f.admin, &path).unwrap();
    assert_eq!((r2.added, r2.updated, r2.unchanged), (0, 0, 2));
    assert_eq!(f.store.search_contacts(&f.admin, "", 100).unwrap().len(), 2);
}

#[test]
fn semicolons_russian_headers_and_json() {
    let f = common::fixture();
    let csv = f.dir.path().join("ru.csv");
    std::fs::write(
        &csv,
        "\u{feff}ФИО;Телефон;Почта;Город\nИван Иванов;8 (495) 123-45-67;ivan@example.ru;Москва\n",
    )
    .unwrap();
    let r = f.store.import_contacts(&f.admin, &csv).unwrap();
    assert_eq!((r.added, r.bad.len()), (1, 0), "{r:?}");
    let json = f.dir.path().join("people.json");
    std::fs::write(
        &json,
        "[\n  {\"name\": \"A\", \"phone\": \"+7 495 123 45 67\", \"email\": \"a@example.ru\"},\n  {\"name\": \"B\", \"phone\": \"bad\"},\n  7\n]\n",
    )
    .unwrap();
    let r = f.store.import_contacts(&f.admin, &json).unwrap();
    assert_eq!(
        (r.added, r.updated),
        (0, 1),
        "same phone as the CSV row: merged"
    );
    assert_eq!(r.bad.iter().map(|b| b.line).collect::<Vec<_>>(), [3, 4]);
    let missing = f.dir.path().join("nocols.csv");
    std::fs::write(&missing, "name,tel\nA,1\n").unwrap();
    let err = f.store.import_contacts(&f.admin, &missing).unwrap_err();
    assert!(
        err.message().en.contains("missing: email"),
        "{}",
        err.message().en
    );
    // Agents may not import.
    let agent = f.user("anna", Role::Agent);
    assert!(f.store.import_contacts(&agent, &json).is_err());
}

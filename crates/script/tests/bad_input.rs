//! Hostile and broken input gets a clear error — never a panic or a hang.

use callhelper_script::{Dialect, Rule, SyntaxError, check, load_bytes};

fn only_syntax_error(bytes: &[u8], dialect: Dialect) -> callhelper_script::Diagnostic {
    let (script, diags) = check(bytes, dialect);
    assert!(script.is_none());
    assert_eq!(diags.len(), 1, "{diags:#?}");
    assert_eq!(diags[0].rule, Rule::Syntax);
    diags[0].clone()
}

#[test]
fn binary_junk_is_not_text() {
    let mut junk = vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0];
    junk.extend((0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8));
    let loaded = load_bytes(&junk, Dialect::Yaml);
    assert!(
        matches!(loaded.unreadable, Some(SyntaxError::NotText { byte: 4 })),
        "{:?}",
        loaded.unreadable
    );
    assert_eq!(
        loaded.diagnostics[0].message.en,
        "not a text file: binary data at byte offset 4"
    );
    let invalid_utf8 = b"format: callhelper-script/1\nname: \xff\xfe";
    let loaded = load_bytes(invalid_utf8, Dialect::Yaml);
    assert!(matches!(
        loaded.unreadable,
        Some(SyntaxError::NotText { byte: 34 })
    ));
}

#[test]
fn a_fifty_megabyte_file_is_refused_before_parsing() {
    let big = vec![b'a'; 50 * 1024 * 1024];
    let loaded = load_bytes(&big, Dialect::Yaml);
    assert!(matches!(
        loaded.unreadable,
        Some(SyntaxError::TooLarge { .. })
    ));
    assert_eq!(
        loaded.diagnostics[0].message.en,
        "the file is 52.4 MB; a script may be at most 16 MB"
    );
}

#[test]
fn deeply_nested_flow_yaml_stops_at_the_depth_limit() {
    let deep = "[".repeat(200_000);
    let d = only_syntax_error(deep.as_bytes(), Dialect::Yaml);
    assert_eq!(
        d.message.en,
        "lists and maps are nested deeper than 64 levels"
    );
    assert_eq!(d.line, 1);
}

#[test]
fn deeply_nested_block_yaml_stops_at_the_depth_limit() {
    let mut deep = String::new();
    for i in 0..5_000 {
        deep.push_str(&" ".repeat(i));
        deep.push_str("a:\n");
    }
    let d = only_syntax_error(deep.as_bytes(), Dialect::Yaml);
    assert_eq!(
        d.message.en,
        "lists and maps are nested deeper than 64 levels"
    );
    assert_eq!(d.line, 65);
}

#[test]
fn deeply_nested_json_stops_with_a_clear_error() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let d = only_syntax_error(deep.as_bytes(), Dialect::Json);
    assert_eq!(
        d.message.en,
        "lists and maps are nested deeper than 64 levels"
    );
}

#[test]
fn alias_bombs_are_stopped() {
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        bomb.push_str(&format!(
            "{}: &{} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n",
            (b'a' + i) as char,
            (b'a' + i) as char,
            p = (b'a' + i - 1) as char
        ));
    }
    let d = only_syntax_error(bomb.as_bytes(), Dialect::Yaml);
    assert!(
        d.message.en.starts_with("aliases expand the document"),
        "{}",
        d.message.en
    );
}

#[test]
fn several_documents_and_empty_files_are_refused() {
    let d = only_syntax_error(b"a: 1\n---\nb: 2\n", Dialect::Yaml);
    assert_eq!((d.line, d.column), (2, 1));
    let d = only_syntax_error(b"", Dialect::Yaml);
    assert_eq!(d.message.en, "the file is empty");
    let (script, diags) = check(b"just a sentence", Dialect::Yaml);
    assert!(script.is_none());
    assert_eq!(diags[0].rule, Rule::Type);
    assert_eq!(
        diags[0].message.en,
        "expected a map for the script, found a scalar"
    );
}

#[test]
fn a_syntax_error_has_its_position() {
    let yaml = "format: callhelper-script/1\nsteps:\n  - id: a\n   say: [unclosed\n";
    let d = only_syntax_error(yaml.as_bytes(), Dialect::Yaml);
    assert_eq!(d.line, 4, "{d:?}");
}

#[test]
fn a_huge_or_deep_condition_is_refused_not_recursed() {
    let deep = format!("{}fields.x{}", "(".repeat(10_000), ")".repeat(10_000));
    let long = format!("{} == 1", "fields.x == 1 and ".repeat(300));
    let nots = format!("{}fields.x", "not ".repeat(400));
    for cond in [deep, long, nots] {
        let yaml = format!(
            "format: callhelper-script/1\nid: c\nname: C\nversion: 1\nlocale: en\nstart: a\n\
             fields: [{{ id: x, label: X, type: number }}]\n\
             steps:\n  - id: a\n    fields: [x]\n    next:\n      - if: '{cond}'\n        goto: b\n      - goto: b\n  - {{ id: b, outcome: success }}\n"
        );
        let (_, diags) = check(yaml.as_bytes(), Dialect::Yaml);
        assert!(
            diags.iter().any(|d| d.rule == Rule::BadCondition),
            "{diags:#?}"
        );
    }
}

#[test]
fn a_cycle_of_objections_is_reported_and_cannot_nest_forever() {
    let yaml = r#"
format: callhelper-script/1
id: cyc
name: Cycle
version: 1
locale: en
start: a
steps:
  - { id: a, answers: [{ label: Done, next: z }] }
  - { id: z, outcome: success }
objections:
  - id: one
    label: One
    steps:
      - { id: one1, next: one2 }
      - { id: one2, next: one1 }
  - id: two
    label: Two
    steps:
      - { id: two1, answers: [{ label: to one, next: one1 }] }
"#;
    let (_, diags) = check(yaml.as_bytes(), Dialect::Yaml);
    let rules: Vec<Rule> = diags.iter().map(|d| d.rule).collect();
    assert!(rules.contains(&Rule::NoExit), "{diags:#?}");
    assert!(rules.contains(&Rule::MissingTarget), "{diags:#?}");
}

#[test]
fn long_lines_and_unusual_text_are_fine() {
    let say = "Ж😀".repeat(100_000);
    let yaml = format!(
        "format: callhelper-script/1\nid: u\nname: \"\u{202e}Юникод\"\nversion: 1\nlocale: ru\nstart: a\n\
         steps:\n  - {{ id: a, say: \"{say} {{{{contact.nope}}}}\", outcome: success }}\n"
    );
    let (script, diags) = check(yaml.as_bytes(), Dialect::Yaml);
    assert!(script.is_some());
    assert_eq!(diags.len(), 1, "{diags:#?}");
    assert_eq!(diags[0].rule, Rule::UnknownPlaceholder);
    assert_eq!((diags[0].line, diags[0].column), (8, 200_021));
}

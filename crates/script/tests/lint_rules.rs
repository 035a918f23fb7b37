//! Snapshot tests of the linter: one broken fixture a rule, in `fixtures/lint/<rule>.yaml`,
//! with its findings in English and Russian in `<rule>.expected`.
//! Run with `UPDATE_EXPECT=1` to rewrite the snapshots after a deliberate change.

use std::path::PathBuf;

use callhelper_script::{Diagnostic, Dialect, Lang, Rule, check};
use expect_test::expect_file;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lint")
}

fn findings(rule: Rule) -> (Vec<Diagnostic>, String) {
    let name = format!("{}.yaml", rule.id());
    let bytes = std::fs::read(fixtures().join(&name))
        .unwrap_or_else(|e| panic!("the rule `{}` needs the fixture {name}: {e}", rule.id()));
    let (_, diags) = check(&bytes, Dialect::Yaml);
    let mut out = String::new();
    for lang in [Lang::En, Lang::Ru] {
        for d in &diags {
            out.push_str(&d.render(&name, lang));
            out.push('\n');
        }
    }
    (diags, out)
}

macro_rules! rule_tests {
    ($($test:ident: $rule:ident,)+) => {$(
        #[test]
        fn $test() {
            let (diags, rendered) = findings(Rule::$rule);
            assert!(
                diags.iter().any(|d| d.rule == Rule::$rule),
                "the fixture for `{}` does not trigger it:\n{rendered}",
                Rule::$rule.id()
            );
            for d in &diags {
                assert!(d.line > 0 && d.column > 0, "a finding without a position: {d:?}");
                assert_ne!(d.message.en, d.message.ru, "untranslated: {d:?}");
            }
            expect_file![fixtures().join(format!("{}.expected", Rule::$rule.id()))]
                .assert_eq(&rendered);
        }
    )+

        #[test]
        fn every_rule_has_a_snapshot_test() {
            let tested = [$(Rule::$rule),+];
            for rule in Rule::ALL {
                assert!(tested.contains(rule), "no snapshot test for the rule `{}`", rule.id());
            }
        }
    };
}

rule_tests! {
    syntax: Syntax,
    unknown_key: UnknownKey,
    missing_key: MissingKey,
    type_: Type,
    format: Format,
    bad_id: BadId,
    duplicate_id: DuplicateId,
    missing_target: MissingTarget,
    unreachable_step: Unreachable,
    no_exit: NoExit,
    dead_end: DeadEnd,
    terminal_with_exits: TerminalWithExits,
    duplicate_hotkey: DuplicateHotkey,
    bad_hotkey: BadHotkey,
    unknown_placeholder: UnknownPlaceholder,
    unknown_field: UnknownField,
    set_type: SetType,
    bad_condition: BadCondition,
    bad_field: BadField,
    bad_outcome: BadOutcome,
    special_category: SpecialCategory,
    personal_unmarked: PersonalUnmarked,
    unused_field: UnusedField,
}

#[test]
fn positions_inside_json_point_into_the_json_text() {
    let json = r#"{
  "format": "callhelper-script/1", "id": "j", "name": "J", "version": 1,
  "locale": "en", "start": "a",
  "steps": [
    {"id": "a", "answers": [{"label": "Go", "next": "nowhere"}]}
  ]
}"#;
    let (_, diags) = check(json.as_bytes(), Dialect::Json);
    let missing: Vec<_> = diags
        .iter()
        .filter(|d| d.rule == Rule::MissingTarget)
        .collect();
    assert_eq!(missing.len(), 1, "{diags:#?}");
    assert_eq!((missing[0].line, missing[0].column), (5, 54));
}

#[test]
fn json_must_be_strict_json() {
    let json = "{\"format\": \"callhelper-script/1\", // a comment\n}";
    let (script, diags) = check(json.as_bytes(), Dialect::Json);
    assert!(script.is_none());
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0].rule, Rule::Syntax);
    assert_eq!((diags[0].line, diags[0].column), (1, 35));
}

#[test]
fn warnings_alone_leave_a_script_runnable() {
    let yaml = std::fs::read_to_string(fixtures().join("unused-field.yaml")).expect("fixture");
    let (script, diags) = check(yaml.as_bytes(), Dialect::Yaml);
    assert!(!diags.is_empty());
    assert!(!callhelper_script::has_errors(&diags));
    assert!(callhelper_script::Program::new(script.expect("loads")).is_ok());
}

//! Helpers shared by the script tests.

use std::path::PathBuf;
use std::sync::Arc;

use callhelper_script::{Dialect, Program, Timestamp, load_str};

/// Load YAML that must be a valid script, and index it for running.
pub fn program(yaml: &str) -> Arc<Program> {
    let loaded = load_str(yaml, Dialect::Yaml);
    assert!(
        loaded.diagnostics.is_empty(),
        "loader findings: {:#?}",
        loaded.diagnostics
    );
    let script = loaded.script.expect("the script loads");
    Arc::new(Program::new(script).unwrap_or_else(|d| panic!("lint errors: {d:#?}")))
}

/// A time `ms` milliseconds after the start of the test clock.
pub fn at(ms: i64) -> Timestamp {
    Timestamp(1_764_000_000_000 + ms)
}

/// The repository's `scripts-examples/` folder.
pub fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts-examples")
}

/// Every example script file, sorted.
pub fn example_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples_dir())
        .expect("scripts-examples exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "expected the ten example scripts");
    files
}

/// A script exercising every kind of transition, used by the runner tests.
pub const RUNNER_SCRIPT: &str = r#"
format: callhelper-script/1
id: runner-test
name: Runner test
version: 7
locale: en
start: greet
variables: { contact: [company] }
fields:
  - { id: name, label: Name, type: text, required: true, personal: true }
  - { id: budget, label: Budget, type: number, min: 0 }
  - { id: size, label: Size, type: choice, options: [small, { value: big, label: Big }] }
  - { id: when, label: When, type: datetime }
  - { id: ok, label: OK, type: boolean }
  - { id: topics, label: Topics, type: multichoice, options: [a, b, c], max: 2 }
  - { id: email, label: Email, type: email, personal: true }
  - { id: code, label: Code, type: text, pattern: "[A-Z]{3}" }
  - { id: day, label: Day, type: date }
  - { id: tel, label: Tel, type: phone, personal: true }
outcomes: [{ id: sent_offer, label: Offer sent }]
steps:
  - id: greet
    say: "Hello {{contact.name | there}} from {{contact.company}}"
    fields: [name, ok, topics, email, code, day, tel]
    answers:
      - { id: "yes", label: Interested, next: qualify, set: { size: big }, tags: [warm] }
      - { id: "no", label: Not interested, next: lost }
      - { id: later, label: Later, key: l, next: schedule }
  - id: qualify
    say: "{{fields.name}}, what budget?"
    fields: [budget, size]
    next:
      - if: fields.budget >= 1000 and fields.size == "big"
        goto: won
      - if: fields.budget > 0
        goto: offer
      - goto: lost
  - id: offer
    answers:
      - { label: Send, next: sent }
  - id: schedule
    fields: [when]
    next: cb
  - { id: won, outcome: success }
  - { id: lost, outcome: refusal }
  - { id: sent, outcome: sent_offer }
  - { id: cb, outcome: callback, callback: { at: when } }
objections:
  - id: price
    label: Price
    steps:
      - id: price1
        answers:
          - { label: OK, next: return }
          - { label: Tell more, next: price2 }
          - { label: Lost, next: lost }
          - { label: To offer, next: offer }
      - id: price2
        answers: [{ label: Back, next: return }]
  - id: time
    label: Time
    steps:
      - id: time1
        answers: [{ label: OK, next: return }]
"#;

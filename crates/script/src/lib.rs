//! CallHelper's call scripts: the `callhelper-script/1` format, its linter, and the runner.
//!
//! This crate does no IO and reads no clock: it turns text into a [`Script`], checks it
//! ([`lint()`]), and steps a [`Run`] through it with time passed in. Everything a person
//! reads comes in English and Russian ([`Text`]).
//!
//! ```
//! use std::sync::Arc;
//! use callhelper_script::{load_str, Dialect, Program, Run, Context, Timestamp, AnswerRef};
//!
//! let yaml = r#"
//! format: callhelper-script/1
//! id: hello
//! name: Hello
//! version: 1
//! locale: en
//! start: greet
//! steps:
//!   - id: greet
//!     say: "Hello, {{contact.name | there}}!"
//!     answers:
//!       - { label: Interested, next: win }
//!       - { label: Not now, next: lose }
//!   - { id: win, outcome: success }
//!   - { id: lose, outcome: refusal }
//! "#;
//! let loaded = load_str(yaml, Dialect::Yaml);
//! let program = Arc::new(Program::new(loaded.script.unwrap()).unwrap());
//! let (mut run, _events) = Run::start(program, Context::default(), Timestamp(0));
//! assert_eq!(run.view(Default::default()).say.unwrap().text, "Hello, there!");
//! run.choose(AnswerRef::Key("1"), Timestamp(1500)).unwrap();
//! assert_eq!(run.record().outcome.unwrap().as_str(), "success");
//! ```

mod diag;
pub mod expr;
pub mod hotkey;
mod lint;
mod load;
mod model;
mod run;
pub mod syntax;
pub mod template;
mod text;
pub mod value;

pub use diag::{Diagnostic, Rule, Severity, has_errors};
pub use lint::lint;
pub use load::{Loaded, load_bytes, load_str, parse_number};
pub use model::*;
pub use run::*;
pub use syntax::{Dialect, Pos, Source, SyntaxError};
pub use text::{Lang, Text};
pub use value::FieldError;

/// Read and lint a script in one go: the loader's findings followed by the linter's.
/// The script is `None` when the text could not be parsed at all.
pub fn check(bytes: &[u8], dialect: Dialect) -> (Option<Script>, Vec<Diagnostic>) {
    let Loaded {
        script,
        mut diagnostics,
        source,
        ..
    } = load_bytes(bytes, dialect);
    if let Some(s) = &script {
        diagnostics.extend(lint(s, source.as_ref()));
        diagnostics.sort_by_key(|d| (d.line, d.column));
    }
    (script, diagnostics)
}

/// The JSON Schema of the script format, generated from the model's types.
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<Script>();
    serde_json::to_value(schema).expect("a schema is always JSON")
}

//! Findings about a script: what is wrong, where, and under which rule.

use std::fmt;

use serde::Serialize;

use crate::syntax::Pos;
use crate::text::{Lang, Text};

/// How bad a finding is. Errors stop a script from being published or run.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The script cannot be run.
    Error,
    /// The script runs, but something is probably not what the author meant.
    Warning,
}

impl Severity {
    /// `error` or `warning`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

macro_rules! rules {
    ($($(#[doc = $doc:literal])+ $name:ident = $id:literal,)+) => {
        /// The rule behind a finding; its id appears in brackets after each message and is
        /// described in `docs/script-format.md`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, schemars::JsonSchema)]
        #[non_exhaustive]
        pub enum Rule {
            $($(#[doc = $doc])+ #[serde(rename = $id)] $name,)+
        }

        impl Rule {
            /// Every rule.
            pub const ALL: &'static [Rule] = &[$(Rule::$name,)+];

            /// The rule's id, such as `missing-target`.
            pub fn id(self) -> &'static str {
                match self { $(Rule::$name => $id,)+ }
            }

            /// What the rule checks (English).
            pub fn describe(self) -> &'static str {
                match self { $(Rule::$name => concat!($($doc),+).trim(),)+ }
            }
        }
    };
}

rules! {
    /// The file is not readable YAML or JSON, or is too large, too deep or not text.
    Syntax = "syntax",
    /// A key that the format does not define (often a typo).
    UnknownKey = "unknown-key",
    /// A key the format requires is missing.
    MissingKey = "missing-key",
    /// A value of the wrong shape or type (a list where a text is expected...).
    Type = "type",
    /// The `format` tag is missing or names a format this version does not read.
    Format = "format",
    /// An id that does not follow the id syntax.
    BadId = "bad-id",
    /// Two steps, fields, answers, objections or outcomes share an id, or a map repeats a key.
    DuplicateId = "duplicate-id",
    /// A `start`, `next` or `goto` names a step that does not exist, or `return` outside an objection.
    MissingTarget = "missing-target",
    /// A step that no path from `start` (or from an objection's start) reaches.
    Unreachable = "unreachable-step",
    /// A step from which no path leads to a terminal step (a loop with no exit).
    NoExit = "no-exit",
    /// A step with no answers, no `next` and no `outcome`, or an answer with nowhere to go.
    DeadEnd = "dead-end",
    /// A terminal step that also has answers or a `next`.
    TerminalWithExits = "terminal-with-exits",
    /// Two answers of a step, or an answer and an objection, share a hotkey.
    DuplicateHotkey = "duplicate-hotkey",
    /// A hotkey that is not `0`–`9`, a letter or `F1`–`F12`, or more answers than free keys.
    BadHotkey = "bad-hotkey",
    /// A `{{placeholder}}` that names no field or known variable, or is malformed.
    UnknownPlaceholder = "unknown-placeholder",
    /// A step lists a field, or an answer sets one, that the script does not declare.
    UnknownField = "unknown-field",
    /// An answer's `set` gives a field a value of the wrong type.
    SetType = "set-type",
    /// An `if` expression that does not parse, names unknown fields or compares wrong types; or a branch list without a final default.
    BadCondition = "bad-condition",
    /// A field's options, pattern or limits are inconsistent with its type.
    BadField = "bad-field",
    /// An outcome that is neither built in nor declared, or a callback that is wrong.
    BadOutcome = "bad-outcome",
    /// A field asks for a special category of personal data (health, beliefs, politics, ethnicity, intimate life), forbidden by the policy (§3.3) without a declared legal basis.
    SpecialCategory = "special-category",
    /// A field that is personal data by its type or name but is not marked `personal: true`.
    PersonalUnmarked = "personal-unmarked",
    /// A field that no step fills, no answer sets and nothing reads.
    UnusedField = "unused-field",
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// 1-based line (0 when the script has no source text).
    pub line: u32,
    /// 1-based column, in characters.
    pub column: u32,
    /// The rule.
    pub rule: Rule,
    /// What is wrong, in English and Russian.
    pub message: Text,
}

impl Diagnostic {
    /// An error at `pos`.
    pub fn error(pos: Pos, rule: Rule, message: Text) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            line: pos.line,
            column: pos.col,
            rule,
            message,
        }
    }

    /// A warning at `pos`.
    pub fn warning(pos: Pos, rule: Rule, message: Text) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(pos, rule, message)
        }
    }

    /// The position.
    pub fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            col: self.column,
        }
    }

    /// `file:line:column: error: message [rule]`, the linter's output line.
    pub fn render(&self, file: &str, lang: Lang) -> String {
        format!(
            "{file}:{}: {}: {} [{}]",
            self.pos(),
            self.severity.as_str(),
            self.message.get(lang),
            self.rule.id()
        )
    }
}

/// True when any finding is an error.
pub fn has_errors(diags: &[Diagnostic]) -> bool {
    diags.iter().any(|d| d.severity == Severity::Error)
}

//! The script model: the Rust types behind the `callhelper-script/1` format.
//!
//! These types are the contract. `docs/script-format.md` describes every key and
//! `docs/script-schema.json` is generated from these types (`cargo xtask codegen`).
//! Files are read by [`crate::load`], which reports positions; the types serialise back
//! to JSON or YAML with the same keys. Each element keeps the source positions of its keys
//! in a `src` member that is never serialised.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Serialize, Serializer};

use crate::syntax::Loc;
use crate::text::Text;

/// The one format tag this version reads and writes.
pub const FORMAT: &str = "callhelper-script/1";

/// The special `next`/`goto` target that leaves an objection and returns to the step the
/// agent was on when the objection was opened.
pub const RETURN: &str = "return";

/// Source positions of an element's keys, for messages. Empty for scripts built in memory.
#[derive(Debug, Clone, Default)]
pub struct SrcMap {
    /// The element itself.
    pub node: Loc,
    keys: Vec<(Cow<'static, str>, Loc)>,
}

impl SrcMap {
    /// A map for an element read at `node`.
    pub fn at(node: Loc) -> SrcMap {
        SrcMap {
            node,
            keys: Vec::new(),
        }
    }

    /// Remember where the value of `key` was read.
    pub fn set(&mut self, key: impl Into<Cow<'static, str>>, loc: Loc) {
        self.keys.push((key.into(), loc));
    }

    /// Where the value of `key` was read, or the element's own position.
    pub fn get(&self, key: &str) -> Loc {
        self.keys
            .iter()
            .find(|(k, _)| k == key)
            .map_or(self.node, |(_, l)| *l)
    }
}

/// A call script.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "CallHelper call script",
    description = "A call script in the callhelper-script/1 format (YAML or JSON)."
)]
pub struct Script {
    /// The format tag; must be `callhelper-script/1`.
    #[schemars(schema_with = "format_schema")]
    pub format: String,
    /// A stable identifier of the script (letters, digits, `_`, `-`, `.`).
    pub id: String,
    /// The name agents and managers see.
    pub name: String,
    /// The script's version, a positive integer raised on every published change. Every
    /// run records the exact version it followed.
    pub version: u32,
    /// The language of the script's text, such as `ru` or `en`.
    pub locale: String,
    /// What the script is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The id of the first step.
    pub start: String,
    /// Extra contact and agent variables the script's placeholders may use, besides the
    /// built-in ones.
    #[serde(default, skip_serializing_if = "Variables::is_empty")]
    pub variables: Variables,
    /// The data the script collects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<Field>,
    /// The steps of the main branch.
    pub steps: Vec<Step>,
    /// Side branches for client objections, reachable from any step; they end by
    /// returning to the step the agent left, or in a terminal step of their own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objections: Vec<Objection>,
    /// Outcomes of this script besides the built-in ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outcomes: Vec<OutcomeDecl>,
    #[serde(skip)]
    #[schemars(skip)]
    /// Source positions (not serialised).
    pub src: SrcMap,
}

fn format_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "const": FORMAT, "description": "The format tag." })
}

/// Names of contact and agent variables declared by the script.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Variables {
    /// Contact variables beyond the built-in ones (for example `contract_no`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contact: Vec<String>,
    /// Agent variables beyond the built-in ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agent: Vec<String>,
    #[serde(skip)]
    #[schemars(skip)]
    /// Source positions (not serialised).
    pub src: SrcMap,
}

impl Variables {
    fn is_empty(&self) -> bool {
        self.contact.is_empty() && self.agent.is_empty()
    }
}

/// Contact variables every script may use without declaring them.
pub const CONTACT_VARIABLES: &[&str] = &[
    "name",
    "first_name",
    "middle_name",
    "last_name",
    "phone",
    "email",
    "company",
    "position",
    "city",
    "address",
    "timezone",
];

/// Agent variables every script may use without declaring them.
pub const AGENT_VARIABLES: &[&str] = &[
    "name",
    "first_name",
    "last_name",
    "phone",
    "email",
    "company",
    "position",
];

/// A piece of data the script collects.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Field {
    /// The field's identifier (letters, digits, `_`), used in `{{fields.<id>}}`, `set` and
    /// `if` expressions, and as the export column.
    pub id: String,
    /// The label the agent sees.
    pub label: String,
    /// The value's type.
    #[serde(rename = "type")]
    pub kind: FieldType,
    /// The agent must fill the field before leaving a step that lists it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub required: bool,
    /// The allowed values of a `choice` or `multichoice` field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<ChoiceOption>,
    /// The value is personal data (a name, a phone, an address...): it is kept encrypted,
    /// left out of analytics, and erased with the person.
    #[serde(default, skip_serializing_if = "is_false")]
    pub personal: bool,
    /// A regular expression a `text`, `phone` or `email` value must match in full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// The smallest allowed value: a number for `number`, a length for `text`, a count of
    /// choices for `multichoice`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// The largest allowed value (see `min`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// A hint shown next to the field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// The legal basis for collecting a special category of personal data (health,
    /// beliefs, politics, ethnicity, intimate life). Without it such a field is an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal_basis: Option<String>,
    #[serde(skip)]
    #[schemars(skip)]
    /// Source positions (not serialised).
    pub src: SrcMap,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The type of a field's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    /// Free text.
    Text,
    /// A number (integer or decimal; `,` or `.` as the separator when typed).
    Number,
    /// A phone number.
    Phone,
    /// An e-mail address.
    Email,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// A date and time, `YYYY-MM-DDTHH:MM` (local time of the agent), for callbacks.
    Datetime,
    /// One of `options`.
    Choice,
    /// Any number of `options`.
    Multichoice,
    /// Yes or no.
    Boolean,
}

impl FieldType {
    /// Every type, in the order the documentation lists them.
    pub const ALL: [FieldType; 9] = [
        FieldType::Text,
        FieldType::Number,
        FieldType::Phone,
        FieldType::Email,
        FieldType::Date,
        FieldType::Datetime,
        FieldType::Choice,
        FieldType::Multichoice,
        FieldType::Boolean,
    ];

    /// The name used in files.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::Number => "number",
            FieldType::Phone => "phone",
            FieldType::Email => "email",
            FieldType::Date => "date",
            FieldType::Datetime => "datetime",
            FieldType::Choice => "choice",
            FieldType::Multichoice => "multichoice",
            FieldType::Boolean => "boolean",
        }
    }

    /// Parse a type name.
    pub fn parse(name: &str) -> Option<FieldType> {
        FieldType::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// `choice` or `multichoice`.
    pub fn has_options(self) -> bool {
        matches!(self, FieldType::Choice | FieldType::Multichoice)
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An allowed value of a choice field: either just the value, or a value with a label.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ChoiceOption {
    /// The value is also the label.
    Value(String),
    /// A value and the label the agent sees.
    Labeled {
        /// The stored value.
        value: String,
        /// What the agent sees.
        label: String,
    },
}

impl ChoiceOption {
    /// The stored value.
    pub fn value(&self) -> &str {
        match self {
            ChoiceOption::Value(v) | ChoiceOption::Labeled { value: v, .. } => v,
        }
    }

    /// What the agent sees.
    pub fn label(&self) -> &str {
        match self {
            ChoiceOption::Value(v) | ChoiceOption::Labeled { label: v, .. } => v,
        }
    }
}

/// A step of the script: a line to say, fields to fill, and the ways on.
///
/// A step is one of three kinds: it has `answers` (the agent picks what the client
/// said), or only a `next` (the agent fills the fields and continues), or an `outcome`
/// (a terminal step: the run ends there).
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// The step's identifier, unique across the script including objections. `return` is
    /// reserved.
    pub id: String,
    /// A short title for the path and analytics (defaults to the id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The agent's line, with `{{contact.x}}`, `{{agent.x}}` and `{{fields.x}}`
    /// placeholders; `{{contact.first_name | коллега}}` gives a fallback text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub say: Option<String>,
    /// A hint for the agent, not to be read out (placeholders allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// Ids of the fields to fill on this step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// What the client may answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub answers: Vec<Answer>,
    /// Where to go when an answer has no `next` of its own, or when the step has no
    /// answers and the agent continues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<Next>,
    /// Makes the step terminal: the run ends here with this outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// On a terminal step: the field that holds when to call back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback: Option<CallbackSpec>,
    #[serde(skip)]
    #[schemars(skip)]
    /// Source positions (not serialised).
    pub src: SrcMap,
}

impl Step {
    /// True for a step that ends the run.
    pub fn is_terminal(&self) -> bool {
        self.outcome.is_some()
    }

    /// The title, or the id when there is none.
    pub fn title(&self) -> &str {
        self.title.as_deref().unwrap_or(&self.id)
    }
}

/// Where a step or an answer leads: one step, or the first branch whose `if` holds.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Next {
    /// A step id (or `return` inside an objection).
    Goto(String),
    /// Branches tried in order; the last one has no `if` and is the default.
    Branches(Vec<Branch>),
}

impl Next {
    /// Every target this `next` may lead to.
    pub fn targets(&self) -> impl Iterator<Item = &str> {
        let (one, many) = match self {
            Next::Goto(t) => (Some(t.as_str()), &[][..]),
            Next::Branches(b) => (None, b.as_slice()),
        };
        one.into_iter().chain(many.iter().map(|b| b.goto.as_str()))
    }
}

/// One branch of a conditional `next`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Branch {
    /// A condition over `fields.x`, `contact.x` and `agent.x` (see the format guide);
    /// absent on the final, default branch.
    #[serde(rename = "if", default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// The step to go to when the condition holds.
    pub goto: String,
    #[serde(skip)]
    #[schemars(skip)]
    /// Source positions (not serialised).
    pub src: SrcMap,
}

/// An answer the client may give.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    /// The answer's identifier within its step; defaults to its position (`1`, `2`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// What the agent sees on the button.
    pub label: String,
    /// The hotkey: `1`–`9`, `0`, a letter, or `F1`–`F12`; defaults to the first free digit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Where the answer leads; defaults to the step's `next`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<Next>,
    /// Field values the answer sets (a field id → a value of the field's type).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, Value>,
    /// Tags the answer adds to the run (for analytics and the CRM).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(skip)]
    #[schemars(skip)]
    /// Source positions (not serialised).
    pub src: SrcMap,
}

/// A side branch for an objection, reachable from any step.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Objection {
    /// The objection's identifier.
    pub id: String,
    /// What the agent sees (for example «Дорого»).
    pub label: String,
    /// The hotkey, by convention `F1`–`F12`; defaults to the first free F-key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The objection's steps; the first is where it starts.
    pub steps: Vec<Step>,
    #[serde(skip)]
    #[schemars(skip)]
    /// Source positions (not serialised).
    pub src: SrcMap,
}

/// A custom outcome the script declares.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutcomeDecl {
    /// The outcome's identifier (letters, digits, `_`).
    pub id: String,
    /// Its name for people.
    pub label: String,
    #[serde(skip)]
    #[schemars(skip)]
    /// Source positions (not serialised).
    pub src: SrcMap,
}

/// When to call back, on a terminal step.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CallbackSpec {
    /// A `date` or `datetime` field holding when to call back.
    pub at: String,
    #[serde(skip)]
    #[schemars(skip)]
    /// Source positions (not serialised).
    pub src: SrcMap,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// The call reached its goal.
    Success,
    /// The client refused.
    Refusal,
    /// A callback was agreed.
    Callback,
    /// No one answered.
    NoAnswer,
    /// The number does not belong to the contact.
    WrongNumber,
    /// The person who decides could not be reached.
    NoDecisionMaker,
    /// An outcome the script declares in `outcomes`.
    Custom(String),
}

impl Outcome {
    /// The built-in outcomes.
    pub const BUILTIN: [Outcome; 6] = [
        Outcome::Success,
        Outcome::Refusal,
        Outcome::Callback,
        Outcome::NoAnswer,
        Outcome::WrongNumber,
        Outcome::NoDecisionMaker,
    ];

    /// Read an outcome id: a built-in name, or else a custom one.
    pub fn parse(id: &str) -> Outcome {
        Outcome::BUILTIN
            .into_iter()
            .find(|o| o.as_str() == id)
            .unwrap_or_else(|| Outcome::Custom(id.to_owned()))
    }

    /// The id used in files, events and exports.
    pub fn as_str(&self) -> &str {
        match self {
            Outcome::Success => "success",
            Outcome::Refusal => "refusal",
            Outcome::Callback => "callback",
            Outcome::NoAnswer => "no_answer",
            Outcome::WrongNumber => "wrong_number",
            Outcome::NoDecisionMaker => "no_decision_maker",
            Outcome::Custom(id) => id,
        }
    }

    /// The name for people, when built in (custom outcomes have their declared label).
    pub fn builtin_label(&self) -> Option<Text> {
        Some(match self {
            Outcome::Success => Text::new("Success", "Успех"),
            Outcome::Refusal => Text::new("Refusal", "Отказ"),
            Outcome::Callback => Text::new("Callback", "Перезвонить"),
            Outcome::NoAnswer => Text::new("No answer", "Нет ответа"),
            Outcome::WrongNumber => Text::new("Wrong number", "Неверный номер"),
            Outcome::NoDecisionMaker => Text::new("No decision maker", "Нет ЛПР"),
            Outcome::Custom(_) => return None,
        })
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Outcome {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Outcome {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(Outcome::parse(&s))
    }
}

impl JsonSchema for Outcome {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Outcome".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A built-in outcome (success, refusal, callback, no_answer, \
                wrong_number, no_decision_maker) or the id of one declared in `outcomes`.",
            "type": "string",
            "pattern": "^[A-Za-z0-9_]+$",
            "examples": ["success", "refusal", "callback", "no_answer", "wrong_number",
                "no_decision_maker"]
        })
    }
}

/// A field value: in files (`set`), in events and in exports.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Value {
    /// `boolean`.
    Bool(bool),
    /// `number`.
    Number(f64),
    /// `text`, `phone`, `email`, `date`, `datetime` (ISO 8601) and `choice`.
    Text(String),
    /// `multichoice`.
    List(Vec<String>),
}

impl Value {
    /// The value as agents read it (numbers without a trailing `.0`, lists joined).
    pub fn display(&self, lang: crate::Lang) -> String {
        match self {
            Value::Bool(b) => match (b, lang) {
                (true, crate::Lang::En) => "yes".into(),
                (false, crate::Lang::En) => "no".into(),
                (true, crate::Lang::Ru) => "да".into(),
                (false, crate::Lang::Ru) => "нет".into(),
            },
            Value::Number(n) => format_number(*n),
            Value::Text(t) => t.clone(),
            Value::List(items) => items.join(", "),
        }
    }
}

/// A number as people write it: `3`, `2.5`, never `3.0`.
pub fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// Where a step lives: in the main branch, or in an objection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StepRef {
    /// The objection's index, or `None` for the main branch.
    pub objection: Option<usize>,
    /// The step's index in its list.
    pub index: usize,
}

impl Script {
    /// Every step with where it lives: the main branch first, then each objection's.
    pub fn all_steps(&self) -> impl Iterator<Item = (StepRef, &Step)> {
        let main = self.steps.iter().enumerate().map(|(index, s)| {
            (
                StepRef {
                    objection: None,
                    index,
                },
                s,
            )
        });
        let side = self.objections.iter().enumerate().flat_map(|(o, obj)| {
            obj.steps.iter().enumerate().map(move |(index, s)| {
                (
                    StepRef {
                        objection: Some(o),
                        index,
                    },
                    s,
                )
            })
        });
        main.chain(side)
    }

    /// The step at `r`. Panics on a reference that did not come from this script.
    pub fn step(&self, r: StepRef) -> &Step {
        match r.objection {
            None => &self.steps[r.index],
            Some(o) => &self.objections[o].steps[r.index],
        }
    }

    /// The field with this id.
    pub fn field(&self, id: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.id == id)
    }
}

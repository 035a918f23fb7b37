//! The script runner: a pure state machine over a checked script.
//!
//! Time comes in as an argument; nothing here reads a clock, a file or the network. Every
//! call that changes the run returns the [`RunEvent`]s it caused; a caller that stores
//! them in order can rebuild the run exactly with [`Run::replay`] (that is how a run
//! survives a crash). Events the agent caused are replayed as commands and the events the
//! runner derived (steps entered, the finish at a terminal step) are checked to match, so
//! replaying against a different script version is detected, not silently accepted.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;

use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::diag::{Diagnostic, has_errors};
use crate::expr::{self, Expr, Namespace, Operand};
use crate::hotkey;
use crate::model::*;
use crate::template::{self, Rendered};
use crate::text;
use crate::text::{Lang, Text};
use crate::value::{self, FieldError};

/// Milliseconds since the Unix epoch (UTC). The runner never reads a clock: callers pass
/// the time of each action.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Milliseconds from `earlier` to `self`, never negative (clocks can step back).
    pub fn since(self, earlier: Timestamp) -> u64 {
        u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0)
    }
}

/// How deep objections may nest (an objection opened from inside another).
pub const MAX_OBJECTION_DEPTH: usize = 8;

enum Target {
    Step(StepRef),
    Return,
}

enum CompiledNext {
    Goto(Target),
    Branches(Vec<(Option<Expr>, Target)>),
}

struct CompiledStep {
    next: Option<CompiledNext>,
    answer_next: Vec<Option<CompiledNext>>,
    answer_keys: Vec<String>,
    answer_ids: Vec<String>,
    /// Indexes of the step's fields that are required.
    required: Vec<usize>,
}

/// A script that passed the linter, indexed for running. Share it between runs.
pub struct Program {
    script: Script,
    steps: HashMap<String, StepRef>,
    compiled: HashMap<StepRef, CompiledStep>,
    fields: HashMap<String, usize>,
    patterns: Vec<Option<Regex>>,
    objection_keys: Vec<String>,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program")
            .field("id", &self.script.id)
            .field("version", &self.script.version)
            .finish_non_exhaustive()
    }
}

impl Program {
    /// Lint the script and index it. Any error makes it unrunnable; the findings are
    /// returned (warnings alone do not stop it).
    pub fn new(script: Script) -> Result<Program, Vec<Diagnostic>> {
        let diags = crate::lint::lint(&script, None);
        if has_errors(&diags) {
            return Err(diags);
        }
        let steps: HashMap<String, StepRef> =
            script.all_steps().map(|(r, s)| (s.id.clone(), r)).collect();
        let fields: HashMap<String, usize> = script
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f.id.clone(), i))
            .collect();
        let patterns = script
            .fields
            .iter()
            .map(|f| {
                f.pattern
                    .as_deref()
                    .and_then(|p| value::compile_pattern(p).ok())
            })
            .collect();
        let objection_keys: Vec<Option<String>> = hotkey::objection_keys(&script);
        let compile_next = |n: &Next| {
            let target = |t: &str| match t {
                RETURN => Target::Return,
                _ => Target::Step(steps[t]),
            };
            match n {
                Next::Goto(t) => CompiledNext::Goto(target(t)),
                Next::Branches(b) => CompiledNext::Branches(
                    b.iter()
                        .map(|b| {
                            let cond = b.condition.as_deref().and_then(|c| expr::parse(c).ok());
                            (cond, target(&b.goto))
                        })
                        .collect(),
                ),
            }
        };
        let compiled = script
            .all_steps()
            .map(|(r, s)| {
                let compiled = CompiledStep {
                    next: s.next.as_ref().map(compile_next),
                    answer_next: s
                        .answers
                        .iter()
                        .map(|a| a.next.as_ref().map(compile_next))
                        .collect(),
                    answer_keys: hotkey::answer_keys(s, &objection_keys)
                        .into_iter()
                        .map(Option::unwrap_or_default)
                        .collect(),
                    answer_ids: (0..s.answers.len())
                        .map(|i| hotkey::answer_id(s, i))
                        .collect(),
                    required: s
                        .fields
                        .iter()
                        .filter_map(|f| fields.get(f).copied())
                        .filter(|&i| script.fields[i].required)
                        .collect(),
                };
                (r, compiled)
            })
            .collect();
        Ok(Program {
            objection_keys: objection_keys
                .into_iter()
                .map(Option::unwrap_or_default)
                .collect(),
            script,
            steps,
            compiled,
            fields,
            patterns,
        })
    }

    /// The script.
    pub fn script(&self) -> &Script {
        &self.script
    }

    fn start(&self) -> StepRef {
        self.steps[&self.script.start]
    }

    fn outcome_known(&self, o: &Outcome) -> bool {
        o.builtin_label().is_some() || self.script.outcomes.iter().any(|d| d.id == o.as_str())
    }

    /// The index of the objection a hotkey (or id) opens, if any.
    pub fn objection(&self, key_or_id: &str) -> Option<usize> {
        let key = hotkey::normalise(key_or_id);
        self.script
            .objections
            .iter()
            .position(|o| o.id == key_or_id)
            .or_else(|| self.objection_keys.iter().position(|k| *k == key))
    }

    /// True when `key` is the hotkey of an objection.
    pub fn is_objection_key(&self, key: &str) -> bool {
        let key = hotkey::normalise(key);
        self.objection_keys.contains(&key)
    }

    /// The label of an outcome: the declared one, or the built-in name.
    pub fn outcome_label(&self, o: &Outcome, lang: Lang) -> String {
        match o.builtin_label() {
            Some(t) => t.get(lang).to_owned(),
            None => self
                .script
                .outcomes
                .iter()
                .find(|d| d.id == o.as_str())
                .map_or_else(|| o.as_str().to_owned(), |d| d.label.clone()),
        }
    }
}

/// What the runner knows about the call: contact and agent variables.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Context {
    /// Contact variables (`name`, `phone`, `company`, declared ones...).
    #[serde(default)]
    pub contact: BTreeMap<String, String>,
    /// Agent variables.
    #[serde(default)]
    pub agent: BTreeMap<String, String>,
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The run reached a terminal step.
    Terminal,
    /// The client hung up.
    RemoteHangup,
    /// The agent hung up before the script ended.
    AgentHangup,
    /// The call failed or dropped.
    CallFailed,
    /// The agent ended the run with an outcome of their choosing.
    AgentEnded,
}

/// Something that happened in a run. Stored in order, these rebuild the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RunEvent {
    /// The run began.
    Started {
        /// When.
        at: Timestamp,
        /// The script's id.
        script_id: String,
        /// The exact script version followed.
        script_version: u32,
    },
    /// A step was shown.
    StepEntered {
        /// When.
        at: Timestamp,
        /// The step's id.
        step: String,
    },
    /// A field got a value, or was cleared (`value` absent).
    FieldSet {
        /// When.
        at: Timestamp,
        /// The step the agent was on.
        step: String,
        /// The field's id.
        field: String,
        /// The new value.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<Value>,
    },
    /// The agent chose an answer.
    AnswerChosen {
        /// When.
        at: Timestamp,
        /// The step.
        step: String,
        /// The answer's id.
        answer: String,
        /// Time spent on the step, in milliseconds.
        spent_ms: u64,
    },
    /// The agent continued from a step without answers.
    Continued {
        /// When.
        at: Timestamp,
        /// The step.
        step: String,
        /// Time spent on the step, in milliseconds.
        spent_ms: u64,
    },
    /// The agent opened an objection.
    ObjectionOpened {
        /// When.
        at: Timestamp,
        /// The objection's id.
        objection: String,
        /// The step it was opened from (the one `return` comes back to).
        from_step: String,
        /// Time spent on that step so far, in milliseconds.
        spent_ms: u64,
    },
    /// An objection ended with `return`.
    ObjectionReturned {
        /// When.
        at: Timestamp,
        /// The objection's id.
        objection: String,
        /// The step returned to.
        to_step: String,
    },
    /// The agent went back one step (undo).
    WentBack {
        /// When.
        at: Timestamp,
        /// The step left.
        from_step: String,
        /// The step returned to.
        to_step: String,
        /// Time spent on the step left, in milliseconds.
        spent_ms: u64,
    },
    /// The client said something the script does not foresee; the agent wrote it down.
    Unforeseen {
        /// When.
        at: Timestamp,
        /// The step.
        step: String,
        /// What was said.
        text: String,
    },
    /// A note by the agent.
    Noted {
        /// When.
        at: Timestamp,
        /// The note.
        text: String,
    },
    /// The run ended.
    Finished {
        /// When.
        at: Timestamp,
        /// The step the run ended at.
        step: String,
        /// The outcome, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outcome: Option<Outcome>,
        /// Why it ended.
        reason: EndReason,
        /// When to call back, when agreed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        callback_at: Option<String>,
    },
}

impl RunEvent {
    /// When the event happened.
    pub fn at(&self) -> Timestamp {
        match self {
            RunEvent::Started { at, .. }
            | RunEvent::StepEntered { at, .. }
            | RunEvent::FieldSet { at, .. }
            | RunEvent::AnswerChosen { at, .. }
            | RunEvent::Continued { at, .. }
            | RunEvent::ObjectionOpened { at, .. }
            | RunEvent::ObjectionReturned { at, .. }
            | RunEvent::WentBack { at, .. }
            | RunEvent::Unforeseen { at, .. }
            | RunEvent::Noted { at, .. }
            | RunEvent::Finished { at, .. } => *at,
        }
    }

    /// The event's type name (`answer_chosen`...).
    pub fn kind(&self) -> &'static str {
        match self {
            RunEvent::Started { .. } => "started",
            RunEvent::StepEntered { .. } => "step_entered",
            RunEvent::FieldSet { .. } => "field_set",
            RunEvent::AnswerChosen { .. } => "answer_chosen",
            RunEvent::Continued { .. } => "continued",
            RunEvent::ObjectionOpened { .. } => "objection_opened",
            RunEvent::ObjectionReturned { .. } => "objection_returned",
            RunEvent::WentBack { .. } => "went_back",
            RunEvent::Unforeseen { .. } => "unforeseen",
            RunEvent::Noted { .. } => "noted",
            RunEvent::Finished { .. } => "finished",
        }
    }
}

/// Why an action was refused. The run is unchanged when an action is refused.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RunError {
    /// The run has ended.
    Finished,
    /// No answer of the current step has this id or key.
    UnknownAnswer {
        /// What was given.
        input: String,
    },
    /// The step has answers; choose one (or it has no `next` to continue to).
    CannotContinue,
    /// Required fields of the step are empty.
    RequiredMissing {
        /// Their labels.
        fields: Vec<String>,
    },
    /// The script has no such field.
    UnknownField {
        /// What was given.
        field: String,
    },
    /// The value does not fit the field.
    InvalidValue {
        /// The field's id.
        field: String,
        /// The field's label.
        label: String,
        /// The field's type.
        kind: FieldType,
        /// What is wrong.
        error: FieldError,
    },
    /// Nothing to go back to.
    NothingToUndo,
    /// No objection has this id or key.
    UnknownObjection {
        /// What was given.
        input: String,
    },
    /// The objection is already open.
    ObjectionOpen {
        /// Its label.
        label: String,
    },
    /// Objections are nested too deep.
    ObjectionsTooDeep,
    /// A conditional `next` had no branch that applied.
    NoBranch {
        /// The step.
        step: String,
    },
    /// The outcome is neither built in nor declared by the script.
    UnknownOutcome {
        /// What was given.
        outcome: String,
    },
    /// A stored event list does not fit this script (wrong version, or damaged).
    Replay {
        /// The event's position in the list.
        index: usize,
        /// What did not match.
        detail: String,
    },
}

impl RunError {
    /// The message for the agent.
    pub fn message(&self) -> Text {
        match self {
            RunError::Finished => Text::new(
                "the run has already ended",
                "разговор по сценарию уже завершён",
            ),
            RunError::UnknownAnswer { input } => text!(
                "this step has no answer «{input}»"; "на этом шаге нет ответа «{input}»"),
            RunError::CannotContinue => Text::new(
                "choose one of the answers to go on",
                "чтобы продолжить, выберите один из ответов",
            ),
            RunError::RequiredMissing { fields } => {
                let list = fields
                    .iter()
                    .map(|f| format!("«{f}»"))
                    .collect::<Vec<_>>()
                    .join(", ");
                text!("fill in first: {list}"; "сначала заполните: {list}")
            }
            RunError::UnknownField { field } => {
                text!("the script has no field `{field}`"; "в сценарии нет поля `{field}`")
            }
            RunError::InvalidValue {
                error, label, kind, ..
            } => error.message(label, *kind),
            RunError::NothingToUndo => {
                Text::new("there is no step to go back to", "возвращаться некуда")
            }
            RunError::UnknownObjection { input } => {
                text!("there is no objection «{input}»"; "нет возражения «{input}»")
            }
            RunError::ObjectionOpen { label } => text!(
                "the objection «{label}» is already open"; "возражение «{label}» уже открыто"),
            RunError::ObjectionsTooDeep => text!(
                "objections are nested more than {MAX_OBJECTION_DEPTH} deep; finish one first";
                "открыто больше {MAX_OBJECTION_DEPTH} вложенных возражений; сначала завершите одно"),
            RunError::NoBranch { step } => text!(
                "no branch of the step `{step}` applies; the script needs a default branch";
                "ни одна ветка шага `{step}` не подошла; в сценарии нужна ветка по умолчанию"),
            RunError::UnknownOutcome { outcome } => text!(
                "the script has no outcome `{outcome}`"; "в сценарии нет исхода `{outcome}`"),
            RunError::Replay { index, detail } => text!(
                "the stored run does not fit this script at event {index}: {detail}";
                "сохранённый разговор не соответствует сценарию на событии {index}: {detail}"),
        }
    }
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message().en)
    }
}

impl std::error::Error for RunError {}

/// Which answer to choose.
#[derive(Debug, Clone, Copy)]
pub enum AnswerRef<'a> {
    /// By the answer's id.
    Id(&'a str),
    /// By its hotkey.
    Key(&'a str),
    /// By its position (0-based).
    Index(usize),
    /// By hotkey first, then by id (what a typed token means).
    Any(&'a str),
}

/// One visit to a step, in the effective path (undone visits are removed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Visit {
    /// The step's id.
    pub step: String,
    /// The objection the step belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objection: Option<String>,
    /// When the step was (last) entered.
    pub entered_at: Timestamp,
    /// When it was left, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_at: Option<Timestamp>,
    /// Time spent on the step, in milliseconds (summed over returns to it).
    pub spent_ms: u64,
    /// The answer chosen there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<ChosenAnswer>,
}

/// An answer as chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChosenAnswer {
    /// The answer's id.
    pub id: String,
    /// Its label.
    pub label: String,
    /// Its hotkey.
    pub key: String,
}

/// Something written down during the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Remark {
    /// When.
    pub at: Timestamp,
    /// The step it was written on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// The text.
    pub text: String,
}

/// How the run ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Ending {
    /// When.
    pub at: Timestamp,
    /// The step it ended at.
    pub step: String,
    /// Why.
    pub reason: EndReason,
    /// The outcome, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// When to call back, when agreed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_at: Option<String>,
}

#[derive(Clone)]
struct Cursor {
    step: StepRef,
    /// Open objections: (objection index, step to return to).
    returns: Vec<(usize, StepRef)>,
}

struct Snapshot {
    cursor: Cursor,
    field_log: usize,
    tags: usize,
    path: usize,
    visit: Visit,
}

/// A run of a script: where the agent is, what was collected, and how to undo.
pub struct Run {
    program: Arc<Program>,
    context: Context,
    started_at: Timestamp,
    cursor: Cursor,
    fields: Vec<Option<Value>>,
    /// Previous values of fields, newest last, for undo.
    field_log: Vec<(usize, Option<Value>)>,
    tags: Vec<String>,
    path: Vec<Visit>,
    undo: Vec<Snapshot>,
    unforeseen: Vec<Remark>,
    notes: Vec<Remark>,
    ending: Option<Ending>,
}

impl std::fmt::Debug for Run {
    /// Shows where the run is, never the collected values (they may be personal data).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("script", &self.program.script.id)
            .field("step", &self.current().id)
            .field("finished", &self.ending.is_some())
            .finish_non_exhaustive()
    }
}

impl Run {
    /// Start a run at the script's first step.
    pub fn start(program: Arc<Program>, context: Context, at: Timestamp) -> (Run, Vec<RunEvent>) {
        let start = program.start();
        let n = program.script.fields.len();
        let mut run = Run {
            context,
            started_at: at,
            cursor: Cursor {
                step: start,
                returns: Vec::new(),
            },
            fields: vec![None; n],
            field_log: Vec::new(),
            tags: Vec::new(),
            path: Vec::new(),
            undo: Vec::new(),
            unforeseen: Vec::new(),
            notes: Vec::new(),
            ending: None,
            program,
        };
        let mut events = vec![RunEvent::Started {
            at,
            script_id: run.program.script.id.clone(),
            script_version: run.program.script.version,
        }];
        run.enter(start, at, &mut events);
        (run, events)
    }

    /// The program this run follows.
    pub fn program(&self) -> &Arc<Program> {
        &self.program
    }

    /// The step the agent is on.
    pub fn current(&self) -> &Step {
        self.program.script.step(self.cursor.step)
    }

    /// How the run ended, once it has.
    pub fn ending(&self) -> Option<&Ending> {
        self.ending.as_ref()
    }

    /// True once the run has ended.
    pub fn is_finished(&self) -> bool {
        self.ending.is_some()
    }

    /// True when [`Run::back`] would do something.
    pub fn can_go_back(&self) -> bool {
        self.ending.is_none() && !self.undo.is_empty()
    }

    /// The value of a field.
    pub fn field(&self, id: &str) -> Option<&Value> {
        self.program
            .fields
            .get(id)
            .and_then(|&i| self.fields[i].as_ref())
    }

    /// The context the run was started with.
    pub fn context(&self) -> &Context {
        &self.context
    }

    fn lookup(&self, ns: Namespace, name: &str) -> Option<String> {
        match ns {
            Namespace::Fields => self
                .field(name)
                .map(|v| v.display(Lang::parse(&self.program.script.locale).unwrap_or_default())),
            Namespace::Contact => self.context.contact.get(name).cloned(),
            Namespace::Agent => self.context.agent.get(name).cloned(),
        }
    }

    /// Fill in placeholders of a text with this run's values.
    pub fn render(&self, text: &str) -> Rendered {
        // Block scalars (`say: >`) end with a newline that is not part of the line.
        template::render(text.trim_end(), &|ns, name| self.lookup(ns, name))
    }

    fn enter(&mut self, r: StepRef, at: Timestamp, events: &mut Vec<RunEvent>) {
        self.cursor.step = r;
        let step = self.program.script.step(r);
        self.path.push(Visit {
            step: step.id.clone(),
            objection: r
                .objection
                .map(|o| self.program.script.objections[o].id.clone()),
            entered_at: at,
            left_at: None,
            spent_ms: 0,
            answer: None,
        });
        events.push(RunEvent::StepEntered {
            at,
            step: step.id.clone(),
        });
        if let Some(outcome) = &step.outcome {
            let callback_at = step
                .callback
                .as_ref()
                .and_then(|c| self.field(&c.at))
                .map(|v| v.display(Lang::En));
            self.finish_with(
                at,
                Some(outcome.clone()),
                EndReason::Terminal,
                callback_at,
                events,
            );
        }
    }

    fn finish_with(
        &mut self,
        at: Timestamp,
        outcome: Option<Outcome>,
        reason: EndReason,
        callback_at: Option<String>,
        events: &mut Vec<RunEvent>,
    ) {
        let step = self.current().id.clone();
        if let Some(v) = self.path.last_mut() {
            v.spent_ms += at.since(v.entered_at);
            v.left_at = Some(at);
        }
        self.ending = Some(Ending {
            at,
            step: step.clone(),
            reason,
            outcome: outcome.clone(),
            callback_at: callback_at.clone(),
        });
        events.push(RunEvent::Finished {
            at,
            step,
            outcome,
            reason,
            callback_at,
        });
    }

    fn live(&self) -> Result<(), RunError> {
        if self.ending.is_some() {
            Err(RunError::Finished)
        } else {
            Ok(())
        }
    }

    /// Leave the current step: close its visit and remember how to undo. Returns the time
    /// spent on the step in this visit.
    fn leave(&mut self, at: Timestamp, answer: Option<ChosenAnswer>) -> u64 {
        let v = self.path.last_mut().expect("a run always has a visit");
        let spent = at.since(v.entered_at);
        v.spent_ms += spent;
        // Undo reopens the visit with the time already spent on it.
        let reopened = v.clone();
        v.left_at = Some(at);
        v.answer = answer;
        self.undo.push(Snapshot {
            cursor: self.cursor.clone(),
            field_log: self.field_log.len(),
            tags: self.tags.len(),
            path: self.path.len(),
            visit: reopened,
        });
        spent
    }

    fn required_missing(&self, overlay: &BTreeMap<String, Value>) -> Vec<String> {
        let compiled = &self.program.compiled[&self.cursor.step];
        compiled
            .required
            .iter()
            .filter(|&&i| {
                let f = &self.program.script.fields[i];
                self.fields[i].is_none() && !overlay.contains_key(&f.id)
            })
            .map(|&i| self.program.script.fields[i].label.clone())
            .collect()
    }

    fn resolve<'n>(&self, next: &'n CompiledNext) -> Result<&'n Target, RunError> {
        match next {
            CompiledNext::Goto(t) => Ok(t),
            CompiledNext::Branches(branches) => {
                let lookup = |ns: Namespace, name: &str| -> Operand<'_> {
                    match ns {
                        Namespace::Fields => Operand::of(self.field(name)),
                        Namespace::Contact => self
                            .context
                            .contact
                            .get(name)
                            .map_or(Operand::Null, |s| Operand::Str(s)),
                        Namespace::Agent => self
                            .context
                            .agent
                            .get(name)
                            .map_or(Operand::Null, |s| Operand::Str(s)),
                    }
                };
                branches
                    .iter()
                    .find(|(cond, _)| cond.as_ref().is_none_or(|c| expr::eval(c, &lookup)))
                    .map(|(_, t)| t)
                    .ok_or_else(|| RunError::NoBranch {
                        step: self.current().id.clone(),
                    })
            }
        }
    }

    fn go(&mut self, target: StepOrReturn, at: Timestamp, events: &mut Vec<RunEvent>) {
        match target {
            StepOrReturn::Step(r) => {
                if r.objection.is_none() {
                    // Leaving an objection for the main branch closes every open objection.
                    self.cursor.returns.clear();
                }
                self.enter(r, at, events);
            }
            StepOrReturn::Return => {
                let (o, back_to) = self
                    .cursor
                    .returns
                    .pop()
                    .expect("the linter allows `return` only inside objections");
                events.push(RunEvent::ObjectionReturned {
                    at,
                    objection: self.program.script.objections[o].id.clone(),
                    to_step: self.program.script.step(back_to).id.clone(),
                });
                self.enter(back_to, at, events);
            }
        }
    }

    fn find_answer(&self, which: AnswerRef<'_>) -> Result<usize, RunError> {
        let compiled = &self.program.compiled[&self.cursor.step];
        let n = compiled.answer_ids.len();
        let by_key = |k: &str| {
            let k = hotkey::normalise(k);
            compiled.answer_keys.iter().position(|x| *x == k)
        };
        let by_id = |id: &str| compiled.answer_ids.iter().position(|x| x == id);
        let found = match which {
            AnswerRef::Id(id) => by_id(id),
            AnswerRef::Key(k) => by_key(k),
            AnswerRef::Index(i) => (i < n).then_some(i),
            AnswerRef::Any(s) => by_key(s).or_else(|| by_id(s)),
        };
        found.ok_or_else(|| RunError::UnknownAnswer {
            input: match which {
                AnswerRef::Id(s) | AnswerRef::Key(s) | AnswerRef::Any(s) => s.to_owned(),
                AnswerRef::Index(i) => (i + 1).to_string(),
            },
        })
    }

    /// Choose an answer of the current step: apply its `set` and tags and move on.
    pub fn choose(
        &mut self,
        which: AnswerRef<'_>,
        at: Timestamp,
    ) -> Result<Vec<RunEvent>, RunError> {
        self.live()?;
        let i = self.find_answer(which)?;
        let program = Arc::clone(&self.program);
        let step = program.script.step(self.cursor.step);
        let answer = &step.answers[i];
        let missing = self.required_missing(&answer.set);
        if !missing.is_empty() {
            return Err(RunError::RequiredMissing { fields: missing });
        }
        let compiled = &program.compiled[&self.cursor.step];
        let next = compiled.answer_next[i]
            .as_ref()
            .or(compiled.next.as_ref())
            .ok_or(RunError::CannotContinue)?;
        let id = compiled.answer_ids[i].clone();
        let chosen = ChosenAnswer {
            id: id.clone(),
            label: answer.label.clone(),
            key: compiled.answer_keys[i].clone(),
        };
        let mut events = Vec::with_capacity(4);
        // Values the answer sets count when the next branch is chosen; the snapshot
        // taken by `leave` lets undo take them back.
        let spent = self.leave(at, Some(chosen));
        for (field, v) in &answer.set {
            if let Some(&fi) = program.fields.get(field) {
                self.put(fi, Some(v.clone()));
                events.push(RunEvent::FieldSet {
                    at,
                    step: step.id.clone(),
                    field: field.clone(),
                    value: Some(v.clone()),
                });
            }
        }
        self.tags.extend(answer.tags.iter().cloned());
        events.insert(
            0,
            RunEvent::AnswerChosen {
                at,
                step: step.id.clone(),
                answer: id,
                spent_ms: spent,
            },
        );
        let target = match self.resolve(next) {
            Ok(t) => StepOrReturn::of(t),
            Err(e) => {
                self.undo_last(at);
                return Err(e);
            }
        };
        self.go(target, at, &mut events);
        Ok(events)
    }

    /// Continue from a step that has no answers, to its `next`.
    pub fn proceed(&mut self, at: Timestamp) -> Result<Vec<RunEvent>, RunError> {
        self.live()?;
        let program = Arc::clone(&self.program);
        let step = program.script.step(self.cursor.step);
        let compiled = &program.compiled[&self.cursor.step];
        let (Some(next), true) = (compiled.next.as_ref(), step.answers.is_empty()) else {
            return Err(RunError::CannotContinue);
        };
        let missing = self.required_missing(&BTreeMap::new());
        if !missing.is_empty() {
            return Err(RunError::RequiredMissing { fields: missing });
        }
        let target = StepOrReturn::of(self.resolve(next)?);
        let spent = self.leave(at, None);
        let mut events = vec![RunEvent::Continued {
            at,
            step: step.id.clone(),
            spent_ms: spent,
        }];
        self.go(target, at, &mut events);
        Ok(events)
    }

    fn put(&mut self, i: usize, v: Option<Value>) {
        let old = std::mem::replace(&mut self.fields[i], v);
        self.field_log.push((i, old));
    }

    /// Set a field from what the agent typed (empty input clears it).
    pub fn set_field_input(
        &mut self,
        field: &str,
        input: &str,
        at: Timestamp,
    ) -> Result<Vec<RunEvent>, RunError> {
        let (i, f) = self.field_def(field)?;
        let v =
            value::parse_input(f, self.program.patterns[i].as_ref(), input).map_err(|error| {
                RunError::InvalidValue {
                    field: f.id.clone(),
                    label: f.label.clone(),
                    kind: f.kind,
                    error,
                }
            })?;
        self.set_field(field, v, at)
    }

    fn field_def(&self, field: &str) -> Result<(usize, &Field), RunError> {
        let &i = self
            .program
            .fields
            .get(field)
            .ok_or_else(|| RunError::UnknownField {
                field: field.to_owned(),
            })?;
        Ok((i, &self.program.script.fields[i]))
    }

    /// Set a field to a value (or clear it with `None`), checking it fits the field.
    pub fn set_field(
        &mut self,
        field: &str,
        value: Option<Value>,
        at: Timestamp,
    ) -> Result<Vec<RunEvent>, RunError> {
        self.live()?;
        let (i, f) = self.field_def(field)?;
        if let Some(v) = &value {
            value::validate(f, self.program.patterns[i].as_ref(), v).map_err(|error| {
                RunError::InvalidValue {
                    field: f.id.clone(),
                    label: f.label.clone(),
                    kind: f.kind,
                    error,
                }
            })?;
        }
        let id = f.id.clone();
        self.put(i, value.clone());
        Ok(vec![RunEvent::FieldSet {
            at,
            step: self.current().id.clone(),
            field: id,
            value,
        }])
    }

    /// Open an objection (by id or hotkey); it returns here when it ends with `return`.
    pub fn open_objection(
        &mut self,
        which: &str,
        at: Timestamp,
    ) -> Result<Vec<RunEvent>, RunError> {
        self.live()?;
        let program = Arc::clone(&self.program);
        let o = program
            .objection(which)
            .ok_or_else(|| RunError::UnknownObjection {
                input: which.to_owned(),
            })?;
        let objection = &program.script.objections[o];
        if self.cursor.returns.iter().any(|(open, _)| *open == o)
            || self.cursor.step.objection == Some(o)
        {
            return Err(RunError::ObjectionOpen {
                label: objection.label.clone(),
            });
        }
        if self.cursor.returns.len() >= MAX_OBJECTION_DEPTH {
            return Err(RunError::ObjectionsTooDeep);
        }
        let from = self.cursor.step;
        let from_id = self.current().id.clone();
        let spent = self.leave(at, None);
        self.cursor.returns.push((o, from));
        let mut events = vec![RunEvent::ObjectionOpened {
            at,
            objection: objection.id.clone(),
            from_step: from_id,
            spent_ms: spent,
        }];
        self.enter(
            StepRef {
                objection: Some(o),
                index: 0,
            },
            at,
            &mut events,
        );
        Ok(events)
    }

    /// Restore the state before the last move; the step returned to counts as entered at `at`.
    fn undo_last(&mut self, at: Timestamp) -> bool {
        let Some(snap) = self.undo.pop() else {
            return false;
        };
        while self.field_log.len() > snap.field_log {
            let (i, old) = self.field_log.pop().expect("length checked");
            self.fields[i] = old;
        }
        self.tags.truncate(snap.tags);
        self.path.truncate(snap.path);
        if let Some(v) = self.path.last_mut() {
            *v = snap.visit;
            v.entered_at = at;
        }
        self.cursor = snap.cursor;
        true
    }

    /// Go back to the step before (undo the last move), as often as there are steps.
    pub fn back(&mut self, at: Timestamp) -> Result<Vec<RunEvent>, RunError> {
        self.live()?;
        let from_step = self.current().id.clone();
        let spent = self.path.last().map_or(0, |v| at.since(v.entered_at));
        if !self.undo_last(at) {
            return Err(RunError::NothingToUndo);
        }
        Ok(vec![RunEvent::WentBack {
            at,
            from_step,
            to_step: self.current().id.clone(),
            spent_ms: spent,
        }])
    }

    /// Write down what the client said that the script does not foresee.
    pub fn unforeseen(&mut self, text: &str, at: Timestamp) -> Result<Vec<RunEvent>, RunError> {
        self.live()?;
        let step = self.current().id.clone();
        self.unforeseen.push(Remark {
            at,
            step: Some(step.clone()),
            text: text.to_owned(),
        });
        Ok(vec![RunEvent::Unforeseen {
            at,
            step,
            text: text.to_owned(),
        }])
    }

    /// Add a note (also after the run has ended).
    pub fn note(&mut self, text: &str, at: Timestamp) -> Vec<RunEvent> {
        self.notes.push(Remark {
            at,
            step: None,
            text: text.to_owned(),
        });
        vec![RunEvent::Noted {
            at,
            text: text.to_owned(),
        }]
    }

    /// End the run before a terminal step (a hang-up, or the agent's decision), recording
    /// the step it stopped at. `outcome` must be built in or declared by the script.
    pub fn end(
        &mut self,
        reason: EndReason,
        outcome: Option<Outcome>,
        callback_at: Option<String>,
        at: Timestamp,
    ) -> Result<Vec<RunEvent>, RunError> {
        self.live()?;
        if let Some(o) = &outcome
            && !self.program.outcome_known(o)
        {
            return Err(RunError::UnknownOutcome {
                outcome: o.as_str().to_owned(),
            });
        }
        let reason = if reason == EndReason::Terminal {
            EndReason::AgentEnded
        } else {
            reason
        };
        let mut events = Vec::with_capacity(1);
        self.finish_with(at, outcome, reason, callback_at, &mut events);
        Ok(events)
    }

    /// Rebuild a run from its stored events (all of them, or a prefix after a crash).
    pub fn replay(
        program: Arc<Program>,
        context: Context,
        events: &[RunEvent],
    ) -> Result<Run, RunError> {
        let mismatch = |index: usize, detail: String| RunError::Replay { index, detail };
        let Some(RunEvent::Started {
            at,
            script_id,
            script_version,
        }) = events.first()
        else {
            return Err(mismatch(0, "the first event is not `started`".into()));
        };
        if *script_id != program.script.id || *script_version != program.script.version {
            return Err(mismatch(
                0,
                format!(
                    "the run followed {script_id} version {script_version}, not {} version {}",
                    program.script.id, program.script.version
                ),
            ));
        }
        let (mut run, derived) = Run::start(program, context, *at);
        let mut expected: std::collections::VecDeque<RunEvent> =
            derived.into_iter().skip(1).collect();
        for (index, event) in events.iter().enumerate().skip(1) {
            if let Some(exp) = expected.pop_front() {
                if exp != *event {
                    return Err(mismatch(
                        index,
                        format!("expected `{}`, found `{}`", exp.kind(), event.kind()),
                    ));
                }
                continue;
            }
            let at = event.at();
            let produced = match event {
                RunEvent::FieldSet { field, value, .. } => run.set_field(field, value.clone(), at),
                RunEvent::AnswerChosen { answer, .. } => run.choose(AnswerRef::Id(answer), at),
                RunEvent::Continued { .. } => run.proceed(at),
                RunEvent::ObjectionOpened { objection, .. } => run.open_objection(objection, at),
                RunEvent::WentBack { .. } => run.back(at),
                RunEvent::Unforeseen { text, .. } => run.unforeseen(text, at),
                RunEvent::Noted { text, .. } => Ok(run.note(text, at)),
                RunEvent::Finished {
                    outcome,
                    reason,
                    callback_at,
                    ..
                } if *reason != EndReason::Terminal => {
                    run.end(*reason, outcome.clone(), callback_at.clone(), at)
                }
                other => {
                    return Err(mismatch(
                        index,
                        format!("`{}` cannot happen here", other.kind()),
                    ));
                }
            }
            .map_err(|e| mismatch(index, e.message().en))?;
            let mut produced = produced.into_iter();
            let first = produced.next();
            if first.as_ref() != Some(event) {
                return Err(mismatch(
                    index,
                    format!("replaying `{}` gave a different result", event.kind()),
                ));
            }
            expected.extend(produced);
        }
        Ok(run)
    }

    /// What the agent should see now.
    pub fn view(&self, lang: Lang) -> StepView {
        let program = &self.program;
        let step = self.current();
        let compiled = &program.compiled[&self.cursor.step];
        StepView {
            step: step.id.clone(),
            title: step.title().to_owned(),
            objection: self
                .cursor
                .step
                .objection
                .map(|o| program.script.objections[o].label.clone()),
            say: step.say.as_deref().map(|s| self.render(s)),
            hint: step.hint.as_deref().map(|s| self.render(s)),
            fields: step
                .fields
                .iter()
                .filter_map(|id| {
                    program
                        .fields
                        .get(id)
                        .map(|&i| (i, &program.script.fields[i]))
                })
                .map(|(i, f)| FieldView {
                    id: f.id.clone(),
                    label: f.label.clone(),
                    kind: f.kind,
                    required: f.required,
                    options: f.options.clone(),
                    hint: f.hint.clone(),
                    value: self.fields[i].clone(),
                })
                .collect(),
            answers: step
                .answers
                .iter()
                .enumerate()
                .map(|(i, a)| AnswerView {
                    id: compiled.answer_ids[i].clone(),
                    label: self.render(&a.label).text,
                    key: compiled.answer_keys[i].clone(),
                })
                .collect(),
            objections: program
                .script
                .objections
                .iter()
                .zip(&program.objection_keys)
                .map(|(o, k)| ObjectionView {
                    id: o.id.clone(),
                    label: o.label.clone(),
                    key: k.clone(),
                })
                .collect(),
            can_continue: step.answers.is_empty()
                && compiled.next.is_some()
                && self.ending.is_none(),
            can_go_back: self.can_go_back(),
            finished: self.ending.as_ref().map(|e| FinishedView {
                outcome: e.outcome.clone(),
                outcome_label: e.outcome.as_ref().map(|o| program.outcome_label(o, lang)),
                reason: e.reason,
            }),
        }
    }

    /// The run as a record: path, answers, fields, outcome and timings.
    pub fn record(&self) -> RunRecord {
        let script = &self.program.script;
        let mut time_per_step: BTreeMap<String, u64> = BTreeMap::new();
        for v in &self.path {
            *time_per_step.entry(v.step.clone()).or_default() += v.spent_ms;
        }
        RunRecord {
            script_id: script.id.clone(),
            script_version: script.version,
            started_at: self.started_at,
            ended_at: self.ending.as_ref().map(|e| e.at),
            duration_ms: self.ending.as_ref().map(|e| e.at.since(self.started_at)),
            outcome: self.ending.as_ref().and_then(|e| e.outcome.clone()),
            end_reason: self.ending.as_ref().map(|e| e.reason),
            ended_at_step: self.ending.as_ref().map(|e| e.step.clone()),
            callback_at: self.ending.as_ref().and_then(|e| e.callback_at.clone()),
            path: self.path.clone(),
            answers: self
                .path
                .iter()
                .filter_map(|v| {
                    v.answer.as_ref().map(|a| AnswerRecord {
                        step: v.step.clone(),
                        answer: a.id.clone(),
                        label: a.label.clone(),
                        at: v.left_at.unwrap_or(v.entered_at),
                    })
                })
                .collect(),
            fields: script
                .fields
                .iter()
                .zip(&self.fields)
                .filter_map(|(f, v)| v.clone().map(|v| (f.id.clone(), v)))
                .collect(),
            tags: self.tags.clone(),
            unforeseen: self.unforeseen.clone(),
            notes: self.notes.clone(),
            time_per_step,
        }
    }
}

enum StepOrReturn {
    Step(StepRef),
    Return,
}

impl StepOrReturn {
    fn of(t: &Target) -> StepOrReturn {
        match t {
            Target::Step(r) => StepOrReturn::Step(*r),
            Target::Return => StepOrReturn::Return,
        }
    }
}

/// The current step as the interface shows it.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct StepView {
    /// The step's id.
    pub step: String,
    /// Its title.
    pub title: String,
    /// The objection the agent is in, by label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub objection: Option<String>,
    /// The line to say, filled in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub say: Option<Rendered>,
    /// The hint, filled in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<Rendered>,
    /// Fields to fill here, with their current values.
    pub fields: Vec<FieldView>,
    /// Answers with their hotkeys.
    pub answers: Vec<AnswerView>,
    /// Objections with their hotkeys.
    pub objections: Vec<ObjectionView>,
    /// The step has no answers: the agent continues.
    pub can_continue: bool,
    /// Back is possible.
    pub can_go_back: bool,
    /// Set once the run has ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished: Option<FinishedView>,
}

/// A field on the current step.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct FieldView {
    /// Id.
    pub id: String,
    /// Label.
    pub label: String,
    /// Type.
    #[serde(rename = "type")]
    pub kind: FieldType,
    /// Required.
    pub required: bool,
    /// Options of a choice.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<ChoiceOption>,
    /// Hint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// Current value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

/// An answer button.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct AnswerView {
    /// Id.
    pub id: String,
    /// Label, filled in.
    pub label: String,
    /// Hotkey.
    pub key: String,
}

/// An objection button.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ObjectionView {
    /// Id.
    pub id: String,
    /// Label.
    pub label: String,
    /// Hotkey.
    pub key: String,
}

/// How the run ended, for the interface.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct FinishedView {
    /// Outcome id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// Outcome label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome_label: Option<String>,
    /// Why it ended.
    pub reason: EndReason,
}

/// An answer in the record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AnswerRecord {
    /// The step.
    pub step: String,
    /// The answer's id.
    pub answer: String,
    /// Its label.
    pub label: String,
    /// When it was chosen.
    pub at: Timestamp,
}

/// A run as a whole: what the command line prints and what exports are made of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunRecord {
    /// The script's id.
    pub script_id: String,
    /// The exact version followed.
    pub script_version: u32,
    /// When the run began.
    pub started_at: Timestamp,
    /// When it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Timestamp>,
    /// How long it took, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// The outcome.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// Why it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<EndReason>,
    /// The step it ended at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at_step: Option<String>,
    /// When to call back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_at: Option<String>,
    /// The steps visited, in order (undone visits removed).
    pub path: Vec<Visit>,
    /// The answers chosen, in order.
    pub answers: Vec<AnswerRecord>,
    /// Collected field values.
    pub fields: BTreeMap<String, Value>,
    /// Tags added by answers.
    pub tags: Vec<String>,
    /// Answers the script did not foresee.
    pub unforeseen: Vec<Remark>,
    /// Notes.
    pub notes: Vec<Remark>,
    /// Milliseconds spent on each step.
    pub time_per_step: BTreeMap<String, u64>,
}

//! The linter: everything that makes a well-formed script wrong.
//!
//! Runs on a loaded [`Script`] (with its [`Source`] for exact positions inside strings,
//! when there is one). The rules are listed in [`Rule`] and in `docs/script-format.md`.

use std::collections::VecDeque;

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use crate::diag::{Diagnostic, Rule};
use crate::expr::{self, Namespace, VarType};
use crate::hotkey;
use crate::load::closest;
use crate::model::*;
use crate::syntax::{Loc, Pos, Source};
use crate::template::{self, Piece};
use crate::text;
use crate::text::Text;
use crate::value;

/// Lint a script. `source` makes positions inside strings exact.
pub fn lint(script: &Script, source: Option<&Source>) -> Vec<Diagnostic> {
    let mut l = Linter {
        script,
        source,
        diags: Vec::new(),
        ids: HashMap::default(),
        used_fields: HashSet::default(),
        fields: script
            .fields
            .iter()
            .rev()
            .map(|f| (f.id.as_str(), f))
            .collect(),
    };
    l.run();
    l.diags.sort_by_key(|d| (d.line, d.column));
    l.diags
}

/// Where a value was read: resolved only when a finding needs it (looking positions up
/// eagerly cost more than the checks themselves on large scripts).
#[derive(Clone, Copy)]
struct At<'s>(&'s SrcMap, &'s str);

impl At<'_> {
    fn loc(self) -> Loc {
        self.0.get(self.1)
    }
}

struct Linter<'a> {
    script: &'a Script,
    source: Option<&'a Source>,
    diags: Vec<Diagnostic>,
    /// Step id → where it lives (first occurrence).
    ids: HashMap<&'a str, StepRef>,
    used_fields: HashSet<&'a str>,
    /// Field id → the first field with that id.
    fields: HashMap<&'a str, &'a Field>,
}

/// A special category of personal data (policy §3.3) and words that ask for it.
struct Category {
    name: (&'static str, &'static str),
    /// Word prefixes; a leading `=` means the whole word.
    stems: &'static [&'static str],
}

const SPECIAL_CATEGORIES: &[Category] = &[
    Category {
        name: ("health", "здоровье"),
        stems: &[
            "health",
            "medical",
            "diagnos",
            "disease",
            "illness",
            "disabilit",
            "pregnan",
            "=hiv",
            "allerg",
            "medication",
            "здоров",
            "болезн",
            "заболеван",
            "диагноз",
            "инвалид",
            "беремен",
            "медицин",
            "лекарств",
            "=вич",
            "аллерг",
            "болеет",
            "болеете",
        ],
    },
    Category {
        name: (
            "religious or philosophical beliefs",
            "религиозные или философские убеждения",
        ),
        stems: &[
            "religio",
            "faith",
            "church",
            "belief",
            "philosophical",
            "религ",
            "вероиспов",
            "конфесс",
            "убежден",
            "верующ",
            "философск",
        ],
    },
    Category {
        name: ("political views", "политические взгляды"),
        stems: &["politic", "политич", "партийн"],
    },
    Category {
        name: (
            "race or ethnicity",
            "расовая или национальная принадлежность",
        ),
        stems: &[
            "ethnic",
            "=race",
            "racial",
            "nationality",
            "этнич",
            "национальн",
            "расов",
            "=раса",
            "=расы",
            "=расу",
        ],
    },
    Category {
        name: ("intimate life", "интимная жизнь"),
        stems: &[
            "sexual",
            "intimate",
            "orientation",
            "интимн",
            "сексуал",
            "ориентац",
        ],
    },
];

fn special_category(text: &str) -> Option<&'static Category> {
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    SPECIAL_CATEGORIES.iter().find(|cat| {
        cat.stems.iter().any(|stem| match stem.strip_prefix('=') {
            Some(whole) => words.contains(&whole),
            None => words.iter().any(|w| w.starts_with(stem)),
        })
    })
}

/// Words in a field's id or label that say it holds personal data.
const PERSONAL_WORDS: &[&str] = &[
    "name",
    "surname",
    "phone",
    "email",
    "mail",
    "address",
    "birth",
    "passport",
    "snils",
    "inn",
    "имя",
    "фамил",
    "отчеств",
    "телефон",
    "почт",
    "адрес",
    "рожден",
    "паспорт",
    "снилс",
    "инн",
];

fn id_ok(id: &str, dots: bool) -> bool {
    let mut chars = id.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (dots && matches!(c, '-' | '.')))
}

impl<'a> Linter<'a> {
    fn field(&self, id: &str) -> Option<&'a Field> {
        self.fields.get(id).copied()
    }

    fn pos(&self, loc: Loc, needle: &str) -> Pos {
        match self.source {
            Some(src) => src.locate(&loc, needle),
            None => loc.pos,
        }
    }

    fn error(&mut self, loc: Loc, rule: Rule, message: Text) {
        self.diags.push(Diagnostic::error(loc.pos, rule, message));
    }

    fn error_at(&mut self, pos: Pos, rule: Rule, message: Text) {
        self.diags.push(Diagnostic::error(pos, rule, message));
    }

    fn warning(&mut self, loc: Loc, rule: Rule, message: Text) {
        self.diags.push(Diagnostic::warning(loc.pos, rule, message));
    }

    fn run(&mut self) {
        let s = self.script;
        if !s.id.is_empty() && !id_ok(&s.id, true) {
            let id = &s.id;
            self.error(
                s.src.get("id"),
                Rule::BadId,
                text!("script id `{id}` may hold only Latin letters, digits, `_`, `-` and `.`, and start with a letter";
                      "id сценария `{id}` может содержать только латинские буквы, цифры, `_`, `-` и `.` и начинаться с буквы"),
            );
        }
        self.fields();
        self.index_steps();
        self.outcomes();
        self.objections();
        let objection_keys = hotkey::objection_keys(s);
        if !s.start.is_empty() {
            match self.ids.get(s.start.as_str()) {
                None => {
                    let t = &s.start;
                    self.error(
                        s.src.get("start"),
                        Rule::MissingTarget,
                        text!("`start` names the step `{t}`, which does not exist";
                              "`start` указывает на шаг `{t}`, которого нет"),
                    );
                }
                Some(r) if r.objection.is_some() => {
                    self.error(
                        s.src.get("start"),
                        Rule::MissingTarget,
                        Text::new(
                            "`start` must be a step of the main branch, not of an objection",
                            "`start` должен быть шагом основной ветки, а не возражения",
                        ),
                    );
                }
                Some(_) => {}
            }
        }
        for (r, step) in s.all_steps() {
            self.step(r, step, &objection_keys);
        }
        self.graph();
        self.unused_fields();
    }

    fn fields(&mut self) {
        let mut seen: HashSet<&str> = HashSet::default();
        for f in &self.script.fields {
            let id = f.id.as_str();
            if !id.is_empty() && !id_ok(id, false) {
                self.error(
                    f.src.get("id"),
                    Rule::BadId,
                    text!("field id `{id}` may hold only Latin letters, digits and `_`, and start with a letter";
                          "id поля `{id}` может содержать только латинские буквы, цифры и `_` и начинаться с буквы"),
                );
            }
            if !seen.insert(id) {
                self.error(
                    f.src.get("id"),
                    Rule::DuplicateId,
                    text!("another field already has the id `{id}`"; "поле с id `{id}` уже есть"),
                );
            }
            let kind = f.kind;
            if kind.has_options() {
                if f.options.is_empty() {
                    self.error(
                        f.src.get("type"),
                        Rule::BadField,
                        text!("a {kind} field needs `options`"; "полю типа {kind} нужны `options`"),
                    );
                }
                let mut values = HashSet::default();
                for o in &f.options {
                    if !values.insert(o.value()) {
                        let v = o.value();
                        let pos = self.pos(f.src.get("options"), v);
                        self.error_at(
                            pos,
                            Rule::DuplicateId,
                            text!("the option `{v}` is listed twice"; "вариант `{v}` указан дважды"),
                        );
                    }
                }
            } else if !f.options.is_empty() {
                self.error(
                    f.src.get("options"),
                    Rule::BadField,
                    text!("a {kind} field has no `options` (only choice and multichoice do)";
                          "у поля типа {kind} не бывает `options` (только у choice и multichoice)"),
                );
            }
            if let Some(p) = &f.pattern {
                if !matches!(kind, FieldType::Text | FieldType::Phone | FieldType::Email) {
                    self.error(
                        f.src.get("pattern"),
                        Rule::BadField,
                        text!("`pattern` applies to text, phone and email fields, not {kind}";
                              "`pattern` применим к полям text, phone и email, а не {kind}"),
                    );
                } else if let Err(e) = value::compile_pattern(p) {
                    let e = e.to_string();
                    let first = e.lines().last().unwrap_or("").trim().to_owned();
                    self.error(
                        f.src.get("pattern"),
                        Rule::BadField,
                        text!("`pattern` is not a valid regular expression: {first}";
                              "`pattern` — некорректное регулярное выражение: {first}"),
                    );
                }
            }
            if (f.min.is_some() || f.max.is_some())
                && !matches!(
                    kind,
                    FieldType::Number | FieldType::Text | FieldType::Multichoice
                )
            {
                let key = if f.min.is_some() { "min" } else { "max" };
                self.error(
                    f.src.get(key),
                    Rule::BadField,
                    text!("`min`/`max` apply to number, text and multichoice fields, not {kind}";
                          "`min`/`max` применимы к полям number, text и multichoice, а не {kind}"),
                );
            }
            if let (Some(min), Some(max)) = (f.min, f.max)
                && min > max
            {
                self.error(
                    f.src.get("max"),
                    Rule::BadField,
                    text!("`max` ({}) is less than `min` ({})", format_number(max), format_number(min);
                          "`max` ({}) меньше `min` ({})", format_number(max), format_number(min)),
                );
            }
            let basis = f
                .legal_basis
                .as_deref()
                .is_some_and(|b| !b.trim().is_empty());
            let (in_id, in_label) = (special_category(&f.id), special_category(&f.label));
            if let Some(cat) = in_id.or(in_label)
                && !basis
            {
                let (en, ru) = cat.name;
                let key = if in_id.is_some() { "id" } else { "label" };
                self.error(
                    f.src.get(key),
                    Rule::SpecialCategory,
                    text!("the field «{}» asks for a special category of personal data ({en}), which the policy forbids collecting (§3.3); remove it, or declare `legal_basis` if the law requires it", f.label;
                          "поле «{}» собирает специальную категорию персональных данных ({ru}), что политика запрещает (§3.3); уберите его или укажите `legal_basis`, если этого требует закон", f.label),
                );
            }
            let personal_type = matches!(kind, FieldType::Phone | FieldType::Email);
            let personal_name = [&f.id, &f.label].iter().any(|t| {
                let lower = t.to_lowercase();
                lower
                    .split(|c: char| !c.is_alphanumeric())
                    .any(|w| PERSONAL_WORDS.iter().any(|p| w.starts_with(p)))
            });
            if !f.personal && (personal_type || personal_name) {
                self.warning(
                    f.src.get("id"),
                    Rule::PersonalUnmarked,
                    text!("the field «{}» looks like personal data; mark it `personal: true` so it is protected and erased with the person", f.label;
                          "поле «{}» похоже на персональные данные; отметьте его `personal: true`, чтобы оно защищалось и удалялось вместе с человеком", f.label),
                );
            }
        }
    }

    fn index_steps(&mut self) {
        let script = self.script;
        for (r, step) in script.all_steps() {
            let id = step.id.as_str();
            if id.is_empty() {
                continue;
            }
            if id == RETURN {
                self.error(
                    step.src.get("id"),
                    Rule::BadId,
                    Text::new(
                        "`return` is reserved (it leaves an objection); name the step differently",
                        "`return` зарезервировано (выход из возражения); назовите шаг иначе",
                    ),
                );
                continue;
            }
            if !id_ok(id, true) {
                self.error(
                    step.src.get("id"),
                    Rule::BadId,
                    text!("step id `{id}` may hold only Latin letters, digits, `_`, `-` and `.`, and start with a letter";
                          "id шага `{id}` может содержать только латинские буквы, цифры, `_`, `-` и `.` и начинаться с буквы"),
                );
            }
            if let Some(first) = self.ids.get(id) {
                let line = script.step(*first).src.node.pos.line;
                self.error(
                    step.src.get("id"),
                    Rule::DuplicateId,
                    text!("another step already has the id `{id}` (line {line})";
                          "шаг с id `{id}` уже есть (строка {line})"),
                );
            } else {
                self.ids.insert(id, r);
            }
        }
    }

    fn outcomes(&mut self) {
        let mut seen = HashSet::default();
        for o in &self.script.outcomes {
            let id = o.id.as_str();
            if !id_ok(id, false) {
                self.error(
                    o.src.get("id"),
                    Rule::BadId,
                    text!("outcome id `{id}` may hold only Latin letters, digits and `_`";
                          "id исхода `{id}` может содержать только латинские буквы, цифры и `_`"),
                );
            }
            if Outcome::parse(id).builtin_label().is_some() {
                self.error(
                    o.src.get("id"),
                    Rule::DuplicateId,
                    text!("`{id}` is a built-in outcome; it needs no declaration";
                          "`{id}` — встроенный исход, объявлять его не нужно"),
                );
            } else if !seen.insert(id) {
                self.error(
                    o.src.get("id"),
                    Rule::DuplicateId,
                    text!("the outcome `{id}` is declared twice"; "исход `{id}` объявлен дважды"),
                );
            }
        }
    }

    fn objections(&mut self) {
        let mut ids = HashSet::default();
        let mut keys: HashMap<String, &str> = HashMap::default();
        for o in &self.script.objections {
            let id = o.id.as_str();
            if !id_ok(id, true) {
                self.error(
                    o.src.get("id"),
                    Rule::BadId,
                    text!("objection id `{id}` may hold only Latin letters, digits, `_`, `-` and `.`";
                          "id возражения `{id}` может содержать только латинские буквы, цифры, `_`, `-` и `.`"),
                );
            }
            if !ids.insert(id) {
                self.error(
                    o.src.get("id"),
                    Rule::DuplicateId,
                    text!("another objection already has the id `{id}`"; "возражение с id `{id}` уже есть"),
                );
            }
            if o.steps.is_empty() {
                self.error(
                    o.src.get("steps"),
                    Rule::DeadEnd,
                    text!("the objection `{id}` has no steps"; "у возражения `{id}` нет шагов"),
                );
            }
            if let Some(k) = &o.key {
                if !hotkey::is_valid(k) {
                    self.bad_key(o.src.get("key"), k);
                } else if let Some(other) = keys.insert(hotkey::normalise(k), id) {
                    let k = hotkey::normalise(k);
                    self.error(
                        o.src.get("key"),
                        Rule::DuplicateHotkey,
                        text!("the objections `{other}` and `{id}` share the key {k}";
                              "у возражений `{other}` и `{id}` одна клавиша {k}"),
                    );
                }
            }
        }
        let assigned = hotkey::objection_keys(self.script);
        for (o, key) in self.script.objections.iter().zip(assigned) {
            if key.is_none() {
                self.error(
                    o.src.node,
                    Rule::BadHotkey,
                    Text::new(
                        "no F-key is left for this objection; give it a `key`",
                        "для этого возражения не осталось F-клавиши; задайте `key`",
                    ),
                );
            }
        }
    }

    fn bad_key(&mut self, loc: Loc, k: &str) {
        self.error(
            loc,
            Rule::BadHotkey,
            text!("`{k}` is not a hotkey; use 0–9, a letter, or F1–F12";
                  "`{k}` — не клавиша; используйте 0–9, букву или F1–F12"),
        );
    }

    fn lookup_var(&self, ns: Namespace, name: &str) -> Option<VarType<'a>> {
        let script = self.script;
        match ns {
            Namespace::Fields => script
                .field(name)
                .map(|f| VarType::Field(f.kind, f.options.as_slice())),
            Namespace::Contact => (CONTACT_VARIABLES.contains(&name)
                || script.variables.contact.iter().any(|v| v == name))
            .then_some(VarType::Text),
            Namespace::Agent => (AGENT_VARIABLES.contains(&name)
                || script.variables.agent.iter().any(|v| v == name))
            .then_some(VarType::Text),
        }
    }

    fn placeholders(&mut self, text: &'a str, at: At<'_>) {
        match template::parse(text) {
            Err(e) => {
                let pos = self.pos(at.loc(), &e.token);
                self.error_at(pos, Rule::UnknownPlaceholder, e.message);
            }
            Ok(pieces) => {
                for piece in pieces {
                    let Piece::Var(p) = piece else { continue };
                    if p.ns == Namespace::Fields {
                        self.used_fields.insert(p.name);
                    }
                    if self.lookup_var(p.ns, p.name).is_none() {
                        let pos = self.pos(at.loc(), p.raw);
                        let raw = p.raw;
                        let message = match p.ns {
                            Namespace::Fields => text!(
                                "`{raw}` names no field of this script";
                                "`{raw}`: в сценарии нет такого поля"),
                            Namespace::Contact => text!(
                                "`{raw}` is not a known contact variable; declare it under `variables: contact:`";
                                "`{raw}` — неизвестная переменная контакта; объявите её в `variables: contact:`"),
                            Namespace::Agent => text!(
                                "`{raw}` is not a known agent variable; declare it under `variables: agent:`";
                                "`{raw}` — неизвестная переменная оператора; объявите её в `variables: agent:`"),
                        };
                        self.error_at(pos, Rule::UnknownPlaceholder, message);
                    }
                }
            }
        }
    }

    fn target(&mut self, from: StepRef, target: &str, at: At<'_>) {
        if target == RETURN {
            if from.objection.is_none() {
                let pos = self.pos(at.loc(), target);
                self.error_at(
                    pos,
                    Rule::MissingTarget,
                    Text::new(
                        "`return` only leaves an objection; this step is in the main branch",
                        "`return` выводит только из возражения, а этот шаг в основной ветке",
                    ),
                );
            }
            return;
        }
        match self.ids.get(target).copied() {
            None => {
                let pos = self.pos(at.loc(), target);
                let hint = closest(target, self.ids.keys().copied());
                self.error_at(
                    pos,
                    Rule::MissingTarget,
                    match hint {
                        Some(h) => text!("there is no step `{target}`; did you mean `{h}`?";
                                         "шага `{target}` нет; может быть, `{h}`?"),
                        None => text!("there is no step `{target}`"; "шага `{target}` нет"),
                    },
                );
            }
            Some(to) if to.objection.is_some() && to.objection != from.objection => {
                let pos = self.pos(at.loc(), target);
                let o = &self.script.objections[to.objection.unwrap_or_default()].id;
                self.error_at(
                    pos,
                    Rule::MissingTarget,
                    text!("`{target}` belongs to the objection `{o}`; objections are opened by their key, not by `next`";
                          "`{target}` относится к возражению `{o}`; возражения открываются своей клавишей, а не через `next`"),
                );
            }
            Some(_) => {}
        }
    }

    fn next(&mut self, from: StepRef, next: &'a Next, at: At<'_>) {
        match next {
            Next::Goto(t) => self.target(from, t, at),
            Next::Branches(branches) => {
                if branches.is_empty() {
                    self.error(
                        at.loc(),
                        Rule::BadCondition,
                        Text::new("`next` has no branches", "в `next` нет ни одной ветки"),
                    );
                }
                for (i, b) in branches.iter().enumerate() {
                    self.target(from, &b.goto, At(&b.src, "goto"));
                    let last = i + 1 == branches.len();
                    match &b.condition {
                        None if !last => self.error(
                            b.src.node,
                            Rule::BadCondition,
                            Text::new(
                                "a branch without `if` is the default and must come last; the branches after it are never taken",
                                "ветка без `if` — ветка по умолчанию и должна быть последней; ветки после неё не сработают",
                            ),
                        ),
                        None => {}
                        Some(c) => {
                            if last {
                                self.error(
                                    b.src.node,
                                    Rule::BadCondition,
                                    Text::new(
                                        "the last branch needs no `if`: it is the default when no condition holds",
                                        "последней должна быть ветка без `if` — на случай, если ни одно условие не выполнилось",
                                    ),
                                );
                            }
                            self.condition(c, At(&b.src, "if"));
                        }
                    }
                }
            }
        }
    }

    fn condition(&mut self, c: &'a str, at: At<'_>) {
        let result = expr::parse(c).and_then(|e| {
            collect_refs(&e, &mut |ns, name| {
                if ns == Namespace::Fields
                    && let Some(f) = self.field(name)
                {
                    self.used_fields.insert(f.id.as_str());
                }
            });
            expr::check(&e, c, &|ns, name| self.lookup_var(ns, name))
        });
        if let Err(e) = result {
            let pos = if e.token.is_empty() {
                at.loc().pos
            } else {
                self.pos(at.loc(), &e.token)
            };
            let m = e.message;
            self.error_at(
                pos,
                Rule::BadCondition,
                text!("condition `{c}`: {}", m.en; "условие `{c}`: {}", m.ru),
            );
        }
    }

    fn step(&mut self, r: StepRef, step: &'a Step, objection_keys: &[Option<String>]) {
        let src = &step.src;
        let id = step.id.as_str();
        for key in ["say", "hint", "title"] {
            let text = match key {
                "say" => step.say.as_deref(),
                "hint" => step.hint.as_deref(),
                _ => step.title.as_deref(),
            };
            if let Some(t) = text {
                self.placeholders(t, At(src, key));
            }
        }
        let mut listed = HashSet::default();
        for f in &step.fields {
            if self.field(f).is_none() {
                let pos = self.pos(src.get("fields"), f);
                self.error_at(
                    pos,
                    Rule::UnknownField,
                    text!("the step lists the field `{f}`, which the script does not declare";
                          "шаг ссылается на поле `{f}`, которого нет в сценарии"),
                );
            } else {
                self.used_fields.insert(f);
            }
            if !listed.insert(f) {
                let pos = self.pos(src.get("fields"), f);
                self.error_at(
                    pos,
                    Rule::DuplicateId,
                    text!("the field `{f}` is listed twice"; "поле `{f}` указано дважды"),
                );
            }
        }
        if let Some(outcome) = &step.outcome {
            if !step.answers.is_empty() || step.next.is_some() {
                self.error(
                    src.get("outcome"),
                    Rule::TerminalWithExits,
                    text!("the step `{id}` has an outcome, so the run ends there; its answers and `next` would never be used";
                          "у шага `{id}` есть исход — на нём разговор заканчивается; ответы и `next` не сработают"),
                );
            }
            if outcome.builtin_label().is_none()
                && !self
                    .script
                    .outcomes
                    .iter()
                    .any(|o| o.id == outcome.as_str())
            {
                let o = outcome.as_str();
                self.error(
                    src.get("outcome"),
                    Rule::BadOutcome,
                    text!("unknown outcome `{o}`; use a built-in one (success, refusal, callback, no_answer, wrong_number, no_decision_maker) or declare it under `outcomes`";
                          "неизвестный исход `{o}`; используйте встроенный (success, refusal, callback, no_answer, wrong_number, no_decision_maker) или объявите его в `outcomes`"),
                );
            }
        } else if step.answers.is_empty() && step.next.is_none() {
            self.error(
                src.node,
                Rule::DeadEnd,
                text!("the step `{id}` has no answers, no `next` and no `outcome`: the agent would be stuck";
                      "у шага `{id}` нет ни ответов, ни `next`, ни `outcome` — оператор застрянет"),
            );
        }
        if let Some(cb) = &step.callback {
            if step.outcome.is_none() {
                self.error(
                    src.get("callback"),
                    Rule::BadOutcome,
                    Text::new(
                        "`callback` belongs on a terminal step (one with an `outcome`)",
                        "`callback` ставится на завершающий шаг (с `outcome`)",
                    ),
                );
            }
            match self.field(&cb.at) {
                Some(f) if matches!(f.kind, FieldType::Date | FieldType::Datetime) => {
                    self.used_fields.insert(f.id.as_str());
                }
                Some(f) => {
                    let (at, kind) = (&cb.at, f.kind);
                    self.error(
                        cb.src.get("at"),
                        Rule::BadOutcome,
                        text!("`callback.at` must name a date or datetime field; `{at}` is {kind}";
                              "`callback.at` должен указывать на поле date или datetime; `{at}` — {kind}"),
                    );
                }
                None => {
                    let at = &cb.at;
                    self.error(
                        cb.src.get("at"),
                        Rule::UnknownField,
                        text!("`callback.at` names the field `{at}`, which the script does not declare";
                              "`callback.at` указывает на поле `{at}`, которого нет в сценарии"),
                    );
                }
            }
        }
        if let Some(next) = &step.next {
            self.next(r, next, At(src, "next"));
        }
        self.answers(r, step, objection_keys);
    }

    fn answers(&mut self, r: StepRef, step: &'a Step, objection_keys: &[Option<String>]) {
        let keys = hotkey::answer_keys(step, objection_keys);
        let mut ids = HashSet::default();
        let mut seen_keys: HashMap<String, usize> = HashMap::default();
        for (i, (answer, key)) in step.answers.iter().zip(&keys).enumerate() {
            let src = &answer.src;
            let aid = hotkey::answer_id(step, i);
            if !ids.insert(aid.clone()) {
                self.error(
                    src.get("id"),
                    Rule::DuplicateId,
                    text!("another answer of this step has the id `{aid}`";
                          "у этого шага уже есть ответ с id `{aid}`"),
                );
            }
            self.placeholders(&answer.label, At(src, "label"));
            match (&answer.key, key) {
                (Some(k), _) if !hotkey::is_valid(k) => self.bad_key(src.get("key"), k),
                (_, None) => self.error(
                    src.node,
                    Rule::BadHotkey,
                    Text::new(
                        "no digit key is left for this answer; give it a `key`",
                        "для этого ответа не осталось цифровой клавиши; задайте `key`",
                    ),
                ),
                (_, Some(k)) => {
                    if let Some(prev) = seen_keys.insert(k.clone(), i) {
                        let (a, b) = (&step.answers[prev].label, &answer.label);
                        self.error(
                            src.get("key"),
                            Rule::DuplicateHotkey,
                            text!("the answers «{a}» and «{b}» share the key {k}";
                                  "у ответов «{a}» и «{b}» одна клавиша {k}"),
                        );
                    }
                    if let Some(o) = objection_keys
                        .iter()
                        .position(|ok| ok.as_deref() == Some(k.as_str()))
                    {
                        let ol = &self.script.objections[o].label;
                        self.error(
                            src.get("key"),
                            Rule::DuplicateHotkey,
                            text!("the key {k} already opens the objection «{ol}»";
                                  "клавиша {k} уже открывает возражение «{ol}»"),
                        );
                    }
                }
            }
            match &answer.next {
                Some(next) => self.next(r, next, At(src, "next")),
                None if step.next.is_none() && step.outcome.is_none() => self.error(
                    src.node,
                    Rule::DeadEnd,
                    text!("the answer «{}» has no `next`, and its step has no `next` to fall back on", answer.label;
                          "у ответа «{}» нет `next`, и у шага нет `next` по умолчанию", answer.label),
                ),
                None => {}
            }
            for (field_id, v) in &answer.set {
                let loc = src.get(&format!("set.{field_id}"));
                let Some(field) = self.field(field_id) else {
                    self.error(
                        loc,
                        Rule::UnknownField,
                        text!("`set` names the field `{field_id}`, which the script does not declare";
                              "`set` задаёт поле `{field_id}`, которого нет в сценарии"),
                    );
                    continue;
                };
                self.used_fields.insert(field.id.as_str());
                let pattern = field
                    .pattern
                    .as_deref()
                    .and_then(|p| value::compile_pattern(p).ok());
                if let Err(e) = value::validate(field, pattern.as_ref(), v) {
                    let m = e.message(&field.label, field.kind);
                    self.error(
                        loc,
                        Rule::SetType,
                        text!("`set` gives `{field_id}` a value it cannot hold: {}", m.en;
                              "`set` даёт полю `{field_id}` недопустимое значение: {}", m.ru),
                    );
                }
            }
        }
    }

    /// Every step's successors, for reachability and exits.
    fn successors(&self, step: &'a Step) -> Vec<&'a str> {
        let mut out: Vec<&str> = step.next.iter().flat_map(Next::targets).collect();
        for a in &step.answers {
            match &a.next {
                Some(n) => out.extend(n.targets()),
                None => out.extend(step.next.iter().flat_map(Next::targets)),
            }
        }
        out
    }

    fn graph(&mut self) {
        let script = self.script;
        let refs: Vec<(StepRef, &Step)> = script.all_steps().collect();
        let index: HashMap<StepRef, usize> =
            refs.iter().enumerate().map(|(i, (r, _))| (*r, i)).collect();
        let n = refs.len();
        // Edges, following only what the linter accepts (no jumps into objections).
        let mut succ: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut exits = vec![false; n];
        for (i, (r, step)) in refs.iter().enumerate() {
            exits[i] = step.is_terminal();
            for t in self.successors(step) {
                if t == RETURN {
                    exits[i] |= r.objection.is_some();
                    continue;
                }
                if let Some(to) = self.ids.get(t)
                    && (to.objection.is_none() || to.objection == r.objection)
                {
                    succ[i].push(index[to]);
                }
            }
        }
        // Reachability from the start and from each objection's first step.
        let mut reached = vec![false; n];
        let mut queue: VecDeque<usize> = VecDeque::new();
        if let Some(r) = self.ids.get(script.start.as_str()) {
            queue.push_back(index[r]);
        }
        for o in 0..script.objections.len() {
            if !script.objections[o].steps.is_empty() {
                queue.push_back(
                    index[&StepRef {
                        objection: Some(o),
                        index: 0,
                    }],
                );
            }
        }
        while let Some(i) = queue.pop_front() {
            if std::mem::replace(&mut reached[i], true) {
                continue;
            }
            queue.extend(succ[i].iter().copied().filter(|&j| !reached[j]));
        }
        // Which steps can get to an exit: walk the edges backwards from the exits.
        let mut pred: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, s) in succ.iter().enumerate() {
            for &j in s {
                pred[j].push(i);
            }
        }
        let mut escapes = vec![false; n];
        queue.extend((0..n).filter(|&i| exits[i]));
        while let Some(i) = queue.pop_front() {
            if std::mem::replace(&mut escapes[i], true) {
                continue;
            }
            queue.extend(pred[i].iter().copied().filter(|&j| !escapes[j]));
        }
        for (i, (r, step)) in refs.iter().enumerate() {
            // Unnamed and duplicate steps were reported already.
            if step.id.is_empty() || self.ids.get(step.id.as_str()) != Some(r) {
                continue;
            }
            let id = &step.id;
            if !reached[i] {
                self.error(
                    step.src.get("id"),
                    Rule::Unreachable,
                    text!("no path from `start` reaches the step `{id}`";
                          "ни один путь от `start` не ведёт к шагу `{id}`"),
                );
            } else if !escapes[i] && (step.next.is_some() || !step.answers.is_empty()) {
                let how = if r.objection.is_some() {
                    Text::new(
                        "a terminal step or `return`",
                        "завершающему шагу или `return`",
                    )
                } else {
                    Text::new("a terminal step", "завершающему шагу")
                };
                self.error(
                    step.src.get("id"),
                    Rule::NoExit,
                    text!("no path leads from the step `{id}` to {}: the conversation would loop forever", how.en;
                          "от шага `{id}` нет пути к {} — разговор зациклится", how.ru),
                );
            }
        }
    }

    fn unused_fields(&mut self) {
        for f in &self.script.fields {
            if !f.id.is_empty() && !self.used_fields.contains(f.id.as_str()) {
                let id = &f.id;
                self.warning(
                    f.src.get("id"),
                    Rule::UnusedField,
                    text!("no step fills the field `{id}`, no answer sets it and nothing reads it";
                          "поле `{id}` не заполняется ни на одном шаге, не задаётся ответами и нигде не используется"),
                );
            }
        }
    }
}

fn collect_refs(e: &expr::Expr, f: &mut dyn FnMut(Namespace, &str)) {
    use expr::Expr;
    match e {
        Expr::Ref(ns, name, _) => f(*ns, name),
        Expr::Not(a) => collect_refs(a, f),
        Expr::And(a, b) | Expr::Or(a, b) | Expr::Cmp(_, a, b) | Expr::In(a, b) => {
            collect_refs(a, f);
            collect_refs(b, f);
        }
        Expr::Lit(_) | Expr::List(_) => {}
    }
}

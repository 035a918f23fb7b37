//! Positioned nodes → the script model, reporting every shape problem with its position.
//!
//! The loader is lenient in what it keeps and strict in what it reports: a bad key or
//! value is reported and left out, and the rest of the script is still read, so one typo
//! does not hide every other finding. The semantic checks live in [`crate::lint`].

use std::collections::{BTreeMap, HashMap};

use crate::diag::{Diagnostic, Rule};
use crate::model::*;
use crate::syntax::{self, Dialect, Loc, Node, NodeKind, Source, SyntaxError};
use crate::text;
use crate::text::Text;

/// The result of reading a script file.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The script, unless the text could not be parsed at all.
    pub script: Option<Script>,
    /// Problems found while reading (the linter adds its own).
    pub diagnostics: Vec<Diagnostic>,
    /// The source, for exact positions inside strings.
    pub source: Option<Source>,
    /// Set when the input is not a readable text at all (binary, too large).
    pub unreadable: Option<SyntaxError>,
}

/// Read a script from bytes in the given dialect.
pub fn load_bytes(bytes: &[u8], dialect: Dialect) -> Loaded {
    match Source::from_bytes(bytes) {
        Ok(source) => load_source(source, dialect),
        Err(e) => Loaded {
            script: None,
            diagnostics: vec![syntax_diag(&e)],
            source: None,
            unreadable: Some(e),
        },
    }
}

/// Read a script from text in the given dialect.
pub fn load_str(text: &str, dialect: Dialect) -> Loaded {
    load_bytes(text.as_bytes(), dialect)
}

fn syntax_diag(e: &SyntaxError) -> Diagnostic {
    Diagnostic::error(e.pos(), Rule::Syntax, e.message())
}

fn load_source(source: Source, dialect: Dialect) -> Loaded {
    let root = match syntax::parse(&source, dialect) {
        Ok(root) => root,
        Err(e) => {
            return Loaded {
                script: None,
                diagnostics: vec![syntax_diag(&e)],
                source: Some(source),
                unreadable: None,
            };
        }
    };
    let mut reader = Reader::default();
    let script = reader.script(&root);
    Loaded {
        script,
        diagnostics: reader.diags,
        source: Some(source),
        unreadable: None,
    }
}

#[derive(Clone, Copy)]
enum Elem {
    Script,
    Variables,
    Field,
    Option,
    Step,
    Answer,
    Branch,
    Objection,
    Outcome,
    Callback,
}

impl Elem {
    fn name(self) -> Text {
        match self {
            Elem::Script => Text::new("the script", "сценарии"),
            Elem::Variables => Text::new("`variables`", "`variables`"),
            Elem::Field => Text::new("a field", "поле"),
            Elem::Option => Text::new("an option", "варианте"),
            Elem::Step => Text::new("a step", "шаге"),
            Elem::Answer => Text::new("an answer", "ответе"),
            Elem::Branch => Text::new("a branch", "ветке"),
            Elem::Objection => Text::new("an objection", "возражении"),
            Elem::Outcome => Text::new("an outcome", "исходе"),
            Elem::Callback => Text::new("`callback`", "`callback`"),
        }
    }

    fn keys(self) -> &'static [&'static str] {
        match self {
            Elem::Script => &[
                "format",
                "id",
                "name",
                "version",
                "locale",
                "description",
                "start",
                "variables",
                "fields",
                "steps",
                "objections",
                "outcomes",
            ],
            Elem::Variables => &["contact", "agent"],
            Elem::Field => &[
                "id",
                "label",
                "type",
                "required",
                "options",
                "personal",
                "pattern",
                "min",
                "max",
                "hint",
                "legal_basis",
            ],
            Elem::Option => &["value", "label"],
            Elem::Step => &[
                "id", "title", "say", "hint", "fields", "answers", "next", "outcome", "callback",
            ],
            Elem::Answer => &["id", "label", "key", "next", "set", "tags"],
            Elem::Branch => &["if", "goto"],
            Elem::Objection => &["id", "label", "key", "steps"],
            Elem::Outcome => &["id", "label"],
            Elem::Callback => &["at"],
        }
    }
}

/// A map node checked against the keys its element allows.
struct Obj<'n> {
    elem: Elem,
    loc: Loc,
    entries: Vec<(&'n str, &'n Node)>,
    src: SrcMap,
}

impl<'n> Obj<'n> {
    fn get(&mut self, key: &'static str) -> Option<&'n Node> {
        let node = self
            .entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)?;
        self.src.set(key, node.loc);
        Some(node)
    }
}

#[derive(Default)]
struct Reader {
    diags: Vec<Diagnostic>,
    field_types: HashMap<String, FieldType>,
}

impl Reader {
    fn error(&mut self, loc: Loc, rule: Rule, message: Text) {
        self.diags.push(Diagnostic::error(loc.pos, rule, message));
    }

    fn obj<'n>(&mut self, node: &'n Node, elem: Elem) -> Option<Obj<'n>> {
        let NodeKind::Map(items) = &node.kind else {
            let (name, shape) = (elem.name(), node.shape());
            self.error(
                node.loc,
                Rule::Type,
                text!("expected a map for {}, found {}", name.en, shape.en;
                      "ожидался словарь ({}), найдено: {}", name.ru, shape.ru),
            );
            return None;
        };
        let mut entries: Vec<(&'n str, &'n Node)> = Vec::with_capacity(items.len());
        for (k, v) in items {
            let NodeKind::Scalar { text: key, .. } = &k.kind else {
                self.error(
                    k.loc,
                    Rule::Type,
                    Text::new(
                        "a key must be a plain word, not a list or a map",
                        "ключ должен быть словом, а не списком или словарём",
                    ),
                );
                continue;
            };
            if entries.iter().any(|(e, _)| *e == key) {
                self.error(
                    k.loc,
                    Rule::DuplicateId,
                    text!("the key `{key}` is repeated"; "ключ `{key}` повторяется"),
                );
                continue;
            }
            if !elem.keys().contains(&key.as_str()) {
                let name = elem.name();
                let hint = closest(key, elem.keys().iter().copied());
                if key.contains(char::is_whitespace) || !key.is_ascii() {
                    // `{ label: Yes, please }` splits the text at the comma.
                    self.error(
                        k.loc,
                        Rule::UnknownKey,
                        text!("unknown key `{key}` in {}: a text with a comma inside `{{ ... }}` must be in quotes", name.en;
                              "неизвестный ключ `{key}` в {}: текст с запятой внутри `{{ ... }}` нужно взять в кавычки", name.ru),
                    );
                    continue;
                }
                self.error(
                    k.loc,
                    Rule::UnknownKey,
                    match hint {
                        Some(s) => text!(
                            "unknown key `{key}` in {}; did you mean `{s}`?", name.en;
                            "неизвестный ключ `{key}` в {}; может быть, `{s}`?", name.ru),
                        None => text!(
                            "unknown key `{key}` in {}; allowed: {}", name.en, elem.keys().join(", ");
                            "неизвестный ключ `{key}` в {}; допустимы: {}", name.ru, elem.keys().join(", ")),
                    },
                );
                continue;
            }
            entries.push((key.as_str(), v));
        }
        Some(Obj {
            elem,
            loc: node.loc,
            entries,
            src: SrcMap::at(node.loc),
        })
    }

    fn missing(&mut self, obj: &Obj<'_>, key: &str) {
        let name = obj.elem.name();
        self.error(
            obj.loc,
            Rule::MissingKey,
            text!("{} needs the key `{key}`", capitalise(&name.en);
                  "в {} нужен ключ `{key}`", name.ru),
        );
    }

    /// A scalar as text (any plain scalar is accepted as its text: `key: 1` is "1").
    fn scalar<'n>(&mut self, node: &'n Node, key: &str) -> Option<&'n str> {
        match &node.kind {
            NodeKind::Scalar { text, .. } if !node.is_null() => Some(text),
            _ => {
                let shape = node.shape();
                self.error(
                    node.loc,
                    Rule::Type,
                    text!("`{key}` must be a text, found {}", shape.en;
                          "`{key}` должно быть текстом, найдено: {}", shape.ru),
                );
                None
            }
        }
    }

    fn string(&mut self, obj: &mut Obj<'_>, key: &'static str) -> Option<String> {
        let node = obj.get(key)?;
        self.scalar(node, key).map(str::to_owned)
    }

    fn required_string(&mut self, obj: &mut Obj<'_>, key: &'static str) -> String {
        match obj.get(key) {
            Some(node) => self.scalar(node, key).unwrap_or_default().to_owned(),
            None => {
                self.missing(obj, key);
                String::new()
            }
        }
    }

    fn bool(&mut self, obj: &mut Obj<'_>, key: &'static str) -> bool {
        let Some(node) = obj.get(key) else {
            return false;
        };
        match &node.kind {
            NodeKind::Scalar { text, plain: true } if text == "true" => true,
            NodeKind::Scalar { text, plain: true } if text == "false" => false,
            _ => {
                self.error(
                    node.loc,
                    Rule::Type,
                    text!("`{key}` must be true or false"; "`{key}` должно быть true или false"),
                );
                false
            }
        }
    }

    fn number(&mut self, obj: &mut Obj<'_>, key: &'static str) -> Option<f64> {
        let node = obj.get(key)?;
        match &node.kind {
            NodeKind::Scalar { text, plain: true } => match parse_number(text) {
                Some(n) => Some(n),
                None => {
                    self.error(
                        node.loc,
                        Rule::Type,
                        text!("`{key}` must be a number, found `{text}`";
                              "`{key}` должно быть числом, найдено `{text}`"),
                    );
                    None
                }
            },
            _ => {
                self.error(
                    node.loc,
                    Rule::Type,
                    text!("`{key}` must be a number"; "`{key}` должно быть числом"),
                );
                None
            }
        }
    }

    fn list<'n>(&mut self, obj: &mut Obj<'n>, key: &'static str) -> &'n [Node] {
        let Some(node) = obj.get(key) else {
            return &[];
        };
        match &node.kind {
            NodeKind::Seq(items) => items,
            _ if node.is_null() => &[],
            _ => {
                let shape = node.shape();
                self.error(
                    node.loc,
                    Rule::Type,
                    text!("`{key}` must be a list, found {}", shape.en;
                          "`{key}` должно быть списком, найдено: {}", shape.ru),
                );
                &[]
            }
        }
    }

    fn strings(&mut self, obj: &mut Obj<'_>, key: &'static str) -> Vec<String> {
        let items = self.list(obj, key);
        items
            .iter()
            .filter_map(|n| self.scalar(n, key).map(str::to_owned))
            .collect()
    }

    fn script(&mut self, root: &Node) -> Option<Script> {
        let mut obj = self.obj(root, Elem::Script)?;
        let format = match obj.get("format") {
            Some(node) => self.scalar(node, "format").unwrap_or_default().to_owned(),
            None => {
                self.error(
                    obj.loc,
                    Rule::Format,
                    text!("the script needs `format: {FORMAT}` at the top";
                          "в начале сценария нужен ключ `format: {FORMAT}`"),
                );
                String::new()
            }
        };
        if !format.is_empty() && format != FORMAT {
            let loc = obj.src.get("format");
            let newer = format
                .strip_prefix("callhelper-script/")
                .and_then(|v| v.parse::<u32>().ok())
                .is_some_and(|v| v > 1);
            self.error(
                loc,
                Rule::Format,
                if newer {
                    text!("`{format}` is a newer format than this CallHelper reads ({FORMAT}); update CallHelper";
                          "`{format}` новее формата, который читает эта версия CallHelper ({FORMAT}); обновите CallHelper")
                } else {
                    text!("unknown format `{format}`; expected `{FORMAT}`";
                          "неизвестный формат `{format}`; ожидался `{FORMAT}`")
                },
            );
        }
        let id = self.required_string(&mut obj, "id");
        let name = self.required_string(&mut obj, "name");
        let version = match obj.get("version") {
            Some(node) => match &node.kind {
                NodeKind::Scalar { text, plain: true } => match text.parse::<u32>() {
                    Ok(v) if v > 0 => v,
                    _ => {
                        self.error(
                            node.loc,
                            Rule::Type,
                            text!("`version` must be a whole number from 1, found `{text}`";
                                  "`version` должно быть целым числом от 1, найдено `{text}`"),
                        );
                        0
                    }
                },
                _ => {
                    self.error(
                        node.loc,
                        Rule::Type,
                        Text::new(
                            "`version` must be a whole number from 1",
                            "`version` должно быть целым числом от 1",
                        ),
                    );
                    0
                }
            },
            None => {
                self.missing(&obj, "version");
                0
            }
        };
        let locale = self.required_string(&mut obj, "locale");
        let description = self.string(&mut obj, "description");
        let start = self.required_string(&mut obj, "start");
        let variables = match obj.get("variables") {
            Some(node) => self.variables(node),
            None => Variables::default(),
        };
        let fields: Vec<Field> = self
            .list(&mut obj, "fields")
            .iter()
            .filter_map(|n| self.field(n))
            .collect();
        for f in &fields {
            self.field_types.insert(f.id.clone(), f.kind);
        }
        if obj.get("steps").is_none() {
            self.missing(&obj, "steps");
        }
        let steps = self.steps(&mut obj);
        let objections = self
            .list(&mut obj, "objections")
            .iter()
            .filter_map(|n| self.objection(n))
            .collect();
        let outcomes = self
            .list(&mut obj, "outcomes")
            .iter()
            .filter_map(|n| {
                let mut o = self.obj(n, Elem::Outcome)?;
                Some(OutcomeDecl {
                    id: self.required_string(&mut o, "id"),
                    label: self.required_string(&mut o, "label"),
                    src: o.src,
                })
            })
            .collect();
        Some(Script {
            format,
            id,
            name,
            version,
            locale,
            description,
            start,
            variables,
            fields,
            steps,
            objections,
            outcomes,
            src: obj.src,
        })
    }

    fn variables(&mut self, node: &Node) -> Variables {
        let Some(mut obj) = self.obj(node, Elem::Variables) else {
            return Variables::default();
        };
        Variables {
            contact: self.strings(&mut obj, "contact"),
            agent: self.strings(&mut obj, "agent"),
            src: obj.src,
        }
    }

    fn field(&mut self, node: &Node) -> Option<Field> {
        let mut obj = self.obj(node, Elem::Field)?;
        let id = self.required_string(&mut obj, "id");
        let label = self.required_string(&mut obj, "label");
        let kind = match obj.get("type") {
            Some(node) => {
                let name = self.scalar(node, "type").unwrap_or_default();
                match FieldType::parse(name) {
                    Some(t) => t,
                    None => {
                        let all: Vec<&str> = FieldType::ALL.iter().map(|t| t.as_str()).collect();
                        self.error(
                            node.loc,
                            Rule::Type,
                            text!("unknown field type `{name}`; one of: {}", all.join(", ");
                                  "неизвестный тип поля `{name}`; допустимы: {}", all.join(", ")),
                        );
                        FieldType::Text
                    }
                }
            }
            None => {
                self.missing(&obj, "type");
                FieldType::Text
            }
        };
        let required = self.bool(&mut obj, "required");
        let options = self
            .list(&mut obj, "options")
            .iter()
            .filter_map(|n| self.option(n))
            .collect();
        let personal = self.bool(&mut obj, "personal");
        let pattern = self.string(&mut obj, "pattern");
        let min = self.number(&mut obj, "min");
        let max = self.number(&mut obj, "max");
        let hint = self.string(&mut obj, "hint");
        let legal_basis = self.string(&mut obj, "legal_basis");
        Some(Field {
            id,
            label,
            kind,
            required,
            options,
            personal,
            pattern,
            min,
            max,
            hint,
            legal_basis,
            src: obj.src,
        })
    }

    fn option(&mut self, node: &Node) -> Option<ChoiceOption> {
        if let NodeKind::Scalar { .. } = node.kind {
            return self
                .scalar(node, "options")
                .map(|v| ChoiceOption::Value(v.to_owned()));
        }
        let mut obj = self.obj(node, Elem::Option)?;
        let value = self.required_string(&mut obj, "value");
        let label = self.required_string(&mut obj, "label");
        Some(ChoiceOption::Labeled { value, label })
    }

    fn steps(&mut self, obj: &mut Obj<'_>) -> Vec<Step> {
        self.list(obj, "steps")
            .iter()
            .filter_map(|n| self.step(n))
            .collect()
    }

    fn step(&mut self, node: &Node) -> Option<Step> {
        let mut obj = self.obj(node, Elem::Step)?;
        let id = self.required_string(&mut obj, "id");
        let title = self.string(&mut obj, "title");
        let say = self.string(&mut obj, "say");
        let hint = self.string(&mut obj, "hint");
        let fields = self.strings(&mut obj, "fields");
        let answers = self
            .list(&mut obj, "answers")
            .iter()
            .filter_map(|n| self.answer(n))
            .collect();
        let next = obj.get("next").and_then(|n| self.next(n));
        let outcome = self.string(&mut obj, "outcome").map(|o| Outcome::parse(&o));
        let callback = obj.get("callback").and_then(|n| {
            let mut c = self.obj(n, Elem::Callback)?;
            Some(CallbackSpec {
                at: self.required_string(&mut c, "at"),
                src: c.src,
            })
        });
        Some(Step {
            id,
            title,
            say,
            hint,
            fields,
            answers,
            next,
            outcome,
            callback,
            src: obj.src,
        })
    }

    fn next(&mut self, node: &Node) -> Option<Next> {
        match &node.kind {
            NodeKind::Scalar { .. } => self.scalar(node, "next").map(|t| Next::Goto(t.into())),
            NodeKind::Seq(items) => Some(Next::Branches(
                items
                    .iter()
                    .filter_map(|n| {
                        let mut b = self.obj(n, Elem::Branch)?;
                        let condition = self.string(&mut b, "if");
                        let goto = self.required_string(&mut b, "goto");
                        Some(Branch {
                            condition,
                            goto,
                            src: b.src,
                        })
                    })
                    .collect(),
            )),
            NodeKind::Map(_) => {
                self.error(
                    node.loc,
                    Rule::Type,
                    Text::new(
                        "`next` must be a step id or a list of branches (`- if: ...` / `goto: ...`)",
                        "`next` должен быть id шага или списком веток (`- if: ...` / `goto: ...`)",
                    ),
                );
                None
            }
        }
    }

    fn answer(&mut self, node: &Node) -> Option<Answer> {
        let mut obj = self.obj(node, Elem::Answer)?;
        let id = self.string(&mut obj, "id");
        let label = self.required_string(&mut obj, "label");
        let key = self.string(&mut obj, "key");
        let next = obj.get("next").and_then(|n| self.next(n));
        let mut set = BTreeMap::new();
        if let Some(node) = obj.get("set") {
            match &node.kind {
                NodeKind::Map(items) => {
                    for (k, v) in items {
                        let Some(field) = self.scalar(k, "set") else {
                            continue;
                        };
                        if set.contains_key(field) {
                            self.error(
                                k.loc,
                                Rule::DuplicateId,
                                text!("`set` names `{field}` twice"; "`set` задаёт `{field}` дважды"),
                            );
                            continue;
                        }
                        if let Some(value) = self.value(v, self.field_types.get(field).copied()) {
                            obj.src.set(format!("set.{field}"), v.loc);
                            set.insert(field.to_owned(), value);
                        }
                    }
                }
                _ if node.is_null() => {}
                _ => self.error(
                    node.loc,
                    Rule::Type,
                    Text::new(
                        "`set` must be a map of field id → value",
                        "`set` должен быть словарём: id поля → значение",
                    ),
                ),
            }
        }
        let tags = self.strings(&mut obj, "tags");
        Some(Answer {
            id,
            label,
            key,
            next,
            set,
            tags,
            src: obj.src,
        })
    }

    /// A `set` value, read as the field's type expects when the field is known.
    fn value(&mut self, node: &Node, kind: Option<FieldType>) -> Option<Value> {
        match &node.kind {
            NodeKind::Scalar { .. } if node.is_null() => {
                self.error(
                    node.loc,
                    Rule::SetType,
                    Text::new(
                        "a `set` value cannot be empty",
                        "значение в `set` не может быть пустым",
                    ),
                );
                None
            }
            NodeKind::Scalar { text, plain } => Some(match kind {
                Some(FieldType::Number) | None if *plain && parse_number(text).is_some() => {
                    Value::Number(parse_number(text).unwrap_or_default())
                }
                Some(FieldType::Boolean) | None
                    if *plain && (text == "true" || text == "false") =>
                {
                    Value::Bool(text == "true")
                }
                Some(FieldType::Multichoice) => Value::List(vec![text.clone()]),
                _ => Value::Text(text.clone()),
            }),
            NodeKind::Seq(items) => Some(Value::List(
                items
                    .iter()
                    .filter_map(|n| self.scalar(n, "set").map(str::to_owned))
                    .collect(),
            )),
            NodeKind::Map(_) => {
                self.error(
                    node.loc,
                    Rule::SetType,
                    Text::new(
                        "a `set` value must be a text, a number, true/false or a list",
                        "значение в `set` должно быть текстом, числом, true/false или списком",
                    ),
                );
                None
            }
        }
    }

    fn objection(&mut self, node: &Node) -> Option<Objection> {
        let mut obj = self.obj(node, Elem::Objection)?;
        let id = self.required_string(&mut obj, "id");
        let label = self.required_string(&mut obj, "label");
        let key = self.string(&mut obj, "key");
        if obj.get("steps").is_none() {
            self.missing(&obj, "steps");
        }
        let steps = self.steps(&mut obj);
        Some(Objection {
            id,
            label,
            key,
            steps,
            src: obj.src,
        })
    }
}

/// Parse a number as written in a file or typed by an agent: `12`, `-3.5`, `2,5`.
pub fn parse_number(text: &str) -> Option<f64> {
    let t = text.trim();
    if t.is_empty()
        || !t
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b',' | b'e' | b'E'))
    {
        return None;
    }
    let n: f64 = t.replace(',', ".").parse().ok()?;
    n.is_finite().then_some(n)
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The candidate closest to a misspelt word (edit distance at most 2), for "did you mean".
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

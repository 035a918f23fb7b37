//! Text → a tree of positioned nodes.
//!
//! Scripts are YAML or JSON; JSON is read by the same YAML 1.2 parser (after a strict JSON
//! syntax check, so a `.json` file is not silently accepted with YAML-only syntax). Every
//! node keeps where it came from, so the loader and the linter can say `line:column`.
//! Hostile input is bounded here: size, nesting depth, and the number of nodes that
//! aliases may expand to.

use std::borrow::Cow;
use std::fmt;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use crate::text::Text;

/// The largest script file accepted, in bytes. A 5,000-step script is about 2 MB.
pub const MAX_SOURCE_BYTES: usize = 16 * 1024 * 1024;
/// The deepest nesting of lists and maps accepted (a script needs about 8).
pub const MAX_DEPTH: usize = 64;
/// The most nodes a document may hold after aliases are expanded.
pub const MAX_NODES: usize = 2_000_000;

/// A position in a source text: 1-based line, 1-based column (in characters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    /// Line, from 1. Zero means "no source position" (a script built in memory).
    pub line: u32,
    /// Column in characters, from 1.
    pub col: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line.max(1), self.col.max(1))
    }
}

/// Where a node sits in the source: its start, and the character range it covers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Loc {
    /// The first character of the node.
    pub pos: Pos,
    /// Character offsets of the node's text (start inclusive, end exclusive).
    pub start: usize,
    /// See `start`.
    pub end: usize,
    /// The scalar was quoted or a block scalar (its text is not the source's text verbatim).
    pub styled: bool,
}

impl Loc {
    fn from_span(span: &Span, styled: bool) -> Loc {
        Loc {
            pos: Pos {
                line: span.start.line() as u32,
                col: span.start.col() as u32 + 1,
            },
            start: span.start.index(),
            end: span.end.index(),
            styled,
        }
    }
}

/// A parsed node.
#[derive(Debug, Clone)]
pub struct Node {
    /// What the node holds.
    pub kind: NodeKind,
    /// Where it was read.
    pub loc: Loc,
}

/// The shape of a node. Scalars keep their text; their type is decided by what the
/// reader expects there (so `key: 1` is the hotkey "1", and `set: {age: 30}` a number).
#[derive(Debug, Clone)]
pub enum NodeKind {
    /// A scalar and whether it was written plain (unquoted, so `true`, `12` and `null` are
    /// not strings).
    Scalar {
        /// The scalar's text.
        text: String,
        /// Written without quotes or block indicators.
        plain: bool,
    },
    /// A list.
    Seq(Vec<Node>),
    /// A map, in source order (duplicates are kept for the loader to report).
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// A short English/Russian name of the node's shape, for messages.
    pub fn shape(&self) -> Text {
        match &self.kind {
            NodeKind::Scalar { plain: true, text } if is_null(text) => Text::new("null", "null"),
            NodeKind::Scalar { .. } => Text::new("a scalar", "значение"),
            NodeKind::Seq(_) => Text::new("a list", "список"),
            NodeKind::Map(_) => Text::new("a map", "словарь"),
        }
    }

    /// True for an explicit or empty null.
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, NodeKind::Scalar { plain: true, text } if is_null(text))
    }
}

pub(crate) fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

/// Why a text could not be turned into a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyntaxError {
    /// The file is larger than [`MAX_SOURCE_BYTES`].
    TooLarge {
        /// Its size in bytes.
        bytes: usize,
    },
    /// The bytes are not UTF-8 text.
    NotText {
        /// The offset of the first bad byte.
        byte: usize,
    },
    /// A YAML or JSON syntax error.
    Syntax {
        /// Where.
        pos: Pos,
        /// The parser's description (English).
        message: String,
    },
    /// Lists and maps nested deeper than [`MAX_DEPTH`].
    TooDeep {
        /// Where the limit was crossed.
        pos: Pos,
    },
    /// Aliases expand to more than [`MAX_NODES`] nodes.
    TooManyNodes {
        /// Where the limit was crossed.
        pos: Pos,
    },
    /// More than one YAML document in the file.
    SeveralDocuments {
        /// Where the second one starts.
        pos: Pos,
    },
    /// The file holds no document at all.
    Empty,
}

impl SyntaxError {
    /// Where the error is, when it has a position.
    pub fn pos(&self) -> Pos {
        match self {
            SyntaxError::Syntax { pos, .. }
            | SyntaxError::TooDeep { pos }
            | SyntaxError::TooManyNodes { pos }
            | SyntaxError::SeveralDocuments { pos } => *pos,
            SyntaxError::TooLarge { .. } | SyntaxError::NotText { .. } | SyntaxError::Empty => {
                Pos { line: 1, col: 1 }
            }
        }
    }

    /// True when the input is not a text document at all (too large, binary): the linter
    /// exits with "unreadable input" for these, not with a list of problems.
    pub fn is_unreadable(&self) -> bool {
        matches!(
            self,
            SyntaxError::TooLarge { .. } | SyntaxError::NotText { .. }
        )
    }

    /// The message in both languages.
    pub fn message(&self) -> Text {
        match self {
            SyntaxError::TooLarge { bytes } => Text::new(
                format!(
                    "the file is {:.1} MB; a script may be at most {} MB",
                    *bytes as f64 / 1e6,
                    MAX_SOURCE_BYTES / (1024 * 1024)
                ),
                format!(
                    "файл занимает {:.1} МБ; сценарий может быть не больше {} МБ",
                    *bytes as f64 / 1e6,
                    MAX_SOURCE_BYTES / (1024 * 1024)
                ),
            ),
            SyntaxError::NotText { byte } => Text::new(
                format!("not a text file: binary data at byte offset {byte}"),
                format!("это не текстовый файл: двоичные данные по смещению {byte}"),
            ),
            SyntaxError::Syntax { message, .. }
                if message.contains("mapping values are not allowed") =>
            {
                Text::new(
                    format!("syntax error: {message} (a text that holds `: ` must be in quotes)"),
                    format!(
                        "синтаксическая ошибка: {message} (текст с `: ` нужно взять в кавычки)"
                    ),
                )
            }
            SyntaxError::Syntax { message, .. } => Text::new(
                format!("syntax error: {message}"),
                format!("синтаксическая ошибка: {message}"),
            ),
            SyntaxError::TooDeep { .. } => Text::new(
                format!("lists and maps are nested deeper than {MAX_DEPTH} levels"),
                format!("списки и словари вложены глубже {MAX_DEPTH} уровней"),
            ),
            SyntaxError::TooManyNodes { .. } => Text::new(
                format!("aliases expand the document to more than {MAX_NODES} nodes"),
                format!("ссылки (aliases) раздувают документ больше чем до {MAX_NODES} узлов"),
            ),
            SyntaxError::SeveralDocuments { .. } => Text::new(
                "the file holds more than one YAML document; a script file holds one",
                "в файле больше одного YAML-документа; в файле сценария должен быть один",
            ),
            SyntaxError::Empty => Text::new("the file is empty", "файл пуст"),
        }
    }
}

/// The text of a script together with a table to turn character offsets into lines.
#[derive(Debug, Clone)]
pub struct Source {
    text: String,
    /// Byte offset of each line's start (index 0 is line 1).
    line_starts: Vec<usize>,
}

impl Source {
    /// Check the bytes are UTF-8 text of an acceptable size; drop a byte-order mark.
    pub fn from_bytes(bytes: &[u8]) -> Result<Source, SyntaxError> {
        if bytes.len() > MAX_SOURCE_BYTES {
            return Err(SyntaxError::TooLarge { bytes: bytes.len() });
        }
        // A NUL or other C0 control (bar tab, CR, LF) never belongs in a script, nor does
        // invalid UTF-8: report whichever binary byte comes first.
        let control = bytes
            .iter()
            .position(|&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r'));
        let text = match std::str::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => {
                let byte = control.map_or(e.valid_up_to(), |c| c.min(e.valid_up_to()));
                return Err(SyntaxError::NotText { byte });
            }
        };
        if let Some(byte) = control {
            return Err(SyntaxError::NotText { byte });
        }
        Ok(Source::new(text.strip_prefix('\u{feff}').unwrap_or(text)))
    }

    /// Wrap a text.
    pub fn new(text: &str) -> Source {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Source {
            text: text.to_owned(),
            line_starts,
        }
    }

    /// The whole text.
    pub fn text(&self) -> &str {
        &self.text
    }

    fn byte_of(&self, pos: Pos) -> Option<usize> {
        let start = *self.line_starts.get(pos.line.checked_sub(1)? as usize)?;
        let line = &self.text[start..];
        let skip = pos.col.saturating_sub(1) as usize;
        match line.char_indices().nth(skip) {
            Some((i, _)) => Some(start + i),
            None => Some(self.text.len()),
        }
    }

    fn pos_of_byte(&self, byte: usize) -> Pos {
        let line = self.line_starts.partition_point(|&s| s <= byte).max(1);
        let start = self.line_starts[line - 1];
        let col = self.text[start..byte].chars().count() + 1;
        Pos {
            line: line as u32,
            col: col as u32,
        }
    }

    /// Find `needle` inside the source range of `loc` and return its exact position, or
    /// the node's own position when the text is not there verbatim (escaped quotes).
    pub fn locate(&self, loc: &Loc, needle: &str) -> Pos {
        if needle.is_empty() || loc.pos.line == 0 {
            return loc.pos;
        }
        let Some(from) = self.byte_of(loc.pos) else {
            return loc.pos;
        };
        let span_chars = loc
            .end
            .saturating_sub(loc.start)
            .max(needle.chars().count());
        let to = self.text[from..]
            .char_indices()
            .nth(span_chars + 2)
            .map_or(self.text.len(), |(i, _)| from + i);
        match self.text[from..to].find(needle) {
            Some(i) => self.pos_of_byte(from + i),
            None => loc.pos,
        }
    }
}

/// How the text is written, which decides the strictness of the syntax check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// YAML 1.2.
    Yaml,
    /// JSON (checked strictly first, then read by the YAML parser for positions).
    Json,
}

impl Dialect {
    /// Decide from a file name: `.json` is JSON, everything else YAML.
    pub fn from_path(path: &str) -> Dialect {
        if path.to_ascii_lowercase().ends_with(".json") {
            Dialect::Json
        } else {
            Dialect::Yaml
        }
    }
}

/// Parse a source into its single document's root node.
pub fn parse(source: &Source, dialect: Dialect) -> Result<Node, SyntaxError> {
    if dialect == Dialect::Json {
        check_json(source)?;
    }
    let mut builder = Builder::default();
    let mut documents = 0;
    for item in Parser::new_from_str(source.text()) {
        let (event, span) = item.map_err(|e| {
            let pos = Pos {
                line: e.marker().line() as u32,
                col: e.marker().col() as u32 + 1,
            };
            // The scanner has its own (higher) limit on flow nesting; report it as ours.
            if e.info() == "recursion limit exceeded" {
                SyntaxError::TooDeep { pos }
            } else {
                SyntaxError::Syntax {
                    pos,
                    message: e.info().to_owned(),
                }
            }
        })?;
        if let Event::DocumentStart(_) = event {
            documents += 1;
            if documents > 1 {
                return Err(SyntaxError::SeveralDocuments {
                    pos: Loc::from_span(&span, false).pos,
                });
            }
        }
        builder.event(event, &span)?;
    }
    builder.root.ok_or(SyntaxError::Empty)
}

/// JSON must be JSON: YAML would accept comments, single quotes and trailing commas.
/// The check walks the text iteratively (serde_json recurses and has its own limit).
fn check_json(source: &Source) -> Result<(), SyntaxError> {
    let mut de = serde_json::Deserializer::from_str(source.text());
    // serde_json refuses nesting over 128 levels with a clear error rather than recursing.
    match serde::de::Deserialize::deserialize(&mut de).and_then(|serde::de::IgnoredAny| de.end()) {
        Ok(()) => Ok(()),
        Err(e) if e.to_string().contains("recursion limit") => Err(SyntaxError::TooDeep {
            pos: Pos {
                line: e.line() as u32,
                col: e.column() as u32,
            },
        }),
        Err(e) => {
            let full = e.to_string();
            let message = full
                .rsplit_once(" at line ")
                .map_or(full.as_str(), |(m, _)| m)
                .to_owned();
            Err(SyntaxError::Syntax {
                pos: Pos {
                    line: e.line().max(1) as u32,
                    col: e.column().max(1) as u32,
                },
                message,
            })
        }
    }
}

enum Open {
    Seq(Vec<Node>, Loc, usize),
    Map(Vec<(Node, Node)>, Option<Node>, Loc, usize),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Open>,
    anchors: Vec<(usize, Node)>,
    nodes: usize,
    root: Option<Node>,
}

impl Builder {
    fn event(&mut self, event: Event<'_>, span: &Span) -> Result<(), SyntaxError> {
        match event {
            Event::Scalar(text, style, anchor, _tag) => {
                let node = Node {
                    kind: NodeKind::Scalar {
                        text: text_of(text),
                        plain: style == ScalarStyle::Plain,
                    },
                    loc: Loc::from_span(span, style != ScalarStyle::Plain),
                };
                self.finish(node, anchor)
            }
            Event::SequenceStart(anchor, _) => {
                self.open(span)?;
                self.stack
                    .push(Open::Seq(Vec::new(), Loc::from_span(span, false), anchor));
                Ok(())
            }
            Event::MappingStart(anchor, _) => {
                self.open(span)?;
                self.stack.push(Open::Map(
                    Vec::new(),
                    None,
                    Loc::from_span(span, false),
                    anchor,
                ));
                Ok(())
            }
            Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                Some(Open::Seq(items, loc, anchor)) => self.finish(
                    Node {
                        kind: NodeKind::Seq(items),
                        loc,
                    },
                    anchor,
                ),
                Some(Open::Map(items, _, loc, anchor)) => self.finish(
                    Node {
                        kind: NodeKind::Map(items),
                        loc,
                    },
                    anchor,
                ),
                None => Ok(()),
            },
            Event::Alias(id) => {
                let Some(node) = self
                    .anchors
                    .iter()
                    .rev()
                    .find(|(a, _)| *a == id)
                    .map(|(_, n)| n.clone())
                else {
                    return Err(SyntaxError::Syntax {
                        pos: Loc::from_span(span, false).pos,
                        message: "alias to an unknown anchor".into(),
                    });
                };
                self.nodes += count(&node);
                if self.nodes > MAX_NODES {
                    return Err(SyntaxError::TooManyNodes {
                        pos: Loc::from_span(span, false).pos,
                    });
                }
                self.attach(node);
                Ok(())
            }
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart(_)
            | Event::DocumentEnd => Ok(()),
        }
    }

    fn open(&mut self, span: &Span) -> Result<(), SyntaxError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(SyntaxError::TooDeep {
                pos: Loc::from_span(span, false).pos,
            });
        }
        Ok(())
    }

    fn finish(&mut self, node: Node, anchor: usize) -> Result<(), SyntaxError> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(SyntaxError::TooManyNodes { pos: node.loc.pos });
        }
        if anchor != 0 {
            self.anchors.push((anchor, node.clone()));
        }
        self.attach(node);
        Ok(())
    }

    fn attach(&mut self, node: Node) {
        match self.stack.last_mut() {
            Some(Open::Seq(items, ..)) => items.push(node),
            Some(Open::Map(items, key, ..)) => match key.take() {
                Some(k) => items.push((k, node)),
                None => *key = Some(node),
            },
            None => self.root = Some(node),
        }
    }
}

fn text_of(text: Cow<'_, str>) -> String {
    text.into_owned()
}

fn count(node: &Node) -> usize {
    match &node.kind {
        NodeKind::Scalar { .. } => 1,
        NodeKind::Seq(items) => 1 + items.iter().map(count).sum::<usize>(),
        NodeKind::Map(items) => {
            1 + items
                .iter()
                .map(|(k, v)| count(k) + count(v))
                .sum::<usize>()
        }
    }
}

//! `{{placeholders}}` in the agent's lines: parsing, checking and filling in.
//!
//! A placeholder is `{{contact.x}}`, `{{agent.x}}` or `{{fields.x}}`, optionally with a
//! fallback text for when the value is missing: `{{contact.first_name | коллега}}`.

use serde::Serialize;

use crate::expr::Namespace;
use crate::text;
use crate::text::Text;

/// One placeholder in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholder<'a> {
    /// Which variables.
    pub ns: Namespace,
    /// The variable's name.
    pub name: &'a str,
    /// The fallback text, when given.
    pub fallback: Option<&'a str>,
    /// The whole `{{...}}` text.
    pub raw: &'a str,
}

/// A piece of a text: literal text or a placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Literal text.
    Text(&'a str),
    /// A placeholder.
    Var(Placeholder<'a>),
}

/// A malformed placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// What is wrong.
    pub message: Text,
    /// The offending text.
    pub token: String,
}

/// Split a text into literal pieces and placeholders.
pub fn parse(s: &str) -> Result<Vec<Piece<'_>>, TemplateError> {
    let mut pieces = Vec::new();
    let mut rest = s;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            pieces.push(Piece::Text(&rest[..open]));
        }
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            let token: String = rest[open..].chars().take(24).collect();
            return Err(TemplateError {
                message: Text::new(
                    "a placeholder `{{` is not closed with `}}`",
                    "подстановка `{{` не закрыта `}}`",
                ),
                token,
            });
        };
        let raw = &rest[open..open + 2 + close + 2];
        let inner = &after[..close];
        let (var, fallback) = match inner.split_once('|') {
            Some((v, f)) => (v.trim(), Some(f.trim())),
            None => (inner.trim(), None),
        };
        let bad = |message: Text| TemplateError {
            message,
            token: raw.to_owned(),
        };
        let Some((ns, name)) = var.split_once('.') else {
            return Err(bad(text!(
                "`{raw}` must name `contact.x`, `agent.x` or `fields.x`";
                "`{raw}` должна ссылаться на `contact.x`, `agent.x` или `fields.x`")));
        };
        let Some(ns) = Namespace::parse(ns) else {
            return Err(bad(text!(
                "`{raw}`: `{ns}` is not one of contact, agent, fields";
                "`{raw}`: `{ns}` — не contact, agent или fields")));
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(bad(text!(
                "`{raw}`: `{name}` is not a variable name";
                "`{raw}`: `{name}` — не имя переменной")));
        }
        pieces.push(Piece::Var(Placeholder {
            ns,
            name,
            fallback,
            raw,
        }));
        rest = &after[close + 2..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest));
    }
    Ok(pieces)
}

/// A piece of a filled-in line, for the interface to style missing values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Segment {
    /// The text to show.
    pub text: String,
    /// The placeholder this came from (`contact.name`), for filled-in pieces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub var: Option<String>,
    /// The value was missing: `text` is the fallback, or the placeholder in brackets.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub missing: bool,
}

/// A line with its placeholders filled in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Rendered {
    /// The whole text.
    pub text: String,
    /// The pieces.
    pub segments: Vec<Segment>,
}

/// Fill in a text; `lookup` gives a variable's value, or `None` when missing.
/// A malformed text (which the linter reports) is shown as it is.
pub fn render(s: &str, lookup: &dyn Fn(Namespace, &str) -> Option<String>) -> Rendered {
    let Ok(pieces) = parse(s) else {
        return Rendered {
            text: s.to_owned(),
            segments: vec![Segment {
                text: s.to_owned(),
                var: None,
                missing: false,
            }],
        };
    };
    let mut text = String::with_capacity(s.len());
    let mut segments = Vec::with_capacity(pieces.len());
    for piece in pieces {
        let seg = match piece {
            Piece::Text(t) => Segment {
                text: t.to_owned(),
                var: None,
                missing: false,
            },
            Piece::Var(p) => {
                let var = format!("{}.{}", p.ns.as_str(), p.name);
                match lookup(p.ns, p.name).filter(|v| !v.is_empty()) {
                    Some(v) => Segment {
                        text: v,
                        var: Some(var),
                        missing: false,
                    },
                    None => Segment {
                        text: p.fallback.map_or_else(|| format!("[{var}]"), str::to_owned),
                        var: Some(var),
                        missing: true,
                    },
                }
            }
        };
        text.push_str(&seg.text);
        segments.push(seg);
    }
    Rendered { text, segments }
}

//! The `if` expressions of conditional `next`: parsing, type checking and evaluation.
//!
//! ```text
//! expr    := or
//! or      := and (("or" | "||") and)*
//! and     := not (("and" | "&&") not)*
//! not     := ("not" | "!") not | compare
//! compare := operand (("==" | "!=" | "<" | "<=" | ">" | ">=") operand | "in" operand)?
//! operand := "fields." id | "contact." id | "agent." id | string | number
//!          | true | false | null | "[" literal ("," literal)* "]" | "(" expr ")"
//! ```
//!
//! A reference alone is true when the value is set and not false, zero or empty.
//! An unset field equals `null`; every ordering comparison with an unset field is false.

use std::fmt;

use crate::load::parse_number;
use crate::model::FieldType;
use crate::text;
use crate::text::Text;

/// The deepest nesting of parentheses and `not` accepted.
const MAX_NESTING: usize = 32;
/// The longest expression accepted, in bytes.
const MAX_LEN: usize = 2000;

/// Which set of variables a reference reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Namespace {
    /// Fields collected by the script.
    Fields,
    /// The contact being called.
    Contact,
    /// The agent.
    Agent,
}

impl Namespace {
    /// Parse `fields`, `contact` or `agent`.
    pub fn parse(s: &str) -> Option<Namespace> {
        match s {
            "fields" => Some(Namespace::Fields),
            "contact" => Some(Namespace::Contact),
            "agent" => Some(Namespace::Agent),
            _ => None,
        }
    }

    /// The name used in scripts.
    pub fn as_str(self) -> &'static str {
        match self {
            Namespace::Fields => "fields",
            Namespace::Contact => "contact",
            Namespace::Agent => "agent",
        }
    }
}

/// A literal value in an expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number.
    Number(f64),
    /// A quoted string.
    Str(String),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CmpOp {
    fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A literal.
    Lit(Literal),
    /// A list of literals.
    List(Vec<Literal>),
    /// A variable, with the offset of its text in the expression.
    Ref(Namespace, String, usize),
    /// Logical not.
    Not(Box<Expr>),
    /// Logical and.
    And(Box<Expr>, Box<Expr>),
    /// Logical or.
    Or(Box<Expr>, Box<Expr>),
    /// A comparison.
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    /// Membership: the left value is one of the right list's items.
    In(Box<Expr>, Box<Expr>),
}

/// A problem with an expression: what, and the text of the offending part (to locate it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError {
    /// The message.
    pub message: Text,
    /// Byte offset in the expression.
    pub offset: usize,
    /// The offending text, for finding the exact position in the file.
    pub token: String,
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message.en)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(f64),
    Op(&'static str),
    End,
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

impl Lexer<'_> {
    fn err(&self, at: usize, len: usize, message: Text) -> ExprError {
        let end = (at + len).min(self.src.len());
        let token = self.src.get(at..end).unwrap_or("").to_owned();
        ExprError {
            message,
            offset: at,
            token,
        }
    }

    fn next(&mut self) -> Result<(Tok, usize), ExprError> {
        let bytes = self.src.as_bytes();
        while self.pos < bytes.len() && bytes[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
        let start = self.pos;
        let Some(&c) = bytes.get(start) else {
            return Ok((Tok::End, start));
        };
        const OPS: [&str; 14] = [
            "==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "(", ")", "[", "]", ",",
        ];
        if let Some(op) = OPS.iter().find(|op| self.src[start..].starts_with(**op)) {
            self.pos += op.len();
            return Ok((Tok::Op(op), start));
        }
        if c == b'=' {
            return Err(self.err(
                start,
                1,
                Text::new(
                    "`=` is not a comparison; use `==`",
                    "`=` — не сравнение; пишите `==`",
                ),
            ));
        }
        if c == b'"' || c == b'\'' {
            let mut out = String::new();
            let mut chars = self.src[start + 1..].char_indices();
            while let Some((i, ch)) = chars.next() {
                match ch {
                    _ if ch as u32 == c as u32 => {
                        self.pos = start + 1 + i + 1;
                        return Ok((Tok::Str(out), start));
                    }
                    '\\' => match chars.next() {
                        Some((_, e)) => out.push(e),
                        None => break,
                    },
                    _ => out.push(ch),
                }
            }
            return Err(self.err(
                start,
                1,
                Text::new("a string is not closed", "строка не закрыта кавычкой"),
            ));
        }
        if c.is_ascii_digit() || (c == b'-' && bytes.get(start + 1).is_some_and(u8::is_ascii_digit))
        {
            let mut end = start + 1;
            while end < bytes.len() && (bytes[end].is_ascii_digit() || bytes[end] == b'.') {
                end += 1;
            }
            let text = &self.src[start..end];
            self.pos = end;
            return match parse_number(text) {
                Some(n) => Ok((Tok::Num(n), start)),
                None => Err(self.err(
                    start,
                    end - start,
                    text!("`{text}` is not a number"; "`{text}` — не число"),
                )),
            };
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            let mut end = start;
            while end < bytes.len()
                && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_' || bytes[end] == b'.')
            {
                end += 1;
            }
            self.pos = end;
            return Ok((Tok::Ident(self.src[start..end].to_owned()), start));
        }
        let ch = self.src[start..].chars().next().unwrap_or(' ');
        Err(self.err(
            start,
            ch.len_utf8(),
            text!("unexpected `{ch}`"; "неожиданный символ `{ch}`"),
        ))
    }
}

struct ExprParser<'a> {
    lexer: Lexer<'a>,
    tok: Tok,
    at: usize,
    depth: usize,
}

/// Parse an expression.
pub fn parse(src: &str) -> Result<Expr, ExprError> {
    if src.len() > MAX_LEN {
        return Err(ExprError {
            message: text!("the expression is longer than {MAX_LEN} characters";
                           "выражение длиннее {MAX_LEN} символов"),
            offset: 0,
            token: String::new(),
        });
    }
    let mut lexer = Lexer { src, pos: 0 };
    let (tok, at) = lexer.next()?;
    let mut p = ExprParser {
        lexer,
        tok,
        at,
        depth: 0,
    };
    if p.tok == Tok::End {
        return Err(p
            .lexer
            .err(0, 0, Text::new("the condition is empty", "условие пустое")));
    }
    let e = p.or()?;
    if p.tok != Tok::End {
        return Err(p.unexpected());
    }
    Ok(e)
}

impl ExprParser<'_> {
    fn bump(&mut self) -> Result<(), ExprError> {
        let (tok, at) = self.lexer.next()?;
        self.tok = tok;
        self.at = at;
        Ok(())
    }

    fn unexpected(&self) -> ExprError {
        let len = self.lexer.pos.saturating_sub(self.at).max(1);
        match &self.tok {
            Tok::End => self.lexer.err(
                self.at,
                0,
                Text::new("the condition ends too early", "условие обрывается"),
            ),
            _ => {
                let t = self
                    .lexer
                    .src
                    .get(self.at..self.at + len)
                    .unwrap_or("")
                    .to_owned();
                self.lexer
                    .err(self.at, len, text!("unexpected `{t}`"; "неожиданное `{t}`"))
            }
        }
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(&self.tok, Tok::Ident(i) if i == w)
    }

    fn is_op(&self, op: &str) -> bool {
        matches!(&self.tok, Tok::Op(o) if *o == op)
    }

    fn or(&mut self) -> Result<Expr, ExprError> {
        let mut left = self.and()?;
        while self.is_word("or") || self.is_op("||") {
            self.bump()?;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ExprError> {
        let mut left = self.not()?;
        while self.is_word("and") || self.is_op("&&") {
            self.bump()?;
            left = Expr::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn enter(&mut self) -> Result<(), ExprError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(self.lexer.err(
                self.at,
                1,
                text!("the condition is nested deeper than {MAX_NESTING} levels";
                      "условие вложено глубже {MAX_NESTING} уровней"),
            ));
        }
        Ok(())
    }

    fn not(&mut self) -> Result<Expr, ExprError> {
        if self.is_word("not") || self.is_op("!") {
            self.enter()?;
            self.bump()?;
            let inner = self.not()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.compare()
    }

    fn compare(&mut self) -> Result<Expr, ExprError> {
        let left = self.operand()?;
        let op = match &self.tok {
            Tok::Op("==") => CmpOp::Eq,
            Tok::Op("!=") => CmpOp::Ne,
            Tok::Op("<") => CmpOp::Lt,
            Tok::Op("<=") => CmpOp::Le,
            Tok::Op(">") => CmpOp::Gt,
            Tok::Op(">=") => CmpOp::Ge,
            Tok::Ident(w) if w == "in" => {
                self.bump()?;
                let right = self.operand()?;
                return Ok(Expr::In(Box::new(left), Box::new(right)));
            }
            _ => return Ok(left),
        };
        self.bump()?;
        let right = self.operand()?;
        Ok(Expr::Cmp(op, Box::new(left), Box::new(right)))
    }

    fn literal(&mut self) -> Result<Option<Literal>, ExprError> {
        let lit = match &self.tok {
            Tok::Str(s) => Literal::Str(s.clone()),
            Tok::Num(n) => Literal::Number(*n),
            Tok::Ident(w) if w == "true" => Literal::Bool(true),
            Tok::Ident(w) if w == "false" => Literal::Bool(false),
            Tok::Ident(w) if w == "null" => Literal::Null,
            _ => return Ok(None),
        };
        self.bump()?;
        Ok(Some(lit))
    }

    fn operand(&mut self) -> Result<Expr, ExprError> {
        if let Some(lit) = self.literal()? {
            return Ok(Expr::Lit(lit));
        }
        if self.is_op("(") {
            self.enter()?;
            self.bump()?;
            let e = self.or()?;
            if !self.is_op(")") {
                return Err(self.lexer.err(
                    self.at,
                    1,
                    Text::new("a `(` is not closed", "скобка `(` не закрыта"),
                ));
            }
            self.bump()?;
            self.depth -= 1;
            return Ok(e);
        }
        if self.is_op("[") {
            self.bump()?;
            let mut items = Vec::new();
            while !self.is_op("]") {
                match self.literal()? {
                    Some(l) => items.push(l),
                    None => return Err(self.unexpected()),
                }
                if self.is_op(",") {
                    self.bump()?;
                } else if !self.is_op("]") {
                    return Err(self.unexpected());
                }
            }
            self.bump()?;
            return Ok(Expr::List(items));
        }
        if let Tok::Ident(word) = &self.tok {
            let at = self.at;
            let word = word.clone();
            let Some((ns, name)) = word.split_once('.') else {
                return Err(self.lexer.err(
                    at,
                    word.len(),
                    text!("`{word}` is not a value; write `fields.{word}`, `contact.{word}` or a quoted \"{word}\"";
                          "`{word}` — не значение; пишите `fields.{word}`, `contact.{word}` или \"{word}\" в кавычках"),
                ));
            };
            let Some(ns) = Namespace::parse(ns) else {
                return Err(self.lexer.err(
                    at,
                    word.len(),
                    text!("`{ns}` is not one of fields, contact, agent"; "`{ns}` — не fields, contact или agent"),
                ));
            };
            if name.is_empty() || name.contains('.') {
                return Err(self.lexer.err(
                    at,
                    word.len(),
                    text!("`{word}` is not a variable name"; "`{word}` — не имя переменной"),
                ));
            }
            let name = name.to_owned();
            self.bump()?;
            return Ok(Expr::Ref(ns, name, at));
        }
        Err(self.unexpected())
    }
}

/// What the type checker knows about a variable.
#[derive(Debug, Clone, Copy)]
pub enum VarType<'a> {
    /// A script field of this type, with its options.
    Field(FieldType, &'a [crate::model::ChoiceOption]),
    /// A contact or agent variable (always text).
    Text,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Null,
    Bool,
    Num,
    Str,
    List,
}

impl Ty {
    fn name(self) -> Text {
        match self {
            Ty::Null => Text::new("null", "null"),
            Ty::Bool => Text::new("true/false", "да/нет"),
            Ty::Num => Text::new("a number", "число"),
            Ty::Str => Text::new("a text", "текст"),
            Ty::List => Text::new("a list", "список"),
        }
    }
}

/// Check that every reference exists and that comparisons compare like with like.
/// `lookup` says what a reference is, or `None` when it does not exist.
pub fn check<'a>(
    expr: &Expr,
    src: &str,
    lookup: &dyn Fn(Namespace, &str) -> Option<VarType<'a>>,
) -> Result<(), ExprError> {
    Checker { src, lookup }.ty(expr).map(|_| ())
}

struct Checker<'s, 'l, 'a> {
    src: &'s str,
    lookup: &'l dyn Fn(Namespace, &str) -> Option<VarType<'a>>,
}

impl<'a> Checker<'_, '_, 'a> {
    fn var(&self, ns: Namespace, name: &str, at: usize) -> Result<VarType<'a>, ExprError> {
        (self.lookup)(ns, name).ok_or_else(|| {
            let full = format!("{}.{name}", ns.as_str());
            ExprError {
                message: match ns {
                    Namespace::Fields => {
                        text!("unknown field `{name}`"; "неизвестное поле `{name}`")
                    }
                    _ => text!("unknown variable `{full}`"; "неизвестная переменная `{full}`"),
                },
                offset: at,
                token: full,
            }
        })
    }

    fn ty(&self, e: &Expr) -> Result<Ty, ExprError> {
        Ok(match e {
            Expr::Lit(Literal::Null) => Ty::Null,
            Expr::Lit(Literal::Bool(_)) => Ty::Bool,
            Expr::Lit(Literal::Number(_)) => Ty::Num,
            Expr::Lit(Literal::Str(_)) => Ty::Str,
            Expr::List(_) => Ty::List,
            Expr::Ref(ns, name, at) => match self.var(*ns, name, *at)? {
                VarType::Text => Ty::Str,
                VarType::Field(t, _) => field_ty(t),
            },
            Expr::Not(inner) => {
                self.ty(inner)?;
                Ty::Bool
            }
            Expr::And(a, b) | Expr::Or(a, b) => {
                self.ty(a)?;
                self.ty(b)?;
                Ty::Bool
            }
            Expr::Cmp(op, a, b) => {
                let (ta, tb) = (self.ty(a)?, self.ty(b)?);
                let ordering = !matches!(op, CmpOp::Eq | CmpOp::Ne);
                if ta != tb && ta != Ty::Null && tb != Ty::Null {
                    let (na, nb) = (ta.name(), tb.name());
                    return Err(self.err(
                        e,
                        text!("`{}` compares {} with {}", op.as_str(), na.en, nb.en;
                              "`{}` сравнивает {} с {}", op.as_str(), na.ru, nb.ru),
                    ));
                }
                if ordering
                    && (matches!(ta, Ty::Bool | Ty::List) || ta == Ty::Null || tb == Ty::Null)
                {
                    let n = ta.name();
                    return Err(self.err(
                        e,
                        text!("`{}` cannot order {}", op.as_str(), n.en;
                              "`{}` не упорядочивает {}", op.as_str(), n.ru),
                    ));
                }
                if ordering && self.is_choice(a) {
                    return Err(self.err(
                        e,
                        Text::new(
                            "choices have no order; compare them with `==`, `!=` or `in`",
                            "у вариантов нет порядка; сравнивайте их через `==`, `!=` или `in`",
                        ),
                    ));
                }
                self.check_options(a, b)?;
                self.check_options(b, a)?;
                Ty::Bool
            }
            Expr::In(a, b) => {
                let (ta, tb) = (self.ty(a)?, self.ty(b)?);
                if tb != Ty::List {
                    return Err(self.err(
                        e,
                        Text::new(
                            "`in` needs a list on its right: a multichoice field or `[\"a\", \"b\"]`",
                            "справа от `in` нужен список: поле multichoice или `[\"a\", \"b\"]`",
                        ),
                    ));
                }
                if matches!(ta, Ty::List | Ty::Null) {
                    return Err(self.err(
                        e,
                        Text::new(
                            "the left side of `in` must be a single value",
                            "слева от `in` должно быть одно значение",
                        ),
                    ));
                }
                self.check_options(a, b)?;
                self.check_options(b, a)?;
                Ty::Bool
            }
        })
    }

    fn is_choice(&self, e: &Expr) -> bool {
        matches!(e, Expr::Ref(ns, name, _)
            if matches!((self.lookup)(*ns, name), Some(VarType::Field(FieldType::Choice, _))))
    }

    /// A choice field compared with literals: every literal must be one of its options.
    fn check_options(&self, field: &Expr, other: &Expr) -> Result<(), ExprError> {
        let Expr::Ref(ns, name, _) = field else {
            return Ok(());
        };
        let Some(VarType::Field(kind, options)) = (self.lookup)(*ns, name) else {
            return Ok(());
        };
        if !kind.has_options() {
            if matches!(kind, FieldType::Date | FieldType::Datetime) {
                for lit in literals(other) {
                    if let Literal::Str(s) = lit {
                        let ok = match kind {
                            FieldType::Date => crate::value::parse_date(s).is_some(),
                            _ => crate::value::parse_datetime(s).is_some(),
                        };
                        if !ok {
                            return Err(self.lit_err(
                                s,
                                text!("`{s}` is not a {} (`{}`)", kind, if kind == FieldType::Date { "YYYY-MM-DD" } else { "YYYY-MM-DDTHH:MM" };
                                      "`{s}` — не {} (`{}`)", if kind == FieldType::Date { "дата" } else { "дата и время" }, if kind == FieldType::Date { "ГГГГ-ММ-ДД" } else { "ГГГГ-ММ-ДДTЧЧ:ММ" }),
                            ));
                        }
                    }
                }
            }
            return Ok(());
        }
        for lit in literals(other) {
            if let Literal::Str(s) = lit
                && !options.iter().any(|o| o.value() == s)
            {
                let all: Vec<&str> = options.iter().map(|o| o.value()).collect();
                return Err(self.lit_err(
                    s,
                    text!("\"{s}\" is not an option of `{name}` ({})", all.join(", ");
                          "\"{s}\" нет среди вариантов поля `{name}` ({})", all.join(", ")),
                ));
            }
        }
        Ok(())
    }

    fn lit_err(&self, s: &str, message: Text) -> ExprError {
        let offset = self.src.find(s).unwrap_or(0);
        ExprError {
            message,
            offset,
            token: s.to_owned(),
        }
    }

    fn err(&self, e: &Expr, message: Text) -> ExprError {
        let offset = first_offset(e).unwrap_or(0);
        let token = self.src[offset..]
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_owned();
        ExprError {
            message,
            offset,
            token,
        }
    }
}

fn literals(e: &Expr) -> Vec<&Literal> {
    match e {
        Expr::Lit(l) => vec![l],
        Expr::List(items) => items.iter().collect(),
        _ => Vec::new(),
    }
}

fn first_offset(e: &Expr) -> Option<usize> {
    match e {
        Expr::Ref(_, _, at) => Some(*at),
        Expr::Not(a) => first_offset(a),
        Expr::And(a, b) | Expr::Or(a, b) | Expr::Cmp(_, a, b) | Expr::In(a, b) => {
            first_offset(a).or_else(|| first_offset(b))
        }
        Expr::Lit(_) | Expr::List(_) => None,
    }
}

fn field_ty(t: FieldType) -> Ty {
    match t {
        FieldType::Number => Ty::Num,
        FieldType::Boolean => Ty::Bool,
        FieldType::Multichoice => Ty::List,
        FieldType::Text
        | FieldType::Phone
        | FieldType::Email
        | FieldType::Date
        | FieldType::Datetime
        | FieldType::Choice => Ty::Str,
    }
}

/// A value seen by the evaluator.
#[derive(Debug, Clone, Copy)]
pub enum Operand<'a> {
    /// Unset.
    Null,
    /// true / false.
    Bool(bool),
    /// A number.
    Number(f64),
    /// A text.
    Str(&'a str),
    /// A list of texts.
    List(&'a [String]),
}

impl<'a> Operand<'a> {
    /// View a stored field value.
    pub fn of(v: Option<&'a crate::model::Value>) -> Operand<'a> {
        use crate::model::Value;
        match v {
            None => Operand::Null,
            Some(Value::Bool(b)) => Operand::Bool(*b),
            Some(Value::Number(n)) => Operand::Number(*n),
            Some(Value::Text(s)) => Operand::Str(s),
            Some(Value::List(l)) => Operand::List(l),
        }
    }

    fn truthy(self) -> bool {
        match self {
            Operand::Null => false,
            Operand::Bool(b) => b,
            Operand::Number(n) => n != 0.0,
            Operand::Str(s) => !s.is_empty(),
            Operand::List(l) => !l.is_empty(),
        }
    }
}

enum Val<'a> {
    One(Operand<'a>),
    Lits(&'a [Literal]),
}

fn lit(l: &Literal) -> Operand<'_> {
    match l {
        Literal::Null => Operand::Null,
        Literal::Bool(b) => Operand::Bool(*b),
        Literal::Number(n) => Operand::Number(*n),
        Literal::Str(s) => Operand::Str(s),
    }
}

/// Evaluate an expression; `lookup` gives the current value of a reference.
pub fn eval<'a>(expr: &'a Expr, lookup: &dyn Fn(Namespace, &str) -> Operand<'a>) -> bool {
    value(expr, lookup).truthy()
}

impl Val<'_> {
    fn truthy(&self) -> bool {
        match self {
            Val::One(o) => o.truthy(),
            Val::Lits(l) => !l.is_empty(),
        }
    }
}

fn value<'a>(e: &'a Expr, lookup: &dyn Fn(Namespace, &str) -> Operand<'a>) -> Val<'a> {
    let b = |x: bool| Val::One(Operand::Bool(x));
    match e {
        Expr::Lit(l) => Val::One(lit(l)),
        Expr::List(items) => Val::Lits(items),
        Expr::Ref(ns, name, _) => Val::One(lookup(*ns, name)),
        Expr::Not(a) => b(!value(a, lookup).truthy()),
        Expr::And(a, c) => b(value(a, lookup).truthy() && value(c, lookup).truthy()),
        Expr::Or(a, c) => b(value(a, lookup).truthy() || value(c, lookup).truthy()),
        Expr::Cmp(op, a, c) => {
            let (Val::One(x), Val::One(y)) = (value(a, lookup), value(c, lookup)) else {
                return b(false);
            };
            b(compare(*op, x, y))
        }
        Expr::In(a, c) => {
            let Val::One(x) = value(a, lookup) else {
                return b(false);
            };
            let found = match value(c, lookup) {
                Val::Lits(items) => items.iter().any(|l| equal(x, lit(l))),
                Val::One(Operand::List(items)) => items.iter().any(|s| equal(x, Operand::Str(s))),
                Val::One(_) => false,
            };
            b(found)
        }
    }
}

fn equal(a: Operand<'_>, b: Operand<'_>) -> bool {
    match (a, b) {
        (Operand::Null, Operand::Null) => true,
        (Operand::Bool(x), Operand::Bool(y)) => x == y,
        (Operand::Number(x), Operand::Number(y)) => x == y,
        (Operand::Str(x), Operand::Str(y)) => x == y,
        (Operand::List(x), Operand::List(y)) => x == y,
        _ => false,
    }
}

fn compare(op: CmpOp, a: Operand<'_>, b: Operand<'_>) -> bool {
    use std::cmp::Ordering;
    let ord = match (a, b) {
        (Operand::Number(x), Operand::Number(y)) => x.partial_cmp(&y),
        (Operand::Str(x), Operand::Str(y)) => Some(x.cmp(y)),
        _ => None,
    };
    match op {
        CmpOp::Eq => equal(a, b),
        CmpOp::Ne => !equal(a, b),
        CmpOp::Lt => ord == Some(Ordering::Less),
        CmpOp::Le => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
        CmpOp::Gt => ord == Some(Ordering::Greater),
        CmpOp::Ge => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
    }
}

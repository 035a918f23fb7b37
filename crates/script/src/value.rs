//! Field values: reading what an agent typed, and checking a value against its field.

use regex::Regex;

use crate::load::parse_number;
use crate::model::{Field, FieldType, Value, format_number};
use crate::text;
use crate::text::Text;

/// Why a value does not fit its field.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FieldError {
    /// The field is required and empty.
    Required,
    /// The value has the wrong type for the field (for example a list for a number).
    WrongType {
        /// The field's type.
        expected: FieldType,
    },
    /// Not a number.
    NotNumber,
    /// Below `min` (a number, a length or a count of choices).
    BelowMin {
        /// The limit.
        min: f64,
    },
    /// Above `max`.
    AboveMax {
        /// The limit.
        max: f64,
    },
    /// Does not match the field's pattern.
    Pattern,
    /// Not one of the options.
    NotOption {
        /// What was given.
        value: String,
        /// The allowed values.
        options: Vec<String>,
    },
    /// Not a date.
    BadDate,
    /// Not a date and time.
    BadDatetime,
    /// Not an e-mail address.
    BadEmail,
    /// Not a phone number.
    BadPhone,
    /// Not yes or no.
    NotBool,
}

impl FieldError {
    /// The message for the agent, naming the field by its label.
    pub fn message(&self, label: &str, kind: FieldType) -> Text {
        let l = label;
        let unit = |en: &str, ru: &str| match kind {
            FieldType::Text | FieldType::Phone | FieldType::Email => {
                Text::new(format!(" characters{en}"), format!(" символов{ru}"))
            }
            FieldType::Multichoice => Text::new(" choices", " вариантов"),
            _ => Text::new("", ""),
        };
        match self {
            FieldError::Required => text!("«{l}» must be filled in"; "поле «{l}» нужно заполнить"),
            FieldError::WrongType { expected } => {
                text!("«{l}» takes a value of type {expected}"; "поле «{l}» принимает значение типа {expected}")
            }
            FieldError::NotNumber => {
                text!("«{l}» must be a number"; "в поле «{l}» должно быть число")
            }
            FieldError::BelowMin { min } => {
                let u = unit("", "");
                let m = format_number(*min);
                text!("«{l}» must be at least {m}{}", u.en; "в поле «{l}» должно быть не меньше {m}{}", u.ru)
            }
            FieldError::AboveMax { max } => {
                let u = unit("", "");
                let m = format_number(*max);
                text!("«{l}» must be at most {m}{}", u.en; "в поле «{l}» должно быть не больше {m}{}", u.ru)
            }
            FieldError::Pattern => {
                text!("«{l}» is not in the expected form"; "поле «{l}» заполнено не в том формате")
            }
            FieldError::NotOption { value, options } => {
                let all = options.join(", ");
                text!("«{value}» is not an option of «{l}» ({all})"; "«{value}» нет среди вариантов поля «{l}» ({all})")
            }
            FieldError::BadDate => {
                text!("«{l}» must be a date such as 2026-03-31 or 31.03.2026"; "в поле «{l}» должна быть дата, например 31.03.2026")
            }
            FieldError::BadDatetime => text!(
                "«{l}» must be a date and time such as 2026-03-31 14:30";
                "в поле «{l}» должны быть дата и время, например 31.03.2026 14:30"),
            FieldError::BadEmail => {
                text!("«{l}» must be an e-mail address"; "в поле «{l}» должен быть адрес e-mail")
            }
            FieldError::BadPhone => text!(
                "«{l}» must be a phone number (5 to 15 digits, optionally with +)";
                "в поле «{l}» должен быть номер телефона (от 5 до 15 цифр, можно с +)"),
            FieldError::NotBool => {
                text!("«{l}» takes yes or no"; "поле «{l}» принимает «да» или «нет»")
            }
        }
    }
}

/// Read what an agent typed into a field. Empty input is `Ok(None)` (the field is cleared).
pub fn parse_input(
    field: &Field,
    pattern: Option<&Regex>,
    input: &str,
) -> Result<Option<Value>, FieldError> {
    let input = input.trim();
    if input.is_empty() {
        return Ok(None);
    }
    let value = match field.kind {
        FieldType::Number => {
            // People group digits with spaces: «200 000».
            let compact: String = input
                .chars()
                .filter(|c| !matches!(c, ' ' | '\u{a0}' | '\u{202f}'))
                .collect();
            Value::Number(parse_number(&compact).ok_or(FieldError::NotNumber)?)
        }
        FieldType::Boolean => Value::Bool(parse_bool(input).ok_or(FieldError::NotBool)?),
        FieldType::Date => Value::Text(parse_date(input).ok_or(FieldError::BadDate)?),
        FieldType::Datetime => Value::Text(parse_datetime(input).ok_or(FieldError::BadDatetime)?),
        FieldType::Phone => Value::Text(normalise_phone(input).ok_or(FieldError::BadPhone)?),
        FieldType::Email => Value::Text(input.to_owned()),
        FieldType::Text => Value::Text(input.to_owned()),
        FieldType::Choice => Value::Text(pick_option(field, input)?),
        FieldType::Multichoice => Value::List(
            input
                .split([',', ';'])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| pick_option(field, s))
                .collect::<Result<_, _>>()?,
        ),
    };
    validate(field, pattern, &value)?;
    Ok(Some(value))
}

/// Check a value against its field: type, options, limits and pattern.
pub fn validate(field: &Field, pattern: Option<&Regex>, value: &Value) -> Result<(), FieldError> {
    let wrong = || FieldError::WrongType {
        expected: field.kind,
    };
    let limits = |n: f64| {
        if let Some(min) = field.min
            && n < min
        {
            return Err(FieldError::BelowMin { min });
        }
        if let Some(max) = field.max
            && n > max
        {
            return Err(FieldError::AboveMax { max });
        }
        Ok(())
    };
    let matches = |s: &str| match pattern {
        Some(re) if !re.is_match(s) => Err(FieldError::Pattern),
        _ => Ok(()),
    };
    match (field.kind, value) {
        (FieldType::Number, Value::Number(n)) => limits(*n),
        (FieldType::Boolean, Value::Bool(_)) => Ok(()),
        (FieldType::Text, Value::Text(s)) => {
            limits(s.chars().count() as f64)?;
            matches(s)
        }
        (FieldType::Email, Value::Text(s)) => {
            if !is_email(s) {
                return Err(FieldError::BadEmail);
            }
            matches(s)
        }
        (FieldType::Phone, Value::Text(s)) => {
            if normalise_phone(s).as_deref() != Some(s.as_str()) {
                return Err(FieldError::BadPhone);
            }
            matches(s)
        }
        (FieldType::Date, Value::Text(s)) => match parse_date(s) {
            Some(d) if &d == s => Ok(()),
            _ => Err(FieldError::BadDate),
        },
        (FieldType::Datetime, Value::Text(s)) => match parse_datetime(s) {
            Some(d) if &d == s => Ok(()),
            _ => Err(FieldError::BadDatetime),
        },
        (FieldType::Choice, Value::Text(s)) => check_option(field, s),
        (FieldType::Multichoice, Value::List(items)) => {
            for s in items {
                check_option(field, s)?;
            }
            limits(items.len() as f64)
        }
        _ => Err(wrong()),
    }
}

fn check_option(field: &Field, value: &str) -> Result<(), FieldError> {
    if field.options.iter().any(|o| o.value() == value) {
        Ok(())
    } else {
        Err(FieldError::NotOption {
            value: value.to_owned(),
            options: field.options.iter().map(|o| o.value().to_owned()).collect(),
        })
    }
}

/// An option by value, by label (ignoring case) or by its 1-based number.
fn pick_option(field: &Field, input: &str) -> Result<String, FieldError> {
    let lower = input.to_lowercase();
    let by_number = input
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_sub(1))
        .and_then(|i| field.options.get(i));
    field
        .options
        .iter()
        .find(|o| o.value() == input)
        .or_else(|| {
            field
                .options
                .iter()
                .find(|o| o.label().to_lowercase() == lower)
        })
        .or(by_number)
        .map(|o| o.value().to_owned())
        .ok_or_else(|| FieldError::NotOption {
            value: input.to_owned(),
            options: field.options.iter().map(|o| o.value().to_owned()).collect(),
        })
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.to_lowercase().as_str() {
        "yes" | "y" | "true" | "1" | "да" | "д" | "+" => Some(true),
        "no" | "n" | "false" | "0" | "нет" | "н" | "-" => Some(false),
        _ => None,
    }
}

fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && domain.len() <= 255
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && !s.contains(char::is_whitespace)
        && !domain.contains('@')
}

/// A phone number with its separators removed: `+7 (912) 000-11-22` → `+79120001122`.
/// `None` when it is not 5–15 digits with an optional leading `+`.
pub fn normalise_phone(s: &str) -> Option<String> {
    let s = s.trim();
    let (plus, rest) = match s.strip_prefix('+') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let mut out = String::with_capacity(s.len());
    if plus {
        out.push('+');
    }
    for c in rest.chars() {
        match c {
            '0'..='9' => out.push(c),
            ' ' | '-' | '(' | ')' | '.' | '\u{a0}' => {}
            _ => return None,
        }
    }
    let digits = out.len() - usize::from(plus);
    (5..=15).contains(&digits).then_some(out)
}

/// A calendar date as `YYYY-MM-DD`, from `YYYY-MM-DD` or `DD.MM.YYYY`.
pub fn parse_date(s: &str) -> Option<String> {
    let s = s.trim();
    let (y, m, d) = if let Some((d, rest)) = s.split_once('.') {
        let (m, y) = rest.split_once('.')?;
        (y, m, d)
    } else {
        let mut it = s.splitn(3, '-');
        (it.next()?, it.next()?, it.next()?)
    };
    let num = |t: &str, len: std::ops::RangeInclusive<usize>| -> Option<u32> {
        (len.contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse().ok())
            .flatten()
    };
    let (y, m, d) = (num(y, 4..=4)?, num(m, 1..=2)?, num(d, 1..=2)?);
    (1..=12).contains(&m).then_some(())?;
    (1..=days_in_month(y, m)).contains(&d).then_some(())?;
    Some(format!("{y:04}-{m:02}-{d:02}"))
}

/// A date and time as `YYYY-MM-DDTHH:MM`, from that form (with `T` or a space, optional
/// seconds) or `DD.MM.YYYY HH:MM`.
pub fn parse_datetime(s: &str) -> Option<String> {
    let s = s.trim();
    let (date, time) = s.split_once(['T', ' '])?;
    let date = parse_date(date)?;
    let mut parts = time.trim().split(':');
    let h: u32 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    if let Some(sec) = parts.next() {
        let sec: u32 = sec.parse().ok()?;
        (sec < 60).then_some(())?;
    }
    if parts.next().is_some() || h > 23 || m > 59 {
        return None;
    }
    Some(format!("{date}T{h:02}:{m:02}"))
}

fn days_in_month(y: u32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Compile a field's pattern so that it must match the whole value.
pub fn compile_pattern(pattern: &str) -> Result<Regex, regex::Error> {
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(1 << 20)
        .build()
}

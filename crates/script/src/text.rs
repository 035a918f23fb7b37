//! User-facing text in the two interface languages.
//!
//! Every message the script crate produces for a person (linter findings, runner errors,
//! outcome names) is built once in English and Russian; the caller picks the language.

use std::fmt;

use serde::Serialize;

/// An interface language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// English.
    #[default]
    En,
    /// Russian.
    Ru,
}

impl Lang {
    /// Parse a language tag such as `ru`, `ru_RU.UTF-8`, `en-GB`; anything else is `None`.
    pub fn parse(tag: &str) -> Option<Lang> {
        let primary = tag
            .split(['_', '-', '.', '@'])
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        match primary.as_str() {
            "ru" => Some(Lang::Ru),
            "en" | "c" | "posix" => Some(Lang::En),
            _ => None,
        }
    }
}

/// A message in English and Russian.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Text {
    /// English.
    pub en: String,
    /// Russian.
    pub ru: String,
}

impl Text {
    /// Build a message from its two translations.
    pub fn new(en: impl Into<String>, ru: impl Into<String>) -> Text {
        Text {
            en: en.into(),
            ru: ru.into(),
        }
    }

    /// The message in `lang`.
    pub fn get(&self, lang: Lang) -> &str {
        match lang {
            Lang::En => &self.en,
            Lang::Ru => &self.ru,
        }
    }
}

impl fmt::Display for Text {
    /// English; use [`Text::get`] to choose.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.en)
    }
}

/// Build a [`Text`] from two `format!` argument lists: `text!("en {x}"; "ru {x}")`.
#[macro_export]
macro_rules! text {
    ($($en:expr),+ ; $($ru:expr),+ $(,)?) => {
        $crate::Text::new(format!($($en),+), format!($($ru),+))
    };
}

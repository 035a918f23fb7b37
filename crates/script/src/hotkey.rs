//! Hotkeys: which key picks which answer or opens which objection.
//!
//! Answers without an explicit `key` get the first free digit (`1`–`9`, then `0`);
//! objections without one get the first free F-key. Keys compare case-insensitively.

use crate::model::{Script, Step};

/// True for a key the format accepts: a digit, a letter, or `F1`–`F12`.
pub fn is_valid(key: &str) -> bool {
    let mut chars = key.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => c.is_ascii_alphanumeric(),
        _ => function_key(key).is_some(),
    }
}

/// The number of an F-key (`F1` → 1), if `key` is one.
pub fn function_key(key: &str) -> Option<u8> {
    let n: u8 = key.strip_prefix(['F', 'f'])?.parse().ok()?;
    (1..=12).contains(&n).then_some(n)
}

/// The comparable form of a key (`f1` → `F1`, `A` → `a`).
pub fn normalise(key: &str) -> String {
    match function_key(key) {
        Some(n) => format!("F{n}"),
        None => key.to_ascii_lowercase(),
    }
}

/// The effective key of each objection (`None` when all twelve F-keys are taken).
pub fn objection_keys(script: &Script) -> Vec<Option<String>> {
    let explicit: Vec<String> = script
        .objections
        .iter()
        .filter_map(|o| o.key.as_deref().map(normalise))
        .collect();
    let mut free = (1..=12)
        .map(|n| format!("F{n}"))
        .filter(|k| !explicit.contains(k));
    script
        .objections
        .iter()
        .map(|o| match &o.key {
            Some(k) => Some(normalise(k)),
            None => free.next(),
        })
        .collect()
}

/// The effective key of each answer of a step, given the keys objections hold.
/// `None` when no digit is left for an answer without a key.
pub fn answer_keys(step: &Step, reserved: &[Option<String>]) -> Vec<Option<String>> {
    let taken: Vec<String> = step
        .answers
        .iter()
        .filter_map(|a| a.key.as_deref().map(normalise))
        .chain(reserved.iter().flatten().cloned())
        .collect();
    let mut free = ('1'..='9')
        .chain(['0'])
        .map(String::from)
        .filter(|k| !taken.contains(k));
    step.answers
        .iter()
        .map(|a| match &a.key {
            Some(k) => Some(normalise(k)),
            None => free.next(),
        })
        .collect()
}

/// The effective id of an answer: its `id`, or its 1-based position.
pub fn answer_id(step: &Step, index: usize) -> String {
    step.answers[index]
        .id
        .clone()
        .unwrap_or_else(|| (index + 1).to_string())
}

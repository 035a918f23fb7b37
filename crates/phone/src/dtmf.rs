//! Sending DTMF: which digits are valid, how they travel, and the pacing between them.
//!
//! Digits are sent one at a time by the engine thread from this queue, so each one goes
//! with the method asked for and a fixed gap, whatever liblinphone's global settings are.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::call::CallId;

/// How DTMF digits travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DtmfMethod {
    /// In the RTP stream as telephone-events (RFC 4733, formerly RFC 2833).
    #[default]
    Rfc4733,
    /// As SIP INFO requests (`application/dtmf-relay`).
    SipInfo,
}

/// A digit string with something that is not a DTMF key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a DTMF key (use 0-9, *, #, A-D)")]
pub struct InvalidDigit(pub char);

/// Check a digit string, upper-casing `a`–`d`.
pub fn parse_digits(digits: &str) -> Result<Vec<char>, InvalidDigit> {
    digits
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c.to_ascii_uppercase() {
            d @ ('0'..='9' | '*' | '#' | 'A'..='D') => Ok(d),
            _ => Err(InvalidDigit(c)),
        })
        .collect()
}

/// Digits waiting to be sent, with the time the next one is due.
#[derive(Debug, Clone, Default)]
pub struct DtmfQueue {
    pending: VecDeque<(CallId, char, DtmfMethod)>,
    next_at: Option<Instant>,
}

/// The gap between two digits: long enough for any receiver to tell them apart.
pub const DIGIT_GAP: Duration = Duration::from_millis(250);

impl DtmfQueue {
    /// Queue digits for a call.
    pub fn push(&mut self, call: CallId, digits: &[char], method: DtmfMethod) {
        self.pending
            .extend(digits.iter().map(|d| (call, *d, method)));
    }

    /// The digit to send now, if one is due.
    pub fn due(&mut self, now: Instant) -> Option<(CallId, char, DtmfMethod)> {
        if self.next_at.is_some_and(|t| now < t) {
            return None;
        }
        let next = self.pending.pop_front()?;
        self.next_at = Some(now + DIGIT_GAP);
        Some(next)
    }

    /// Drop what is left for a call (it ended).
    pub fn forget(&mut self, call: CallId) {
        self.pending.retain(|(c, ..)| *c != call);
    }

    /// Whether digits are waiting.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_checked_and_normalised() {
        assert_eq!(
            parse_digits("12 3*#ab").unwrap(),
            ['1', '2', '3', '*', '#', 'A', 'B']
        );
        assert_eq!(parse_digits("1x"), Err(InvalidDigit('x')));
        assert_eq!(parse_digits("").unwrap(), Vec::<char>::new());
    }

    #[test]
    fn digits_go_out_one_per_gap_in_order() {
        let t = Instant::now();
        let mut q = DtmfQueue::default();
        q.push(CallId(1), &['1', '2'], DtmfMethod::SipInfo);
        q.push(CallId(2), &['9'], DtmfMethod::Rfc4733);
        assert_eq!(q.due(t), Some((CallId(1), '1', DtmfMethod::SipInfo)));
        assert_eq!(q.due(t + Duration::from_millis(100)), None);
        assert_eq!(
            q.due(t + DIGIT_GAP),
            Some((CallId(1), '2', DtmfMethod::SipInfo))
        );
        q.forget(CallId(2));
        assert!(q.is_empty());
        assert_eq!(q.due(t + 3 * DIGIT_GAP), None);
    }
}

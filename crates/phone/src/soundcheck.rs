//! The microphone and speaker test of the settings: what to check and how it ended.
//!
//! The microphone test captures from a sound device through liblinphone's recorder (the
//! same capture path as a call, without a call) and reports the level about ten times a
//! second ([`crate::Event::SoundLevel`]); the speaker test plays a test tone through a
//! sound device with liblinphone's local player. Either stops when asked, when its time
//! limit is reached, or when another test starts.

use std::time::Duration;

use serde::Serialize;

/// How often the microphone test reports the level.
pub const LEVEL_EVERY: Duration = Duration::from_millis(100);

/// The longest a test may run, whatever is asked.
pub const MAX_LIMIT: Duration = Duration::from_secs(60);

/// What to test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SoundCheckKind {
    /// Capture from a microphone and report its level.
    Microphone,
    /// Play a test tone through a speaker.
    Speaker,
}

/// A test to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoundCheck {
    /// Microphone or speaker.
    pub kind: SoundCheckKind,
    /// The device's id (as [`crate::AudioDevice::id`]); the device in use for the role
    /// when `None`.
    pub device: Option<String>,
    /// Stop after this long (at most [`MAX_LIMIT`]).
    pub limit: Duration,
}

/// Why a test stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SoundCheckEnd {
    /// It was asked to stop (or another test replaced it).
    Stopped,
    /// Its time limit was reached.
    TimeLimit,
    /// The device stopped delivering (or never delivered) sound.
    Failed,
}

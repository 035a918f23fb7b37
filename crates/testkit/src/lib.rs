//! Test support only: fixtures shared by the tests of several crates, used as a
//! `[dev-dependencies]` entry and never by the product's code.
//!
//! - [`pulse`]: a private PulseAudio server with a pipe microphone the test feeds and a
//!   pipe speaker the test reads.

pub mod pulse;

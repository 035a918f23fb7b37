//! Tests of the script format, the linter and the runner (one test binary for the crate).

mod bad_input;
mod common;
mod formats;
mod lint_rules;
mod properties;
mod runner;

//! Tests of the licence formats and the status decision: pure, deterministic (time is an
//! argument). The server-backed flows are in `crates/licence-server/tests`.

mod formats;
mod status;

//! The CRM sync crate's tests: the pure core, each adapter against its faithful local
//! server (real HTTP on 127.0.0.1), the worker and outbox, and the soak test.

mod amo;
mod bitrix;
mod dial;
mod pace;
mod soak;
mod support;
mod webhook;
mod worker;

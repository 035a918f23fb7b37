//! Integration tests of the store, against real SQLCipher files and real processes.

mod access;
mod common;
mod crash;
mod encryption;
mod export;
mod import;
mod keychain;
mod migrations;
mod outbox;
mod privacy;
mod runs;

//! Integration tests of the licence server: each starts the real binary on 127.0.0.1 on
//! a port it picks, drives it with the app's client and raw HTTP, and stops it at the end
//! (a drop guard kills it when a test panics).

mod common;
mod flows;
mod limits;
mod tamper;

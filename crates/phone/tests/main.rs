//! Integration tests of the phone engine against real peers on 127.0.0.1: SIPp scenarios,
//! a Kamailio registrar with digest auth and a registered baresip, and other instances of
//! our own engine. Peers are started and stopped by the tests; a missing peer program
//! fails the test with what to install.

mod support;

mod demo;
mod ours;
mod registrar;
mod sipp_peer;
mod soundcheck;
mod transfer;

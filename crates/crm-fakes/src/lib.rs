//! Local stand-ins for the CRMs CallHelper talks to: amoCRM (API v4), Bitrix24 (REST) and
//! a receiver of our signed webhook.
//!
//! Each is a real HTTP server on 127.0.0.1 at a port the system picks, written from the
//! CRM's published documentation and nothing else — it shares no code with the client in
//! `callhelper-crm`, so a misunderstanding on one side is not mirrored on the other. They
//! validate request shapes, check credentials, rotate OAuth refresh tokens, enforce the
//! rate limit with the CRM's own error answer (and count every time a client went over
//! it), and misbehave on request: scripted faults for deterministic tests and seeded
//! random ones for soak tests ([`faults`]). A server stops when its handle is dropped.

pub mod amo;
pub mod bitrix;
pub mod faults;
pub mod http;
pub mod webhook;

pub use amo::{AmoConfig, AmoServer};
pub use bitrix::{BitrixConfig, BitrixServer};
pub use faults::{Fault, FaultPlan};
pub use webhook::{WebhookConfig, WebhookServer};

//! CRM sync for CallHelper: what a call found out goes to amoCRM, Bitrix24 or any CRM
//! through a signed webhook, through a durable outbox.
//!
//! - [`pace`] is the pure core: backoff with jitter, the token-bucket rate limiter and the
//!   decisions on "too many requests" and failures. No IO, no clock.
//! - [`job`] is what is sent for a run and how far its delivery got ([`job::Progress`],
//!   saved before and after each request that is not idempotent, so a delivery resumes
//!   anywhere without sending anything twice in effect).
//! - The adapters [`amo`], [`bitrix`], [`webhook`] talk HTTP through [`http`], which keeps
//!   each CRM's rate limit; [`mapping`] maps script fields to CRM fields.
//! - [`worker`] turns the crank: due items from an [`outbox::Outbox`] through an adapter.
//! - [`dial`] is the click-to-call endpoint a CRM widget uses to start a call.
//!
//! Secrets are [`Secret`]s and never print; types that hold personal data redact their
//! `Debug`.

pub mod adapter;
pub mod amo;
pub mod bitrix;
pub mod dial;
pub mod error;
pub mod http;
pub mod job;
mod journal;
pub mod mapping;
pub mod oauth;
pub mod outbox;
pub mod pace;
pub mod rng;
pub mod secret;
pub mod time;
pub mod transcript;
pub mod webhook;
pub mod worker;

pub use adapter::Adapter;
pub use error::{CrmError, CrmKind, FailureNote};
pub use job::{CallInfo, CallResult, Contact, Direction, ItemId, Progress, RunId, SyncJob};
pub use outbox::{JournalOutbox, Outbox};
pub use secret::Secret;
pub use worker::Worker;

//! The softphone engine of CallHelper.
//!
//! A [`Phone`] runs one liblinphone core on a thread of its own and is driven with
//! [`Command`]s; it reports [`Event`]s. Only our own types cross this boundary, so another
//! SIP engine could take liblinphone's place without touching the rest of the product.
//!
//! The pure parts — the call state model ([`call`]), quality figures and the no-audio
//! watch ([`quality`]), device fallback ([`devices`]), DTMF pacing ([`dtmf`]), network
//! change detection ([`network`]), sound levels ([`level`]) and the tick policy
//! ([`cadence`]) — do no IO and read no
//! clock; the engine thread ([`Phone`]) feeds them what liblinphone reports. [`wav`] puts
//! the headers of finished call recordings right.
//!
//! [`demo`] runs a demo line: a second phone on loopback that answers and plays a
//! prerecorded client, so the product works without a SIP provider.

pub mod account;
pub mod cadence;
pub mod call;
pub mod demo;
pub mod devices;
pub mod dtmf;
mod engine;
pub mod error;
pub mod event;
pub mod level;
pub mod network;
pub mod quality;
pub mod redact;
pub mod soundcheck;
pub mod wav;

pub use account::{Account, RegistrationFailure, RegistrationState, Transport};
pub use call::{CallId, CallState, Direction, EndReason, Hold};
pub use devices::{AudioDevice, DevicePreferences, DeviceRole};
pub use dtmf::DtmfMethod;
pub use engine::{
    AnswerOptions, AudioIo, CallOptions, Command, Decline, LOG_TARGET, Listen, Phone, PhoneConfig,
    Port, Ports, Reply, Tls, set_engine_log_level,
};
pub use error::{PhoneError, StartError};
pub use event::{CallSummary, Event, TransferProgress, Warning};
pub use level::Level;
pub use redact::{Address, Secret};
pub use soundcheck::{SoundCheck, SoundCheckEnd, SoundCheckKind};

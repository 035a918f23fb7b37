//! What a [`crate::Phone`] reports: our own event types, the only thing the rest of the
//! product sees of the engine.

use std::path::PathBuf;

use serde::Serialize;

use crate::account::RegistrationState;
use crate::call::{CallId, CallState, Direction, EndReason};
use crate::devices::DeviceSwitch;
use crate::level::Level;
use crate::network::NetworkChange;
use crate::quality::{Codec, MediaAlarm, Quality, QualitySummary};
use crate::redact::Address;
use crate::soundcheck::{SoundCheckEnd, SoundCheckKind};

/// One thing that happened in the phone. Serialises as one flat JSON object with an
/// `event` tag (`{"event":"call_state","call":1,"state":"connected"}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// An account's registration changed.
    Registration {
        /// The account's name.
        account: String,
        /// Where it stands.
        #[serde(flatten)]
        state: RegistrationState,
        /// The registrar's last SIP status, when there was one.
        #[serde(skip_serializing_if = "Option::is_none")]
        sip_code: Option<u16>,
    },
    /// A call arrived; it is [`CallState::Ringing`] until answered or declined.
    Incoming {
        /// The new call.
        call: CallId,
        /// Who calls.
        from: Address,
        /// Whom they called (which of our identities).
        to: Address,
    },
    /// We placed a call (also when a transfer makes liblinphone place one for us).
    Outgoing {
        /// The new call.
        call: CallId,
        /// Whom we call.
        to: Address,
    },
    /// A call changed state.
    CallState {
        /// Which call.
        call: CallId,
        /// The new state.
        #[serde(flatten)]
        state: CallState,
    },
    /// A call is over: its record.
    CallEnded {
        /// Which call.
        call: CallId,
        /// What happened over the whole call.
        summary: CallSummary,
    },
    /// The far end pressed a key (RFC 4733 or SIP INFO).
    Dtmf {
        /// Which call.
        call: CallId,
        /// `0`–`9`, `*`, `#`, `A`–`D`.
        digit: char,
    },
    /// A periodic quality sample of a connected call.
    Quality {
        /// Which call.
        call: CallId,
        /// The figures.
        #[serde(flatten)]
        quality: Quality,
    },
    /// Audio stopped (or started again) flowing in a connected call.
    Media {
        /// Which call.
        call: CallId,
        /// What changed.
        #[serde(flatten)]
        alarm: MediaAlarm,
    },
    /// Progress of a transfer of `call` (as seen by the side that asked for it).
    Transfer {
        /// The call being transferred.
        call: CallId,
        /// How far it got.
        progress: TransferProgress,
    },
    /// Call recording started or stopped.
    Recording {
        /// Which call.
        call: CallId,
        /// The file.
        path: PathBuf,
        /// `true` when started, `false` when stopped.
        active: bool,
    },
    /// The audio device for a role changed (start, unplugged, better one back, new
    /// preferences).
    Device(DeviceSwitch),
    /// The network changed; registrations are being refreshed.
    Network {
        /// What changed.
        change: NetworkChange,
    },
    /// A microphone or speaker test started or stopped ([`crate::Command::StartSoundCheck`]).
    SoundCheck {
        /// Which test.
        kind: SoundCheckKind,
        /// The device tested (`None`: the system's default).
        #[serde(skip_serializing_if = "Option::is_none")]
        device: Option<String>,
        /// Running now.
        running: bool,
        /// Why it stopped, once it has.
        #[serde(skip_serializing_if = "Option::is_none")]
        end: Option<SoundCheckEnd>,
    },
    /// The microphone test's level, about ten times a second.
    SoundLevel {
        /// The level of what was captured since the last one.
        #[serde(flatten)]
        level: Level,
    },
    /// Something the user should know that is not tied to a call.
    Warning {
        /// What.
        warning: Warning,
    },
}

/// How far a transfer got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferProgress {
    /// The transfer request was sent.
    Requested,
    /// The transfer target is being called.
    Trying,
    /// The transfer target rings.
    Ringing,
    /// The transfer target answered; our leg will end.
    Succeeded,
    /// The transfer did not happen; the call carries on.
    Failed,
}

/// Warnings not tied to a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Warning {
    /// No microphone or speaker is present, and no file replaces them: calls will connect
    /// but carry no sound.
    NoAudioDevice,
    /// liblinphone refused a device the preferences chose.
    DeviceRefused {
        /// The device id.
        device: String,
    },
}

/// The record of one call, sent with [`Event::CallEnded`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallSummary {
    /// Who started it.
    pub direction: Direction,
    /// The far end.
    pub remote: Address,
    /// Why it ended.
    #[serde(flatten)]
    pub reason: EndReason,
    /// Whether it was answered.
    pub answered: bool,
    /// From the start to the answer, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ring_ms: Option<u64>,
    /// From the answer to the end, in milliseconds.
    pub talk_ms: u64,
    /// The audio codec used, if the call got that far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub codec: Option<Codec>,
    /// Quality over the call.
    pub quality: QualitySummary,
    /// Whether audio ever stopped flowing while it should have.
    pub media_stalled: bool,
    /// The recording, if the call was recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recording: Option<PathBuf>,
}

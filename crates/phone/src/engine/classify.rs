//! liblinphone's states and reasons in our terms. Pure mappings, tested on their own.

use linphone_sys as sys;

use crate::account::{RegistrationFailure, RegistrationState};
use crate::call::{CallSignal, EndReason, Hold};
use crate::event::TransferProgress;

/// The signal a call state change means for our model; `None` for liblinphone's
/// intermediate states (pausing, updating...).
pub(crate) fn call_signal(
    state: sys::LinphoneCallState,
    remote_holds: bool,
    end: impl FnOnce() -> EndReason,
) -> Option<CallSignal> {
    Some(match state {
        sys::LinphoneCallStateOutgoingInit => CallSignal::Dial,
        sys::LinphoneCallStateIncomingReceived => CallSignal::Incoming,
        sys::LinphoneCallStateOutgoingRinging => CallSignal::RemoteRinging,
        sys::LinphoneCallStateOutgoingEarlyMedia | sys::LinphoneCallStateIncomingEarlyMedia => {
            CallSignal::EarlyMedia
        }
        sys::LinphoneCallStateConnected | sys::LinphoneCallStateStreamsRunning => {
            CallSignal::Connected
        }
        sys::LinphoneCallStatePaused => CallSignal::Hold(Hold {
            local: true,
            remote: remote_holds,
        }),
        sys::LinphoneCallStatePausedByRemote => CallSignal::Hold(Hold {
            local: false,
            remote: true,
        }),
        sys::LinphoneCallStateReferred => CallSignal::TransferStarted,
        sys::LinphoneCallStateEnd | sys::LinphoneCallStateError => CallSignal::Ended(end()),
        _ => return None,
    })
}

/// Why a call ended, from liblinphone's reason and the final SIP status. `local` says
/// whether we asked for the end (hang-up, cancel, decline).
pub(crate) fn end_reason(
    reason: sys::LinphoneReason,
    sip_code: Option<u16>,
    local: bool,
    error: bool,
) -> EndReason {
    if local {
        // Whatever reason liblinphone gives (our own 486 or 603 when declining, 487 for
        // a cancel), we ended it; the call model says how.
        return EndReason::HungUpLocally;
    }
    match reason {
        sys::LinphoneReasonBusy => EndReason::Busy,
        sys::LinphoneReasonDeclined | sys::LinphoneReasonDoNotDisturb => EndReason::Declined,
        sys::LinphoneReasonNotAnswered => EndReason::NoAnswer,
        sys::LinphoneReasonNotFound
        | sys::LinphoneReasonAddressIncomplete
        | sys::LinphoneReasonGone => EndReason::NotFound,
        sys::LinphoneReasonIOError
        | sys::LinphoneReasonNoResponse
        | sys::LinphoneReasonServerTimeout
        | sys::LinphoneReasonTemporarilyUnavailable
        | sys::LinphoneReasonBadGateway => EndReason::Unreachable,
        sys::LinphoneReasonTransferred => EndReason::Transferred,
        _ if error || sip_code.is_some_and(|c| c >= 300) => EndReason::Failed { sip_code },
        _ => EndReason::HungUpRemotely,
    }
}

/// A registration state in our terms.
pub(crate) fn registration(
    state: sys::LinphoneRegistrationState,
    reason: sys::LinphoneReason,
    sip_code: Option<u16>,
) -> RegistrationState {
    match state {
        sys::LinphoneRegistrationProgress => RegistrationState::Progress,
        sys::LinphoneRegistrationOk => RegistrationState::Ok,
        sys::LinphoneRegistrationCleared => RegistrationState::Cleared,
        sys::LinphoneRegistrationFailed => RegistrationState::Failed {
            failure: registration_failure(reason, sip_code),
        },
        _ => RegistrationState::None,
    }
}

fn registration_failure(reason: sys::LinphoneReason, sip_code: Option<u16>) -> RegistrationFailure {
    match (sip_code, reason) {
        (Some(401 | 407), _) | (_, sys::LinphoneReasonUnauthorized) => {
            RegistrationFailure::BadCredentials
        }
        (Some(403), _) | (_, sys::LinphoneReasonForbidden) => RegistrationFailure::Forbidden,
        (Some(404), _) | (_, sys::LinphoneReasonNotFound) => RegistrationFailure::UnknownUser,
        (Some(408), _) | (_, sys::LinphoneReasonNoResponse | sys::LinphoneReasonServerTimeout) => {
            RegistrationFailure::Timeout
        }
        (Some(503), sys::LinphoneReasonIOError) | (None, _) => RegistrationFailure::Unreachable,
        (Some(code), _) => RegistrationFailure::Rejected { sip_code: code },
    }
}

/// The progress of a transfer, from the state of the call the far end places.
pub(crate) fn transfer(state: sys::LinphoneCallState) -> Option<TransferProgress> {
    Some(match state {
        sys::LinphoneCallStateOutgoingInit | sys::LinphoneCallStateOutgoingProgress => {
            TransferProgress::Trying
        }
        sys::LinphoneCallStateOutgoingRinging | sys::LinphoneCallStateOutgoingEarlyMedia => {
            TransferProgress::Ringing
        }
        sys::LinphoneCallStateConnected | sys::LinphoneCallStateStreamsRunning => {
            TransferProgress::Succeeded
        }
        sys::LinphoneCallStateError | sys::LinphoneCallStateEnd => TransferProgress::Failed,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_answers_become_end_reasons() {
        let r = |reason, code, local| end_reason(reason, code, local, true);
        assert_eq!(
            r(sys::LinphoneReasonBusy, Some(486), false),
            EndReason::Busy
        );
        assert_eq!(
            r(sys::LinphoneReasonDeclined, Some(603), false),
            EndReason::Declined
        );
        assert_eq!(
            r(sys::LinphoneReasonNotFound, Some(404), false),
            EndReason::NotFound
        );
        assert_eq!(
            r(sys::LinphoneReasonIOError, Some(503), false),
            EndReason::Unreachable
        );
        assert_eq!(
            r(sys::LinphoneReasonNoResponse, None, false),
            EndReason::Unreachable
        );
        assert_eq!(
            r(sys::LinphoneReasonNotAcceptable, Some(488), false),
            EndReason::Failed {
                sip_code: Some(488)
            }
        );
        // Our own decline comes back as "declined" or "busy": it is a local end.
        assert_eq!(
            r(sys::LinphoneReasonBusy, Some(486), true),
            EndReason::HungUpLocally
        );
        assert_eq!(
            r(sys::LinphoneReasonDeclined, None, true),
            EndReason::HungUpLocally
        );
        // A plain BYE.
        assert_eq!(
            end_reason(sys::LinphoneReasonNone, None, false, false),
            EndReason::HungUpRemotely
        );
        assert_eq!(
            end_reason(sys::LinphoneReasonNone, None, true, false),
            EndReason::HungUpLocally
        );
    }

    #[test]
    fn registration_failures_say_what_to_fix() {
        let f = |reason, code| registration(sys::LinphoneRegistrationFailed, reason, code);
        let failed = |failure| RegistrationState::Failed { failure };
        assert_eq!(
            f(sys::LinphoneReasonUnauthorized, Some(401)),
            failed(RegistrationFailure::BadCredentials)
        );
        assert_eq!(
            f(sys::LinphoneReasonForbidden, Some(403)),
            failed(RegistrationFailure::Forbidden)
        );
        assert_eq!(
            f(sys::LinphoneReasonNoResponse, Some(408)),
            failed(RegistrationFailure::Timeout)
        );
        assert_eq!(
            f(sys::LinphoneReasonIOError, Some(503)),
            failed(RegistrationFailure::Unreachable)
        );
        assert_eq!(
            f(sys::LinphoneReasonIOError, None),
            failed(RegistrationFailure::Unreachable)
        );
        assert_eq!(
            f(sys::LinphoneReasonUnknown, Some(500)),
            failed(RegistrationFailure::Rejected { sip_code: 500 })
        );
        assert_eq!(
            registration(sys::LinphoneRegistrationOk, 0, Some(200)),
            RegistrationState::Ok
        );
    }

    #[test]
    fn call_states_map_to_signals() {
        let s = |st, holds| call_signal(st, holds, || EndReason::HungUpRemotely);
        assert_eq!(
            s(sys::LinphoneCallStateOutgoingInit, false),
            Some(CallSignal::Dial)
        );
        assert_eq!(s(sys::LinphoneCallStateOutgoingProgress, false), None);
        assert_eq!(
            s(sys::LinphoneCallStatePaused, true),
            Some(CallSignal::Hold(Hold {
                local: true,
                remote: true
            }))
        );
        assert_eq!(
            s(sys::LinphoneCallStatePausedByRemote, false),
            Some(CallSignal::Hold(Hold {
                local: false,
                remote: true
            }))
        );
        assert_eq!(
            s(sys::LinphoneCallStateEnd, false),
            Some(CallSignal::Ended(EndReason::HungUpRemotely))
        );
        assert_eq!(s(sys::LinphoneCallStateReleased, false), None);
        assert_eq!(
            transfer(sys::LinphoneCallStateConnected),
            Some(TransferProgress::Succeeded)
        );
        assert_eq!(
            transfer(sys::LinphoneCallStateError),
            Some(TransferProgress::Failed)
        );
    }
}

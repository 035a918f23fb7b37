//! The call state model: what one call leg is doing, as a pure state machine.
//!
//! The engine thread turns what liblinphone reports into [`CallSignal`]s and feeds them
//! here with the time they happened; the model decides the [`CallState`] the rest of the
//! product sees, including *why* a call ended (a local hang-up before the answer is a
//! cancel, a remote one is a missed call). No IO and no clock: every scenario is a plain
//! unit test.

use std::time::{Duration, Instant};

use serde::Serialize;

/// Our identifier of one call leg, unique within one [`crate::Phone`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct CallId(pub u64);

impl std::fmt::Display for CallId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "call-{}", self.0)
    }
}

/// Who started the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// We dialled.
    Outgoing,
    /// The far end dialled us.
    Incoming,
}

/// Which side put the call on hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Hold {
    /// We put the far end on hold.
    pub local: bool,
    /// The far end put us on hold.
    pub remote: bool,
}

impl Hold {
    fn any(self) -> bool {
        self.local || self.remote
    }
}

/// The state of one call leg as the product sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
#[non_exhaustive]
pub enum CallState {
    /// Created, nothing sent or received yet.
    Idle,
    /// Outgoing: the INVITE is on its way, the far end has not rung yet.
    Dialing,
    /// Outgoing: the far end is ringing (180). Incoming: we are ringing.
    Ringing,
    /// Audio flows before the answer (183 with SDP: a ring-back tone or an announcement).
    EarlyMedia,
    /// Answered; audio flows both ways.
    Connected,
    /// Answered and on hold by one side or both.
    OnHold(Hold),
    /// A transfer of this call is under way (we asked the far end to go elsewhere, or
    /// the far end asked us to).
    Transferring,
    /// Over, for good.
    Ended {
        /// Why.
        #[serde(flatten)]
        reason: EndReason,
    },
}

impl CallState {
    /// Whether the call is over.
    pub fn is_ended(self) -> bool {
        matches!(self, CallState::Ended { .. })
    }

    /// Whether audio is expected to flow both ways in this state (used by the media watch).
    pub fn expects_media(self) -> bool {
        matches!(self, CallState::Connected)
    }

    /// A short stable name (`"connected"`, `"on_hold"`...).
    pub fn name(self) -> &'static str {
        match self {
            CallState::Idle => "idle",
            CallState::Dialing => "dialing",
            CallState::Ringing => "ringing",
            CallState::EarlyMedia => "early_media",
            CallState::Connected => "connected",
            CallState::OnHold(_) => "on_hold",
            CallState::Transferring => "transferring",
            CallState::Ended { .. } => "ended",
        }
    }
}

/// Why a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EndReason {
    /// We hung up an answered call.
    HungUpLocally,
    /// The far end hung up an answered call.
    HungUpRemotely,
    /// We gave up before the far end answered (CANCEL).
    CancelledLocally,
    /// The caller gave up before we answered: a missed call.
    CancelledRemotely,
    /// We turned the incoming call down.
    DeclinedLocally,
    /// The far end is busy (486).
    Busy,
    /// The far end declined (603).
    Declined,
    /// Nobody answered in time (408 after ringing, or our own no-answer timeout).
    NoAnswer,
    /// The number or address does not exist (404, 484).
    NotFound,
    /// The far end or the network could not be reached (timeout, 503, a transport error).
    Unreachable,
    /// The call was handed over to someone else (a completed transfer).
    Transferred,
    /// The call was answered but no audio flowed, and it was dropped.
    NoMedia,
    /// Any other failure; `sip_code` is the final SIP status when there was one.
    Failed {
        /// The SIP status code (4xx–6xx), if known.
        sip_code: Option<u16>,
    },
}

/// What happened to a call, as the engine observed it: the model's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallSignal {
    /// We sent an INVITE.
    Dial,
    /// An INVITE arrived.
    Incoming,
    /// The far end rings (180 without media).
    RemoteRinging,
    /// Early media started (183 with SDP, or we accepted early media).
    EarlyMedia,
    /// The call was answered (200 OK / ACK), or media (re)started after an update.
    Connected,
    /// One side or both have put the call on hold (both flags false means resumed).
    Hold(Hold),
    /// A transfer started: we sent a REFER, or we received one.
    TransferStarted,
    /// The transfer failed; the call carries on as before.
    TransferFailed,
    /// The call is over. The model refines the reason: a local hang-up before the answer
    /// becomes [`EndReason::CancelledLocally`], a remote one [`EndReason::CancelledRemotely`],
    /// and the end of a call being transferred [`EndReason::Transferred`].
    Ended(EndReason),
}

/// A change of state returned by [`CallLeg::apply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The state before.
    pub from: CallState,
    /// The state after.
    pub to: CallState,
}

/// A signal that makes no sense in the current state (a liblinphone quirk or a bug).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{signal:?} is not valid for a call in state {state:?}")]
pub struct InvalidTransition {
    /// The state the call was in.
    pub state: CallState,
    /// The signal that was refused.
    pub signal: CallSignal,
}

/// One call leg: its state and the moments that matter for its record.
#[derive(Debug, Clone)]
pub struct CallLeg {
    id: CallId,
    direction: Direction,
    state: CallState,
    /// Hold flags kept while a transfer is under way, to return to if it fails.
    resume_to: CallState,
    created: Instant,
    answered: Option<Instant>,
    ended: Option<Instant>,
}

impl CallLeg {
    /// A new call leg, created at `now`.
    pub fn new(id: CallId, direction: Direction, now: Instant) -> CallLeg {
        CallLeg {
            id,
            direction,
            state: CallState::Idle,
            resume_to: CallState::Connected,
            created: now,
            answered: None,
            ended: None,
        }
    }

    /// Its identifier.
    pub fn id(&self) -> CallId {
        self.id
    }

    /// Who started it.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// Its current state.
    pub fn state(&self) -> CallState {
        self.state
    }

    /// Whether it was ever answered.
    pub fn was_answered(&self) -> bool {
        self.answered.is_some()
    }

    /// Time from creation to the answer (ringing time), if answered.
    pub fn time_to_answer(&self) -> Option<Duration> {
        self.answered
            .map(|a| a.saturating_duration_since(self.created))
    }

    /// Time from the answer to the end (or to `now` while it lasts); zero if never answered.
    pub fn talk_time(&self, now: Instant) -> Duration {
        match self.answered {
            Some(a) => self.ended.unwrap_or(now).saturating_duration_since(a),
            None => Duration::ZERO,
        }
    }

    /// Time from creation to the end (or to `now` while it lasts).
    pub fn total_time(&self, now: Instant) -> Duration {
        self.ended
            .unwrap_or(now)
            .saturating_duration_since(self.created)
    }

    /// Feed one signal observed at `now`. Returns the state change, `None` when the
    /// signal changes nothing (a repeated 180, media restarting in an answered call).
    pub fn apply(
        &mut self,
        signal: CallSignal,
        now: Instant,
    ) -> Result<Option<Transition>, InvalidTransition> {
        use CallSignal as S;
        let invalid = InvalidTransition {
            state: self.state,
            signal,
        };
        let next = match (self.state, signal) {
            (C::Ended { .. }, _) => return Err(invalid),
            (_, S::Ended(reason)) => C::Ended {
                reason: self.refine(reason),
            },

            (C::Idle, S::Dial) if self.direction == Direction::Outgoing => C::Dialing,
            (C::Idle, S::Incoming) if self.direction == Direction::Incoming => C::Ringing,
            (C::Idle, _) => return Err(invalid),

            (C::Dialing, S::RemoteRinging) => C::Ringing,
            (C::Ringing | C::EarlyMedia, S::RemoteRinging) => self.state,
            (C::Dialing | C::Ringing | C::EarlyMedia, S::EarlyMedia) => C::EarlyMedia,
            (C::Dialing | C::Ringing | C::EarlyMedia, S::Connected) => {
                self.answered = Some(now);
                C::Connected
            }
            (C::Dialing | C::Ringing | C::EarlyMedia, _) => return Err(invalid),

            (C::Connected | C::OnHold(_), S::Connected) => C::Connected,
            (C::Connected | C::OnHold(_), S::Hold(h)) => {
                if h.any() {
                    C::OnHold(h)
                } else {
                    C::Connected
                }
            }
            (C::Connected | C::OnHold(_), S::TransferStarted) => {
                self.resume_to = self.state;
                C::Transferring
            }
            (C::Connected | C::OnHold(_), _) => return Err(invalid),

            // While a transfer runs, the call may be put on hold or resumed underneath;
            // remember where to return if the transfer fails.
            (C::Transferring, S::Hold(h)) => {
                self.resume_to = if h.any() { C::OnHold(h) } else { C::Connected };
                C::Transferring
            }
            (C::Transferring, S::Connected | S::TransferStarted) => C::Transferring,
            (C::Transferring, S::TransferFailed) => self.resume_to,
            (C::Transferring, _) => return Err(invalid),
        };
        if next.is_ended() {
            self.ended = Some(now);
        }
        let from = std::mem::replace(&mut self.state, next);
        Ok((from != next).then_some(Transition { from, to: next }))
    }

    /// Turn the engine's view of an end into the product's: the same BYE or CANCEL means
    /// different things depending on whether the call was answered and who started it.
    fn refine(&self, reason: EndReason) -> EndReason {
        let answered = self.answered.is_some();
        match (reason, self.state, self.direction, answered) {
            (EndReason::HungUpLocally | EndReason::HungUpRemotely, C::Transferring, _, true) => {
                EndReason::Transferred
            }
            (EndReason::HungUpLocally, _, Direction::Outgoing, false) => {
                EndReason::CancelledLocally
            }
            (EndReason::HungUpLocally, _, Direction::Incoming, false) => EndReason::DeclinedLocally,
            // The caller gave up, or nobody answered in time: a missed call either way.
            (EndReason::HungUpRemotely | EndReason::NoAnswer, _, Direction::Incoming, false) => {
                EndReason::CancelledRemotely
            }
            // An outgoing call the far end dropped before answering without a final
            // status of its own: treat as declined.
            (EndReason::HungUpRemotely, _, Direction::Outgoing, false) => EndReason::Declined,
            (other, ..) => other,
        }
    }
}

use CallState as C;

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> Instant {
        Instant::now()
    }

    fn run(direction: Direction, signals: &[CallSignal]) -> (CallLeg, Vec<CallState>) {
        let start = t0();
        let mut leg = CallLeg::new(CallId(1), direction, start);
        let mut seen = vec![leg.state()];
        for (i, s) in signals.iter().enumerate() {
            let at = start + Duration::from_secs(i as u64 + 1);
            if let Some(t) = leg.apply(*s, at).expect("valid transition") {
                assert_eq!(t.from, *seen.last().unwrap());
                seen.push(t.to);
            }
        }
        (leg, seen)
    }

    use CallSignal as S;

    #[test]
    fn outgoing_call_answered_then_hung_up_by_the_far_end() {
        let (leg, seen) = run(
            Direction::Outgoing,
            &[
                S::Dial,
                S::RemoteRinging,
                S::RemoteRinging,
                S::Connected,
                S::Connected,
                S::Ended(EndReason::HungUpRemotely),
            ],
        );
        assert_eq!(
            seen,
            [
                C::Idle,
                C::Dialing,
                C::Ringing,
                C::Connected,
                C::Ended {
                    reason: EndReason::HungUpRemotely
                }
            ]
        );
        // Dial at +1 s, answered at +4 s, ended at +6 s.
        assert_eq!(leg.time_to_answer(), Some(Duration::from_secs(4)));
        assert_eq!(
            leg.talk_time(t0() + Duration::from_secs(100)),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn early_media_then_answer() {
        let (_, seen) = run(
            Direction::Outgoing,
            &[
                S::Dial,
                S::RemoteRinging,
                S::EarlyMedia,
                S::RemoteRinging,
                S::Connected,
            ],
        );
        assert_eq!(
            seen,
            [C::Idle, C::Dialing, C::Ringing, C::EarlyMedia, C::Connected]
        );
    }

    #[test]
    fn local_hang_up_before_answer_is_a_cancel() {
        let (leg, seen) = run(
            Direction::Outgoing,
            &[
                S::Dial,
                S::RemoteRinging,
                S::Ended(EndReason::HungUpLocally),
            ],
        );
        assert_eq!(
            *seen.last().unwrap(),
            C::Ended {
                reason: EndReason::CancelledLocally
            }
        );
        assert!(!leg.was_answered());
        assert_eq!(
            leg.talk_time(t0() + Duration::from_secs(60)),
            Duration::ZERO
        );
    }

    #[test]
    fn caller_giving_up_is_a_missed_call_and_our_refusal_a_decline() {
        let (_, seen) = run(
            Direction::Incoming,
            &[S::Incoming, S::Ended(EndReason::HungUpRemotely)],
        );
        assert_eq!(
            *seen.last().unwrap(),
            C::Ended {
                reason: EndReason::CancelledRemotely
            }
        );
        let (_, seen) = run(
            Direction::Incoming,
            &[S::Incoming, S::Ended(EndReason::HungUpLocally)],
        );
        assert_eq!(
            *seen.last().unwrap(),
            C::Ended {
                reason: EndReason::DeclinedLocally
            }
        );
        // liblinphone says "not answered" for a cancelled incoming call (and for its own
        // ring timeout): also a missed call.
        let (_, seen) = run(
            Direction::Incoming,
            &[S::Incoming, S::Ended(EndReason::NoAnswer)],
        );
        assert_eq!(
            *seen.last().unwrap(),
            C::Ended {
                reason: EndReason::CancelledRemotely
            }
        );
        // An outgoing call nobody answered keeps its reason.
        let (_, seen) = run(
            Direction::Outgoing,
            &[S::Dial, S::Ended(EndReason::NoAnswer)],
        );
        assert_eq!(
            *seen.last().unwrap(),
            C::Ended {
                reason: EndReason::NoAnswer
            }
        );
    }

    #[test]
    fn busy_and_decline_keep_their_reason() {
        for reason in [
            EndReason::Busy,
            EndReason::Declined,
            EndReason::NotFound,
            EndReason::Unreachable,
        ] {
            let (_, seen) = run(Direction::Outgoing, &[S::Dial, S::Ended(reason)]);
            assert_eq!(*seen.last().unwrap(), C::Ended { reason });
        }
    }

    #[test]
    fn hold_by_either_side_and_resume() {
        let local = Hold {
            local: true,
            remote: false,
        };
        let both = Hold {
            local: true,
            remote: true,
        };
        let remote = Hold {
            local: false,
            remote: true,
        };
        let (_, seen) = run(
            Direction::Incoming,
            &[
                S::Incoming,
                S::Connected,
                S::Hold(local),
                S::Hold(both),
                S::Hold(remote),
                S::Hold(Hold::default()),
            ],
        );
        assert_eq!(
            seen,
            [
                C::Idle,
                C::Ringing,
                C::Connected,
                C::OnHold(local),
                C::OnHold(both),
                C::OnHold(remote),
                C::Connected
            ]
        );
    }

    #[test]
    fn media_restart_resumes_a_held_call() {
        let (_, seen) = run(
            Direction::Outgoing,
            &[
                S::Dial,
                S::Connected,
                S::Hold(Hold {
                    local: false,
                    remote: true,
                }),
                S::Connected,
            ],
        );
        assert_eq!(*seen.last().unwrap(), C::Connected);
    }

    #[test]
    fn a_failed_transfer_returns_to_where_the_call_was() {
        let held = Hold {
            local: true,
            remote: false,
        };
        let (_, seen) = run(
            Direction::Outgoing,
            &[
                S::Dial,
                S::Connected,
                S::Hold(held),
                S::TransferStarted,
                S::TransferFailed,
            ],
        );
        assert_eq!(
            &seen[3..],
            [C::OnHold(held), C::Transferring, C::OnHold(held)]
        );
    }

    #[test]
    fn a_completed_transfer_ends_as_transferred() {
        let (_, seen) = run(
            Direction::Incoming,
            &[
                S::Incoming,
                S::Connected,
                S::TransferStarted,
                S::Ended(EndReason::HungUpLocally),
            ],
        );
        assert_eq!(
            *seen.last().unwrap(),
            C::Ended {
                reason: EndReason::Transferred
            }
        );
        let (_, seen) = run(
            Direction::Incoming,
            &[
                S::Incoming,
                S::Connected,
                S::TransferStarted,
                S::Ended(EndReason::HungUpRemotely),
            ],
        );
        assert_eq!(
            *seen.last().unwrap(),
            C::Ended {
                reason: EndReason::Transferred
            }
        );
    }

    #[test]
    fn a_transfer_that_fails_the_call_keeps_the_failure() {
        let (_, seen) = run(
            Direction::Outgoing,
            &[
                S::Dial,
                S::Connected,
                S::TransferStarted,
                S::Ended(EndReason::Unreachable),
            ],
        );
        assert_eq!(
            *seen.last().unwrap(),
            C::Ended {
                reason: EndReason::Unreachable
            }
        );
    }

    #[test]
    fn nothing_happens_after_the_end() {
        let start = t0();
        let mut leg = CallLeg::new(CallId(7), Direction::Outgoing, start);
        leg.apply(S::Dial, start).unwrap();
        leg.apply(S::Ended(EndReason::Busy), start).unwrap();
        let err = leg.apply(S::Connected, start).unwrap_err();
        assert_eq!(
            err.state,
            C::Ended {
                reason: EndReason::Busy
            }
        );
        assert!(
            leg.apply(S::Ended(EndReason::HungUpLocally), start)
                .is_err()
        );
    }

    #[test]
    fn nonsense_is_refused_and_changes_nothing() {
        let start = t0();
        let mut leg = CallLeg::new(CallId(2), Direction::Outgoing, start);
        assert!(leg.apply(S::Incoming, start).is_err());
        assert!(leg.apply(S::Connected, start).is_err());
        leg.apply(S::Dial, start).unwrap();
        assert!(
            leg.apply(
                S::Hold(Hold {
                    local: true,
                    remote: false
                }),
                start
            )
            .is_err()
        );
        assert!(leg.apply(S::TransferStarted, start).is_err());
        assert_eq!(leg.state(), C::Dialing);
        let mut incoming = CallLeg::new(CallId(3), Direction::Incoming, start);
        assert!(incoming.apply(S::Dial, start).is_err());
    }

    #[test]
    fn only_connected_expects_media() {
        assert!(C::Connected.expects_media());
        for s in [
            C::Idle,
            C::Ringing,
            C::EarlyMedia,
            C::OnHold(Hold {
                local: true,
                remote: false,
            }),
            C::Transferring,
        ] {
            assert!(!s.expects_media(), "{s:?}");
        }
    }

    #[test]
    fn states_serialise_with_a_tag() {
        let json = serde_json::to_string(&C::Ended {
            reason: EndReason::Failed {
                sip_code: Some(488),
            },
        })
        .unwrap();
        assert_eq!(
            json,
            r#"{"state":"ended","reason":"failed","sip_code":488}"#
        );
        let json = serde_json::to_string(&C::OnHold(Hold {
            local: true,
            remote: false,
        }))
        .unwrap();
        assert_eq!(json, r#"{"state":"on_hold","local":true,"remote":false}"#);
    }
}

//! How often the engine thread turns liblinphone's crank (`linphone_core_iterate`).
//!
//! liblinphone only reads its SIP sockets and starts media inside `iterate`. A fixed 20 ms
//! tick makes every answer wait up to 20 ms before the audio stream starts (measured:
//! 45 ms median from INVITE to the first RTP packet, against 6 ms for baresip). So the
//! thread iterates every millisecond while something is settling — a call not yet
//! answered or whose media has not started, or right after any command or callback — and
//! every 20 ms otherwise. Pure: the caller says what is going on.

use std::time::{Duration, Instant};

/// The tick while nothing is going on.
pub const IDLE: Duration = Duration::from_millis(20);
/// The tick while something is settling.
pub const FAST: Duration = Duration::from_millis(1);
/// How long after activity the fast tick lasts.
pub const LINGER: Duration = Duration::from_millis(500);

/// The tick policy's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Activity {
    /// A call is being set up, or answered with its media not flowing yet.
    pub call_settling: bool,
    /// The last command, callback or queued work (DTMF), if any.
    pub last_activity: Option<Instant>,
}

/// How long to sleep before the next `iterate`.
pub fn next_tick(now: Instant, activity: Activity) -> Duration {
    let recent = activity
        .last_activity
        .is_some_and(|t| now.saturating_duration_since(t) < LINGER);
    if activity.call_settling || recent {
        FAST
    } else {
        IDLE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_phone_ticks_slowly() {
        let now = Instant::now();
        assert_eq!(
            next_tick(
                now,
                Activity {
                    call_settling: false,
                    last_activity: None
                }
            ),
            IDLE
        );
        let long_ago = Activity {
            call_settling: false,
            last_activity: Some(now),
        };
        assert_eq!(next_tick(now + Duration::from_secs(2), long_ago), IDLE);
    }

    #[test]
    fn settling_calls_and_fresh_activity_tick_fast() {
        let now = Instant::now();
        assert_eq!(
            next_tick(
                now,
                Activity {
                    call_settling: true,
                    last_activity: None
                }
            ),
            FAST
        );
        let just_now = Activity {
            call_settling: false,
            last_activity: Some(now),
        };
        assert_eq!(next_tick(now + Duration::from_millis(100), just_now), FAST);
    }
}

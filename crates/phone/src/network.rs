//! Noticing that the network changed under us (a new address, a cable pulled, the laptop
//! waking up), so registrations are refreshed instead of silently expiring.
//!
//! Pure: the engine thread reads the interface addresses and both clocks and passes them in.

use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkChange {
    /// The machine's non-loopback addresses changed.
    AddressesChanged,
    /// The wall clock jumped ahead of the monotonic clock: the machine slept.
    ResumedFromSleep,
    /// The application said so (`Phone::network_changed`).
    Requested,
}

/// Compares successive observations of the addresses and clocks.
#[derive(Debug, Clone, Default)]
pub struct NetworkWatch {
    addresses: Option<Vec<IpAddr>>,
    clocks: Option<(Instant, SystemTime)>,
}

/// How far the wall clock may run ahead of the monotonic one before we call it a sleep.
const SLEEP_GAP: Duration = Duration::from_secs(10);

impl NetworkWatch {
    /// Feed one observation; returns a change when there is one. The first observation
    /// only sets the baseline.
    pub fn observe(
        &mut self,
        mono: Instant,
        wall: SystemTime,
        addresses: &[IpAddr],
    ) -> Option<NetworkChange> {
        let mut now: Vec<IpAddr> = addresses
            .iter()
            .copied()
            .filter(|a| !a.is_loopback())
            .collect();
        now.sort();
        now.dedup();
        let slept = self.clocks.is_some_and(|(m0, w0)| {
            let mono_gap = mono.saturating_duration_since(m0);
            let wall_gap = wall.duration_since(w0).unwrap_or_default();
            wall_gap > mono_gap + SLEEP_GAP
        });
        self.clocks = Some((mono, wall));
        let changed = self.addresses.as_ref().is_some_and(|before| *before != now);
        self.addresses = Some(now);
        if slept {
            Some(NetworkChange::ResumedFromSleep)
        } else if changed {
            Some(NetworkChange::AddressesChanged)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn same_addresses_in_any_order_are_no_change() {
        let (m, w) = (
            Instant::now(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000),
        );
        let mut n = NetworkWatch::default();
        assert_eq!(n.observe(m, w, &[ip("10.0.0.2"), ip("fe80::1")]), None);
        let later = Duration::from_secs(3);
        assert_eq!(
            n.observe(
                m + later,
                w + later,
                &[ip("fe80::1"), ip("10.0.0.2"), ip("127.0.0.1")]
            ),
            None
        );
    }

    #[test]
    fn a_new_address_is_a_change_and_loopback_is_ignored() {
        let (m, w) = (Instant::now(), SystemTime::UNIX_EPOCH);
        let mut n = NetworkWatch::default();
        n.observe(m, w, &[ip("10.0.0.2")]);
        let s = Duration::from_secs(3);
        assert_eq!(
            n.observe(m + s, w + s, &[ip("192.168.1.5")]),
            Some(NetworkChange::AddressesChanged)
        );
        assert_eq!(
            n.observe(m + 2 * s, w + 2 * s, &[ip("192.168.1.5"), ip("::1")]),
            None
        );
        assert_eq!(
            n.observe(m + 3 * s, w + 3 * s, &[]),
            Some(NetworkChange::AddressesChanged)
        );
    }

    #[test]
    fn a_wall_clock_jump_is_a_wake_up() {
        let (m, w) = (
            Instant::now(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(50),
        );
        let mut n = NetworkWatch::default();
        n.observe(m, w, &[ip("10.0.0.2")]);
        // Three monotonic seconds, but an hour on the wall clock.
        let change = n.observe(
            m + Duration::from_secs(3),
            w + Duration::from_secs(3600),
            &[ip("10.0.0.2")],
        );
        assert_eq!(change, Some(NetworkChange::ResumedFromSleep));
        // A wall clock set back is not a sleep.
        assert_eq!(
            n.observe(m + Duration::from_secs(6), w, &[ip("10.0.0.2")]),
            None
        );
    }
}

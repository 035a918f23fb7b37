//! Per-address token buckets.
//!
//! Each client address (IPv4, or the /64 prefix of an IPv6 address, since one host
//! usually owns a whole /64) gets `burst` tokens refilled at `per_second`; a request
//! costs one. The table is bounded: when it is full, buckets that have refilled
//! completely (idle clients) are dropped; if none are, new addresses are refused until
//! some are, which sheds load under a flood of spoofed-looking addresses.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Limits per client address.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateConfig {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Requests allowed in a burst.
    pub burst: f64,
    /// Most addresses tracked at once.
    pub max_clients: usize,
}

impl Default for RateConfig {
    fn default() -> RateConfig {
        RateConfig {
            per_second: 2.0,
            burst: 20.0,
            max_clients: 100_000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The limiter.
#[derive(Debug)]
pub struct RateLimiter {
    config: RateConfig,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

/// The address a bucket is kept for.
fn client_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl RateLimiter {
    /// A limiter with these limits.
    pub fn new(config: RateConfig) -> RateLimiter {
        RateLimiter {
            config,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Take a token for `ip` at `now`: `Ok` or `Err(seconds to wait)`.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), u64> {
        let c = self.config;
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let key = client_of(ip);
        if !map.contains_key(&key) && map.len() >= c.max_clients {
            map.retain(|_, b| {
                b.tokens + now.duration_since(b.at).as_secs_f64() * c.per_second < c.burst
            });
            if map.len() >= c.max_clients {
                return Err(1);
            }
        }
        let b = map.entry(key).or_insert(Bucket {
            tokens: c.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * c.per_second).min(c.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - b.tokens) / c.per_second).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limiter(max_clients: usize) -> RateLimiter {
        RateLimiter::new(RateConfig {
            per_second: 1.0,
            burst: 3.0,
            max_clients,
        })
    }

    #[test]
    fn burst_then_refill() {
        let l = limiter(10);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.check(ip, t0), Ok(()));
        }
        assert_eq!(l.check(ip, t0), Err(1));
        // Another address has its own bucket.
        assert_eq!(l.check("192.0.2.2".parse().unwrap(), t0), Ok(()));
        assert_eq!(l.check(ip, t0 + Duration::from_millis(1100)), Ok(()));
        assert!(l.check(ip, t0 + Duration::from_millis(1200)).is_err());
    }

    #[test]
    fn ipv6_hosts_share_their_64() {
        let l = limiter(10);
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(
                l.check(format!("2001:db8::{i}").parse().unwrap(), t0)
                    .is_ok()
            );
        }
        assert!(l.check("2001:db8::ff".parse().unwrap(), t0).is_err());
        assert!(l.check("2001:db8:0:1::1".parse().unwrap(), t0).is_ok());
    }

    #[test]
    fn table_is_bounded() {
        let l = limiter(2);
        let t0 = Instant::now();
        assert!(l.check("192.0.2.1".parse().unwrap(), t0).is_ok());
        assert!(l.check("192.0.2.2".parse().unwrap(), t0).is_ok());
        // Full, and both clients are mid-burst: a third is refused...
        assert!(l.check("192.0.2.3".parse().unwrap(), t0).is_err());
        // ...until the others have refilled and can be forgotten.
        assert!(
            l.check("192.0.2.3".parse().unwrap(), t0 + Duration::from_secs(5))
                .is_ok()
        );
    }
}

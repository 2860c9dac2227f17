//! Throttling of logins (per email and per client address) and of
//! registrations (per client address) with governor's keyed GCRA limiters,
//! and finding the client address behind trusted proxies.

use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::time::Duration;

use common::ApiError;
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use http::HeaderMap;
use ipnet::IpNet;

/// At most `n` requests per key per minute, with a burst of `n`.
pub struct PerMinute<K: Hash + Eq + Clone> {
    limiter: RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>,
    clock: DefaultClock,
}

impl<K: Hash + Eq + Clone> PerMinute<K> {
    pub fn new(n: u32) -> Self {
        let quota = Quota::per_minute(NonZeroU32::new(n.max(1)).expect("max(1) is non-zero"));
        PerMinute {
            limiter: RateLimiter::keyed(quota),
            clock: DefaultClock::default(),
        }
    }

    /// `Err(wait)` when `key` has used up its requests.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        self.limiter
            .check_key(key)
            .map_err(|n| n.wait_time_from(self.clock.now()))
    }

    /// Forgets keys whose limits have fully recovered, bounding memory.
    pub fn prune(&self) {
        self.limiter.retain_recent();
    }
}

/// `429` with `Retry-After` in whole seconds (at least the wait).
pub fn throttled(wait: Duration, detail: &str) -> ApiError {
    ApiError::too_many_requests(wait.as_secs_f64().ceil() as u64, detail)
}

pub struct LoginLimiter {
    by_email: PerMinute<String>,
    by_ip: PerMinute<IpAddr>,
}

impl LoginLimiter {
    pub fn new(per_email_per_minute: u32, per_ip_per_minute: u32) -> Self {
        LoginLimiter {
            by_email: PerMinute::new(per_email_per_minute),
            by_ip: PerMinute::new(per_ip_per_minute),
        }
    }

    /// `Err(wait)` when either limit is exhausted.
    pub fn check(&self, email_lower: &str, ip: IpAddr) -> Result<(), Duration> {
        self.by_ip.check(&ip)?;
        self.by_email.check(&email_lower.to_string())
    }

    pub fn prune(&self) {
        self.by_email.prune();
        self.by_ip.prune();
    }
}

/// The client's address: the peer, unless the peer is a trusted proxy, in
/// which case the right-most `X-Forwarded-For` entry that is not itself a
/// trusted proxy (entries further left are client-controlled).
pub fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let peer_ip = peer.ip().to_canonical();
    if !is_trusted(&peer_ip) {
        return peer_ip;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical())
        .collect();
    forwarded
        .into_iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .unwrap_or(peer_ip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec![
            "127.0.0.1/32".parse().unwrap(),
            "172.28.0.0/16".parse().unwrap(),
        ];
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 203.0.113.9"),
        );
        let via_proxy: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let direct: SocketAddr = "198.51.100.1:5000".parse().unwrap();
        assert_eq!(
            client_ip(via_proxy, &h, &trusted),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_ip(direct, &h, &trusted),
            "198.51.100.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_ip(via_proxy, &HeaderMap::new(), &trusted),
            "127.0.0.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn limits_per_email() {
        let l = LoginLimiter::new(2, 100);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(l.check("a@x.com", ip).is_ok());
        assert!(l.check("a@x.com", ip).is_ok());
        assert!(l.check("a@x.com", ip).is_err());
        assert!(l.check("b@x.com", ip).is_ok());
    }

    #[test]
    fn limits_per_key() {
        let l = PerMinute::new(2);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        assert!(l.check(&a).is_ok());
        assert!(l.check(&a).is_ok());
        let wait = l.check(&a).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        assert!(l.check(&b).is_ok());
    }
}

//! Peers trusted by address, range or host name: the proxies whose
//! `X-Forwarded-For` users and the balancer believe. A host name (the
//! balancer's compose service name) is resolved at start and again
//! periodically, because a recreated container comes back with a new
//! address; that keeps deployments free of fixed subnets and fixed IPs.
//! Until a name resolves it trusts nothing, which is the safe side: the
//! peer's own address is used instead of the header.

use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use ipnet::IpNet;

use crate::config::parse_net;

/// How often host names are resolved again (users; the balancer uses its
/// own `resolve_interval`, the same as for its upstreams).
pub const REFRESH_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// The trusted peers: literal ranges plus host names and what they last
/// resolved to. Clones share the resolved addresses.
#[derive(Debug, Clone, Default)]
pub struct TrustedPeers {
    literal: Vec<IpNet>,
    hosts: Vec<String>,
    /// `literal` plus every host's last addresses; unused without hosts.
    current: Arc<RwLock<Vec<IpNet>>>,
}

impl TrustedPeers {
    /// Addresses and ranges only (never re-resolved).
    pub fn literal(nets: Vec<IpNet>) -> Self {
        TrustedPeers {
            current: Arc::new(RwLock::new(nets.clone())),
            literal: nets,
            hosts: Vec::new(),
        }
    }

    /// Each item is an address, a CIDR range or a host name; a name is
    /// resolved by [`refresh`](Self::refresh), not here.
    pub fn parse(items: &[String]) -> Result<Self, String> {
        let mut peers = TrustedPeers::default();
        for item in items {
            match parse_net(item) {
                Some(net) => peers.literal.push(net),
                None if is_host_name(item) => peers.hosts.push(item.clone()),
                None => {
                    return Err(format!(
                        "`{item}` is not an address, CIDR range or host name"
                    ))
                }
            }
        }
        *peers.current.write().expect("not poisoned") = peers.literal.clone();
        Ok(peers)
    }

    /// The host names to resolve (empty: nothing to refresh).
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// Whether `ip` is one of the trusted peers as last resolved.
    pub fn contains(&self, ip: &IpAddr) -> bool {
        self.with(|nets| nets.iter().any(|n| n.contains(ip)))
    }

    /// Runs `f` on the trusted ranges as last resolved.
    pub fn with<R>(&self, f: impl FnOnce(&[IpNet]) -> R) -> R {
        if self.hosts.is_empty() {
            return f(&self.literal);
        }
        f(&self.current.read().expect("not poisoned"))
    }

    /// Resolves every host name again. A name that fails to resolve keeps
    /// its previous addresses out: a container that is gone is no longer
    /// trusted, and one not started yet is not trusted early.
    pub async fn refresh(&self) {
        if self.hosts.is_empty() {
            return;
        }
        let mut nets = self.literal.clone();
        for host in &self.hosts {
            match tokio::net::lookup_host((host.as_str(), 0)).await {
                Ok(addrs) => nets.extend(addrs.map(|a| IpNet::from(a.ip().to_canonical()))),
                Err(e) => log::debug!("trusted proxy {host} does not resolve (yet): {e}"),
            }
        }
        nets.sort();
        nets.dedup();
        let mut current = self.current.write().expect("not poisoned");
        if *current != nets {
            log::info!(
                "trusted proxies now {}",
                nets.iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            );
            *current = nets;
        }
    }
}

/// A DNS name as written in configuration: letters, digits, `-`, `_`
/// and dots, not all digits and dots (that would be a mistyped address).
fn is_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !s.chars().all(|c| c.is_ascii_digit() || c == '.')
        && !s.starts_with(['-', '.'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn addresses_ranges_and_names_are_told_apart() {
        let peers =
            TrustedPeers::parse(&items(&["10.0.0.0/8", "::1", "balancer", "lb.example"])).unwrap();
        assert_eq!(peers.hosts(), ["balancer", "lb.example"]);
        assert!(peers.contains(&"10.1.2.3".parse().unwrap()));
        assert!(peers.contains(&"::1".parse().unwrap()));
        assert!(!peers.contains(&"192.168.0.1".parse().unwrap()));
        for bad in ["10.0.0.300", "10.0.0.0/40", "bad name", "-x", "a/b"] {
            let err = TrustedPeers::parse(&items(&[bad])).unwrap_err();
            assert!(err.contains(bad), "{err}");
        }
    }

    #[tokio::test]
    async fn a_host_name_is_trusted_once_resolved_and_while_it_resolves() {
        let peers = TrustedPeers::parse(&items(&["localhost", "no-such-host.invalid"])).unwrap();
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        // Not before it is resolved: nothing is trusted early.
        assert!(!peers.contains(&loopback));
        let shared = peers.clone();
        shared.refresh().await;
        assert!(
            peers.contains(&loopback),
            "clones share the resolved addresses"
        );
        assert!(!peers.contains(&"10.0.0.1".parse().unwrap()));
    }

    #[tokio::test]
    async fn a_name_that_stops_resolving_is_no_longer_trusted() {
        let peers = TrustedPeers::parse(&items(&["localhost"])).unwrap();
        peers.refresh().await;
        assert!(peers.contains(&"127.0.0.1".parse().unwrap()));
        // As if the container were gone: the next refresh finds nothing.
        let gone = TrustedPeers {
            hosts: vec!["no-such-host.invalid".to_string()],
            ..peers.clone()
        };
        gone.refresh().await;
        assert!(!peers.contains(&"127.0.0.1".parse().unwrap()));
    }
}

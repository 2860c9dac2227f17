//! The balancer's settings (prefix `BALANCER_`): where to listen, which
//! route table, upstream overrides per pool, CORS origins, limits, health
//! checking and the upstream connection pool.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use common::cli::Binary;
use common::config::{Config, ConfigError, Setting};
use common::peers::TrustedPeers;
use common::server::ServerOptions;

use crate::routes::{parse_size_str, Table, UpstreamUrl, DEFAULT_TABLE};
use crate::storefront;

pub const NAME: &str = "balancer";

/// Per-pool upstream overrides: setting key → pool name in the table.
pub const POOL_URL_SETTINGS: &[(&str, &str)] = &[
    ("users_url", "users"),
    ("products_url", "products"),
    ("cart_url", "cart"),
    ("payments_url", "payments-mock"),
    ("stats_url", "stats"),
];

const OWN_SETTINGS: &[Setting] = &[
    Setting::new("listen", Some("127.0.0.1:8080"), "Address and port to listen on"),
    Setting::new(
        "admin_listen",
        None,
        "Address of the operational listener (/metrics, /readyz with every pool) (default: 127.0.0.1 on listen's port + 1)",
    ),
    Setting::new(
        "trusted_proxies",
        None,
        "Front proxies (addresses, CIDR ranges or host names re-resolved with the upstreams, comma-separated) whose forwarding headers are kept; from anyone else they are replaced",
    ),
    Setting::new(
        "routes",
        None,
        "TOML route table file (default: the built-in table, docs/api.md's routes)",
    ),
    Setting::new(
        "users_url",
        None,
        "Upstreams of pool `users`, comma-separated (replaces the table's)",
    )
    .shared("SHOP_USERS_URL"),
    Setting::new("products_url", None, "Upstreams of pool `products`")
        .shared("SHOP_PRODUCTS_URL"),
    Setting::new("cart_url", None, "Upstreams of pool `cart`").shared("SHOP_CART_URL"),
    Setting::new("payments_url", None, "Upstreams of pool `payments-mock`")
        .shared("SHOP_PAYMENTS_URL"),
    Setting::new("stats_url", None, "Upstreams of pool `stats`").shared("SHOP_STATS_URL"),
    Setting::new(
        "upstreams",
        None,
        "Upstreams of any pool as pool=url pairs, comma-separated; a pool named here loses its other upstreams",
    ),
    Setting::new(
        "storefront_dir",
        Some("storefront/public"),
        "Directory of the storefront's files, served by `static = true` routes (relative: to the working directory); missing: not served",
    ),
    Setting::new(
        "storefront_max_age",
        Some("60s"),
        "How long browsers may reuse a storefront file other than HTML before revalidating (0s: always revalidate)",
    ),
    Setting::new(
        "cors_origins",
        Some("http://localhost:5173,http://localhost:3000"),
        "Browser origins allowed to call the shop (comma-separated; `*` for any; empty for none)",
    ),
    Setting::new(
        "max_body_bytes",
        Some("1MiB"),
        "Largest request body for routes without their own max_body",
    ),
    Setting::new(
        "route_timeout",
        Some("15s"),
        "Deadline for an upstream's response headers, for routes without their own timeout",
    ),
    Setting::new(
        "max_header_count",
        Some("64"),
        "Most request headers accepted (431 beyond; at most 100)",
    ),
    Setting::new(
        "max_header_bytes",
        Some("32KiB"),
        "Largest total size of the request headers (431 beyond)",
    ),
    Setting::new(
        "connect_timeout",
        Some("2s"),
        "Deadline for opening a connection to an upstream",
    ),
    Setting::new(
        "pool_max_idle_per_host",
        Some("1024"),
        "Upstream connections kept open per replica and worker, busy and idle together; beyond it, extra ones close after their exchange",
    ),
    Setting::new(
        "pool_idle_timeout",
        Some("60s"),
        "An idle upstream connection is closed after this time",
    ),
    Setting::new(
        "health_path",
        Some("/healthz"),
        "Path the active health check GETs on every replica",
    ),
    Setting::new("health_interval", Some("2s"), "Time between health checks"),
    Setting::new("health_timeout", Some("2s"), "Deadline of one health check"),
    Setting::new(
        "unhealthy_threshold",
        Some("2"),
        "Consecutive failed checks that take a replica out",
    ),
    Setting::new(
        "healthy_threshold",
        Some("2"),
        "Consecutive good checks that bring a replica back",
    ),
    Setting::new(
        "resolve_interval",
        Some("30s"),
        "How often upstream hostnames are resolved again",
    ),
    Setting::new(
        "ready_requires_all_pools",
        Some("false"),
        "Make /readyz answer 503 while any pool has no healthy replica",
    ),
    Setting::new(
        "workers",
        None,
        "Worker threads, each with its own runtime and listener (default: CPU count)",
    ),
];

pub fn binary() -> Binary {
    let mut settings = OWN_SETTINGS.to_vec();
    settings.extend_from_slice(common::server::SETTINGS);
    Binary {
        name: NAME,
        about: "The shop's reverse proxy: one public entry point in front of every service.",
        prefix: "BALANCER",
        settings,
    }
}

/// Who may call the shop from a browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origins {
    Any,
    List(Vec<String>),
}

impl Origins {
    pub fn allows(&self, origin: &[u8]) -> bool {
        match self {
            Origins::Any => true,
            Origins::List(list) => list.iter().any(|o| o.as_bytes() == origin),
        }
    }

    pub fn is_empty(&self) -> bool {
        matches!(self, Origins::List(l) if l.is_empty())
    }
}

#[derive(Debug, Clone)]
pub struct HealthOptions {
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub unhealthy_threshold: u32,
    pub healthy_threshold: u32,
    pub resolve_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct BalancerConfig {
    pub listen: SocketAddr,
    /// The operational listener: never the public port.
    pub admin_listen: SocketAddr,
    /// Peers whose `X-Forwarded-*`, `Forwarded` and `X-Real-IP` are kept.
    pub trusted_proxies: TrustedPeers,
    /// Where the table came from, for logs.
    pub table_source: String,
    pub table: Table,
    pub cors: Origins,
    pub storefront: storefront::Options,
    pub max_body: u64,
    pub route_timeout: Duration,
    pub max_header_count: usize,
    pub max_header_bytes: usize,
    pub connect_timeout: Duration,
    pub pool_max_idle_per_host: usize,
    pub pool_idle_timeout: Duration,
    pub health: HealthOptions,
    pub ready_requires_all_pools: bool,
    pub workers: usize,
    pub server: ServerOptions,
}

/// Loopback on the port after the public one (8080 → 127.0.0.1:8081), so
/// the operational endpoints are off the public port and off the network
/// unless asked for; port 0 (any free port) stays 0. None past 65535.
pub fn default_admin_listen(listen: SocketAddr) -> Option<SocketAddr> {
    let port = match listen.port() {
        0 => 0,
        p => p.checked_add(1)?,
    };
    Some(SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port)))
}

/// Reads a route table file, naming the file in the error.
pub fn load_table(path: &std::path::Path) -> Result<Table, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read route table {}: {e}", path.display()))?;
    Table::parse(&text).map_err(|e| format!("route table {}: {e}", path.display()))
}

impl BalancerConfig {
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let (mut table, table_source) = match config.get_opt::<PathBuf>("routes")? {
            Some(path) => (
                load_table(&path).map_err(|m| config.invalid("routes", m))?,
                path.display().to_string(),
            ),
            None => (
                Table::parse(DEFAULT_TABLE).map_err(|e| config.invalid("routes", e.to_string()))?,
                "built-in".to_string(),
            ),
        };
        for (key, pool) in POOL_URL_SETTINGS {
            let urls = config.list(key);
            if urls.is_empty() {
                continue;
            }
            let parsed = urls
                .iter()
                .map(|u| UpstreamUrl::parse(u))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|m| config.invalid(key, m))?;
            match table.pools.iter_mut().find(|p| p.name == *pool) {
                Some(p) => p.upstreams = parsed,
                // A custom table without this pool: the override has nothing
                // to replace, which is worth a warning, not a refusal (the
                // launcher sets every SHOP_*_URL for every child).
                None => log::debug!("{key} is set but the route table has no pool `{pool}`"),
            }
        }
        let mut replaced: Vec<String> = Vec::new();
        for pair in config.list("upstreams") {
            let (pool, url) = pair
                .split_once('=')
                .ok_or_else(|| config.invalid("upstreams", format!("`{pair}` is not pool=url")))?;
            let (pool, url) = (pool.trim(), url.trim());
            let url = UpstreamUrl::parse(url).map_err(|m| config.invalid("upstreams", m))?;
            let Some(p) = table.pools.iter_mut().find(|p| p.name == pool) else {
                return Err(
                    config.invalid("upstreams", format!("the route table has no pool `{pool}`"))
                );
            };
            if !replaced.iter().any(|r| r == pool) {
                p.upstreams.clear();
                replaced.push(pool.to_string());
            }
            p.upstreams.push(url);
        }

        let cors = {
            let list = config.list("cors_origins");
            if list.iter().any(|o| o == "*") {
                Origins::Any
            } else {
                for o in &list {
                    if !(o.starts_with("http://") || o.starts_with("https://")) || o.ends_with('/')
                    {
                        return Err(config.invalid(
                            "cors_origins",
                            format!("`{o}` is not an origin like http://localhost:5173"),
                        ));
                    }
                }
                Origins::List(list)
            }
        };
        let size = |key: &str| -> Result<u64, ConfigError> {
            config
                .parse_with(key, parse_size_str)?
                .ok_or_else(|| config.invalid(key, "must be set"))
        };
        let max_body = size("max_body_bytes")?;
        let max_header_count: usize = config.get("max_header_count")?;
        if !(1..=100).contains(&max_header_count) {
            // hyper itself refuses more than 100 headers (with a bare 431).
            return Err(config.invalid("max_header_count", "must be between 1 and 100"));
        }
        let max_header_bytes = size("max_header_bytes")? as usize;
        if max_header_bytes < 1024 {
            return Err(config.invalid("max_header_bytes", "must be at least 1KiB"));
        }
        let health_path: String = config.get("health_path")?;
        if !health_path.starts_with('/') {
            return Err(config.invalid("health_path", "must start with /"));
        }
        let workers = match config.get_opt::<usize>("workers")? {
            Some(0) => return Err(config.invalid("workers", "must be at least 1")),
            Some(n) => n,
            None => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
        };
        let listen: SocketAddr = config.get("listen")?;
        let admin_listen = match config.get_opt::<SocketAddr>("admin_listen")? {
            Some(addr) => addr,
            None => default_admin_listen(listen).ok_or_else(|| {
                config.invalid(
                    "listen",
                    "the admin listener defaults to the next port, and there is none: set admin_listen",
                )
            })?,
        };
        if admin_listen.port() != 0 && admin_listen.port() == listen.port() {
            return Err(config.invalid(
                "admin_listen",
                "must not be the public port: /metrics and the pools would be public",
            ));
        }
        let storefront = storefront::Options {
            dir: config
                .raw("storefront_dir")
                .map(PathBuf::from)
                // Absolute from here on, so logs name the real place.
                .map(|d| match std::env::current_dir() {
                    Ok(cwd) if d.is_relative() => cwd.join(d),
                    _ => d,
                }),
            max_age: config.duration("storefront_max_age")?,
        };
        Ok(BalancerConfig {
            listen,
            admin_listen,
            trusted_proxies: config.peers("trusted_proxies")?,
            table_source,
            table,
            cors,
            storefront,
            max_body,
            route_timeout: config.nonzero_duration("route_timeout")?,
            max_header_count,
            max_header_bytes,
            connect_timeout: config.nonzero_duration("connect_timeout")?,
            pool_max_idle_per_host: config.get("pool_max_idle_per_host")?,
            pool_idle_timeout: config.nonzero_duration("pool_idle_timeout")?,
            health: HealthOptions {
                path: health_path,
                interval: config.nonzero_duration("health_interval")?,
                timeout: config.nonzero_duration("health_timeout")?,
                unhealthy_threshold: config.positive::<u32>("unhealthy_threshold")?,
                healthy_threshold: config.positive::<u32>("healthy_threshold")?,
                resolve_interval: config.nonzero_duration("resolve_interval")?,
            },
            ready_requires_all_pools: config.flag("ready_requires_all_pools")?,
            workers,
            server: ServerOptions::from_config(config)?,
        })
    }

    /// Settings for tests: the given table, fast health checks, port 0.
    pub fn for_tests(table: Table) -> Self {
        BalancerConfig {
            listen: "127.0.0.1:0".parse().expect("a literal address"),
            admin_listen: "127.0.0.1:0".parse().expect("a literal address"),
            trusted_proxies: TrustedPeers::default(),
            table_source: "test".to_string(),
            table,
            cors: Origins::List(vec!["http://localhost:5173".to_string()]),
            storefront: storefront::Options {
                dir: None,
                max_age: Duration::from_secs(60),
            },
            max_body: 1 << 20,
            route_timeout: Duration::from_secs(15),
            max_header_count: 64,
            max_header_bytes: 32 * 1024,
            connect_timeout: Duration::from_secs(2),
            pool_max_idle_per_host: 64,
            pool_idle_timeout: Duration::from_secs(60),
            health: HealthOptions {
                path: "/healthz".to_string(),
                interval: Duration::from_millis(100),
                timeout: Duration::from_millis(500),
                unhealthy_threshold: 2,
                healthy_threshold: 2,
                resolve_interval: Duration::from_secs(30),
            },
            ready_requires_all_pools: false,
            workers: 1,
            server: ServerOptions::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn load(env: &[(&str, &str)]) -> Result<BalancerConfig, ConfigError> {
        let b = binary();
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let c = Config::from_layers("BALANCER", &b.settings, None, &[], &env, &[])?;
        BalancerConfig::from_config(&c)
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = load(&[]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.admin_listen.to_string(), "127.0.0.1:8081");
        assert!(c.trusted_proxies.with(|t| t.is_empty()));
        assert_eq!(c.max_body, 1 << 20);
        assert_eq!(c.route_timeout, Duration::from_secs(15));
        assert!(c.cors.allows(b"http://localhost:5173"));
        assert!(c.cors.allows(b"http://localhost:3000"));
        assert!(!c.cors.allows(b"http://evil.example"));
        let users = c.table.pools.iter().find(|p| p.name == "users").unwrap();
        assert_eq!(users.upstreams[0].to_string(), "http://127.0.0.1:8001");
        let dir = c.storefront.dir.unwrap();
        assert!(
            dir.is_absolute() && dir.ends_with("storefront/public"),
            "{dir:?}"
        );
        assert_eq!(c.storefront.max_age, Duration::from_secs(60));
    }

    #[test]
    fn upstreams_are_overridden_per_pool() {
        let c = load(&[
            ("SHOP_USERS_URL", "http://a:1"),
            ("BALANCER_CART_URL", "http://c1:3,http://c2:3"),
            ("BALANCER_UPSTREAMS", "stats=http://s1:5, stats=http://s2:5"),
        ])
        .unwrap();
        let pool = |n: &str| {
            c.table
                .pools
                .iter()
                .find(|p| p.name == n)
                .unwrap()
                .upstreams
                .iter()
                .map(|u| u.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(pool("users"), ["http://a:1"]);
        assert_eq!(pool("cart"), ["http://c1:3", "http://c2:3"]);
        assert_eq!(pool("stats"), ["http://s1:5", "http://s2:5"]);
        let err = load(&[("BALANCER_UPSTREAMS", "nope=http://x:1")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("upstreams") && err.contains("nope"), "{err}");
        let err = load(&[("BALANCER_CART_URL", "https://x")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("BALANCER_CART_URL"), "{err}");
    }

    /// The message of the configuration error `env` gives.
    fn error(env: &[(&str, &str)]) -> String {
        load(env).unwrap_err().to_string()
    }

    #[test]
    fn the_admin_listener_follows_the_public_port_unless_set() {
        let c = load(&[("BALANCER_LISTEN", "0.0.0.0:19080")]).unwrap();
        assert_eq!(c.admin_listen.to_string(), "127.0.0.1:19081");
        let c = load(&[("BALANCER_LISTEN", "127.0.0.1:0")]).unwrap();
        assert_eq!(c.admin_listen.port(), 0);
        let c = load(&[("BALANCER_ADMIN_LISTEN", "0.0.0.0:9100")]).unwrap();
        assert_eq!(c.admin_listen.to_string(), "0.0.0.0:9100");
        let err = error(&[("BALANCER_LISTEN", "127.0.0.1:65535")]);
        assert!(err.contains("admin_listen"), "{err}");
        let err = error(&[("BALANCER_ADMIN_LISTEN", "0.0.0.0:8080")]);
        assert!(err.contains("BALANCER_ADMIN_LISTEN"), "{err}");
    }

    #[test]
    fn trusted_proxies_are_addresses_ranges_and_names() {
        let c = load(&[(
            "BALANCER_TRUSTED_PROXIES",
            "10.0.0.0/8, 192.0.2.7,::1,front",
        )])
        .unwrap();
        let shown: Vec<String> = c
            .trusted_proxies
            .with(|t| t.iter().map(|n| n.to_string()).collect());
        assert_eq!(shown, ["10.0.0.0/8", "192.0.2.7/32", "::1/128"]);
        assert_eq!(c.trusted_proxies.hosts(), ["front"]);
        let err = error(&[("BALANCER_TRUSTED_PROXIES", "10.0.0.0/33")]);
        assert!(err.contains("BALANCER_TRUSTED_PROXIES"), "{err}");
    }
}

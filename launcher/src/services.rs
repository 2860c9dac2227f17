//! The shop's processes: their names, ports, environment prefixes, and the
//! environment the launcher gives each so they find one another.

use std::path::Path;

/// One child process of the shop.
#[derive(Debug, Clone)]
pub struct Service {
    /// Binary name, also the log prefix.
    pub name: &'static str,
    /// Prefix of its settings' environment variables.
    pub prefix: &'static str,
    /// Offset from the port base (8000 gives the documented ports).
    pub port_offset: u16,
}

/// In start order: receivers of messages first, the balancer last.
pub const SERVICES: &[Service] = &[
    Service {
        name: "mailer",
        prefix: "MAILER",
        port_offset: 4,
    },
    Service {
        name: "stats",
        prefix: "STATS",
        port_offset: 5,
    },
    Service {
        name: "products",
        prefix: "PRODUCTS",
        port_offset: 2,
    },
    Service {
        name: "payments-mock",
        prefix: "PAYMENTS",
        port_offset: 6,
    },
    Service {
        name: "users",
        prefix: "USERS",
        port_offset: 1,
    },
    Service {
        name: "cart",
        prefix: "CART",
        port_offset: 3,
    },
    Service {
        name: "balancer",
        prefix: "BALANCER",
        port_offset: 80,
    },
];

/// The balancer's admin listener (`/metrics`, `/readyz` with the pools):
/// the port after its public one, on loopback whatever `--host` says.
pub const BALANCER_ADMIN_OFFSET: u16 = 81;

/// Where everything listens and what they share.
#[derive(Debug, Clone)]
pub struct Layout {
    pub host: String,
    pub port_base: u16,
}

impl Layout {
    pub fn port(&self, service: &str) -> u16 {
        let offset = SERVICES
            .iter()
            .find(|s| s.name == service)
            .map(|s| s.port_offset)
            .unwrap_or_else(|| panic!("unknown service {service}"));
        self.port_base + offset
    }

    pub fn url(&self, service: &str) -> String {
        format!("http://{}:{}", self.host, self.port(service))
    }

    /// The balancer's address: the shop's one public URL.
    pub fn shop_url(&self) -> String {
        self.url("balancer")
    }

    /// `127.0.0.1:BASE+81`, where the balancer's operational endpoints are.
    pub fn balancer_admin(&self) -> String {
        format!("127.0.0.1:{}", self.port_base + BALANCER_ADMIN_OFFSET)
    }

    /// Variables every child gets: where neighbours are and the shared data
    /// directory. Each service reads only the ones it declares.
    pub fn shared_env(&self, data_dir: &Path) -> Vec<(String, String)> {
        let mut env = vec![
            ("SHOP_USERS_URL".to_string(), self.url("users")),
            ("SHOP_PRODUCTS_URL".to_string(), self.url("products")),
            ("SHOP_CART_URL".to_string(), self.url("cart")),
            ("SHOP_MAILER_URL".to_string(), self.url("mailer")),
            ("SHOP_STATS_URL".to_string(), self.url("stats")),
            ("SHOP_PAYMENTS_URL".to_string(), self.url("payments-mock")),
            (
                "PAYMENTS_WEBHOOK_URL".to_string(),
                format!("{}/internal/payments/webhook", self.url("cart")),
            ),
            ("BALANCER_ADMIN_LISTEN".to_string(), self.balancer_admin()),
        ];
        for s in SERVICES {
            env.push((
                format!("{}_LISTEN", s.prefix),
                format!("{}:{}", self.host, self.port(s.name)),
            ));
            env.push((
                format!("{}_DATA_DIR", s.prefix),
                data_dir.display().to_string(),
            ));
        }
        env
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_balancer_admin_listener_follows_the_port_base_on_loopback() {
        let layout = Layout {
            host: "0.0.0.0".into(),
            port_base: 20000,
        };
        let env = layout.shared_env(Path::new("/tmp/data"));
        let get = |k: &str| {
            env.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("BALANCER_LISTEN"), Some("0.0.0.0:20080"));
        assert_eq!(get("BALANCER_ADMIN_LISTEN"), Some("127.0.0.1:20081"));
    }
}

//! The users service's settings: the shared base plus token lifetime,
//! where the mailer and stats live, where the services that verify tokens
//! live (they hear of revocations), the bootstrap admin, login and
//! registration limits and which proxies may tell us the client's address.

use std::time::Duration;

use common::base_config::{base_settings, BaseConfig};
use common::cli::Binary;
use common::config::{Config, ConfigError, Setting};
use common::host::Settings;
use common::peers::TrustedPeers;

pub const NAME: &str = "users";

const OWN_SETTINGS: &[Setting] = &[
    Setting::new("token_ttl", Some("24h"), "How long a login token is valid"),
    Setting::new(
        "mailer_url",
        Some("http://127.0.0.1:8004"),
        "Base URL of the mailer service",
    )
    .shared("SHOP_MAILER_URL"),
    Setting::new(
        "stats_url",
        Some("http://127.0.0.1:8005"),
        "Base URL of the stats service",
    )
    .shared("SHOP_STATS_URL"),
    Setting::new(
        "products_url",
        Some("http://127.0.0.1:8002"),
        "Base URL of the products service (told of revoked tokens)",
    )
    .shared("SHOP_PRODUCTS_URL"),
    Setting::new(
        "cart_url",
        Some("http://127.0.0.1:8003"),
        "Base URL of the cart service (told of revoked tokens)",
    )
    .shared("SHOP_CART_URL"),
    Setting::new(
        "admin_email",
        None,
        "Admin account created at start if no account has this email (an existing non-admin account is never promoted)",
    )
    .shared("SHOP_ADMIN_EMAIL"),
    Setting::new("admin_password", None, "Password of that admin account")
        .shared("SHOP_ADMIN_PASSWORD")
        .secret(),
    Setting::new(
        "admin_strict",
        Some("false"),
        "Exit non-zero at start, instead of logging an error and serving, when admin_email belongs to a non-admin account",
    )
    .shared("SHOP_ADMIN_STRICT"),
    Setting::new(
        "login_attempts_per_email",
        Some("5"),
        "Login attempts per email per minute",
    ),
    Setting::new(
        "login_attempts_per_ip",
        Some("20"),
        "Login attempts per client address per minute",
    ),
    // A person registers once; a few people behind one address (a family,
    // an office NAT) may register within the same minute. Each registration
    // costs an argon2 hash and sends an email, so one address cannot do more.
    Setting::new(
        "registrations_per_ip",
        Some("5"),
        "Registrations per client address per minute",
    ),
    Setting::new(
        "trusted_proxies",
        Some("127.0.0.1,::1"),
        "Comma-separated addresses, CIDR ranges or host names (re-resolved every 10s) whose X-Forwarded-For is believed",
    ),
    Setting::new(
        "hash_concurrency",
        None,
        "Password hashes computed at once (default: CPU count)",
    ),
];

pub fn binary() -> Binary {
    let mut settings = base_settings("127.0.0.1:8001");
    settings.extend_from_slice(OWN_SETTINGS);
    Binary {
        name: NAME,
        about: "The shop's accounts service: registration, login, tokens and profiles.",
        prefix: "USERS",
        settings,
    }
}

#[derive(Debug, Clone)]
pub struct UsersConfig {
    pub base: BaseConfig,
    pub token_ttl: Duration,
    pub mailer_url: String,
    pub stats_url: String,
    pub products_url: String,
    pub cart_url: String,
    pub admin: Option<(String, String)>,
    /// Whether an admin_email held by a non-admin account stops the start.
    pub admin_strict: bool,
    pub login_attempts_per_email: u32,
    pub login_attempts_per_ip: u32,
    pub registrations_per_ip: u32,
    pub trusted_proxies: TrustedPeers,
    pub hash_concurrency: usize,
}

impl Settings for UsersConfig {
    fn base(&self) -> &BaseConfig {
        &self.base
    }

    fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let admin = match (config.raw("admin_email"), config.raw("admin_password")) {
            (Some(e), Some(p)) => Some((e.to_string(), p.to_string())),
            // `users create-admin --email E` reads SHOP_ADMIN_PASSWORD alone.
            (None, _) => None,
            (Some(_), None) => {
                return Err(
                    config.invalid("admin_password", "must be set together with admin_email")
                )
            }
        };
        let trusted_proxies = config.peers("trusted_proxies")?;
        let hash_concurrency = match config.get_opt::<usize>("hash_concurrency")? {
            Some(0) => return Err(config.invalid("hash_concurrency", "must be at least 1")),
            Some(n) => n,
            None => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
        };
        Ok(UsersConfig {
            base: BaseConfig::from_config(config, NAME)?,
            token_ttl: config.duration("token_ttl")?,
            mailer_url: config.base_url("mailer_url")?,
            stats_url: config.base_url("stats_url")?,
            products_url: config.base_url("products_url")?,
            cart_url: config.base_url("cart_url")?,
            admin,
            admin_strict: config.flag("admin_strict")?,
            login_attempts_per_email: config.positive("login_attempts_per_email")?,
            login_attempts_per_ip: config.positive("login_attempts_per_ip")?,
            registrations_per_ip: config.positive("registrations_per_ip")?,
            trusted_proxies,
            hash_concurrency,
        })
    }
}

#[cfg(feature = "test-support")]
impl common::testing::TestConfig for UsersConfig {
    /// Settings for tests: the given database, unreachable neighbours.
    fn for_tests(database_url: &str, data_dir: &std::path::Path) -> Self {
        UsersConfig {
            base: BaseConfig::for_tests(database_url, data_dir),
            token_ttl: Duration::from_secs(3600),
            mailer_url: "http://127.0.0.1:9".to_string(),
            stats_url: "http://127.0.0.1:9".to_string(),
            products_url: "http://127.0.0.1:9".to_string(),
            cart_url: "http://127.0.0.1:9".to_string(),
            admin: None,
            admin_strict: false,
            login_attempts_per_email: 5,
            login_attempts_per_ip: 100,
            registrations_per_ip: 100,
            trusted_proxies: TrustedPeers::literal(vec![
                common::config::parse_net("127.0.0.1").expect("literal")
            ]),
            hash_concurrency: 2,
        }
    }
}

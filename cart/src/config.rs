//! The cart service's settings: the shared base plus where its neighbours
//! live (products, payments, mailer, stats), the payment provider's server
//! key and webhook secret, timeouts for calls to neighbours, and the timing
//! of payment reconciliation and checkout recovery.

use std::time::Duration;

use common::auth::MIN_SECRET_LEN;
use common::base_config::{base_settings, secret_or_dev, BaseConfig};
use common::cli::Binary;
use common::config::{Config, ConfigError, Setting};
use common::host::Settings;
use common::idempotency::IdempotencyOptions;
use common::outbox::OutboxOptions;

pub const NAME: &str = "cart";

const OWN_SETTINGS: &[Setting] = &[
    Setting::new(
        "products_url",
        Some("http://127.0.0.1:8002"),
        "Base URL of the products service",
    )
    .shared("SHOP_PRODUCTS_URL"),
    Setting::new(
        "payments_url",
        Some("http://127.0.0.1:8006"),
        "Base URL of the payment provider (payments-mock)",
    )
    .shared("SHOP_PAYMENTS_URL"),
    Setting::new(
        "payments_key",
        None,
        "Server key for creating invoices at the payment provider (default: the development \
         key payments-mock keeps in DATA_DIR/secrets/server_key); of a comma-separated list \
         the first is used",
    )
    .shared("SHOP_PAYMENTS_KEY")
    .secret(),
    Setting::new(
        "webhook_secret",
        None,
        "Secret that signs the payment provider's webhooks (Shop-Signature); default: the \
         development secret in DATA_DIR/secrets/webhook_secret",
    )
    .shared("SHOP_WEBHOOK_SECRET")
    .secret(),
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
        "upstream_connect_timeout",
        Some("1s"),
        "How long connecting to another service (products, payments, the mailer, stats) may take",
    ),
    Setting::new(
        "upstream_timeout",
        Some("5s"),
        "How long one call to products or payments may take in all",
    ),
    Setting::new(
        "reconcile_interval",
        Some("2s"),
        "How often the background sweep asks the payment provider about pending orders",
    ),
    Setting::new(
        "reconcile_after",
        Some("3s"),
        "A pending order older than this is checked at the payment provider when read and by the sweep",
    ),
    Setting::new(
        "checkout_recovery_after",
        Some("30s"),
        "A checkout interrupted (by a crash) for longer than this is completed or abandoned by the sweep",
    ),
];

pub fn binary() -> Binary {
    let mut settings = base_settings("127.0.0.1:8003");
    settings.extend_from_slice(OWN_SETTINGS);
    Binary {
        name: NAME,
        about: "The shop's cart service: carts, checkout, orders and payment confirmation.",
        prefix: "CART",
        settings,
    }
}

#[derive(Debug, Clone)]
pub struct CartConfig {
    pub base: BaseConfig,
    pub products_url: String,
    pub payments_url: String,
    /// Never logged.
    pub payments_key: String,
    /// Never logged.
    pub webhook_secret: String,
    pub mailer_url: String,
    pub stats_url: String,
    pub upstream_connect_timeout: Duration,
    pub upstream_timeout: Duration,
    pub reconcile_interval: Duration,
    pub reconcile_after: Duration,
    pub checkout_recovery_after: Duration,
    /// Not settings: tests shorten them.
    pub outbox: OutboxOptions,
    pub idempotency: IdempotencyOptions,
}

impl Settings for CartConfig {
    fn base(&self) -> &BaseConfig {
        &self.base
    }

    fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let base = BaseConfig::from_config(config, NAME)?;
        let payments_key = match config.raw("payments_key") {
            // payments-mock accepts a list of keys (rotation); we present one.
            Some(list) => {
                let first = list.split(',').map(str::trim).find(|k| !k.is_empty());
                match first {
                    Some(k) if k.len() >= MIN_SECRET_LEN => {
                        common::base_config::refuse_placeholder(config, "payments_key", k)?;
                        k.to_string()
                    }
                    _ => {
                        return Err(config.invalid(
                            "payments_key",
                            format!("must be at least {MIN_SECRET_LEN} characters"),
                        ))
                    }
                }
            }
            // The file payments-mock writes its own development key to, so
            // both agree with no configuration when run from one directory.
            None => secret_or_dev(config, "server_key", &base.data_dir)?,
        };
        let upstream_connect_timeout = config.nonzero_duration("upstream_connect_timeout")?;
        let upstream_timeout = config.nonzero_duration("upstream_timeout")?;
        if upstream_timeout > Duration::from_secs(20) {
            // A checkout makes two calls in a row and must finish well within
            // the idempotency lock timeout (60 s) and the recovery age.
            return Err(config.invalid("upstream_timeout", "must be at most 20s"));
        }
        let checkout_recovery_after = config.nonzero_duration("checkout_recovery_after")?;
        if checkout_recovery_after <= upstream_timeout * 2 {
            return Err(config.invalid(
                "checkout_recovery_after",
                "must be longer than a checkout can take (twice upstream_timeout)",
            ));
        }
        Ok(CartConfig {
            products_url: config.base_url("products_url")?,
            payments_url: config.base_url("payments_url")?,
            payments_key,
            webhook_secret: secret_or_dev(config, "webhook_secret", &base.data_dir)?,
            mailer_url: config.base_url("mailer_url")?,
            stats_url: config.base_url("stats_url")?,
            upstream_connect_timeout,
            upstream_timeout,
            reconcile_interval: config.nonzero_duration("reconcile_interval")?,
            reconcile_after: config.duration("reconcile_after")?,
            checkout_recovery_after,
            outbox: OutboxOptions::default(),
            idempotency: IdempotencyOptions::default(),
            base,
        })
    }
}

#[cfg(feature = "test-support")]
impl common::testing::TestConfig for CartConfig {
    /// Settings for tests: the given database, unreachable neighbours, the
    /// same fixed secrets as the other services' `for_tests`, and quick
    /// reconciliation, recovery and outbox retries.
    fn for_tests(database_url: &str, data_dir: &std::path::Path) -> Self {
        let nowhere = "http://127.0.0.1:9".to_string();
        CartConfig {
            base: BaseConfig::for_tests(database_url, data_dir),
            products_url: nowhere.clone(),
            payments_url: nowhere.clone(),
            payments_key: "test-server-key-test-server-key-0001".to_string(),
            webhook_secret: "test-webhook-secret-test-webhook-secret".to_string(),
            mailer_url: nowhere.clone(),
            stats_url: nowhere,
            upstream_connect_timeout: Duration::from_millis(500),
            upstream_timeout: Duration::from_secs(2),
            reconcile_interval: Duration::from_millis(200),
            reconcile_after: Duration::from_millis(500),
            checkout_recovery_after: Duration::from_secs(5),
            outbox: OutboxOptions {
                poll_interval: Duration::from_millis(50),
                base_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(1),
                ..OutboxOptions::default()
            },
            idempotency: IdempotencyOptions::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn load(env: &[(&str, &str)], dir: &std::path::Path) -> Result<CartConfig, ConfigError> {
        let mut env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.insert("CART_DATA_DIR".into(), dir.display().to_string());
        let config = Config::from_layers("CART", &binary().settings, None, &[], &env, &[])?;
        CartConfig::from_config(&config)
    }

    #[test]
    fn defaults_need_no_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let c = load(&[], dir.path()).unwrap();
        assert_eq!(c.base.listen.to_string(), "127.0.0.1:8003");
        assert_eq!(c.products_url, "http://127.0.0.1:8002");
        assert_eq!(c.payments_url, "http://127.0.0.1:8006");
        assert_eq!(c.reconcile_interval, Duration::from_secs(2));
        assert_eq!(c.reconcile_after, Duration::from_secs(3));
        assert!(
            c.base.database_url.ends_with("cart.db"),
            "{}",
            c.base.database_url
        );
        // The development secrets are the files payments-mock uses.
        let key = std::fs::read_to_string(dir.path().join("secrets/server_key")).unwrap();
        assert_eq!(c.payments_key, key.trim());
        let secret = std::fs::read_to_string(dir.path().join("secrets/webhook_secret")).unwrap();
        assert_eq!(c.webhook_secret, secret.trim());
    }

    #[test]
    fn shared_variables_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let a = "a".repeat(32);
        let list = format!("{a}, {}", "b".repeat(40));
        let c = load(
            &[
                ("SHOP_PAYMENTS_KEY", &list),
                ("SHOP_WEBHOOK_SECRET", &"w".repeat(32)),
                ("SHOP_PRODUCTS_URL", "http://products.internal:80/"),
            ],
            dir.path(),
        )
        .unwrap();
        assert_eq!(c.payments_key, a);
        assert_eq!(c.webhook_secret, "w".repeat(32));
        assert_eq!(c.products_url, "http://products.internal:80");
    }

    #[test]
    fn bad_values_name_the_setting_and_never_echo_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let cases: &[(&str, &str, &str)] = &[
            ("CART_PAYMENTS_KEY", "short-secret-value", "payments_key"),
            (
                "CART_WEBHOOK_SECRET",
                "short-secret-value",
                "webhook_secret",
            ),
            ("CART_PRODUCTS_URL", "ftp://x", "products_url"),
            ("CART_PAYMENTS_URL", "not a url", "payments_url"),
            ("CART_RECONCILE_INTERVAL", "0s", "reconcile_interval"),
            ("CART_UPSTREAM_TIMEOUT", "1m", "upstream_timeout"),
            (
                "CART_CHECKOUT_RECOVERY_AFTER",
                "5s",
                "checkout_recovery_after",
            ),
        ];
        for (var, value, key) in cases {
            let err = load(&[(var, value)], dir.path()).unwrap_err().to_string();
            assert!(err.contains(&format!("`{key}`")), "{var}={value}: {err}");
            assert!(err.contains(var), "{var}={value}: {err}");
            assert!(!err.contains("secret-value"), "secret echoed: {err}");
        }
    }
}

//! The payments-mock service's settings: the shared base plus the server
//! key merchants authenticate with, where the signed webhooks go, how long
//! idempotency keys live, and the fault-injection knobs.

use std::time::Duration;

use common::auth::MIN_SECRET_LEN;
use common::base_config::{base_settings, secret_or_dev, BaseConfig};
use common::cli::Binary;
use common::config::{Config, ConfigError, Setting};
use common::host::Settings;
use common::idempotency::IdempotencyOptions;
use common::outbox::OutboxOptions;

use crate::faults::Faults;

pub const NAME: &str = "payments-mock";

/// The cart's internal endpoint for provider notifications.
pub const DEFAULT_WEBHOOK_URL: &str = "http://127.0.0.1:8003/internal/payments/webhook";

const OWN_SETTINGS: &[Setting] = &[
    Setting::new(
        "server_key",
        None,
        "Key merchants send as `Authorization: Bearer <key>` to create invoices; several \
         comma-separated keys are all accepted (for rotation); each at least 32 characters",
    )
    .shared("SHOP_PAYMENTS_KEY")
    .secret(),
    Setting::new(
        "webhook_url",
        Some(DEFAULT_WEBHOOK_URL),
        "URL that receives the signed `invoice.paid` webhooks",
    ),
    Setting::new(
        "webhook_secret",
        None,
        "Secret that signs webhooks (Shop-Signature); at least 32 characters",
    )
    .shared("SHOP_WEBHOOK_SECRET")
    .secret(),
    Setting::new(
        "latency_ms",
        Some("0-0"),
        "Added latency of each /invoices request in milliseconds, a range such as 50-200",
    ),
    Setting::new(
        "failure_rate",
        Some("0"),
        "Share of /invoices requests answered 503, from 0.0 to 1.0",
    ),
    Setting::new(
        "idempotency_retention",
        Some("24h"),
        "How long Idempotency-Key answers are kept (at least 24h)",
    ),
    Setting::new(
        "idempotency_lock_timeout",
        Some("60s"),
        "After this long, an unfinished request's Idempotency-Key may be taken over by a retry",
    ),
];

pub fn binary() -> Binary {
    let mut settings = base_settings("127.0.0.1:8006");
    settings.extend_from_slice(OWN_SETTINGS);
    Binary {
        name: NAME,
        about: "A payment provider's test mode: invoices, test cards and signed webhooks.",
        prefix: "PAYMENTS",
        settings,
    }
}

#[derive(Debug, Clone)]
pub struct PaymentsConfig {
    pub base: BaseConfig,
    /// Every accepted server key; never logged.
    pub server_keys: Vec<String>,
    pub webhook_url: String,
    pub webhook_secret: String,
    pub faults: Faults,
    pub idempotency: IdempotencyOptions,
    /// Not a setting: tests shorten the backoff.
    pub outbox: OutboxOptions,
}

impl Settings for PaymentsConfig {
    fn base(&self) -> &BaseConfig {
        &self.base
    }

    fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let base = BaseConfig::from_config(config, NAME)?;
        let server_keys: Vec<String> = secret_or_dev(config, "server_key", &base.data_dir)?
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_string)
            .collect();
        if server_keys.is_empty() || server_keys.iter().any(|k| k.len() < MIN_SECRET_LEN) {
            return Err(config.invalid(
                "server_key",
                format!("each key must be at least {MIN_SECRET_LEN} characters"),
            ));
        }
        let webhook_url = config.http_url("webhook_url")?;
        let latency_ms = config
            .parse_with("latency_ms", Faults::parse_latency)?
            .unwrap_or((0, 0));
        let failure_rate = config
            .parse_with("failure_rate", Faults::parse_failure_rate)?
            .unwrap_or(0.0);
        let retention = config.duration("idempotency_retention")?;
        if retention < Duration::from_secs(24 * 3600) {
            return Err(config.invalid(
                "idempotency_retention",
                "must be at least 24h (docs/api.md promises keys are kept that long)",
            ));
        }
        let lock_timeout = config.duration("idempotency_lock_timeout")?;
        // A request delayed by the latency knob must finish before another
        // may take its key over.
        if lock_timeout <= Duration::from_millis(latency_ms.1) + Duration::from_secs(5) {
            return Err(config.invalid(
                "idempotency_lock_timeout",
                "must exceed the largest added latency (latency_ms) by more than 5s",
            ));
        }
        Ok(PaymentsConfig {
            server_keys,
            webhook_url,
            webhook_secret: secret_or_dev(config, "webhook_secret", &base.data_dir)?,
            faults: Faults {
                latency_ms,
                failure_rate,
            },
            idempotency: IdempotencyOptions {
                retention,
                lock_timeout,
                ..IdempotencyOptions::default()
            },
            outbox: OutboxOptions::default(),
            base,
        })
    }
}

#[cfg(feature = "test-support")]
impl common::testing::TestConfig for PaymentsConfig {
    /// Settings for tests: the given database, one server key, webhooks to
    /// a port nothing listens on, quick outbox retries.
    fn for_tests(database_url: &str, data_dir: &std::path::Path) -> Self {
        PaymentsConfig {
            base: BaseConfig::for_tests(database_url, data_dir),
            server_keys: vec!["test-server-key-test-server-key-0001".to_string()],
            webhook_url: "http://127.0.0.1:9/webhook".to_string(),
            webhook_secret: "test-webhook-secret-test-webhook-secret".to_string(),
            faults: Faults::OFF,
            idempotency: IdempotencyOptions::default(),
            outbox: OutboxOptions {
                poll_interval: Duration::from_millis(50),
                base_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(1),
                ..OutboxOptions::default()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn load(env: &[(&str, &str)], dir: &std::path::Path) -> Result<PaymentsConfig, ConfigError> {
        let mut env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.insert("PAYMENTS_DATA_DIR".into(), dir.display().to_string());
        let config = Config::from_layers("PAYMENTS", &binary().settings, None, &[], &env, &[])?;
        PaymentsConfig::from_config(&config)
    }

    #[test]
    fn defaults_work_with_no_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let c = load(&[], dir.path()).unwrap();
        assert_eq!(c.base.listen.to_string(), "127.0.0.1:8006");
        assert_eq!(c.webhook_url, DEFAULT_WEBHOOK_URL);
        assert_eq!(c.faults, Faults::OFF);
        assert_eq!(c.idempotency.retention, Duration::from_secs(86400));
        // Development secrets are generated once and kept in the data dir.
        assert_eq!(c.server_keys.len(), 1);
        let kept = std::fs::read_to_string(dir.path().join("secrets/server_key")).unwrap();
        assert_eq!(c.server_keys[0], kept.trim());
        let again = load(&[], dir.path()).unwrap();
        assert_eq!(again.server_keys, c.server_keys);
        assert_eq!(again.webhook_secret, c.webhook_secret);
        assert!(
            c.base.database_url.ends_with("payments-mock.db"),
            "{}",
            c.base.database_url
        );
    }

    #[test]
    fn shared_variables_and_key_lists() {
        let dir = tempfile::tempdir().unwrap();
        let a = "a".repeat(32);
        let b = "b".repeat(40);
        let list = format!("{a}, {b}");
        let c = load(
            &[
                ("SHOP_PAYMENTS_KEY", &list),
                ("SHOP_WEBHOOK_SECRET", &"w".repeat(32)),
                ("PAYMENTS_LATENCY_MS", "50-200"),
                ("PAYMENTS_FAILURE_RATE", "0.1"),
            ],
            dir.path(),
        )
        .unwrap();
        assert_eq!(c.server_keys, vec![a, b]);
        assert_eq!(c.webhook_secret, "w".repeat(32));
        assert_eq!(c.faults.latency_ms, (50, 200));
        assert_eq!(c.faults.failure_rate, 0.1);
    }

    #[test]
    fn bad_values_name_the_setting_and_never_echo_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let long = "k".repeat(32);
        let short_in_list = format!("{long},tiny-secret-value");
        let cases: &[(&str, &str, &str)] = &[
            ("PAYMENTS_SERVER_KEY", "short-secret-value", "server_key"),
            ("PAYMENTS_SERVER_KEY", &short_in_list, "server_key"),
            (
                "PAYMENTS_WEBHOOK_SECRET",
                "short-webhook-secret",
                "webhook_secret",
            ),
            ("PAYMENTS_WEBHOOK_URL", "ftp://example.com/x", "webhook_url"),
            ("PAYMENTS_WEBHOOK_URL", "not a url", "webhook_url"),
            ("PAYMENTS_LATENCY_MS", "200-50", "latency_ms"),
            ("PAYMENTS_FAILURE_RATE", "2", "failure_rate"),
            (
                "PAYMENTS_IDEMPOTENCY_RETENTION",
                "1h",
                "idempotency_retention",
            ),
            (
                "PAYMENTS_IDEMPOTENCY_LOCK_TIMEOUT",
                "2s",
                "idempotency_lock_timeout",
            ),
        ];
        for (var, value, key) in cases {
            let err = load(&[(var, value)], dir.path()).unwrap_err().to_string();
            assert!(err.contains(&format!("`{key}`")), "{var}={value}: {err}");
            assert!(err.contains(var), "{var}={value}: {err}");
            if key.contains("secret") || key.contains("key") {
                assert!(!err.contains("secret-value"), "secret echoed: {err}");
                assert!(!err.contains("webhook-secret"), "secret echoed: {err}");
            }
        }
    }
}

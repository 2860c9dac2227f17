//! The products service's settings: the shared base plus how long clients,
//! shared caches and this process itself may keep catalog reads.

use std::time::Duration;

use common::base_config::{base_settings, BaseConfig};
use common::cli::Binary;
use common::config::{Config, ConfigError, Setting};
use common::host::Settings;

pub const NAME: &str = "products";

const OWN_SETTINGS: &[Setting] = &[
    Setting::new(
        "cache_max_age",
        Some("30s"),
        "How long clients and shared caches may reuse a product or list read (Cache-Control max-age)",
    ),
    Setting::new(
        "read_cache_ttl",
        Some("1s"),
        "How long this process reuses a product or list read; bounds how late other replicas' writes show (0s: off)",
    ),
    Setting::new(
        "read_cache_max_bytes",
        Some("67108864"),
        "Memory the in-process read cache may use",
    ),
];

pub fn binary() -> Binary {
    let mut settings = base_settings("127.0.0.1:8002");
    settings.extend_from_slice(OWN_SETTINGS);
    Binary {
        name: NAME,
        about: "The shop's catalog service: products, search and the demo catalog.",
        prefix: "PRODUCTS",
        settings,
    }
}

#[derive(Debug, Clone)]
pub struct ProductsConfig {
    pub base: BaseConfig,
    pub cache_max_age: Duration,
    pub read_cache_ttl: Duration,
    pub read_cache_max_bytes: usize,
}

/// A day: a catalog read cached longer would hide price changes for too long.
const MAX_CACHE_AGE: Duration = Duration::from_secs(24 * 3600);
/// Other replicas' writes must show quickly; the cache's gain is already
/// total at a second.
const MAX_READ_CACHE_TTL: Duration = Duration::from_secs(60);

impl Settings for ProductsConfig {
    fn base(&self) -> &BaseConfig {
        &self.base
    }

    fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let cache_max_age = config.duration("cache_max_age")?;
        if cache_max_age > MAX_CACHE_AGE {
            return Err(config.invalid("cache_max_age", "must be at most 24h"));
        }
        let read_cache_ttl = config.duration("read_cache_ttl")?;
        if read_cache_ttl > MAX_READ_CACHE_TTL {
            return Err(config.invalid("read_cache_ttl", "must be at most 60s"));
        }
        Ok(ProductsConfig {
            base: BaseConfig::from_config(config, NAME)?,
            cache_max_age,
            read_cache_ttl,
            read_cache_max_bytes: config.get("read_cache_max_bytes")?,
        })
    }
}

#[cfg(feature = "test-support")]
impl common::testing::TestConfig for ProductsConfig {
    /// Settings for tests: the given database, port 0, fixed secrets.
    fn for_tests(database_url: &str, data_dir: &std::path::Path) -> Self {
        ProductsConfig {
            base: BaseConfig::for_tests(database_url, data_dir),
            cache_max_age: Duration::from_secs(30),
            // As in production, so every test also exercises the cache.
            read_cache_ttl: Duration::from_secs(1),
            read_cache_max_bytes: 64 << 20,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn load(env: &[(&str, &str)]) -> Result<ProductsConfig, ConfigError> {
        let b = binary();
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let mut env = env;
        env.insert("PRODUCTS_DATA_DIR".into(), dir.path().display().to_string());
        let config = Config::from_layers(b.prefix, &b.settings, None, &[], &env, &[])?;
        ProductsConfig::from_config(&config)
    }

    #[test]
    fn defaults_need_no_configuration() {
        let c = load(&[]).unwrap();
        assert_eq!(c.base.listen.to_string(), "127.0.0.1:8002");
        assert!(
            c.base.database_url.starts_with("sqlite://"),
            "{}",
            c.base.database_url
        );
        assert!(
            c.base.database_url.ends_with("products.db"),
            "{}",
            c.base.database_url
        );
        assert_eq!(c.cache_max_age, Duration::from_secs(30));
        assert_eq!(c.read_cache_ttl, Duration::from_secs(1));
    }

    #[test]
    fn bad_values_name_the_setting() {
        let err = load(&[("PRODUCTS_CACHE_MAX_AGE", "forever")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cache_max_age") && err.contains("PRODUCTS_CACHE_MAX_AGE"),
            "{err}"
        );
        let err = load(&[("PRODUCTS_CACHE_MAX_AGE", "2d")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("at most 24h"), "{err}");
    }
}

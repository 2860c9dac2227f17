//! The stats service's settings: the shared base plus retention and the
//! shape of the batched write path.

use std::time::Duration;

use common::base_config::{base_settings, BaseConfig};
use common::cli::Binary;
use common::config::{Config, ConfigError, Setting};
use common::host::Settings;

pub const NAME: &str = "stats";

const OWN_SETTINGS: &[Setting] = &[
    Setting::new(
        "retention_days",
        Some("90"),
        "Events older than this many days are deleted",
    ),
    Setting::new(
        "queue_capacity",
        Some("10000"),
        "Accepted events waiting to be written; when full, POST /log answers 503",
    ),
    Setting::new(
        "queue_wait",
        Some("500ms"),
        "How long POST /log waits for room in a full queue before answering 503",
    ),
    Setting::new(
        "batch_size",
        Some("1000"),
        "Most events written in one transaction",
    ),
    Setting::new(
        "flush_interval",
        Some("1s"),
        "Longest an accepted event waits before it is written (at most 1s)",
    ),
];

pub fn binary() -> Binary {
    let mut settings = base_settings("127.0.0.1:8005");
    settings.extend_from_slice(OWN_SETTINGS);
    Binary {
        name: NAME,
        about: "The shop's analytics events: POST /log for everyone, range queries for the other services.",
        prefix: "STATS",
        settings,
    }
}

#[derive(Debug, Clone)]
pub struct StatsConfig {
    pub base: BaseConfig,
    pub retention: Duration,
    pub queue_capacity: usize,
    pub queue_wait: Duration,
    pub batch_size: usize,
    pub flush_interval: Duration,
}

impl Settings for StatsConfig {
    fn base(&self) -> &BaseConfig {
        &self.base
    }

    fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let days = config.positive::<usize>("retention_days")?;
        if days > 36_500 {
            return Err(config.invalid("retention_days", "must be at most 36500"));
        }
        let flush_interval = config.duration("flush_interval")?;
        // The issue promises accepted events are written within a second.
        if flush_interval.is_zero() || flush_interval > Duration::from_secs(1) {
            return Err(config.invalid("flush_interval", "must be between 1ms and 1s"));
        }
        let queue_wait = config.duration("queue_wait")?;
        if queue_wait > Duration::from_secs(10) {
            return Err(config.invalid("queue_wait", "must be at most 10s"));
        }
        Ok(StatsConfig {
            base: BaseConfig::from_config(config, NAME)?,
            retention: Duration::from_secs(days as u64 * 24 * 3600),
            queue_capacity: config.positive::<usize>("queue_capacity")?,
            queue_wait,
            batch_size: config.positive::<usize>("batch_size")?,
            flush_interval,
        })
    }
}

#[cfg(feature = "test-support")]
impl common::testing::TestConfig for StatsConfig {
    /// Settings for tests: the given database, quick flushes.
    fn for_tests(database_url: &str, data_dir: &std::path::Path) -> Self {
        StatsConfig {
            base: BaseConfig::for_tests(database_url, data_dir),
            retention: Duration::from_secs(90 * 24 * 3600),
            queue_capacity: 10_000,
            queue_wait: Duration::from_millis(500),
            batch_size: 1000,
            flush_interval: Duration::from_millis(20),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn load(env: &[(&str, &str)]) -> Result<StatsConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let mut env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.insert("STATS_DATA_DIR".into(), dir.path().display().to_string());
        let config = Config::from_layers("STATS", &binary().settings, None, &[], &env, &[])?;
        StatsConfig::from_config(&config)
    }

    #[test]
    fn defaults() {
        let c = load(&[]).unwrap();
        assert_eq!(c.base.listen.port(), 8005);
        assert_eq!(c.retention, Duration::from_secs(90 * 86_400));
        assert_eq!(c.flush_interval, Duration::from_secs(1));
    }

    #[test]
    fn bad_values_name_their_setting() {
        for (key, value) in [
            ("STATS_RETENTION_DAYS", "0"),
            ("STATS_QUEUE_CAPACITY", "0"),
            ("STATS_BATCH_SIZE", "many"),
            ("STATS_FLUSH_INTERVAL", "5s"),
            ("STATS_QUEUE_WAIT", "1m"),
        ] {
            let err = load(&[(key, value)]).unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
    }
}

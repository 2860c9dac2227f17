//! The mailer's settings: the shared base plus the transport (SMTP URL or
//! the outbox directory), the sender address, retry policy and the
//! per-recipient abuse limit.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use common::base_config::{base_settings, BaseConfig};
use common::cli::Binary;
use common::config::{Config, ConfigError, Setting};
use common::host::Settings;
use lettre::message::Mailbox;

pub const NAME: &str = "mailer";

const OWN_SETTINGS: &[Setting] = &[
    Setting::new(
        "smtp_url",
        None,
        "SMTP server: smtp://[USER:PASS@]HOST[:PORT][?tls=required|opportunistic] or smtps://…; \
         unset: write .eml files into the outbox directory",
    )
    .secret(),
    Setting::new(
        "outbox_dir",
        None,
        "Directory for .eml files when no SMTP server is set (default: DATA_DIR/outbox)",
    ),
    Setting::new(
        "from_address",
        Some("Shop <no-reply@shop.localhost>"),
        "The From of every mail, e.g. `Shop <no-reply@example.com>`",
    ),
    Setting::new(
        "max_attempts",
        Some("12"),
        "Send attempts before a mail is marked failed",
    ),
    Setting::new(
        "retry_base",
        Some("5s"),
        "Delay after the first failed attempt; it doubles with each further failure",
    ),
    Setting::new(
        "retry_max",
        Some("1h"),
        "Longest delay between two attempts",
    ),
    Setting::new(
        "send_timeout",
        Some("60s"),
        "How long one delivery attempt may take",
    ),
    Setting::new(
        "recipient_limit",
        Some("10"),
        "Mails accepted per recipient per window",
    ),
    Setting::new(
        "recipient_window",
        Some("1h"),
        "The window of the per-recipient limit",
    ),
    Setting::new(
        "keep_mails",
        Some("30d"),
        "How long sent and failed mails stay in the database (at least 1 day and the window)",
    ),
    Setting::new(
        "poll_interval",
        Some("1s"),
        "How often the sender looks for due mail it was not woken for",
    ),
];

pub fn binary() -> Binary {
    let mut settings = base_settings("127.0.0.1:8004");
    settings.extend_from_slice(OWN_SETTINGS);
    Binary {
        name: NAME,
        about: "The shop's mailer: queues mail durably and delivers it by SMTP or into an outbox directory.",
        prefix: "MAILER",
        settings,
    }
}

/// An SMTP URL; it may carry credentials, so it never prints.
#[derive(Clone)]
pub struct SmtpUrl(pub String);

impl fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&common::db::redact(&self.0))
    }
}

/// Where mail goes.
#[derive(Debug, Clone)]
pub enum TransportConfig {
    Smtp(SmtpUrl),
    /// Each mail becomes `<dir>/<id>.eml`.
    Files(PathBuf),
}

#[derive(Debug, Clone)]
pub struct MailerConfig {
    pub base: BaseConfig,
    pub transport: TransportConfig,
    pub from: Mailbox,
    pub max_attempts: i64,
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub send_timeout: Duration,
    pub recipient_limit: i64,
    pub recipient_window: Duration,
    pub keep_mails: Duration,
    pub poll_interval: Duration,
}

/// Idempotency keys must outlive retries by a day (docs/api.md: kept at least
/// 24 hours), and the rate limit counts rows inside its window.
const MIN_KEEP: Duration = Duration::from_secs(24 * 3600);

impl Settings for MailerConfig {
    fn base(&self) -> &BaseConfig {
        &self.base
    }

    fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let base = BaseConfig::from_config(config, NAME)?;
        let transport = match config.raw("smtp_url") {
            Some(url) => {
                // Parsed now so a typo stops the start, not the first send.
                crate::transport::smtp_transport(url, Duration::from_secs(1))
                    .map_err(|e| config.invalid("smtp_url", e))?;
                TransportConfig::Smtp(SmtpUrl(url.to_string()))
            }
            None => TransportConfig::Files(
                config
                    .get_opt::<PathBuf>("outbox_dir")?
                    .unwrap_or_else(|| base.data_dir.join("outbox")),
            ),
        };
        let from = config
            .parse_with("from_address", |v| {
                Mailbox::from_str(v).map_err(|e| format!("not a mailbox ({e})"))
            })?
            .ok_or_else(|| config.invalid("from_address", "is required"))?;
        let retry_base = config.nonzero_duration("retry_base")?;
        let retry_max = config.nonzero_duration("retry_max")?;
        if retry_max < retry_base {
            return Err(config.invalid("retry_max", "must not be shorter than retry_base"));
        }
        let recipient_window = config.nonzero_duration("recipient_window")?;
        let keep_mails = config.nonzero_duration("keep_mails")?;
        if keep_mails < MIN_KEEP.max(recipient_window) {
            return Err(config.invalid(
                "keep_mails",
                "must be at least 1 day and at least recipient_window",
            ));
        }
        Ok(MailerConfig {
            transport,
            from,
            max_attempts: config.positive::<i64>("max_attempts")?,
            retry_base,
            retry_max,
            send_timeout: config.nonzero_duration("send_timeout")?,
            recipient_limit: config.positive::<i64>("recipient_limit")?,
            recipient_window,
            keep_mails,
            poll_interval: config.nonzero_duration("poll_interval")?,
            base,
        })
    }
}

impl MailerConfig {
    /// How long a claimed mail is reserved for the sender that claimed it:
    /// longer than any attempt can take, so no two replicas send it at once.
    pub fn lease(&self) -> Duration {
        self.send_timeout + Duration::from_secs(30)
    }
}

#[cfg(feature = "test-support")]
impl common::testing::TestConfig for MailerConfig {
    /// Settings for tests: files under `data_dir/outbox`, fast retries.
    fn for_tests(database_url: &str, data_dir: &std::path::Path) -> Self {
        MailerConfig {
            base: BaseConfig::for_tests(database_url, data_dir),
            transport: TransportConfig::Files(data_dir.join("outbox")),
            from: "Shop <no-reply@shop.localhost>"
                .parse()
                .expect("a literal mailbox"),
            max_attempts: 5,
            retry_base: Duration::from_millis(50),
            retry_max: Duration::from_millis(200),
            send_timeout: Duration::from_secs(5),
            recipient_limit: 10,
            recipient_window: Duration::from_secs(3600),
            keep_mails: Duration::from_secs(30 * 24 * 3600),
            poll_interval: Duration::from_millis(50),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn load(env: &[(&str, &str)]) -> Result<MailerConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let mut env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.insert("MAILER_DATA_DIR".into(), dir.path().display().to_string());
        let config = Config::from_layers("MAILER", &binary().settings, None, &[], &env, &[])?;
        MailerConfig::from_config(&config)
    }

    #[test]
    fn defaults_write_files_into_the_data_directory() {
        let c = load(&[]).unwrap();
        assert!(matches!(&c.transport, TransportConfig::Files(p) if p.ends_with("outbox")));
        assert_eq!(c.from.email.to_string(), "no-reply@shop.localhost");
        assert_eq!(c.recipient_limit, 10);
        assert_eq!(c.recipient_window, Duration::from_secs(3600));
        assert_eq!(c.base.listen.port(), 8004);
    }

    #[test]
    fn an_smtp_url_selects_smtp_and_never_prints_its_password() {
        let c = load(&[(
            "MAILER_SMTP_URL",
            "smtp://ann:s3cret@mail.example.com:2525?tls=required",
        )])
        .unwrap();
        let shown = format!("{c:?}");
        assert!(matches!(c.transport, TransportConfig::Smtp(_)));
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn bad_values_name_their_setting() {
        for (key, value) in [
            ("MAILER_SMTP_URL", "gopher://x"),
            ("MAILER_FROM_ADDRESS", "not a mailbox"),
            ("MAILER_MAX_ATTEMPTS", "0"),
            ("MAILER_RECIPIENT_LIMIT", "-1"),
            ("MAILER_KEEP_MAILS", "1h"),
            ("MAILER_RETRY_MAX", "1ms"),
        ] {
            let err = load(&[(key, value)]).unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
    }
}

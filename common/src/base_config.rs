//! Settings every service has, resolved once at start: where to listen,
//! where data lives, the database, the shared secrets and the limits.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::auth::{TokenKeys, MIN_SECRET_LEN};
use crate::config::{Config, ConfigError, Setting};
use crate::server::ServerOptions;

/// The settings of [`BaseConfig`]; `listen` gets the service's own default.
pub fn base_settings(default_listen: &'static str) -> Vec<Setting> {
    let mut settings = vec![
        Setting::new(
            "listen",
            Some(default_listen),
            "Address and port to listen on",
        ),
        Setting::new(
            "data_dir",
            Some("data"),
            "Directory for the SQLite file and other local data",
        ),
        Setting::new(
            "token_secret",
            None,
            "Secret that signs user tokens (at least 32 characters)",
        )
        .shared("SHOP_TOKEN_SECRET")
        .secret(),
        Setting::new(
            "internal_key",
            None,
            "Credential services present to each other's internal endpoints",
        )
        .shared("SHOP_INTERNAL_KEY")
        .secret(),
        Setting::new(
            "max_body_bytes",
            Some("1048576"),
            "Largest accepted request body",
        ),
    ];
    settings.extend_from_slice(crate::db::SETTINGS);
    settings.extend_from_slice(crate::server::SETTINGS);
    settings
}

#[derive(Debug, Clone)]
pub struct BaseConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub database_max_connections: u32,
    pub token_secret: String,
    pub internal_key: String,
    pub body_limit: usize,
    pub server: ServerOptions,
}

impl BaseConfig {
    pub fn from_config(config: &Config, service: &str) -> Result<Self, ConfigError> {
        let data_dir: PathBuf = config.get("data_dir")?;
        let body_limit: usize = config.positive("max_body_bytes")?;
        let database_max_connections: u32 = config.positive("database_max_connections")?;
        Ok(BaseConfig {
            listen: config.get("listen")?,
            database_url: crate::db::url_from_config(config, &data_dir, service)?,
            database_max_connections,
            token_secret: secret_or_dev(config, "token_secret", &data_dir)?,
            internal_key: secret_or_dev(config, "internal_key", &data_dir)?,
            body_limit,
            server: ServerOptions::from_config(config)?,
            data_dir,
        })
    }

    /// Settings for a test: port 0, the given database, fixed secrets.
    #[cfg(any(test, feature = "test-support"))]
    pub fn for_tests(database_url: &str, data_dir: &Path) -> Self {
        BaseConfig {
            listen: "127.0.0.1:0".parse().expect("a literal address"),
            data_dir: data_dir.to_path_buf(),
            database_url: database_url.to_string(),
            database_max_connections: 10,
            token_secret: "test-token-secret-test-token-secret".to_string(),
            internal_key: "test-internal-key-test-internal-key".to_string(),
            body_limit: crate::app::DEFAULT_BODY_LIMIT,
            server: ServerOptions::default(),
        }
    }

    pub fn token_keys(&self, ttl_secs: i64) -> TokenKeys {
        TokenKeys::new(&self.token_secret, ttl_secs)
    }
}

/// Secrets in templates start with this, so a copied file cannot be
/// deployed without generating real ones.
pub const PLACEHOLDER_PREFIX: &str = "replace-me";

/// Refuses the `replace-me…` placeholders of older `.env.example` files (and
/// of any template copied without filling it in) for a secret `key`.
pub fn refuse_placeholder(config: &Config, key: &str, value: &str) -> Result<(), ConfigError> {
    if value.starts_with(PLACEHOLDER_PREFIX) {
        return Err(config.invalid(
            key,
            "is still a `replace-me` placeholder; generate one with `openssl rand -hex 32` (or let `init-secrets` do it)",
        ));
    }
    Ok(())
}

/// A configured secret, or — when none is configured — a development secret
/// generated once into `<data_dir>/secrets/<key>`. Services started from the
/// same directory share it, so `cargo run -p users` and `cargo run -p cart`
/// agree on tokens without any setup; production sets the variable.
pub fn secret_or_dev(config: &Config, key: &str, data_dir: &Path) -> Result<String, ConfigError> {
    if let Some(value) = config.raw(key) {
        refuse_placeholder(config, key, value)?;
        if value.len() < MIN_SECRET_LEN {
            return Err(
                config.invalid(key, format!("must be at least {MIN_SECRET_LEN} characters"))
            );
        }
        return Ok(value.to_string());
    }
    let path = data_dir.join("secrets").join(key);
    let secret = dev_secret(&path).map_err(|e| {
        config.invalid(
            key,
            format!(
                "cannot keep a development secret in {}: {e}",
                path.display()
            ),
        )
    })?;
    log::warn!(
        "no `{key}` configured; using the development secret in {} (set it explicitly in production)",
        path.display()
    );
    Ok(secret)
}

/// Reads the secret at `path`, creating it if absent. Concurrent first
/// starts race safely: the file appears atomically and the loser reads it.
pub fn dev_secret(path: &Path) -> std::io::Result<String> {
    crate::private::create_dir(path.parent().unwrap_or(Path::new(".")))?;
    keep_or_create_secret(path, crate::private::FILE_MODE).map(|(secret, _)| secret)
}

/// The secret in the file at `path` if it holds one (at least
/// [`MIN_SECRET_LEN`] characters once trimmed), else a new random one
/// written there with permission bits `mode`; `true` when it was created.
/// The file appears atomically, so concurrent callers agree on one secret.
pub fn keep_or_create_secret(path: &Path, mode: u32) -> std::io::Result<(String, bool)> {
    if let Ok(existing) = std::fs::read_to_string(path) {
        let existing = existing.trim().to_string();
        if existing.len() >= MIN_SECRET_LEN {
            return Ok((existing, false));
        }
        // A short or empty file left behind is replaced; a good one never is.
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let secret = random_secret();
    let tmp = tempfile::NamedTempFile::new_in(dir)?;
    crate::private::write(tmp.path(), secret.as_bytes())?;
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(mode),
    )?;
    match tmp.persist_noclobber(path) {
        Ok(_) => Ok((secret, true)),
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok((std::fs::read_to_string(path)?.trim().to_string(), false))
        }
        Err(e) => Err(e.error),
    }
}

/// 32 random bytes as hex.
pub fn random_secret() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_secrets_are_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets").join("token_secret");
        let a = dev_secret(&path).unwrap();
        let b = dev_secret(&path).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 64);
        use crate::private::mode;
        assert_eq!(mode(&dir.path().join("secrets")).unwrap(), 0o700);
        assert_eq!(mode(&path).unwrap(), 0o600);
    }

    #[test]
    fn short_configured_secrets_are_refused() {
        let settings = base_settings("127.0.0.1:1");
        let env = [("X_TOKEN_SECRET".to_string(), "short".to_string())]
            .into_iter()
            .collect();
        let config = Config::from_layers("X", &settings, None, &[], &env, &[]).unwrap();
        let err = BaseConfig::from_config(&config, "x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("token_secret"), "{err}");
        assert!(err.contains("X_TOKEN_SECRET"), "{err}");
        assert!(!err.contains("short"), "secrets are not echoed: {err}");
    }
}

//! Layered configuration shared by every service.
//!
//! Each service declares its settings as a table of [`Setting`]s. Values are
//! merged in layers, lowest first: built-in defaults, a TOML file
//! (`--config FILE`), a `shop.env` file in the working directory,
//! environment variables with the service's prefix (`USERS_LISTEN`), and
//! command-line flags (`--listen`). Every value remembers where it came
//! from, so a bad one is reported with its source.
//!
//! The dotenv layer is deliberately not called `.env`: that name belongs to
//! docker-compose, which reads it for `${…}` interpolation, and one file
//! with two meanings made `cargo run` pick up compose's overrides.
//!
//! In the variable layers (`shop.env` and the environment) any variable
//! `X` may be given as `X_FILE` instead, naming a file whose content
//! (trimmed) is the value: how containers get secrets from a volume
//! without putting them in their environment. Setting both is an error.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use clap::{Arg, ArgAction, ArgMatches, Command};
use ipnet::IpNet;

/// One configurable value of a service.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// snake_case key, as written in the TOML file (`database_url`).
    pub key: &'static str,
    /// Built-in default, if the setting has one.
    pub default: Option<&'static str>,
    /// One line for `--help`.
    pub help: &'static str,
    /// An unprefixed variable shared by all services (`SHOP_TOKEN_SECRET`),
    /// read below the prefixed one, so operators can set a secret once.
    pub shared_env: Option<&'static str>,
    /// Secrets are never echoed back in error messages.
    pub secret: bool,
}

impl Setting {
    pub const fn new(key: &'static str, default: Option<&'static str>, help: &'static str) -> Self {
        Setting {
            key,
            default,
            help,
            shared_env: None,
            secret: false,
        }
    }

    pub const fn shared(mut self, env: &'static str) -> Self {
        self.shared_env = Some(env);
        self
    }

    pub const fn secret(mut self) -> Self {
        self.secret = true;
        self
    }

    /// The command-line flag name: `database_url` → `database-url`.
    pub fn flag(&self) -> String {
        self.key.replace('_', "-")
    }

    /// The prefixed environment variable: `USERS_DATABASE_URL`.
    pub fn env_var(&self, prefix: &str) -> String {
        format!("{}_{}", prefix, self.key.to_ascii_uppercase())
    }
}

/// Where a value came from; shown in validation errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Default,
    File(PathBuf),
    DotEnv(String),
    Env(String),
    Flag(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => write!(f, "the built-in default"),
            Source::File(p) => write!(f, "config file {}", p.display()),
            Source::DotEnv(v) => write!(f, "{DOTENV_FILE} variable {v}"),
            Source::Env(v) => write!(f, "environment variable {v}"),
            Source::Flag(v) => write!(f, "command-line flag --{v}"),
        }
    }
}

/// A configuration problem found at start; the process exits non-zero with it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid value for setting `{key}` (from {origin}): {message}")]
    Invalid {
        key: String,
        origin: Source,
        message: String,
    },
    #[error("setting `{key}` is required but not set ({hint})")]
    Missing { key: String, hint: String },
    #[error("cannot read config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("unknown setting `{key}` in config file {path}")]
    UnknownKey { key: String, path: PathBuf },
}

/// The merged settings of one service.
#[derive(Debug, Clone)]
pub struct Config {
    prefix: String,
    values: BTreeMap<&'static str, (String, Source)>,
    settings: Vec<Setting>,
}

/// The flag that names the TOML file; not a setting itself.
const CONFIG_FLAG: &str = "config";

/// The services' dotenv file, read from the working directory if present.
pub const DOTENV_FILE: &str = "shop.env";

/// The suffix of a variable that names a file holding the value.
pub const FILE_SUFFIX: &str = "_FILE";

/// Builds the clap command for a service: one flag per setting plus
/// `--config`. `--help` lists every setting with its variable and default.
pub fn command(
    name: &'static str,
    about: &'static str,
    prefix: &str,
    settings: &[Setting],
) -> Command {
    let mut cmd = Command::new(name).about(about).arg(
        Arg::new(CONFIG_FLAG)
            .long(CONFIG_FLAG)
            .value_name("FILE")
            .global(true)
            .help(format!("TOML file with settings (env: {prefix}_CONFIG)")),
    );
    for s in settings {
        let mut help = format!("{} [env: {}", s.help, s.env_var(prefix));
        if let Some(shared) = s.shared_env {
            help.push_str(&format!(", {shared}"));
        }
        help.push(']');
        if let Some(d) = s.default {
            help.push_str(&format!(" [default: {d}]"));
        }
        cmd = cmd.arg(
            Arg::new(s.key)
                .long(s.flag())
                .value_name(s.key.to_ascii_uppercase())
                .action(ArgAction::Set)
                .global(true)
                .help(help),
        );
    }
    cmd
}

impl Config {
    /// Loads the layers from the real process: the file named by `--config`
    /// or `<PREFIX>_CONFIG`, `./shop.env`, the environment, and `matches`.
    pub fn load(
        prefix: &str,
        settings: &[Setting],
        matches: &ArgMatches,
    ) -> Result<Config, ConfigError> {
        let dotenv: Vec<(String, String)> = match dotenvy::from_filename_iter(DOTENV_FILE) {
            Ok(iter) => iter.filter_map(Result::ok).collect(),
            Err(_) => Vec::new(),
        };
        let env: BTreeMap<String, String> = std::env::vars().collect();
        let file = matches
            .get_one::<String>(CONFIG_FLAG)
            .map(PathBuf::from)
            .or_else(|| env.get(&format!("{prefix}_CONFIG")).map(PathBuf::from));
        let flags: Vec<(String, String)> = settings
            .iter()
            .filter_map(|s| {
                matches
                    .get_one::<String>(s.key)
                    .map(|v| (s.key.to_string(), v.clone()))
            })
            .collect();
        Config::from_layers(prefix, settings, file.as_deref(), &dotenv, &env, &flags)
    }

    /// Merges explicit layers; `load` feeds it the real ones and unit tests
    /// feed it their own, so nothing here touches the process environment.
    pub fn from_layers(
        prefix: &str,
        settings: &[Setting],
        file: Option<&Path>,
        dotenv: &[(String, String)],
        env: &BTreeMap<String, String>,
        flags: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let mut values = BTreeMap::new();
        for s in settings {
            if let Some(d) = s.default {
                values.insert(s.key, (d.to_string(), Source::Default));
            }
        }
        if let Some(path) = file {
            for (key, value) in read_toml(path)? {
                let setting = settings.iter().find(|s| s.key == key).ok_or_else(|| {
                    ConfigError::UnknownKey {
                        key: key.clone(),
                        path: path.to_path_buf(),
                    }
                })?;
                values.insert(setting.key, (value, Source::File(path.to_path_buf())));
            }
        }
        let dotenv: BTreeMap<String, String> = dotenv.iter().cloned().collect();
        variable_layer(&mut values, prefix, settings, &dotenv, Source::DotEnv)?;
        variable_layer(&mut values, prefix, settings, env, Source::Env)?;
        for (key, v) in flags {
            if let Some(s) = settings.iter().find(|s| s.key == key) {
                values.insert(s.key, (v.clone(), Source::Flag(s.flag())));
            }
        }
        Ok(Config {
            prefix: prefix.to_string(),
            values,
            settings: settings.to_vec(),
        })
    }

    /// The raw value, if any layer set one. An empty variable counts as unset
    /// (skipped above), so `FOO=` in a compose file keeps the default.
    pub fn raw(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .map(|(v, _)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    pub fn source(&self, key: &str) -> Option<&Source> {
        self.values.get(key).map(|(_, s)| s)
    }

    /// A value parsed with `FromStr`; a failure names the setting and source.
    pub fn get<T>(&self, key: &str) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        self.get_opt(key)?.ok_or_else(|| self.missing(key))
    }

    pub fn get_opt<T>(&self, key: &str) -> Result<Option<T>, ConfigError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        self.parse_with(key, |v| v.parse::<T>().map_err(|e| e.to_string()))
    }

    /// A duration written the human way: `10s`, `500ms`, `2m`, `1h`.
    pub fn duration(&self, key: &str) -> Result<Duration, ConfigError> {
        self.parse_with(key, |v| {
            humantime::parse_duration(v).map_err(|e| e.to_string())
        })?
        .ok_or_else(|| self.missing(key))
    }

    /// A [`Config::duration`] that must be more than zero.
    pub fn nonzero_duration(&self, key: &str) -> Result<Duration, ConfigError> {
        let d = self.duration(key)?;
        if d.is_zero() {
            return Err(self.invalid(key, "must be more than 0"));
        }
        Ok(d)
    }

    /// A whole number that must be at least 1 (a count, a limit, a size).
    pub fn positive<T>(&self, key: &str) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + From<u8>,
        T::Err: fmt::Display,
    {
        let n: T = self.get(key)?;
        if n < T::from(1) {
            return Err(self.invalid(key, "must be at least 1"));
        }
        Ok(n)
    }

    /// An `http://` or `https://` URL with a host, as given (a webhook's).
    pub fn http_url(&self, key: &str) -> Result<String, ConfigError> {
        let value: String = self.get(key)?;
        match url::Url::parse(&value) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => Ok(value),
            _ => Err(self.invalid(key, "expected an http:// or https:// URL")),
        }
    }

    /// A neighbour's base URL: an [`Config::http_url`] without trailing
    /// slashes, so paths are appended to it.
    pub fn base_url(&self, key: &str) -> Result<String, ConfigError> {
        Ok(self.http_url(key)?.trim_end_matches('/').to_string())
    }

    /// A boolean: true/false, 1/0, yes/no, on/off.
    pub fn flag(&self, key: &str) -> Result<bool, ConfigError> {
        self.parse_with(key, |v| match v.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err("expected true or false".to_string()),
        })
        .map(|v| v.unwrap_or(false))
    }

    /// A comma-separated list; empty items are dropped.
    pub fn list(&self, key: &str) -> Vec<String> {
        self.raw(key)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A comma-separated list of addresses, CIDR ranges and host names
    /// (`10.0.0.0/8, ::1, balancer`), such as the peers whose forwarding
    /// headers are believed; names are resolved by the caller's refresh.
    pub fn peers(&self, key: &str) -> Result<crate::peers::TrustedPeers, ConfigError> {
        crate::peers::TrustedPeers::parse(&self.list(key)).map_err(|m| self.invalid(key, m))
    }

    /// Parses with a custom function; errors carry the key and the source.
    pub fn parse_with<T>(
        &self,
        key: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        let Some(raw) = self.raw(key) else {
            return Ok(None);
        };
        parse(raw)
            .map(Some)
            .map_err(|message| self.invalid(key, message))
    }

    /// An error about `key` with its source, for checks a service does itself.
    pub fn invalid(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key: key.to_string(),
            origin: self.source(key).cloned().unwrap_or(Source::Default),
            message: message.into(),
        }
    }

    fn missing(&self, key: &str) -> ConfigError {
        let setting = self.settings.iter().find(|s| s.key == key);
        let hint = match setting {
            Some(s) => format!(
                "set {} or --{}{}",
                s.env_var(&self.prefix),
                s.flag(),
                s.shared_env.map(|e| format!(" or {e}")).unwrap_or_default()
            ),
            None => "not a declared setting".to_string(),
        };
        ConfigError::Missing {
            key: key.to_string(),
            hint,
        }
    }
}

/// Applies one layer of variables (`shop.env` or the environment): for each
/// setting its shared variable, then its prefixed one (which wins), each
/// either given directly or as `NAME_FILE`. An empty value counts as unset.
fn variable_layer(
    values: &mut BTreeMap<&'static str, (String, Source)>,
    prefix: &str,
    settings: &[Setting],
    vars: &BTreeMap<String, String>,
    source: fn(String) -> Source,
) -> Result<(), ConfigError> {
    let get = |name: &str| vars.get(name).filter(|v| !v.is_empty());
    for s in settings {
        let prefixed = s.env_var(prefix);
        for name in s.shared_env.iter().map(|n| n.to_string()).chain([prefixed]) {
            let file_var = format!("{name}{FILE_SUFFIX}");
            match (get(&name), get(&file_var)) {
                (Some(_), Some(_)) => {
                    return Err(ConfigError::Invalid {
                        key: s.key.to_string(),
                        origin: source(file_var.clone()),
                        message: format!("both {name} and {file_var} are set; set one of them"),
                    })
                }
                (Some(v), None) => {
                    values.insert(s.key, (v.clone(), source(name)));
                }
                (None, Some(path)) => {
                    let value = std::fs::read_to_string(path)
                        .map_err(|e| ConfigError::Invalid {
                            key: s.key.to_string(),
                            origin: source(file_var.clone()),
                            message: format!("cannot read {path}: {e}"),
                        })?
                        .trim()
                        .to_string();
                    values.insert(s.key, (value, source(file_var)));
                }
                (None, None) => {}
            }
        }
    }
    Ok(())
}

/// Reads a flat TOML table; scalar values become strings, arrays of scalars
/// become comma-separated lists, so every layer speaks the same language.
fn read_toml(path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let file_err = |message: String| ConfigError::File {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_err(e.to_string()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| file_err(e.to_string()))?;
    let mut out = Vec::new();
    for (key, value) in table {
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(|i| match i {
                    toml::Value::String(s) => Ok(s.clone()),
                    toml::Value::Integer(n) => Ok(n.to_string()),
                    other => Err(file_err(format!("`{key}`: unsupported list item {other}"))),
                })
                .collect::<Result<Vec<_>, _>>()?
                .join(","),
            other => return Err(file_err(format!("`{key}`: unsupported value {other}"))),
        };
        out.push((key, text));
    }
    Ok(out)
}

/// `10.0.0.0/8` or a single address (as a /32 or /128 range).
pub fn parse_net(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTINGS: &[Setting] = &[
        Setting::new("listen", Some("127.0.0.1:8001"), "address"),
        Setting::new("workers", Some("4"), "workers"),
        Setting::new("token_secret", None, "secret")
            .shared("SHOP_TOKEN_SECRET")
            .secret(),
        Setting::new("timeout", Some("10s"), "timeout"),
    ];

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn toml_file(body: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), body).unwrap();
        f
    }

    #[test]
    fn defaults_apply_when_nothing_else_is_set() {
        let c = Config::from_layers("USERS", SETTINGS, None, &[], &env(&[]), &[]).unwrap();
        assert_eq!(c.raw("listen"), Some("127.0.0.1:8001"));
        assert_eq!(c.source("listen"), Some(&Source::Default));
        assert_eq!(c.get::<u32>("workers").unwrap(), 4);
        assert_eq!(c.duration("timeout").unwrap(), Duration::from_secs(10));
    }

    #[test]
    fn each_layer_overrides_the_one_below() {
        let file = toml_file("listen = \"0.0.0.0:1\"\nworkers = 5\n");
        let path = file.path();
        let c = Config::from_layers("USERS", SETTINGS, Some(path), &[], &env(&[]), &[]).unwrap();
        assert_eq!(c.raw("listen"), Some("0.0.0.0:1"));
        assert_eq!(c.source("workers"), Some(&Source::File(path.to_path_buf())));

        let dot = pairs(&[("USERS_LISTEN", "0.0.0.0:2")]);
        let c = Config::from_layers("USERS", SETTINGS, Some(path), &dot, &env(&[]), &[]).unwrap();
        assert_eq!(c.raw("listen"), Some("0.0.0.0:2"));

        let e = env(&[("USERS_LISTEN", "0.0.0.0:3")]);
        let c = Config::from_layers("USERS", SETTINGS, Some(path), &dot, &e, &[]).unwrap();
        assert_eq!(c.raw("listen"), Some("0.0.0.0:3"));
        assert_eq!(
            c.source("listen"),
            Some(&Source::Env("USERS_LISTEN".into()))
        );

        let flags = pairs(&[("listen", "0.0.0.0:4")]);
        let c = Config::from_layers("USERS", SETTINGS, Some(path), &dot, &e, &flags).unwrap();
        assert_eq!(c.raw("listen"), Some("0.0.0.0:4"));
        assert_eq!(c.source("listen"), Some(&Source::Flag("listen".into())));
        // Untouched keys keep the file's value.
        assert_eq!(c.get::<u32>("workers").unwrap(), 5);
    }

    #[test]
    fn prefixed_variable_beats_the_shared_one() {
        let e = env(&[
            ("SHOP_TOKEN_SECRET", "shared"),
            ("USERS_TOKEN_SECRET", "own"),
        ]);
        let c = Config::from_layers("USERS", SETTINGS, None, &[], &e, &[]).unwrap();
        assert_eq!(c.raw("token_secret"), Some("own"));
        let e = env(&[("SHOP_TOKEN_SECRET", "shared")]);
        let c = Config::from_layers("USERS", SETTINGS, None, &[], &e, &[]).unwrap();
        assert_eq!(c.raw("token_secret"), Some("shared"));
    }

    #[test]
    fn a_bad_value_names_the_setting_and_its_source() {
        let e = env(&[("USERS_WORKERS", "many")]);
        let c = Config::from_layers("USERS", SETTINGS, None, &[], &e, &[]).unwrap();
        let err = c.get::<u32>("workers").unwrap_err().to_string();
        assert!(err.contains("`workers`"), "{err}");
        assert!(err.contains("environment variable USERS_WORKERS"), "{err}");

        let flags = pairs(&[("timeout", "soon")]);
        let c = Config::from_layers("USERS", SETTINGS, None, &[], &env(&[]), &flags).unwrap();
        let err = c.duration("timeout").unwrap_err().to_string();
        assert!(err.contains("command-line flag --timeout"), "{err}");
    }

    #[test]
    fn a_missing_required_setting_says_how_to_set_it() {
        let c = Config::from_layers("USERS", SETTINGS, None, &[], &env(&[]), &[]).unwrap();
        let err = c.get::<String>("token_secret").unwrap_err().to_string();
        assert!(err.contains("USERS_TOKEN_SECRET"), "{err}");
        assert!(err.contains("SHOP_TOKEN_SECRET"), "{err}");
    }

    #[test]
    fn unknown_keys_and_broken_files_are_rejected() {
        let file = toml_file("lisen = \"x\"\n");
        let err = Config::from_layers("USERS", SETTINGS, Some(file.path()), &[], &env(&[]), &[])
            .unwrap_err();
        assert!(err.to_string().contains("unknown setting `lisen`"), "{err}");
        let file = toml_file("listen = \n");
        let err = Config::from_layers("USERS", SETTINGS, Some(file.path()), &[], &env(&[]), &[])
            .unwrap_err();
        assert!(matches!(err, ConfigError::File { .. }), "{err}");
    }

    #[test]
    fn empty_values_count_as_unset() {
        let e = env(&[("USERS_LISTEN", "")]);
        let c = Config::from_layers("USERS", SETTINGS, None, &[], &e, &[]).unwrap();
        assert_eq!(c.raw("listen"), Some("127.0.0.1:8001"));
    }

    #[test]
    fn a_file_variable_gives_the_file_content_trimmed() {
        let secret = toml_file("from-a-file-from-a-file-from-a-file\n");
        let path = secret.path().to_str().unwrap();
        let e = env(&[("SHOP_TOKEN_SECRET_FILE", path)]);
        let c = Config::from_layers("USERS", SETTINGS, None, &[], &e, &[]).unwrap();
        assert_eq!(
            c.raw("token_secret"),
            Some("from-a-file-from-a-file-from-a-file")
        );
        assert_eq!(
            c.source("token_secret"),
            Some(&Source::Env("SHOP_TOKEN_SECRET_FILE".into()))
        );
        // The prefixed variable still beats the shared one, file or not.
        let e = env(&[
            ("SHOP_TOKEN_SECRET_FILE", path),
            ("USERS_TOKEN_SECRET", "own"),
        ]);
        let c = Config::from_layers("USERS", SETTINGS, None, &[], &e, &[]).unwrap();
        assert_eq!(c.raw("token_secret"), Some("own"));
        // In shop.env too, below the environment.
        let dot = pairs(&[("USERS_LISTEN_FILE", path)]);
        let c = Config::from_layers("USERS", SETTINGS, None, &dot, &env(&[]), &[]).unwrap();
        assert_eq!(
            c.source("listen"),
            Some(&Source::DotEnv("USERS_LISTEN_FILE".into()))
        );
    }

    #[test]
    fn a_variable_and_its_file_variable_together_are_refused() {
        let secret = toml_file("x");
        let path = secret.path().to_str().unwrap();
        let e = env(&[("USERS_LISTEN", "0.0.0.0:1"), ("USERS_LISTEN_FILE", path)]);
        let err = Config::from_layers("USERS", SETTINGS, None, &[], &e, &[]).unwrap_err();
        let err = err.to_string();
        assert!(
            err.contains("both USERS_LISTEN and USERS_LISTEN_FILE"),
            "{err}"
        );
    }

    #[test]
    fn an_unreadable_file_variable_names_the_file() {
        let e = env(&[("USERS_WORKERS_FILE", "/nonexistent/workers")]);
        let err = Config::from_layers("USERS", SETTINGS, None, &[], &e, &[]).unwrap_err();
        let err = err.to_string();
        assert!(err.contains("/nonexistent/workers"), "{err}");
        assert!(err.contains("USERS_WORKERS_FILE"), "{err}");
    }

    #[test]
    fn help_lists_every_setting() {
        let mut cmd = command("users", "test", "USERS", SETTINGS);
        let help = cmd.render_long_help().to_string();
        for s in SETTINGS {
            assert!(help.contains(&format!("--{}", s.flag())), "{help}");
            assert!(help.contains(&s.env_var("USERS")), "{help}");
        }
    }
}

//! The start-up sequence every service binary shares, so `main.rs` stays
//! glue: parse flags, load layered config, start logging, start the
//! service's [`Host`], serve until a signal, and turn a start-up failure
//! into a clear message and a non-zero exit.

use std::fmt::Display;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Arg, ArgMatches, Command};
use tokio::net::TcpListener;

use crate::config::{command, Config, ConfigError, Setting};
use crate::host::{Host, Service, Settings};

/// Exit code for bad configuration (as sysexits' EX_CONFIG).
pub const EXIT_CONFIG: u8 = 78;

/// The subcommand that generates a compose deployment's secrets.
pub const INIT_SECRETS: &str = "init-secrets";

/// Runs `init-secrets`, saying what it created.
fn init_secrets(name: &str, dir: &std::path::Path) -> ExitCode {
    match crate::secrets::init_secrets(dir) {
        Ok(created) if created.is_empty() => {
            println!("secrets in {}: all present, none created", dir.display());
            ExitCode::SUCCESS
        }
        Ok(created) => {
            println!(
                "secrets in {}: created {}",
                dir.display(),
                created.join(", ")
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(name, "init-secrets failed", e),
    }
}

/// The listen address alone, for `healthcheck`: it must not do what
/// validating the rest would (create development secrets, warn about them,
/// need a database setting), only find the port to ask.
pub fn listen_of(raw: &Config) -> Result<SocketAddr, ConfigError> {
    raw.get("listen")
}

/// What a service binary is.
pub struct Binary {
    pub name: &'static str,
    pub about: &'static str,
    /// Prefix of its environment variables: `USERS` for `USERS_LISTEN`.
    pub prefix: &'static str,
    pub settings: Vec<Setting>,
}

impl Binary {
    /// The clap command with every setting as a flag; add subcommands to it.
    pub fn command(&self) -> Command {
        command(self.name, self.about, self.prefix, &self.settings)
            .subcommand(
                Command::new("healthcheck")
                    .about("Exit 0 if this service's /readyz answers 200, else 1"),
            )
            .subcommand(
                Command::new(INIT_SECRETS)
                    .about("Generate every secret of a compose deployment into DIR, keeping those already there")
                    .arg(
                        Arg::new("dir")
                            .long("dir")
                            .value_name("DIR")
                            .required(true)
                            .help("Existing directory (the secrets volume)"),
                    ),
            )
    }

    /// Parses the command line (exiting on `--help` or bad flags), starts
    /// logging and loads the configuration, exiting on a bad value.
    /// `init-secrets` needs no configuration: it is answered here.
    pub fn start(&self, cmd: Command) -> Result<(ArgMatches, Config), ExitCode> {
        let matches = cmd.get_matches();
        if let Some(args) = matches.subcommand_matches(INIT_SECRETS) {
            let dir = args.get_one::<String>("dir").expect("clap requires --dir");
            return Err(init_secrets(self.name, std::path::Path::new(dir)));
        }
        crate::logging::init(self.name);
        crate::telemetry::init(self.name);
        raise_open_file_limit();
        match Config::load(self.prefix, &self.settings, &matches) {
            Ok(config) => Ok((matches, config)),
            Err(e) => Err(fail(self.name, "configuration error", e)),
        }
    }
}

/// Raises this process's soft limit on open files to its hard limit. A
/// soft limit of 1024 — the default of many shells and of systemd — would
/// cap a service below its `max_connections` however high its hard limit
/// (and the balancer's workers take two descriptors per client connection:
/// the socket and the duplicate `balancer::served` watches for hang-ups).
pub fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => log::debug!("open-file limit: {limit}"),
        Err(e) => log::warn!("cannot raise the open-file limit: {e}"),
    }
}

/// Prints a start-up failure to stderr (whatever `RUST_LOG` says) and
/// returns the exit code to use.
pub fn fail(name: &str, what: &str, err: impl Display) -> ExitCode {
    eprintln!("{name}: {what}: {err}");
    ExitCode::from(EXIT_CONFIG)
}

/// Binds the listening socket, naming the address on failure.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))
}

/// The `healthcheck` subcommand: GET our own `/readyz` (for container
/// health checks that have no curl). A wildcard listen address is reached
/// through loopback.
pub async fn healthcheck(listen: SocketAddr) -> ExitCode {
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let client = crate::client::HttpClient::new(
        std::time::Duration::from_secs(2),
        std::time::Duration::from_secs(5),
    );
    let url = format!("http://{addr}/readyz");
    match client
        .send(client.request(reqwest::Method::GET, &url))
        .await
    {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("not ready: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What [`start`] leaves to the binary: a started service and the parsed
/// command line (for its own subcommands), or an exit code.
pub enum Started<S: Service> {
    Service(ArgMatches, Host<S>),
    Exit(ExitCode),
}

/// Parses the command line, answers `init-secrets` and `healthcheck`,
/// loads and validates configuration, and starts the service.
pub async fn start<S: Service>(binary: &Binary, cmd: Command) -> Started<S> {
    start_with(binary, cmd, |_, _| {}).await
}

/// As [`start`], with `adjust` changing the validated configuration for
/// the command line before the service starts (a subcommand that must not
/// do all a serving process does at start).
pub async fn start_with<S: Service>(
    binary: &Binary,
    cmd: Command,
    adjust: impl FnOnce(&ArgMatches, &mut S::Config),
) -> Started<S> {
    let (matches, raw) = match binary.start(cmd) {
        Ok(pair) => pair,
        Err(code) => return Started::Exit(code),
    };
    if matches.subcommand_matches("healthcheck").is_some() {
        return Started::Exit(match listen_of(&raw) {
            Ok(listen) => healthcheck(listen).await,
            Err(e) => fail(binary.name, "configuration error", e),
        });
    }
    let mut config = match S::Config::from_config(&raw) {
        Ok(c) => c,
        Err(e) => return Started::Exit(fail(binary.name, "configuration error", e)),
    };
    adjust(&matches, &mut config);
    match Host::<S>::start(config).await {
        Ok(host) => Started::Service(matches, host),
        Err(e) => Started::Exit(fail(binary.name, "cannot start", e)),
    }
}

/// Binds, says where it listens and where its data lives, and serves until
/// SIGINT or SIGTERM.
pub async fn serve<S: Service>(binary: &Binary, host: Host<S>) -> ExitCode {
    let base = host.config.base();
    let listener = match bind(base.listen).await {
        Ok(l) => l,
        Err(e) => return fail(binary.name, "cannot start", e),
    };
    let address = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let extra = S::describe(&host.config);
    log::info!(
        "{} listening on http://{address} (database {}, data in {}){}{extra}",
        binary.name,
        crate::db::redact(&base.database_url),
        base.data_dir.display(),
        if extra.is_empty() { "" } else { "; " },
    );
    host.serve(listener, crate::shutdown::signal()).await;
    // Off the runtime's threads: the exporter's flush blocks.
    let _ = tokio::task::spawn_blocking(crate::telemetry::shutdown).await;
    log::info!("{} stopped", binary.name);
    ExitCode::SUCCESS
}

/// The whole life of a binary without subcommands of its own.
pub async fn run<S: Service>(binary: Binary) -> ExitCode {
    match start::<S>(&binary, binary.command()).await {
        Started::Service(_, host) => serve(&binary, host).await,
        Started::Exit(code) => code,
    }
}

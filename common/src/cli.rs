//! The start-up sequence every service binary shares, so `main.rs` stays
//! glue: parse flags, load layered config, start logging, and turn a start-up
//! failure into a clear message and a non-zero exit.

use std::fmt::Display;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{ArgMatches, Command};
use tokio::net::TcpListener;

use crate::config::{command, Config, Setting};

/// Exit code for bad configuration (as sysexits' EX_CONFIG).
pub const EXIT_CONFIG: u8 = 78;

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
        command(self.name, self.about, self.prefix, &self.settings).subcommand(
            Command::new("healthcheck")
                .about("Exit 0 if this service's /readyz answers 200, else 1"),
        )
    }

    /// Parses the command line (exiting on `--help` or bad flags), starts
    /// logging and loads the configuration, exiting on a bad value.
    pub fn start(&self, cmd: Command) -> Result<(ArgMatches, Config), ExitCode> {
        let matches = cmd.get_matches();
        crate::logging::init();
        match Config::load(self.prefix, &self.settings, &matches) {
            Ok(config) => Ok((matches, config)),
            Err(e) => Err(fail(self.name, "configuration error", e)),
        }
    }
}

/// Logs a start-up failure to stderr and returns the exit code to use.
pub fn fail(name: &str, what: &str, err: impl Display) -> ExitCode {
    eprintln!("{name}: {what}: {err}");
    log::error!("{what}: {err}");
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

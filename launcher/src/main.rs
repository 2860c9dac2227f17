//! `launcher`: the whole shop on one machine with embedded defaults. It
//! starts the six services and the balancer as child processes found beside
//! its own executable (building them first when run through cargo), keeps
//! their secrets in the data directory, seeds the demo catalog on a fresh
//! data directory, prefixes their logs, restarts any that dies, and on
//! Ctrl-C or SIGTERM stops them all.
//!
//! # Layout
//!
//! - `services`: the processes (names, ports, prefixes) and the
//!   environment each gets so they find one another.
//! - `supervisor`: one child: log prefixing, restart with backoff, stop.
//! - this file: flags, secrets, the demo seed, and running them all.

mod services;
mod storefront;
mod supervisor;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Arg, ArgAction, Command};
use services::{Layout, SERVICES};
use supervisor::{supervise, ChildSpec};
use tokio_util::sync::CancellationToken;

/// Secrets generated on first start and kept in `<data-dir>/secrets/`; the
/// file names are the ones services use for their own development secrets.
const SECRETS: &[(&str, &str)] = &[
    ("token_secret", "SHOP_TOKEN_SECRET"),
    ("internal_key", "SHOP_INTERNAL_KEY"),
    ("server_key", "SHOP_PAYMENTS_KEY"),
    ("webhook_secret", "SHOP_WEBHOOK_SECRET"),
];

const READY_TIMEOUT: Duration = Duration::from_secs(60);

fn cli() -> Command {
    Command::new("launcher")
        .about("Run the whole shop locally: six services and the balancer.")
        .arg(
            Arg::new("data-dir")
                .long("data-dir")
                .default_value("data")
                .help(
                    "Holds every service's SQLite file, the mail outbox and the generated secrets",
                ),
        )
        .arg(
            Arg::new("no-demo")
                .long("no-demo")
                .action(ArgAction::SetTrue)
                .help("Do not seed the demo catalog"),
        )
        .arg(
            Arg::new("port-base")
                .long("port-base")
                .default_value("8000")
                .value_parser(clap::value_parser!(u16).range(1..=65000))
                .help("Services listen on BASE+1..BASE+6, the balancer on BASE+80 and its admin endpoints on 127.0.0.1:BASE+81"),
        )
        .arg(
            Arg::new("host")
                .long("host")
                .default_value("127.0.0.1")
                .help("Address everything listens on"),
        )
        .arg(
            Arg::new("bin-dir")
                .long("bin-dir")
                .help("Where the service binaries are (default: beside this executable)"),
        )
        .arg(
            Arg::new("services")
                .long("services")
                .value_delimiter(',')
                .help("Run only these (comma-separated names); default: all"),
        )
}

#[tokio::main]
async fn main() -> ExitCode {
    let matches = cli().get_matches();
    common::logging::init("launcher");
    let data_dir = PathBuf::from(
        matches
            .get_one::<String>("data-dir")
            .expect("has a default"),
    );
    let layout = Layout {
        host: matches
            .get_one::<String>("host")
            .expect("has a default")
            .clone(),
        port_base: *matches.get_one::<u16>("port-base").expect("has a default"),
    };
    let only: Option<Vec<String>> = matches
        .get_many::<String>("services")
        .map(|v| v.cloned().collect());
    let selected: Vec<_> = SERVICES
        .iter()
        .filter(|s| only.as_ref().is_none_or(|o| o.iter().any(|n| n == s.name)))
        .collect();

    let fresh = !data_dir.join("products.db").exists();
    // Private (0700): it holds every database, the secrets and the mail.
    if let Err(e) = common::private::create_dir(&data_dir) {
        eprintln!("launcher: cannot create {}: {e}", data_dir.display());
        return ExitCode::FAILURE;
    }
    let data_dir = data_dir.canonicalize().unwrap_or(data_dir);

    let mut env = layout.shared_env(&data_dir);
    for (file, var) in SECRETS {
        match common::base_config::dev_secret(&data_dir.join("secrets").join(file)) {
            Ok(secret) => env.push((var.to_string(), secret)),
            Err(e) => {
                eprintln!(
                    "launcher: cannot keep secrets in {}: {e}",
                    data_dir.display()
                );
                return ExitCode::FAILURE;
            }
        }
    }
    // A frontend's dev server may call the shop from these origins.
    env.push((
        "BALANCER_CORS_ORIGINS".into(),
        "http://localhost:5173,http://localhost:3000".into(),
    ));

    // The balancer serves the storefront from an absolute path, whatever
    // the working directory; an explicit setting wins.
    if std::env::var_os("BALANCER_STOREFRONT_DIR").is_none() {
        let exe = std::env::current_exe().ok();
        match storefront::locate(exe.as_deref()) {
            Some(dir) => env.push((
                "BALANCER_STOREFRONT_DIR".into(),
                dir.display().to_string(),
            )),
            None => log::warn!(
                "storefront/public not found beside the launcher or in the workspace; the shop runs without its storefront"
            ),
        }
    }

    let names: Vec<&str> = selected.iter().map(|s| s.name).collect();
    let bin_dir = match locate_binaries(
        matches.get_one::<String>("bin-dir").map(PathBuf::from),
        &names,
    )
    .await
    {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("launcher: {e}");
            return ExitCode::FAILURE;
        }
    };

    if fresh && !matches.get_flag("no-demo") && names.contains(&"products") {
        let seed = ChildSpec {
            name: "products",
            program: bin_dir.join("products"),
            args: vec!["seed".into()],
            env: env.clone(),
            pid_file: None,
        };
        match seed.run_once().await {
            Ok(status) if status.success() => log::info!("demo catalog seeded"),
            Ok(status) => {
                log::warn!("seeding the demo catalog failed ({status}); the shop starts without it")
            }
            Err(e) => log::warn!("cannot run the demo seed: {e}"),
        }
    }

    let run_dir = data_dir.join("run");
    if let Err(e) = common::private::create_dir(&run_dir) {
        eprintln!("launcher: cannot create {}: {e}", run_dir.display());
        return ExitCode::FAILURE;
    }
    let stop = CancellationToken::new();
    let mut running = Vec::new();
    for service in &selected {
        let spec = ChildSpec {
            name: service.name,
            program: bin_dir.join(service.name),
            args: Vec::new(),
            env: env.clone(),
            pid_file: Some(run_dir.join(format!("{}.pid", service.name))),
        };
        running.push(tokio::spawn(supervise(spec, stop.clone())));
    }

    let signal = common::shutdown::signal();
    tokio::pin!(signal);
    tokio::select! {
        ready = wait_ready(&layout, &names) => match ready {
            Ok(()) => {
                println!();
                println!("  The shop is up: {}", layout.shop_url());
                if names.contains(&"balancer") {
                    println!("  Balancer metrics and pools: http://{}/metrics, /readyz", layout.balancer_admin());
                }
                println!("  Data: {}   Stop: Ctrl-C", data_dir.display());
                println!();
            }
            Err(e) => log::error!("{e}; the shop keeps trying, see the logs above"),
        },
        _ = &mut signal => {
            return stop_all(stop, running).await;
        }
    }
    signal.await;
    stop_all(stop, running).await
}

async fn stop_all(stop: CancellationToken, running: Vec<tokio::task::JoinHandle<()>>) -> ExitCode {
    log::info!("stopping the shop");
    stop.cancel();
    let all = futures::future::join_all(running);
    if tokio::time::timeout(Duration::from_secs(14), all)
        .await
        .is_err()
    {
        log::warn!("some services did not stop in time");
    }
    log::info!("the shop has stopped");
    ExitCode::SUCCESS
}

/// Polls every service's `/readyz` until all answer 200.
async fn wait_ready(layout: &Layout, names: &[&str]) -> Result<(), String> {
    let client =
        common::client::HttpClient::new(Duration::from_millis(500), Duration::from_secs(2));
    let started = Instant::now();
    for name in names {
        let url = format!("{}/readyz", layout.url(name));
        loop {
            if client
                .send(client.request(reqwest::Method::GET, &url))
                .await
                .is_ok()
            {
                log::info!("{name} is ready");
                break;
            }
            if started.elapsed() > READY_TIMEOUT {
                return Err(format!("{name} was not ready within {READY_TIMEOUT:?}"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

/// Whether `cargo run` sets this variable for the program it runs (as
/// opposed to the user's own cargo settings, such as `CARGO_HOME`,
/// `CARGO_TARGET_DIR` or `CARGO_PROFILE_*`, which a nested build must
/// keep).
fn set_by_cargo_run(key: &str) -> bool {
    matches!(
        key,
        "CARGO_MANIFEST_DIR"
            | "CARGO_MANIFEST_PATH"
            | "CARGO_CRATE_NAME"
            | "CARGO_BIN_NAME"
            | "CARGO_PRIMARY_PACKAGE"
            | "OUT_DIR"
    ) || key.starts_with("CARGO_PKG_")
}

/// The directory of the service binaries. Run through cargo (which sets
/// `CARGO`), the services are built first with this executable's profile,
/// so `cargo run -p launcher` never starts stale binaries.
async fn locate_binaries(explicit: Option<PathBuf>, names: &[&str]) -> Result<PathBuf, String> {
    let dir = match explicit {
        Some(d) => d,
        None => std::env::current_exe()
            .map_err(|e| format!("cannot find my own executable: {e}"))?
            .parent()
            .map(Path::to_path_buf)
            .ok_or("my executable has no directory")?,
    };
    if let Ok(cargo) = std::env::var("CARGO") {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut cmd = tokio::process::Command::new(cargo);
        cmd.current_dir(&workspace).arg("build");
        // `cargo run` gave this process the launcher's package variables
        // (`CARGO_MANIFEST_DIR`, `CARGO_PKG_*`, …). Passed on, they differ
        // from what the outer cargo saw, and a build script that watches
        // one (ring's watches `CARGO_MANIFEST_DIR`) makes every start
        // rebuild ring, rustls, reqwest and all the services: ~100 s.
        for (key, _) in std::env::vars_os() {
            if key.to_str().is_some_and(set_by_cargo_run) {
                cmd.env_remove(&key);
            }
        }
        if !cfg!(debug_assertions) {
            cmd.arg("--release");
        }
        for name in names {
            cmd.args(["-p", name]);
        }
        log::info!("building the services (cargo build)…");
        let status = cmd
            .status()
            .await
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !status.success() {
            return Err("building the services failed".into());
        }
    }
    for name in names {
        if !dir.join(name).is_file() {
            return Err(format!(
                "{} not found in {}: build the workspace (cargo build --release) or pass --bin-dir",
                name,
                dir.display()
            ));
        }
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::set_by_cargo_run;

    #[test]
    fn a_nested_build_drops_cargo_runs_package_variables_only() {
        for key in [
            "CARGO_MANIFEST_DIR",
            "CARGO_MANIFEST_PATH",
            "CARGO_PKG_NAME",
            "CARGO_PKG_VERSION_MAJOR",
            "CARGO_CRATE_NAME",
            "CARGO_PRIMARY_PACKAGE",
        ] {
            assert!(
                set_by_cargo_run(key),
                "{key} must not reach the nested cargo"
            );
        }
        for key in [
            "CARGO",
            "CARGO_HOME",
            "CARGO_TARGET_DIR",
            "CARGO_PROFILE_RELEASE_LTO",
            "CARGO_BUILD_JOBS",
            "PATH",
            "RUSTFLAGS",
        ] {
            assert!(!set_by_cargo_run(key), "{key} is the user's and must stay");
        }
    }
}

//! `balancer`: serve the shop's public entry point, or
//! `balancer check-config FILE`, or `balancer healthcheck`.
//!
//! Serving runs one single-threaded runtime per worker thread, each with
//! its own `SO_REUSEPORT` listener and upstream connection pool (the shape
//! of hyper's TechEmpower entry): a connection's client side and upstream
//! side live on one core, with no work stealing or cross-core wake-ups on
//! the hot path. Health and routing state are shared atomics. The admin
//! listener (`/metrics`, the detailed `/readyz`) is one more task on the
//! main runtime.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use balancer::config::{binary, load_table, BalancerConfig};
use balancer::proxy::Proxy;
use balancer::routes::Target;
use balancer::Balancer;
use clap::{Arg, Command};
use common::cli::{fail, healthcheck, listen_of};
use tokio_util::sync::CancellationToken;

/// Many small short-lived allocations per request (header maps, request
/// ids, futures): mimalloc's thread-local free lists serve them faster than
/// glibc's malloc, which showed up as ~6% of the proxy's CPU time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let binary = binary();
    let cmd = binary.command().subcommand(
        Command::new("check-config")
            .about("Validate a route table file; exit non-zero with the first problem")
            .arg(Arg::new("file").required(true).value_name("FILE")),
    );
    let (matches, raw) = match binary.start(cmd) {
        Ok(pair) => pair,
        Err(code) => return code,
    };
    if let Some(m) = matches.subcommand_matches("check-config") {
        let file = m.get_one::<String>("file").cloned().unwrap_or_default();
        return check_config(&file);
    }
    if matches.subcommand_matches("healthcheck").is_some() {
        let listen = match listen_of(&raw) {
            Ok(l) => l,
            Err(e) => return fail(binary.name, "configuration error", e),
        };
        return match current_thread() {
            Ok(rt) => rt.block_on(healthcheck(listen)),
            Err(e) => fail(binary.name, "cannot start", e),
        };
    }
    let config = match BalancerConfig::from_config(&raw) {
        Ok(c) => c,
        Err(e) => return fail(binary.name, "configuration error", e),
    };
    match run(config) {
        Ok(()) => {
            common::telemetry::shutdown();
            log::info!("balancer stopped");
            ExitCode::SUCCESS
        }
        Err(e) => fail(binary.name, "cannot start", e),
    }
}

fn check_config(file: &str) -> ExitCode {
    match load_table(std::path::Path::new(file)) {
        Ok(table) => {
            println!(
                "{file}: OK, {} rules, {} pools",
                table.rules.len(),
                table.pools.len()
            );
            for (i, rule) in table.rules.iter().enumerate() {
                let methods = rule
                    .methods
                    .as_ref()
                    .map(|m| m.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(","))
                    .unwrap_or_else(|| "*".into());
                let target = match rule.target {
                    Target::Pool(p) => format!("pool {}", table.pools[p].name),
                    Target::Deny => "404".into(),
                    Target::Static => "storefront files".into(),
                };
                println!(
                    "  {:>2}. {:<8} {} -> {target}  [{}]",
                    i + 1,
                    methods,
                    rule.pattern,
                    rule.name
                );
            }
            for pool in &table.pools {
                let ups: Vec<String> = pool.upstreams.iter().map(|u| u.to_string()).collect();
                println!("  pool {}: {}", pool.name, ups.join(", "));
            }
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("balancer: {message}");
            ExitCode::from(common::cli::EXIT_CONFIG)
        }
    }
}

fn current_thread() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Binds one listener per worker on the same address. A plain bind first
/// makes "address in use" an error even though the workers' sockets use
/// `SO_REUSEPORT` (which would otherwise let a second balancer share it).
fn bind_all(addr: SocketAddr, workers: usize) -> Result<Vec<std::net::TcpListener>, String> {
    use socket2::{Domain, Protocol, Socket, Type};
    let probe =
        std::net::TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let addr = probe
        .local_addr()
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    drop(probe);
    let mut out = Vec::with_capacity(workers);
    for _ in 0..workers {
        let bind = || -> std::io::Result<std::net::TcpListener> {
            let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
            socket.set_reuse_address(true)?;
            if workers > 1 {
                socket.set_reuse_port(true)?;
            }
            socket.bind(&addr.into())?;
            socket.listen(1024)?;
            socket.set_nonblocking(true)?;
            Ok(socket.into())
        };
        out.push(bind().map_err(|e| format!("cannot listen on {addr}: {e}"))?);
    }
    Ok(out)
}

/// A token cancelled on SIGTERM or Ctrl-C.
fn stop_on_signal() -> CancellationToken {
    let stop = CancellationToken::new();
    let signalled = stop.clone();
    tokio::spawn(async move {
        common::shutdown::signal().await;
        signalled.cancel();
    });
    stop
}

/// Serves the admin endpoints on the current runtime until `stop`.
fn spawn_admin(
    balancer: &Balancer,
    listener: tokio::net::TcpListener,
    stop: &CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    log::info!("balancer admin endpoints (/metrics, /readyz with pools) on http://{addr}");
    let shared = Arc::clone(&balancer.shared);
    let options = shared.config.server.clone();
    Ok(tokio::spawn(balancer::admin::serve_admin(
        shared,
        listener,
        options,
        stop.clone().cancelled_owned(),
    )))
}

/// Binds the admin listener before anything starts, so a taken port is a
/// start-up error like the public one.
fn bind_admin(addr: SocketAddr) -> Result<std::net::TcpListener, String> {
    let listener = std::net::TcpListener::bind(addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| format!("cannot listen on {addr} (admin_listen): {e}"))?;
    Ok(listener)
}

fn run(config: BalancerConfig) -> Result<(), String> {
    let workers = config.workers;
    let mut listeners = bind_all(config.listen, workers)?.into_iter();
    let admin = bind_admin(config.admin_listen)?;
    let first = listeners.next().ok_or("no listener")?;
    let addr = first.local_addr().map_err(|e| e.to_string())?;
    let mut options = config.server.clone();
    // The connection cap is per worker; split it so the total holds.
    options.max_connections = options.max_connections.div_ceil(workers).max(1);
    let rt = current_thread().map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let balancer = Balancer::start(config).await;
        let stop = stop_on_signal();
        let admin = tokio::net::TcpListener::from_std(admin).map_err(|e| e.to_string())?;
        let admin = spawn_admin(&balancer, admin, &stop)?;
        let mut threads = Vec::new();
        for (i, listener) in listeners.enumerate() {
            // The proxy is built on its worker's thread: the allocator
            // then takes its memory (connection lists, deadlines, metric
            // tally, replica lists, all written on every request) from that
            // thread's own pages. Built here on the main thread, the
            // workers' proxies sat side by side and shared cache lines
            // (false sharing); with per-worker tallies and replica lists added
            // that way, 16 of 18 paired `bench/balancer.sh` rounds were slower
            // than before them (medians 0.97x and 0.91x).
            let shared = Arc::clone(&balancer.shared);
            let options = options.clone();
            let worker_stop = stop.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("balancer-worker-{}", i + 1))
                .spawn(move || {
                    let stop = worker_stop;
                    let rt = match current_thread() {
                        Ok(rt) => rt,
                        Err(e) => {
                            log::error!("worker {} cannot start a runtime: {e}", i + 1);
                            stop.cancel();
                            return;
                        }
                    };
                    rt.block_on(async move {
                        let proxy = Arc::new(Proxy::new(shared));
                        match tokio::net::TcpListener::from_std(listener) {
                            Ok(l) => {
                                balancer::serve_worker(proxy, l, options, stop.cancelled_owned())
                                    .await
                            }
                            Err(e) => {
                                log::error!("worker {} cannot listen: {e}", i + 1);
                                stop.cancel();
                            }
                        }
                    });
                });
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => {
                    stop.cancel();
                    return Err(format!("cannot start worker thread: {e}"));
                }
            }
        }
        let shared = Arc::clone(&balancer.shared);
        log::info!(
            "balancer listening on http://{addr} ({workers} workers, route table {}, {} rules, pools: {})",
            shared.config.table_source,
            shared.config.table.rules.len(),
            shared
                .pools
                .iter()
                .map(|p| format!(
                    "{}={}",
                    p.name,
                    p.upstreams.iter().map(|u| u.to_string()).collect::<Vec<_>>().join("|")
                ))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let first = tokio::net::TcpListener::from_std(first).map_err(|e| e.to_string())?;
        balancer::serve_worker(balancer.proxy(), first, options, stop.cancelled_owned()).await;
        for t in threads {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        let _ = admin.await;
        balancer.stop_background().await;
        Ok(())
    })
}

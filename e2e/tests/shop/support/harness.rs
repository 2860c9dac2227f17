//! Runs the whole shop for a test: the real launcher (and through it every
//! service and the balancer) as child processes on a temporary data
//! directory and a free port base, exactly as a developer starts it, and
//! stops it with SIGINT afterwards, checking that no process is left.
//!
//! The binaries are the ones `cargo build --workspace` (or `cargo test
//! --workspace`, which builds every package's binaries for their own
//! integration tests before running any test) put in `target/debug`; the
//! launcher is told where they are, and `CARGO` is removed from its
//! environment so it never starts a nested cargo build.

use std::collections::HashSet;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use common::db::TestDb;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::sync::{Semaphore, SemaphorePermit};

/// Every process the launcher starts, by the names of its pid files, with
/// the offset of its port from the port base and its settings prefix.
pub const SERVICES: &[(&str, u16, &str)] = &[
    ("users", 1, "USERS"),
    ("products", 2, "PRODUCTS"),
    ("cart", 3, "CART"),
    ("mailer", 4, "MAILER"),
    ("stats", 5, "STATS"),
    ("payments-mock", 6, "PAYMENTS"),
    ("balancer", 80, "BALANCER"),
];

/// The balancer's admin listener (`/metrics`, `/readyz` with the pools),
/// which the launcher puts on 127.0.0.1 at the port base + 81.
pub const BALANCER_ADMIN_OFFSET: u16 = 81;

/// The admin every shop bootstraps (users reads SHOP_ADMIN_*), so tests can
/// exercise the admin-only catalog endpoints.
pub const ADMIN_EMAIL: &str = "admin@shop.example";
pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";

/// A shop is seven processes; on a two-core machine more than two shops at
/// once only make every deadline in the suite tighter.
const MAX_SHOPS: usize = 2;
static SHOPS: Semaphore = Semaphore::const_new(MAX_SHOPS);

/// Debug binaries on a loaded machine: generous, but bounded.
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// The launcher promises to stop within 15 s.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// The ports of one shop: service N listens on `base + offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub base: u16,
}

impl Ports {
    /// A base whose eight ports (seven processes and the balancer's admin
    /// listener) are free right now and that no other test
    /// in this process has taken. Bases stay below Linux's ephemeral range
    /// (32768+), where outgoing connections could take them at any moment.
    pub fn reserve() -> Ports {
        static TAKEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
        let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
        let taken = taken.get_or_insert_with(HashSet::new);
        // Start at a place that depends on the process, so two test binaries
        // running at once (or a shop someone left running) rarely collide.
        let slots = (32_000 - 20_000) / 100;
        let first = std::process::id() as usize % slots;
        for i in 0..slots {
            let base = 20_000 + ((first + i * 37) % slots) as u16 * 100;
            if taken.contains(&base) {
                continue;
            }
            let ports = Ports { base };
            let admin = SocketAddr::from(([127, 0, 0, 1], base + BALANCER_ADMIN_OFFSET));
            if SERVICES
                .iter()
                .all(|(name, _, _)| TcpListener::bind(ports.addr(name)).is_ok())
                && TcpListener::bind(admin).is_ok()
            {
                taken.insert(base);
                return ports;
            }
        }
        panic!("no free port base between 20000 and 32000");
    }

    pub fn port(&self, service: &str) -> u16 {
        let offset = SERVICES
            .iter()
            .find(|(name, _, _)| *name == service)
            .map(|(_, offset, _)| *offset)
            .unwrap_or_else(|| panic!("unknown service {service}"));
        self.base + offset
    }

    pub fn addr(&self, service: &str) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port(service)))
    }

    pub fn url(&self, service: &str) -> String {
        format!("http://{}", self.addr(service))
    }

    /// Where the balancer's `/metrics` and detailed `/readyz` are.
    pub fn balancer_admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.base + BALANCER_ADMIN_OFFSET)
    }
}

/// How to start a shop.
#[derive(Debug, Default, Clone)]
pub struct ShopOptions {
    env: Vec<(String, String)>,
    services: Option<Vec<&'static str>>,
    ports: Option<Ports>,
}

impl ShopOptions {
    /// A setting for the launcher's environment, which every child inherits
    /// (`BALANCER_ROUTE_TIMEOUT=2s`, `CART_UPSTREAM_TIMEOUT=1s`, …).
    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.to_string(), value.into()));
        self
    }

    /// Run only these (the launcher's `--services`).
    pub fn services(mut self, names: &[&'static str]) -> Self {
        self.services = Some(names.to_vec());
        self
    }

    /// Use ports reserved beforehand (to point a fault proxy at them).
    pub fn ports(mut self, ports: Ports) -> Self {
        self.ports = Some(ports);
        self
    }

    pub async fn start(self) -> Shop {
        Shop::start(self).await
    }
}

/// A running shop. Dropping it stops it (SIGINT to each launcher) and
/// checks that every process it had is gone.
pub struct Shop {
    pub ports: Ports,
    /// The launcher's `--data-dir`: SQLite files, secrets, outbox, pid files.
    pub data_dir: PathBuf,
    /// The launcher's output (all services' logs, prefixed), appended across restarts.
    pub log_path: PathBuf,
    env: Vec<(String, String)>,
    services: Vec<&'static str>,
    launchers: Vec<Child>,
    /// Every pid any launcher of this shop ever wrote, for the final check.
    seen_pids: Mutex<HashSet<(String, i32)>>,
    _dbs: Vec<TestDb>,
    _dir: tempfile::TempDir,
    _permit: SemaphorePermit<'static>,
}

/// `target/debug`, where cargo put the service binaries: this test
/// executable lives in `target/debug/deps`.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .expect("the test executable is in target/<profile>/deps")
}

fn check_binaries(dir: &Path) {
    let names: Vec<&str> = std::iter::once("launcher")
        .chain(SERVICES.iter().map(|(name, _, _)| *name))
        .collect();
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|name| !dir.join(name).is_file())
        .collect();
    assert!(
        missing.is_empty(),
        "the end-to-end tests run the built binaries, and {} {} missing from {}: \
         run `cargo build --workspace` first (`cargo test --workspace` builds them too)",
        missing.join(", "),
        if missing.len() == 1 { "is" } else { "are" },
        dir.display()
    );
    // `cargo test -p e2e` alone does not rebuild them: testing yesterday's
    // binaries against today's code would pass or fail for nothing. Cargo's
    // own record of each binary's inputs (`<name>.d`) says what is newer.
    let stale: Vec<&str> = names
        .iter()
        .copied()
        .filter(|name| {
            let built = std::fs::metadata(dir.join(name)).and_then(|m| m.modified()).ok();
            matches!((built, newest_input(&dir.join(format!("{name}.d")))), (Some(b), Some(i)) if i > b)
        })
        .collect();
    assert!(
        stale.is_empty(),
        "{} in {} {} older than {} sources: run `cargo build --workspace` first \
         (`cargo test --workspace` rebuilds them itself)",
        stale.join(", "),
        dir.display(),
        if stale.len() == 1 { "is" } else { "are" },
        if stale.len() == 1 { "its" } else { "their" }
    );
}

/// The latest modification time of the inputs a cargo dep-info file lists
/// (`target/debug/users: /…/common/src/app.rs /…/users/src/main.rs …`).
fn newest_input(dep_info: &Path) -> Option<std::time::SystemTime> {
    let text = std::fs::read_to_string(dep_info).ok()?;
    let (_, inputs) = text.lines().next()?.split_once(": ")?;
    // Spaces inside a path are escaped as `\ `.
    let inputs = inputs.replace("\\ ", "\u{0}");
    inputs
        .split_whitespace()
        .map(|p| p.replace('\u{0}', " "))
        .filter_map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .max()
}

/// Spawns children from one thread that lives as long as the test process.
/// The launcher is started with PR_SET_PDEATHSIG, which fires when the
/// *thread* that forked it ends: spawned from a test's own thread, a shop
/// shared by several tests would be stopped when the first one finished.
/// From this thread, it is stopped only if the test process itself dies
/// (killed, or aborted by a timeout), so no shop outlives its tests.
fn spawn_detached(cmd: Command) -> std::io::Result<Child> {
    type Request = (Command, mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();
    let sender = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("shop-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("starting the spawner thread");
        Mutex::new(tx)
    });
    let (reply, answer) = mpsc::channel();
    sender
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((cmd, reply))
        .expect("the spawner thread lives as long as the process");
    answer.recv().expect("the spawner thread answers")
}

impl Shop {
    pub fn options() -> ShopOptions {
        ShopOptions::default()
    }

    /// The shop several read-mostly tests share: started by the first that
    /// asks, stopped when the last one holding it is done. Each test uses
    /// its own users (unique emails), so they do not see one another.
    pub async fn shared() -> Arc<Shop> {
        static SHARED: tokio::sync::Mutex<Weak<Shop>> = tokio::sync::Mutex::const_new(Weak::new());
        let mut slot = SHARED.lock().await;
        if let Some(shop) = slot.upgrade() {
            return shop;
        }
        let shop = Arc::new(Shop::options().start().await);
        *slot = Arc::downgrade(&shop);
        shop
    }

    async fn start(options: ShopOptions) -> Shop {
        let permit = SHOPS
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let bins = bin_dir();
        check_binaries(&bins);
        let dir = tempfile::Builder::new()
            .prefix("shop-e2e-")
            .tempdir()
            .expect("creating a temporary directory");
        // The launcher gives the services the canonical path, which the
        // final check looks for; the launcher itself creates the directory
        // (private, as a developer's first start does).
        let data_dir = dir
            .path()
            .canonicalize()
            .expect("a directory has a canonical path")
            .join("data");
        let ports = options.ports.unwrap_or_else(Ports::reserve);

        let mut env: Vec<(String, String)> = vec![
            ("SHOP_ADMIN_EMAIL".into(), ADMIN_EMAIL.into()),
            ("SHOP_ADMIN_PASSWORD".into(), ADMIN_PASSWORD.into()),
            // Every request of a test comes from 127.0.0.1; the suite logs
            // in far more often than one person would.
            ("USERS_LOGIN_ATTEMPTS_PER_IP".into(), "100000".into()),
            ("USERS_LOGIN_ATTEMPTS_PER_EMAIL".into(), "1000".into()),
            // …and registers far more accounts from one address.
            ("USERS_REGISTRATIONS_PER_IP".into(), "100000".into()),
            // A replica the balancer took out comes back within a second.
            ("BALANCER_HEALTH_INTERVAL".into(), "500ms".into()),
        ];
        let mut dbs = Vec::new();
        if std::env::var("TEST_DATABASE_URL").is_ok_and(|u| !u.is_empty()) {
            for (name, _, prefix) in SERVICES {
                if *name == "balancer" {
                    continue;
                }
                let db = TestDb::new().await;
                env.push((format!("{prefix}_DATABASE_URL"), db.url.clone()));
                // Six pools per shop, two shops at once, and the rest of the
                // workspace's tests: stay far below PostgreSQL's 100.
                env.push((format!("{prefix}_DATABASE_MAX_CONNECTIONS"), "4".into()));
                dbs.push(db);
            }
        }
        env.extend(options.env);

        let services = options
            .services
            .unwrap_or_else(|| SERVICES.iter().map(|(name, _, _)| *name).collect());
        let mut shop = Shop {
            ports,
            log_path: dir.path().join("launcher.log"),
            data_dir,
            env,
            services: services.clone(),
            launchers: Vec::new(),
            seen_pids: Mutex::new(HashSet::new()),
            _dbs: dbs,
            _dir: dir,
            _permit: permit,
        };
        shop.launch(&services);
        shop.wait_ready(&services).await;
        shop
    }

    /// The launcher command line for `services` on this shop's directory.
    fn launcher_command(&self, services: &[&str]) -> Command {
        let bins = bin_dir();
        let mut cmd = Command::new(bins.join("launcher"));
        cmd.arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--port-base")
            .arg(self.ports.base.to_string())
            .arg("--bin-dir")
            .arg(&bins);
        if services.len() != SERVICES.len() {
            cmd.arg("--services").arg(services.join(","));
        }
        // A clean environment: nothing from the developer's shell (a stray
        // USERS_DATABASE_URL, a .env in the working directory, CARGO) may
        // change what runs.
        cmd.env_clear();
        for key in ["PATH", "HOME", "TMPDIR", "LANG", "RUST_BACKTRACE"] {
            if let Ok(v) = std::env::var(key) {
                cmd.env(key, v);
            }
        }
        cmd.env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        );
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.current_dir(self._dir.path());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("opening the launcher log");
        let err = log.try_clone().expect("cloning a file handle");
        cmd.stdin(Stdio::null()).stdout(log).stderr(err);
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl is async-signal-safe and touches only the child.
            unsafe {
                cmd.pre_exec(|| {
                    nix::sys::prctl::set_pdeathsig(Signal::SIGINT).map_err(std::io::Error::from)
                });
            }
        }
        cmd
    }

    fn launch(&mut self, services: &[&'static str]) {
        let cmd = self.launcher_command(services);
        let child = spawn_detached(cmd).expect("starting the launcher");
        self.launchers.push(child);
    }

    /// Starts one more launcher for `services` on the same data directory
    /// and ports (a service the shop was started without, coming up later).
    pub async fn start_services(&mut self, services: &[&'static str]) {
        self.launch(services);
        self.services.extend_from_slice(services);
        self.wait_ready(services).await;
    }

    /// Waits until every service answers its own `/readyz` and the balancer
    /// has a healthy replica in the pool of each of them.
    pub async fn wait_ready(&self, services: &[&str]) {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("a client");
        let started = Instant::now();
        let mut waiting: Vec<&str> = services.to_vec();
        while !waiting.is_empty() {
            self.assert_launchers_running();
            let mut still = Vec::new();
            for name in waiting {
                if !self.ready(&client, name).await {
                    still.push(name);
                }
            }
            waiting = still;
            if waiting.is_empty() {
                break;
            }
            if started.elapsed() > READY_TIMEOUT {
                panic!(
                    "the shop was not ready within {READY_TIMEOUT:?}: waiting for {waiting:?}\n{}",
                    self.log_tail(60)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.record_pids();
    }

    async fn ready(&self, client: &reqwest::Client, name: &str) -> bool {
        let ok = |r: Result<reqwest::Response, reqwest::Error>| {
            r.is_ok_and(|r| r.status() == reqwest::StatusCode::OK)
        };
        if !ok(client
            .get(format!("{}/readyz", self.ports.url(name)))
            .send()
            .await)
        {
            return false;
        }
        if name == "balancer" || name == "mailer" {
            // The mailer is no pool of the balancer (nothing public routes to it).
            return true;
        }
        if !self.services.contains(&"balancer") {
            return true;
        }
        // The balancer may have taken a replica out while it was starting;
        // it is back after two good health checks. Its pools are on the
        // admin listener.
        let Ok(resp) = client
            .get(format!("{}/readyz", self.ports.balancer_admin_url()))
            .send()
            .await
        else {
            return false;
        };
        let Ok(body) = resp.json::<serde_json::Value>().await else {
            return false;
        };
        body["pools"][name]["healthy"]
            .as_u64()
            .is_some_and(|n| n >= 1)
    }

    fn assert_launchers_running(&self) {
        for launcher in &self.launchers {
            let pid = Pid::from_raw(launcher.id() as i32);
            // A launcher that exited is a zombie until we wait for it.
            if process_state(pid).is_none_or(|s| s == 'Z') {
                panic!(
                    "the launcher (pid {pid}) exited before the shop was ready\n{}",
                    self.log_tail(60)
                );
            }
        }
    }

    /// Runs `service`'s binary once with `args` (a subcommand such as
    /// `users create-admin`), with the settings the launcher gives the
    /// service — this shop's data directory, databases and neighbours —
    /// plus `env`; returns its exit status and output. Blocks this test's
    /// runtime until the command exits.
    pub fn run_command(
        &self,
        service: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> std::process::Output {
        let prefix = SERVICES
            .iter()
            .find(|(name, _, _)| *name == service)
            .map(|(_, _, prefix)| *prefix)
            .unwrap_or_else(|| panic!("unknown service {service}"));
        let mut cmd = Command::new(bin_dir().join(service));
        cmd.args(args).env_clear();
        for key in ["PATH", "HOME", "TMPDIR", "LANG"] {
            if let Ok(v) = std::env::var(key) {
                cmd.env(key, v);
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)))
            .env(format!("{prefix}_DATA_DIR"), &self.data_dir);
        for neighbour in ["users", "products", "cart", "mailer", "stats"] {
            cmd.env(
                format!("SHOP_{}_URL", neighbour.to_uppercase()),
                self.ports.url(neighbour),
            );
        }
        cmd.envs(env.iter().copied())
            .current_dir(self._dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running {service} {args:?}: {e}"))
    }

    /// The public entry point: the balancer.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.ports.url("balancer"), path)
    }

    pub fn service_url(&self, service: &str, path: &str) -> String {
        format!("{}{}", self.ports.url(service), path)
    }

    /// A process's `/metrics`: the balancer's is on its admin listener.
    pub fn metrics_url(&self, service: &str) -> String {
        match service {
            "balancer" => format!("{}/metrics", self.ports.balancer_admin_url()),
            _ => self.service_url(service, "/metrics"),
        }
    }

    /// The credential services present to each other's internal endpoints,
    /// as the launcher generated it.
    pub fn internal_key(&self) -> String {
        self.secret("internal_key")
    }

    pub fn secret(&self, name: &str) -> String {
        std::fs::read_to_string(self.data_dir.join("secrets").join(name))
            .unwrap_or_else(|e| panic!("reading secret {name}: {e}"))
            .trim()
            .to_string()
    }

    /// Where the mailer writes `.eml` files (its default, DATA_DIR/outbox).
    pub fn outbox(&self) -> PathBuf {
        self.data_dir.join("outbox")
    }

    /// The pid the launcher wrote for `service`'s current process.
    pub fn pid(&self, service: &str) -> Pid {
        let path = self.data_dir.join("run").join(format!("{service}.pid"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        Pid::from_raw(
            text.trim()
                .parse()
                .unwrap_or_else(|_| panic!("{} holds no pid: {text:?}", path.display())),
        )
    }

    fn record_pids(&self) {
        let mut seen = self.seen_pids.lock().unwrap_or_else(|e| e.into_inner());
        for (name, _, _) in SERVICES {
            let path = self.data_dir.join("run").join(format!("{name}.pid"));
            if let Some(pid) = std::fs::read_to_string(path)
                .ok()
                .and_then(|t| t.trim().parse::<i32>().ok())
            {
                seen.insert((name.to_string(), pid));
            }
        }
    }

    /// Sends `signal` to `service`'s process.
    pub fn signal(&self, service: &str, signal: Signal) -> Pid {
        let pid = self.pid(service);
        kill(pid, signal).unwrap_or_else(|e| panic!("{signal} to {service} ({pid}): {e}"));
        pid
    }

    /// SIGKILLs `service` and waits until that process is gone. The
    /// launcher restarts it after its backoff (1 s the first time).
    pub async fn kill9(&self, service: &str) -> Pid {
        self.record_pids();
        let pid = self.signal(service, Signal::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(10);
        while process_state(pid).is_some_and(|s| s != 'Z') {
            assert!(
                Instant::now() < deadline,
                "{service} ({pid}) survived SIGKILL"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        pid
    }

    /// Waits until the launcher has restarted `service` (a pid other than
    /// `old`) and it is ready again, also in the balancer's eyes.
    pub async fn wait_restarted(&self, service: &str, old: Pid) -> Pid {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let path = self.data_dir.join("run").join(format!("{service}.pid"));
            let now = std::fs::read_to_string(path)
                .ok()
                .and_then(|t| t.trim().parse::<i32>().ok())
                .map(Pid::from_raw);
            if let Some(pid) = now.filter(|p| *p != old) {
                self.wait_ready(&[service]).await;
                return pid;
            }
            assert!(
                Instant::now() < deadline,
                "the launcher did not restart {service} within 30 s\n{}",
                self.log_tail(40)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGSTOPs `service` until the guard is dropped (SIGCONT), so a
    /// failing assertion never leaves a frozen process behind.
    /// The stop is waited for: `kill` only queues SIGSTOP, and until one
    /// of the service's threads is scheduled to act on it, the others go on
    /// serving (on a loaded machine, a request sent right after `kill`
    /// was answered). Blocks this test's runtime for those few
    /// milliseconds.
    pub fn freeze(&self, service: &str) -> Frozen {
        let frozen = Frozen {
            pid: self.signal(service, Signal::SIGSTOP),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !all_threads_stopped(frozen.pid) {
            assert!(
                Instant::now() < deadline,
                "{service} ({}) did not stop within 10 s of SIGSTOP",
                frozen.pid
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        frozen
    }

    /// Stops the shop and starts it again on the same data directory,
    /// databases and ports.
    pub async fn restart(&mut self) {
        let services = self.services.clone();
        // Blocks this test's runtime for the few seconds a stop takes;
        // nothing of the test runs meanwhile.
        if let Err(e) = self.stop_launchers() {
            panic!("{e}\n{}", self.log_tail(40));
        }
        self.launch(&services);
        self.wait_ready(&services).await;
    }

    /// Stops the shop now (as dropping it does), panicking if a process
    /// is left behind.
    pub fn stop(mut self) {
        if let Err(e) = self.stop_launchers() {
            panic!("{e}\n{}", self.log_tail(40));
        }
    }

    /// SIGINT to every launcher (Ctrl-C, as a developer stops the shop);
    /// waits for them, then checks every service process they ever ran
    /// is gone.
    fn stop_launchers(&mut self) -> Result<(), String> {
        self.record_pids();
        let mut problems = Vec::new();
        for mut launcher in self.launchers.drain(..) {
            let pid = Pid::from_raw(launcher.id() as i32);
            let _ = kill(pid, Signal::SIGINT);
            let deadline = Instant::now() + STOP_TIMEOUT;
            loop {
                match launcher.try_wait() {
                    Ok(Some(status)) => {
                        if !status.success() {
                            problems.push(format!("the launcher exited with {status}"));
                        }
                        break;
                    }
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    _ => {
                        problems.push(format!(
                            "the launcher did not stop within {STOP_TIMEOUT:?} of SIGINT"
                        ));
                        let _ = launcher.kill();
                        let _ = launcher.wait();
                        break;
                    }
                }
            }
        }
        // Children are reaped by the launcher (or by init once it is gone):
        // give that a moment, then anything still there is a leak.
        let seen: Vec<(String, i32)> = self
            .seen_pids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let alive: Vec<&(String, i32)> = seen
                .iter()
                .filter(|(_, pid)| is_our_service(Pid::from_raw(*pid), &self.data_dir))
                .collect();
            if alive.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                for (_, pid) in &alive {
                    let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
                }
                problems.push(format!(
                    "processes left behind after the launcher stopped: {alive:?}"
                ));
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// The last `n` lines the launcher and its children printed.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(n);
        format!(
            "--- last {} lines of {} ---\n{}",
            lines.len() - start,
            self.log_path.display(),
            lines[start..].join("\n")
        )
    }
}

impl Drop for Shop {
    fn drop(&mut self) {
        if self.launchers.is_empty() {
            return;
        }
        let result = self.stop_launchers();
        if std::thread::panicking() {
            // The test failed: its logs say why.
            eprintln!("{}", self.log_tail(80));
        } else if let Err(e) = result {
            panic!("{e}\n{}", self.log_tail(40));
        }
    }
}

/// A SIGSTOPped process; SIGCONT when dropped.
pub struct Frozen {
    pid: Pid,
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = kill(self.pid, Signal::SIGCONT);
    }
}

/// The state letter of `/proc/<pid>/stat` (`R`, `S`, `T`, `Z`…), or `None`
/// if there is no such process.
pub fn process_state(pid: Pid) -> Option<char> {
    state_in(Path::new(&format!("/proc/{pid}/stat")))
}

/// The state letter of a `/proc` `stat` file, process or thread.
fn state_in(stat: &Path) -> Option<char> {
    let stat = std::fs::read_to_string(stat).ok()?;
    // The command name is in parentheses and may contain spaces.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Whether every thread of `pid` is stopped (`T` in its
/// `/proc/<pid>/task/<tid>/stat`).
fn all_threads_stopped(pid: Pid) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks
        .flatten()
        .all(|task| state_in(&task.path().join("stat")).is_some_and(|s| s == 'T' || s == 't'))
}

/// Whether `pid` is still one of this shop's processes (alive, not a
/// zombie, and started with this data directory in its environment — a
/// recycled pid belongs to someone else).
fn is_our_service(pid: Pid, data_dir: &Path) -> bool {
    if process_state(pid).is_none_or(|s| s == 'Z') {
        return false;
    }
    let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
        // Gone meanwhile, or not ours to read.
        return false;
    };
    let needle = data_dir.display().to_string();
    environ
        .split(|b| *b == 0)
        .any(|var| String::from_utf8_lossy(var).ends_with(&needle))
}

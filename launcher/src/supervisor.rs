//! Runs one child process: prefixes its output, restarts it with backoff
//! when it dies, and on stop sends SIGTERM, then SIGKILL if it lingers.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

/// How long a child may take to stop after SIGTERM before it is killed;
/// below the launcher's own 15 s promise.
const STOP_GRACE: Duration = Duration::from_secs(11);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A child that ran this long is considered healthy again: backoff resets.
const STABLE_AFTER: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct ChildSpec {
    pub name: &'static str,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Where the running child's pid is written (for operators and the
    /// end-to-end fault tests, which kill children on purpose).
    pub pid_file: Option<PathBuf>,
}

impl ChildSpec {
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        #[cfg(target_os = "linux")]
        // SAFETY: prctl is async-signal-safe and touches only the child.
        unsafe {
            // If the launcher itself is killed, the kernel stops the child too:
            // no orphaned services holding ports.
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(std::io::Error::from)
            });
        }
        cmd
    }

    /// Runs to completion (for one-shot commands such as `products seed`).
    pub async fn run_once(&self) -> std::io::Result<std::process::ExitStatus> {
        let mut child = self.command().spawn()?;
        pump(self.name, &mut child);
        child.wait().await
    }
}

/// Prints each line the child writes as `name | line`.
fn pump(name: &'static str, child: &mut Child) {
    fn forward(name: &'static str, stream: impl AsyncRead + Unpin + Send + 'static) {
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                println!("{name:>13} | {line}");
            }
        });
    }
    if let Some(out) = child.stdout.take() {
        forward(name, out);
    }
    if let Some(err) = child.stderr.take() {
        forward(name, err);
    }
}

/// Keeps the child running until `stop`, restarting it when it exits.
pub async fn supervise(spec: ChildSpec, stop: CancellationToken) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let started = Instant::now();
        let mut child = match spec.command().spawn() {
            Ok(c) => c,
            Err(e) => {
                log::error!(
                    "cannot start {} ({}): {e}",
                    spec.name,
                    spec.program.display()
                );
                if wait_or_stop(backoff, &stop).await {
                    return;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        pump(spec.name, &mut child);
        if let (Some(path), Some(pid)) = (&spec.pid_file, child.id()) {
            if let Err(e) = common::private::write(path, format!("{pid}\n").as_bytes()) {
                log::warn!("cannot write {}: {e}", path.display());
            }
        }
        tokio::select! {
            status = child.wait() => {
                if stop.is_cancelled() {
                    return;
                }
                if started.elapsed() > STABLE_AFTER {
                    backoff = Duration::from_secs(1);
                }
                let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                log::warn!("{} exited ({status}); restarting in {:?}", spec.name, backoff);
                if wait_or_stop(backoff, &stop).await {
                    return;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            _ = stop.cancelled() => {
                terminate(spec.name, &mut child).await;
                return;
            }
        }
    }
}

/// SIGTERM, then SIGKILL after the grace period.
async fn terminate(name: &str, child: &mut Child) {
    if let Some(pid) = child.id() {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
    }
    match tokio::time::timeout(STOP_GRACE, child.wait()).await {
        Ok(_) => log::info!("{name} stopped"),
        Err(_) => {
            log::warn!("{name} did not stop within {STOP_GRACE:?}; killing it");
            let _ = child.kill().await;
        }
    }
}

/// Sleeps; true if `stop` fired first.
async fn wait_or_stop(duration: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(duration) => false,
        _ = stop.cancelled() => true,
    }
}

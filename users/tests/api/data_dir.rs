//! What the `users` binary leaves on disk on a fresh data directory: the
//! directory, its secrets and its SQLite database (with `-wal`/`-shm`) are
//! readable by the shop's user alone, since they hold password hashes,
//! emails and keys.

use std::time::Duration;

use common::private::mode;
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test]
async fn a_fresh_data_directory_is_private() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_users"))
        .env_clear()
        .current_dir(tmp.path())
        .env("USERS_DATA_DIR", &data)
        .env("USERS_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("starting the users binary");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let listening = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("listening on") {
                return;
            }
        }
        panic!("users exited before listening");
    };
    tokio::time::timeout(Duration::from_secs(60), listening)
        .await
        .expect("users starts listening");

    assert_eq!(mode(&data).unwrap(), 0o700, "the data directory");
    assert_eq!(mode(&data.join("secrets")).unwrap(), 0o700);
    for name in [
        "secrets/token_secret",
        "secrets/internal_key",
        "users.db",
        "users.db-wal",
        "users.db-shm",
    ] {
        assert_eq!(mode(&data.join(name)).unwrap(), 0o600, "{name}");
    }
    child.kill().await.unwrap();
}

/// `users` with nothing from the environment but `vars`, run in `dir`.
async fn run_users(
    dir: &std::path::Path,
    args: &[&str],
    vars: &[(&str, &str)],
) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_users"))
        .env_clear()
        .current_dir(dir)
        .args(args)
        .envs(vars.iter().copied())
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("running the users binary")
}

/// A container's health check runs every few seconds: it must only find the
/// port to ask, not validate the rest, create development secrets (in a
/// read-only container it could not) or log warnings about them.
#[tokio::test]
async fn healthcheck_reads_only_the_listen_address() {
    let tmp = tempfile::tempdir().unwrap();
    // Nothing listens on a port just released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let out = run_users(
        tmp.path(),
        &["healthcheck"],
        &[
            ("USERS_LISTEN", &listen),
            // A setting healthcheck has no business validating.
            ("USERS_DATABASE_PASSWORD", "replace-me-users-db-password"),
        ],
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not ready"), "{stderr}");
    assert!(
        !stderr.contains("WARN") && !stderr.contains("secret"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "healthcheck wrote nothing"
    );
}

/// What compose's one-shot `init-secrets` container does: every secret once,
/// then nothing on the next `up`.
#[tokio::test]
async fn init_secrets_creates_each_secret_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_str().unwrap();
    let first = run_users(tmp.path(), &["init-secrets", "--dir", dir], &[]).await;
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(stdout.contains("created token_secret"), "{stdout}");
    let read = |name: &str| std::fs::read_to_string(tmp.path().join(name)).unwrap();
    let before: Vec<String> = common::secrets::SECRET_FILES
        .iter()
        .map(|f| read(f.name))
        .collect();

    let second = run_users(tmp.path(), &["init-secrets", "--dir", dir], &[]).await;
    assert!(second.status.success());
    assert!(String::from_utf8_lossy(&second.stdout).contains("none created"));
    let after: Vec<String> = common::secrets::SECRET_FILES
        .iter()
        .map(|f| read(f.name))
        .collect();
    assert_eq!(before, after);

    // The services read them through *_FILE: a placeholder is refused there
    // too, with exit code 78 and the variable named.
    std::fs::write(
        tmp.path().join("bad"),
        "replace-me-token-secret-0000000000000000",
    )
    .unwrap();
    let bad = tmp.path().join("bad");
    let out = run_users(
        tmp.path(),
        &[],
        &[
            ("USERS_LISTEN", "127.0.0.1:0"),
            ("USERS_DATA_DIR", dir),
            ("SHOP_TOKEN_SECRET_FILE", bad.to_str().unwrap()),
        ],
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("SHOP_TOKEN_SECRET_FILE"), "{stderr}");
    assert!(stderr.contains("placeholder"), "{stderr}");
}

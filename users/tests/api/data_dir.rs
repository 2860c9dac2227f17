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

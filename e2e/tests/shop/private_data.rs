//! Data at rest belongs to the shop's user alone: on a fresh data
//! directory the launcher and the services create every directory 0700 and
//! every file 0600 — SQLite databases with their `-wal`/`-shm`, generated
//! secrets, pid files and the mail outbox — since they hold password
//! hashes, emails, orders and keys.

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::private::mode;

use crate::support::{eventually, mails_to, unique_email, Client, Shop};

/// Every entry under `dir`, with whether it is a directory. Entries that
/// vanish meanwhile (a mail's temporary file being renamed) are skipped.
fn walk(dir: &Path, out: &mut Vec<(PathBuf, bool)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        out.push((entry.path(), kind.is_dir()));
        if kind.is_dir() {
            walk(&entry.path(), out);
        }
    }
}

#[tokio::test]
async fn everything_in_the_data_directory_is_private() {
    let shop = Shop::shared().await;
    let api = Client::new(shop.url(""));
    let email = unique_email("private");
    api.register(&email, "password-123", "Private")
        .await
        .expect(201);
    let outbox = shop.outbox();
    eventually("the welcome email", Duration::from_secs(30), || async {
        match mails_to(&outbox, &email).len() {
            0 => Err("no mail yet".to_string()),
            _ => Ok(()),
        }
    })
    .await;

    let mut entries = vec![(shop.data_dir.clone(), true)];
    walk(&shop.data_dir, &mut entries);
    let names: Vec<String> = entries
        .iter()
        .filter_map(|(p, _)| p.strip_prefix(&shop.data_dir).ok())
        .map(|p| p.display().to_string())
        .collect();
    let mut expected = vec!["run", "run/users.pid", "secrets", "outbox"];
    if !std::env::var("TEST_DATABASE_URL").is_ok_and(|u| !u.is_empty()) {
        expected.extend(["users.db", "users.db-wal", "users.db-shm"]);
    }
    for name in expected {
        assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
    }
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("outbox/") && n.ends_with(".eml")),
        "a mail in {names:?}"
    );

    let open: Vec<String> = entries
        .iter()
        .filter_map(|(path, is_dir)| {
            let want = if *is_dir { 0o700 } else { 0o600 };
            let got = mode(path).ok()?;
            (got != want).then(|| format!("{} is {got:o}, not {want:o}", path.display()))
        })
        .collect();
    assert!(open.is_empty(), "readable by others: {open:#?}");
}

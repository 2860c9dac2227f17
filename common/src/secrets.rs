//! `init-secrets`: every secret a compose deployment needs, generated once
//! into a directory (the `secrets` volume) by a one-shot container, so a
//! fresh clone starts with no `.env` to fill in. Services and PostgreSQL
//! read the files through `*_FILE` variables. A file that already holds a
//! secret is never replaced, so running it on every `up` is harmless and an
//! operator may put their own secret in place beforehand.
//!
//! It is a subcommand of every service binary (not a script) because the
//! runtime image is distroless: it has no shell to run one.

use std::path::Path;

use crate::base_config::keep_or_create_secret;

/// One secret file and who must read it.
#[derive(Debug, Clone, Copy)]
pub struct SecretFile {
    pub name: &'static str,
    /// 0600 for secrets only the services (all the same user) read; 0644
    /// for those PostgreSQL's own user reads too (its superuser password,
    /// and the per-service passwords `deploy/postgres/init.sh` gives the
    /// roles it creates). The volume is mounted only where it is needed.
    pub mode: u32,
}

const fn service_only(name: &'static str) -> SecretFile {
    SecretFile { name, mode: 0o600 }
}

const fn shared_with_postgres(name: &'static str) -> SecretFile {
    SecretFile { name, mode: 0o644 }
}

/// Every secret of the compose deployment (docker-compose.yml names them).
pub const SECRET_FILES: &[SecretFile] = &[
    service_only("token_secret"),
    service_only("internal_key"),
    service_only("payments_key"),
    service_only("webhook_secret"),
    shared_with_postgres("postgres_password"),
    shared_with_postgres("users_db_password"),
    shared_with_postgres("products_db_password"),
    shared_with_postgres("cart_db_password"),
    shared_with_postgres("mailer_db_password"),
    shared_with_postgres("stats_db_password"),
    shared_with_postgres("payments_db_password"),
];

/// Creates each missing secret in `dir` (which must exist: it is a
/// volume); returns the names it created.
pub fn init_secrets(dir: &Path) -> std::io::Result<Vec<&'static str>> {
    let mut created = Vec::new();
    for file in SECRET_FILES {
        let (_, new) = keep_or_create_secret(&dir.join(file.name), file.mode)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", file.name)))?;
        if new {
            created.push(file.name);
        }
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::private::mode;

    #[test]
    fn secrets_are_created_once_with_their_modes_and_then_kept() {
        let dir = tempfile::tempdir().unwrap();
        // An operator's own secret, put in place beforehand, is kept.
        let own = "operator-chosen-webhook-secret-0123456789";
        std::fs::write(dir.path().join("webhook_secret"), format!("{own}\n")).unwrap();
        // A truncated one (a disk filled up mid-write) is replaced.
        std::fs::write(dir.path().join("cart_db_password"), "").unwrap();

        let created = init_secrets(dir.path()).unwrap();
        assert_eq!(created.len(), SECRET_FILES.len() - 1, "{created:?}");
        assert!(!created.contains(&"webhook_secret"));
        let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
        assert_eq!(read("webhook_secret").trim(), own);
        let before: Vec<String> = SECRET_FILES.iter().map(|f| read(f.name)).collect();
        // The operator's file keeps the mode they gave it.
        for f in SECRET_FILES.iter().filter(|f| f.name != "webhook_secret") {
            assert_eq!(
                mode(&dir.path().join(f.name)).unwrap(),
                f.mode,
                "{}",
                f.name
            );
        }
        for f in SECRET_FILES {
            assert!(read(f.name).trim().len() >= 32, "{}", f.name);
        }
        assert_eq!(mode(&dir.path().join("postgres_password")).unwrap(), 0o644);
        assert_eq!(mode(&dir.path().join("token_secret")).unwrap(), 0o600);

        // The second run (every `docker-compose up`) changes nothing.
        assert!(init_secrets(dir.path()).unwrap().is_empty());
        let after: Vec<String> = SECRET_FILES.iter().map(|f| read(f.name)).collect();
        assert_eq!(before, after);
        // All different.
        let distinct: std::collections::BTreeSet<&String> = after.iter().collect();
        assert_eq!(distinct.len(), SECRET_FILES.len());
    }

    #[test]
    fn a_missing_directory_is_an_error_not_a_new_directory() {
        let dir = tempfile::tempdir().unwrap();
        let absent = dir.path().join("no-volume-here");
        let err = init_secrets(&absent).unwrap_err();
        assert!(err.to_string().contains("token_secret"), "{err}");
        assert!(!absent.exists());
    }
}

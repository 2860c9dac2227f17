//! One database setting, two engines: a SQLite file by default (created with
//! its directory, both private to the shop's user, WAL mode) or PostgreSQL by URL, through sqlx's `Any`
//! driver so each service has one code path. Migrations run at start.
//!
//! SQL written for both engines keeps to their common ground: `$1`
//! placeholders, TEXT / BIGINT / INTEGER / BOOLEAN columns, times as epoch
//! milliseconds, `ON CONFLICT` upserts, and no aggregate without a CAST
//! (PostgreSQL's SUM is NUMERIC, which `Any` cannot decode).

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyQueryResult};
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::config::{Config, ConfigError, Setting};

/// The settings every service with a database has.
pub const SETTINGS: &[Setting] = &[
    Setting::new(
        "database_url",
        None,
        "sqlite://PATH or postgres://USER@HOST/DB; default: a SQLite file in the data directory",
    ),
    Setting::new(
        "database_password",
        None,
        "Password for a postgres:// database_url that names none (as DATABASE_PASSWORD_FILE: from a file)",
    )
    .secret(),
    Setting::new(
        "database_max_connections",
        Some("10"),
        "Size of the database connection pool",
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// How long a writer waits for its turn on SQLite (see [`Db::write_turn`]).
const WRITE_TURN_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection pool and the engine behind it.
#[derive(Debug, Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
    /// SQLite's writers take turns here before `BEGIN IMMEDIATE` (see
    /// [`Db::begin_write`]); unused on PostgreSQL, which locks rows.
    write_turn: Arc<Mutex<()>>,
}

/// A connection or transaction that holds the process's write turn on
/// SQLite (see [`Db::begin_write`]) until it is dropped or ended; used as
/// the connection it wraps (`&mut *tx`).
pub struct Turn<C> {
    inner: C,
    _turn: Option<OwnedMutexGuard<()>>,
}

/// A transaction from [`Db::begin_write`]: end it with
/// [`commit`](Turn::commit) or [`rollback`](Turn::rollback) (dropping it
/// rolls back).
pub type WriteTransaction = Turn<Transaction<'static, Any>>;

/// One write outside a transaction, from [`Db::writer`]
/// (`&mut *db.writer().await?` for one statement).
pub type Writer = Turn<PoolConnection<Any>>;

impl WriteTransaction {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.inner.commit().await
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.inner.rollback().await
    }
}

impl<C: DerefMut<Target = AnyConnection>> Deref for Turn<C> {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.inner
    }
}

impl<C: DerefMut<Target = AnyConnection>> DerefMut for Turn<C> {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.inner
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("unsupported database URL `{0}`: expected sqlite://… or postgres://…")]
    UnsupportedUrl(String),
    #[error("cannot create the database directory {path}: {source}")]
    Directory {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot make the database file {path} private: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// The database URL from configuration, or a SQLite file named after the
/// service in the data directory. A separate `database_password` goes into
/// a PostgreSQL URL that has none, so the URL can sit in plain sight (a
/// compose file) while the password comes from a secret file.
pub fn url_from_config(
    config: &Config,
    data_dir: &Path,
    service: &str,
) -> Result<String, ConfigError> {
    let password = config.raw("database_password");
    if let Some(p) = password {
        crate::base_config::refuse_placeholder(config, "database_password", p)?;
    }
    match config.raw("database_url") {
        Some(url) => {
            let backend = backend_of(url).ok_or_else(|| {
                config.invalid("database_url", "expected sqlite://… or postgres://…")
            })?;
            let mut parsed =
                url::Url::parse(url).map_err(|e| config.invalid("database_url", e.to_string()))?;
            if let Some(inline) = parsed.password() {
                crate::base_config::refuse_placeholder(config, "database_url", inline)?;
            }
            let Some(password) = password else {
                return Ok(url.to_string());
            };
            if backend != Backend::Postgres {
                return Err(config.invalid(
                    "database_password",
                    "is only for a postgres:// database_url",
                ));
            }
            if parsed.password().is_some() {
                return Err(config.invalid(
                    "database_password",
                    "database_url has a password already; give it in one place",
                ));
            }
            parsed.set_password(Some(password)).map_err(|()| {
                config.invalid("database_url", "has no user name for database_password")
            })?;
            Ok(parsed.to_string())
        }
        None if password.is_some() => Err(config.invalid(
            "database_password",
            "is only for a postgres:// database_url, and none is set",
        )),
        None => Ok(format!(
            "sqlite://{}",
            data_dir.join(format!("{service}.db")).display()
        )),
    }
}

pub fn backend_of(url: &str) -> Option<Backend> {
    if url.starts_with("sqlite:") {
        Some(Backend::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Some(Backend::Postgres)
    } else {
        None
    }
}

/// Where a SQLite URL keeps its file; `None` for in-memory or other engines.
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

fn install_drivers() {
    static ONCE: Once = Once::new();
    ONCE.call_once(sqlx::any::install_default_drivers);
}

impl Db {
    /// Connects (creating a SQLite file and its directory if missing) and
    /// runs `migrations` plus the shared outbox migrations.
    pub async fn connect(
        url: &str,
        max_connections: u32,
        migrations: Migrator,
    ) -> Result<Db, DbError> {
        install_drivers();
        let backend = backend_of(url).ok_or_else(|| DbError::UnsupportedUrl(redact(url)))?;
        let mut connect_url = url.to_string();
        if backend == Backend::Sqlite {
            if let Some(path) = sqlite_path(url) {
                create_private_sqlite(&path)?;
            }
            if !url.contains("mode=") {
                connect_url.push(if url.contains('?') { '&' } else { '?' });
                connect_url.push_str("mode=rwc");
            }
        }
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(5))
            // A ping before every checkout doubles the round trips of each
            // query; a dead connection fails its query and is replaced anyway.
            .test_before_acquire(false)
            .connect(&connect_url)
            .await
            .map_err(DbError::Connect)?;
        if backend == Backend::Sqlite {
            // WAL lets readers run beside the one writer; it is a property
            // of the file, so setting it once per start is enough.
            sqlx::query("PRAGMA journal_mode=WAL")
                .execute(&pool)
                .await
                .map_err(DbError::Connect)?;
        }
        sample_pool(&pool, max_connections.max(1));
        let db = Db {
            pool,
            backend,
            write_turn: Arc::default(),
        };
        db.migrate(crate::outbox::migrations()).await?;
        db.migrate(migrations).await?;
        Ok(db)
    }

    /// Runs one set of migrations. Each crate's set ignores the others'
    /// versions, so a service's migrations and common's share one table.
    async fn migrate(&self, mut migrations: Migrator) -> Result<(), DbError> {
        migrations.set_ignore_missing(true);
        migrations.run(&self.pool).await?;
        Ok(())
    }

    /// Begins a transaction that will write. On SQLite it takes the write
    /// lock up front (BEGIN IMMEDIATE), so a read-then-write transaction
    /// waits its turn instead of failing when another writer commits first.
    ///
    /// SQLite's own wait for that lock is a busy handler that sleeps 1, 2,
    /// 5 … up to 100 ms between tries, however soon the lock is free: at
    /// 1,000 req/s `bench/shop.sh` saw cart's writes queue behind it (p99
    /// 108 ms for an add, 254 ms for a checkout). So the process's own
    /// writers first queue on an async mutex, in order and woken the moment
    /// the previous one ends; the busy handler is left for writers in other
    /// processes (a second replica, a migration, the `seed` command).
    pub async fn begin_write(&self) -> Result<WriteTransaction, sqlx::Error> {
        let turn = self.write_turn().await?;
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(Turn {
            inner: tx,
            _turn: turn,
        })
    }

    /// A connection for one write outside a transaction (an upsert, a
    /// status change), taking the same turn as [`Db::begin_write`] on
    /// SQLite so that it neither waits in SQLite's busy handler nor makes a
    /// transaction wait there.
    pub async fn writer(&self) -> Result<Writer, sqlx::Error> {
        let turn = self.write_turn().await?;
        Ok(Turn {
            inner: self.pool.acquire().await?,
            _turn: turn,
        })
    }

    /// The process's turn to write, on SQLite; nothing on PostgreSQL. It
    /// waits at most as long as SQLite's busy handler would have (sqlx's
    /// default 5 s), then fails like a pool that has no connection: a stuck
    /// writer gives the callers a 503, never a hang.
    async fn write_turn(&self) -> Result<Option<OwnedMutexGuard<()>>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => tokio::time::timeout(
                WRITE_TURN_TIMEOUT,
                Arc::clone(&self.write_turn).lock_owned(),
            )
            .await
            .map(Some)
            .map_err(|_| sqlx::Error::PoolTimedOut),
            Backend::Postgres => Ok(None),
        }
    }

    /// The readiness check: one round trip to the database.
    pub async fn ping(&self) -> Result<(), String> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_: AnyQueryResult| ())
            .map_err(|e| format!("database: {e}"))
    }
}

/// The pool's gauges, read at each scrape: connections in use (a query or
/// transaction holds them) and idle, beside the most it opens; in use near
/// the maximum means requests queue for a connection.
fn sample_pool(pool: &AnyPool, max: u32) {
    let pool = pool.clone();
    crate::metrics::sample_on_render("db_pool", move || {
        let (size, idle) = (pool.size(), pool.num_idle() as u32);
        metrics::gauge!("db_pool_connections", "state" => "in_use")
            .set(size.saturating_sub(idle) as f64);
        metrics::gauge!("db_pool_connections", "state" => "idle").set(idle as f64);
        metrics::gauge!("db_pool_max_connections").set(max as f64);
    });
}

/// Creates a SQLite file's directory (0700) and the file itself (0600)
/// before SQLite would create them world-readable (0644): it holds password
/// hashes, emails and orders. The `-wal` and `-shm` files SQLite adds get
/// the database file's mode; ones left by an older version are tightened.
fn create_private_sqlite(path: &Path) -> Result<(), DbError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::private::create_dir(dir).map_err(|source| DbError::Directory {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let file_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DbError::File { path, source }
    };
    crate::private::create_file(path).map_err(file_err(path))?;
    for suffix in ["-wal", "-shm"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        let side = PathBuf::from(side);
        crate::private::restrict(&side).map_err(file_err(&side))?;
    }
    Ok(())
}

/// True when the error is a unique-constraint violation.
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// A URL with its password replaced, for messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// A fresh, empty database for one test: a SQLite file in a temporary
/// directory, or — when `TEST_DATABASE_URL` is set — a new PostgreSQL
/// database created on that server and dropped afterwards.
#[cfg(any(test, feature = "test-support"))]
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

#[cfg(any(test, feature = "test-support"))]
impl TestDb {
    pub async fn new() -> TestDb {
        install_drivers();
        match std::env::var("TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())
        {
            Some(admin_url) => {
                let name = format!("test_{}", uuid::Uuid::new_v4().simple());
                let admin = AnyPoolOptions::new()
                    .max_connections(1)
                    .connect(&admin_url)
                    .await
                    .expect("TEST_DATABASE_URL must point at a reachable PostgreSQL server");
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&admin)
                    .await
                    .expect("creating a test database");
                admin.close().await;
                let mut url = url::Url::parse(&admin_url).expect("TEST_DATABASE_URL is a URL");
                url.set_path(&name);
                TestDb {
                    url: url.to_string(),
                    _dir: None,
                    pg: Some((admin_url, name)),
                }
            }
            None => {
                let dir = tempfile::tempdir().expect("creating a temporary directory");
                let url = format!("sqlite://{}", dir.path().join("test.db").display());
                TestDb {
                    url,
                    _dir: Some(dir),
                    pg: None,
                }
            }
        }
    }
}

#[cfg(any(test, feature = "test-support"))]
impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin_url, name)) = self.pg.take() else {
            return;
        };
        // Drop runs outside async context guarantees, so a private runtime
        // on its own thread does the cleanup.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(admin) = AnyPoolOptions::new()
                    .max_connections(1)
                    .connect(&admin_url)
                    .await
                {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&admin)
                        .await;
                    admin.close().await;
                }
            });
        })
        .join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url_with(vars: &[(&str, &str)]) -> Result<String, ConfigError> {
        let settings = crate::base_config::base_settings("127.0.0.1:1");
        let env = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let config = Config::from_layers("X", &settings, None, &[], &env, &[])?;
        url_from_config(&config, Path::new("data"), "x")
    }

    #[test]
    fn a_separate_password_goes_into_a_postgres_url_that_has_none() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "s3cret/with@odd:chars\n").unwrap();
        let url = url_with(&[
            ("X_DATABASE_URL", "postgres://users@postgres:5432/users"),
            ("X_DATABASE_PASSWORD_FILE", file.path().to_str().unwrap()),
        ])
        .unwrap();
        assert_eq!(
            url,
            "postgres://users:s3cret%2Fwith%40odd%3Achars@postgres:5432/users"
        );
        let parsed = url::Url::parse(&url).unwrap();
        assert_eq!(parsed.username(), "users");
        assert_eq!(parsed.host_str(), Some("postgres"));
        // Without one, the URL is as given.
        let url = url_with(&[("X_DATABASE_URL", "postgres://u:p@h/d")]).unwrap();
        assert_eq!(url, "postgres://u:p@h/d");
    }

    #[test]
    fn a_password_in_two_places_or_for_sqlite_is_refused() {
        let err = url_with(&[
            ("X_DATABASE_URL", "postgres://u:p@h/d"),
            ("X_DATABASE_PASSWORD", "other"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("one place"), "{err}");
        assert!(!err.contains("other"), "not echoed: {err}");
        let err = url_with(&[("X_DATABASE_PASSWORD", "pw")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("postgres://"), "{err}");
        let err = url_with(&[
            ("X_DATABASE_URL", "sqlite://data/x.db"),
            ("X_DATABASE_PASSWORD", "pw"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("database_password"), "{err}");
    }

    #[test]
    fn placeholder_database_passwords_are_refused() {
        for vars in [
            &[
                ("X_DATABASE_URL", "postgres://u@h/d"),
                ("X_DATABASE_PASSWORD", "replace-me-users-db-password"),
            ][..],
            &[(
                "X_DATABASE_URL",
                "postgres://u:replace-me-users-db-password@h/d",
            )][..],
        ] {
            let err = url_with(vars).unwrap_err().to_string();
            assert!(err.contains("placeholder"), "{err}");
            assert!(!err.contains("replace-me-users"), "not echoed: {err}");
        }
    }

    #[test]
    fn sqlite_paths() {
        assert_eq!(
            sqlite_path("sqlite://data/users.db"),
            Some(PathBuf::from("data/users.db"))
        );
        assert_eq!(
            sqlite_path("sqlite:///tmp/x.db?mode=rwc"),
            Some(PathBuf::from("/tmp/x.db"))
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://x"), None);
    }

    #[tokio::test]
    async fn a_new_sqlite_database_is_private() {
        use crate::private::mode;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let file = dir.join("x.db");
        let url = format!("sqlite://{}", file.display());
        let db = Db::connect(&url, 2, crate::outbox::migrations())
            .await
            .unwrap();
        // A write while the pool is open: the -wal and -shm files exist.
        sqlx::query("CREATE TABLE t (x INTEGER)")
            .execute(&db.pool)
            .await
            .unwrap();
        assert_eq!(mode(&dir).unwrap(), 0o700);
        for name in ["x.db", "x.db-wal", "x.db-shm"] {
            assert_eq!(mode(&dir.join(name)).unwrap(), 0o600, "{name}");
        }
        db.pool.close().await;
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("sqlite://data/x.db"), "sqlite://data/x.db");
    }
}

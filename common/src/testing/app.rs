//! [`TestApp`]: one service of a test, started in its [`Host`] exactly as
//! its binary starts it, on a loopback port, with a fresh database (SQLite
//! in a temporary directory, or a new PostgreSQL database when
//! `TEST_DATABASE_URL` is set) and data directory. Each service's tests add
//! their request helpers on top; the start, stop, restart and replicas are
//! this one piece.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpListener;

use super::{loopback, rebind, spawn_on, Running};
use crate::auth::TokenKeys;
use crate::db::TestDb;
use crate::host::{Host, Service, Settings};

/// Settings for a test: the given database and data directory, the fixed
/// test secrets every service shares, neighbours nowhere, quick timings.
pub trait TestConfig {
    fn for_tests(database_url: &str, data_dir: &Path) -> Self;
}

/// How a test authenticates a request.
#[derive(Clone, Copy, Debug)]
pub enum Cred<'a> {
    /// The internal key other services present.
    Internal,
    None,
    Bearer(&'a str),
}

/// `rb` with `Authorization: Bearer token`, or as it is without a token.
pub fn with_token(rb: reqwest::RequestBuilder, token: Option<&str>) -> reqwest::RequestBuilder {
    match token {
        Some(token) => rb.bearer_auth(token),
        None => rb,
    }
}

/// A service of type `S` serving in this process.
pub struct TestApp<S: Service> {
    pub client: reqwest::Client,
    pub config: S::Config,
    /// The state the service's handlers see.
    pub state: Arc<S>,
    server: Option<Running>,
    addr: SocketAddr,
    // Shared with replicas; dropping the last removes the data.
    db: Arc<TestDb>,
    dir: Arc<tempfile::TempDir>,
}

impl<S: Service> TestApp<S>
where
    S::Config: TestConfig,
{
    /// With the test settings as they are.
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// With the test settings changed by `tweak`.
    pub async fn spawn_with(tweak: impl FnOnce(&mut S::Config)) -> Self {
        Self::spawn_on(TestDb::new().await, loopback().await, tweak).await
    }

    /// On database `db` and a listener bound before (whose address a
    /// neighbour started first was given).
    pub async fn spawn_on(
        db: TestDb,
        listener: TcpListener,
        tweak: impl FnOnce(&mut S::Config),
    ) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut config = S::Config::for_tests(&db.url, dir.path());
        tweak(&mut config);
        Self::start(config, Arc::new(db), Arc::new(dir), listener).await
    }
}

impl<S: Service> TestApp<S> {
    async fn start(
        config: S::Config,
        db: Arc<TestDb>,
        dir: Arc<tempfile::TempDir>,
        listener: TcpListener,
    ) -> Self {
        let (server, state) = serve(config.clone(), listener).await;
        TestApp {
            // Loopback only: never let a proxy from the environment intervene.
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("a reqwest client"),
            config,
            state,
            addr: server.addr,
            server: Some(server),
            db,
            dir,
        }
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Verifies (and issues) tokens as the service does.
    pub fn keys(&self) -> TokenKeys {
        TokenKeys::new(&self.config.base().token_secret, 3600)
    }

    /// `rb` with the credentials `cred`.
    pub fn authorize(
        &self,
        rb: reqwest::RequestBuilder,
        cred: Cred<'_>,
    ) -> reqwest::RequestBuilder {
        match cred {
            Cred::Internal => rb.bearer_auth(&self.config.base().internal_key),
            Cred::None => rb,
            Cred::Bearer(token) => rb.bearer_auth(token),
        }
    }

    /// A separate pool on the service's database, to inspect rows.
    pub async fn pool(&self) -> sqlx::AnyPool {
        sqlx::any::install_default_drivers();
        sqlx::AnyPool::connect(&self.config.base().database_url)
            .await
            .expect("connecting to the test database")
    }

    /// Stops gracefully, as SIGTERM does: serving ends, background jobs
    /// finish their step, the pool closes. Database and settings stay.
    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
    }

    /// Starts again after [`TestApp::stop`] on a new port, as a new
    /// process on the same database would.
    pub async fn start_again(&mut self) {
        self.serve_on(loopback().await).await;
    }

    /// Starts again after [`TestApp::stop`] on its old port, where its
    /// neighbours still send.
    pub async fn start_again_on_same_port(&mut self) {
        self.serve_on(rebind(self.addr).await).await;
    }

    /// Stops, changes the settings with `tweak`, and starts again.
    pub async fn restart_with(mut self, tweak: impl FnOnce(&mut S::Config)) -> Self {
        self.stop().await;
        tweak(&mut self.config);
        self.start_again().await;
        self
    }

    pub async fn restart(self) -> Self {
        self.restart_with(|_| {}).await
    }

    /// A second service on the same database and data directory, as
    /// another replica behind the balancer would be.
    pub async fn replica(&self, tweak: impl FnOnce(&mut S::Config)) -> Self {
        let mut config = self.config.clone();
        tweak(&mut config);
        Self::start(config, self.db.clone(), self.dir.clone(), loopback().await).await
    }

    async fn serve_on(&mut self, listener: TcpListener) {
        self.stop().await;
        let (server, state) = serve(self.config.clone(), listener).await;
        self.addr = server.addr;
        self.server = Some(server);
        self.state = state;
    }
}

/// Starts `S` and serves it on `listener` in a task.
async fn serve<S: Service>(config: S::Config, listener: TcpListener) -> (Running, Arc<S>) {
    let host = Host::<S>::start(config)
        .await
        .unwrap_or_else(|e| panic!("{} starts: {e}", S::NAME));
    let state = host.state.clone();
    let server = spawn_on(listener, move |listener, shutdown| {
        host.serve(listener, shutdown)
    });
    (server, state)
}

/// Declares a service's test harness `$name`: common's [`TestApp`] of
/// `$state` wrapped in a type of the test crate, so the service's tests can
/// add their request helpers to it (an inherent impl needs a local type),
/// with the consuming methods returning the wrapper, plus the free
/// `spawn_app()` and `spawn_with(tweak)` the tests start it with.
#[macro_export]
macro_rules! test_app {
    ($name:ident, $state:ty) => {
        /// The service of one test (see `common::testing::TestApp`).
        pub struct $name(pub $crate::testing::TestApp<$state>);

        impl ::std::ops::Deref for $name {
            type Target = $crate::testing::TestApp<$state>;
            fn deref(&self) -> &Self::Target {
                &self.0
            }
        }

        impl ::std::ops::DerefMut for $name {
            fn deref_mut(&mut self) -> &mut Self::Target {
                &mut self.0
            }
        }

        #[allow(dead_code)]
        impl $name {
            /// Stops gracefully, changes the settings, starts again on the
            /// same database.
            pub async fn restart_with(
                self,
                tweak: impl FnOnce(&mut <$state as $crate::host::Service>::Config),
            ) -> $name {
                $name(self.0.restart_with(tweak).await)
            }

            pub async fn restart(self) -> $name {
                $name(self.0.restart().await)
            }

            /// Another replica on the same database.
            pub async fn replica(
                &self,
                tweak: impl FnOnce(&mut <$state as $crate::host::Service>::Config),
            ) -> $name {
                $name(self.0.replica(tweak).await)
            }

            /// Stops gracefully, for good.
            pub async fn stop(mut self) {
                self.0.stop().await;
            }
        }

        /// Starts the service with the test settings.
        #[allow(dead_code)]
        pub async fn spawn_app() -> $name {
            $name($crate::testing::TestApp::spawn().await)
        }

        /// Starts the service with the test settings changed by `tweak`.
        #[allow(dead_code)]
        pub async fn spawn_with(
            tweak: impl FnOnce(&mut <$state as $crate::host::Service>::Config),
        ) -> $name {
            $name($crate::testing::TestApp::spawn_with(tweak).await)
        }
    };
}

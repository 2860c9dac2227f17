//! Helpers for integration tests: run a service on a loopback port chosen
//! by the kernel and stop it gracefully, as SIGTERM would.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A server running in this process.
pub struct Running {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<()>,
}

impl Running {
    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Triggers graceful shutdown and waits until serving has ended.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.handle).await;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Binds 127.0.0.1:0 and runs `serve(listener, shutdown)` in a task.
pub async fn spawn<F, Fut>(serve: F) -> Running
where
    F: FnOnce(TcpListener, Shutdown) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding a loopback port");
    let addr = listener
        .local_addr()
        .expect("a bound socket has an address");
    let (tx, rx) = oneshot::channel::<()>();
    let shutdown: Shutdown = Box::pin(async move {
        let _ = rx.await;
    });
    let handle = tokio::spawn(serve(listener, shutdown));
    Running {
        addr,
        stop: Some(tx),
        handle,
    }
}

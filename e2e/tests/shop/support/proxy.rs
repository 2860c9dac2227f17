//! A fault-injecting TCP proxy, put between two processes of the shop to
//! make the network misbehave on demand (nothing like it is packaged for
//! these machines). It forwards bytes both ways; its [`Mode`] can change at
//! any time and applies to every connection, new and already open — the
//! balancer and the services keep pooled keep-alive connections, so a fault
//! that touched only new connections would miss most requests.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward everything.
    Pass,
    /// Hold each chunk going to the upstream this long first (latency).
    Delay(Duration),
    /// On the next bytes in either direction, reset both connections (RST,
    /// as a crashed peer or a middlebox does). New connections are reset
    /// after their first bytes, so the request counts as sent.
    Reset,
    /// Swallow everything and answer nothing, keeping connections open (a
    /// black hole: a dead route, a frozen peer behind a live kernel).
    Blackhole,
}

pub struct FaultProxy {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a loopback port of its own and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the proxy");
        let addr = listener
            .local_addr()
            .expect("a bound socket has an address");
        let (mode, watcher) = watch::channel(Mode::Pass);
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        let task = tokio::spawn(async move {
            // Owned by this task: aborting it (on drop) drops the set,
            // which aborts every connection.
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((client, _)) = accepted else { continue };
                        counter.fetch_add(1, Ordering::Relaxed);
                        conns.spawn(connection(client, upstream, watcher.clone()));
                    }
                    // Reap finished connections so the set does not grow.
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        });
        FaultProxy {
            addr,
            mode,
            accepted,
            task,
        }
    }

    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Closes a socket with RST instead of FIN.
fn reset(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

async fn connection(mut client: TcpStream, upstream: SocketAddr, mode: watch::Receiver<Mode>) {
    let _ = client.set_nodelay(true);
    let mut up_buf = vec![0u8; 16 * 1024];
    let mut down_buf = vec![0u8; 16 * 1024];
    let current = || *mode.borrow();
    match current() {
        Mode::Reset => {
            // Let the request arrive, then reset: the peer sent it.
            let _ = tokio::time::timeout(Duration::from_secs(1), client.read(&mut up_buf)).await;
            reset(&client);
            return;
        }
        Mode::Blackhole => {
            // Swallow until the peer gives up, or the mode changes to one
            // that closes (a black hole that heals is still a black hole
            // for this connection: nothing was ever forwarded).
            while let Ok(n) = client.read(&mut up_buf).await {
                if n == 0 || current() == Mode::Reset {
                    break;
                }
            }
            if current() == Mode::Reset {
                reset(&client);
            }
            return;
        }
        Mode::Pass | Mode::Delay(_) => {}
    }
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        // The upstream is down: so is the route through us.
        reset(&client);
        return;
    };
    let _ = server.set_nodelay(true);
    loop {
        tokio::select! {
            read = client.read(&mut up_buf) => {
                let n = match read { Ok(0) | Err(_) => break, Ok(n) => n };
                match current() {
                    Mode::Pass => {}
                    Mode::Delay(d) => tokio::time::sleep(d).await,
                    Mode::Reset => {
                        reset(&client);
                        reset(&server);
                        return;
                    }
                    Mode::Blackhole => continue,
                }
                if server.write_all(&up_buf[..n]).await.is_err() {
                    break;
                }
            }
            read = server.read(&mut down_buf) => {
                let n = match read { Ok(0) | Err(_) => break, Ok(n) => n };
                match current() {
                    Mode::Pass | Mode::Delay(_) => {}
                    Mode::Reset => {
                        reset(&client);
                        reset(&server);
                        return;
                    }
                    Mode::Blackhole => continue,
                }
                if client.write_all(&down_buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    // One side closed: close the other (FIN), as a transparent hop would.
    let _ = client.shutdown().await;
    let _ = server.shutdown().await;
}

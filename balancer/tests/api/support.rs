//! Test upstreams and the balancer under test, all on loopback ports.
//!
//! [`Upstream`] is a small hyper server (common's accept loop) that echoes
//! what it received as JSON, streams or swallows large bodies with a gate
//! the test controls, hangs, answers 401 before reading the body (`/early`),
//! or reports unhealthy on demand. [`Resetter`]
//! is a raw TCP server that reads a request and closes the connection
//! without answering, as a crashing replica would.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use balancer::config::BalancerConfig;
use balancer::routes::Table;
use balancer::Balancer;
use bytes::Bytes;
use common::testing::Running;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

pub const MIB: usize = 1 << 20;

type BoxBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// What an upstream saw and what it should do.
pub struct UpstreamState {
    pub name: String,
    pub healthy: AtomicBool,
    /// Requests seen, by method and path (health checks excluded).
    pub seen: Mutex<Vec<(String, String)>>,
    /// Upload: notified once the first MiB has arrived.
    pub got_first_mib: Notify,
    /// Download: waited on after the first MiB was sent.
    pub gate: Notify,
    /// Requests whose body broke off (the exchange was aborted) instead of
    /// arriving whole.
    pub broken_bodies: AtomicUsize,
}

/// Counts a body as broken unless it was read to its end: an aborted
/// exchange either fails the read or drops the handler mid-read (common's
/// server drops a request whose client hung up).
struct BodyWatch {
    state: Arc<UpstreamState>,
    whole: bool,
}

impl Drop for BodyWatch {
    fn drop(&mut self) {
        if !self.whole {
            self.state.broken_bodies.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl UpstreamState {
    pub fn count(&self, method: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, _)| m == method)
            .count()
    }

    pub fn total(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

pub struct Upstream {
    pub state: Arc<UpstreamState>,
    pub server: Running,
}

impl Upstream {
    pub async fn spawn(name: &str) -> Upstream {
        let state = Arc::new(UpstreamState {
            name: name.to_string(),
            healthy: AtomicBool::new(true),
            seen: Mutex::new(Vec::new()),
            got_first_mib: Notify::new(),
            gate: Notify::new(),
            broken_bodies: AtomicUsize::new(0),
        });
        let s = state.clone();
        let server = common::testing::spawn(move |listener, shutdown| async move {
            common::server::serve(
                listener,
                common::server::ServerOptions {
                    shutdown_timeout: Duration::from_millis(200),
                    ..Default::default()
                },
                move |req, _peer| {
                    let s = s.clone();
                    async move { handle(s, req).await }
                },
                shutdown,
            )
            .await
        })
        .await;
        Upstream { state, server }
    }

    pub fn url(&self) -> String {
        self.server.url("")
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }
}

fn full(status: StatusCode, body: Value) -> Response<BoxBody> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())).boxed());
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    resp
}

async fn handle(s: Arc<UpstreamState>, req: Request<Incoming>) -> Response<BoxBody> {
    let path = req.uri().path().to_string();
    if path == "/healthz" {
        return if s.healthy.load(Ordering::SeqCst) {
            full(StatusCode::OK, json!({"status": "ok"}))
        } else {
            full(StatusCode::SERVICE_UNAVAILABLE, json!({"status": "down"}))
        };
    }
    s.seen
        .lock()
        .unwrap()
        .push((req.method().to_string(), path.clone()));
    if path.starts_with("/slow") || path.starts_with("/hang") {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    if path.starts_with("/early") {
        return early_refusal(req);
    }
    if path == "/download" {
        let bytes: usize = req
            .uri()
            .query()
            .and_then(|q| q.strip_prefix("bytes="))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        return download(s, bytes);
    }
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in req.headers() {
        headers
            .entry(k.to_string())
            .or_default()
            .push(v.to_str().unwrap_or("?").to_string());
    }
    let method = req.method().to_string();
    let query = req.uri().query().map(str::to_string);
    let mut body = req.into_body();
    let mut len = 0usize;
    let mut announced = false;
    let mut watch = BodyWatch {
        state: s.clone(),
        whole: false,
    };
    let mut whole = true;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            whole = false;
            break;
        };
        if let Some(d) = frame.data_ref() {
            len += d.len();
            if !announced && len >= MIB {
                announced = true;
                s.got_first_mib.notify_one();
            }
        }
    }
    watch.whole = whole;
    drop(watch);
    let mut resp = full(
        StatusCode::OK,
        json!({
            "upstream": s.name,
            "method": method,
            "path": path,
            "query": query,
            "headers": headers,
            "body_len": len,
        }),
    );
    // Hop-by-hop headers of the response must not reach the client either.
    resp.headers_mut()
        .insert("connection", "x-up-secret".parse().unwrap());
    resp.headers_mut()
        .insert("x-up-secret", "1".parse().unwrap());
    resp.headers_mut()
        .insert("x-upstream", s.name.parse().unwrap());
    resp
}

/// A 401 on the headers alone, as an auth check gives: the request body is
/// dropped unread, so hyper closes this connection once the answer is out.
/// The answer's body comes a moment after its head, so the balancer has
/// relayed the head while the upstream connection (and with it the client's
/// unread body) still stands — the order in which the balancer used to
/// drop the client connection without announcing it.
fn early_refusal(req: Request<Incoming>) -> Response<BoxBody> {
    drop(req);
    let body = futures::stream::once(async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let problem = json!({"status": 401, "code": "unauthorized"});
        Ok::<_, Infallible>(Frame::data(Bytes::from(problem.to_string())))
    });
    let mut resp = Response::new(BodyExt::boxed(StreamBody::new(body)));
    *resp.status_mut() = StatusCode::UNAUTHORIZED;
    resp.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    resp
}

/// `bytes` of zeros, produced 64 KiB at a time; after the first MiB the
/// stream waits for the test to open the gate.
fn download(s: Arc<UpstreamState>, bytes: usize) -> Response<BoxBody> {
    let chunk = Bytes::from(vec![0u8; 64 * 1024]);
    let stream = futures::stream::unfold(
        (0usize, s.clone(), chunk),
        move |(sent, s, chunk)| async move {
            if sent >= bytes {
                return None;
            }
            if sent == MIB {
                s.gate.notified().await;
            }
            let n = chunk.len().min(bytes - sent);
            let frame = Frame::data(chunk.slice(..n));
            Some((Ok::<_, Infallible>(frame), (sent + n, s, chunk)))
        },
    );
    let mut resp = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    resp.headers_mut()
        .insert("x-upstream", s.name.parse().unwrap());
    resp
}

/// A replica that accepts, reads one request head and closes without an
/// answer, counting what it swallowed; `/healthz` it answers, so health
/// checks keep it in the pool.
pub struct Resetter {
    pub addr: SocketAddr,
    pub swallowed: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Resetter {
    pub async fn spawn() -> Resetter {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let swallowed = Arc::new(Mutex::new(Vec::new()));
        let seen = swallowed.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    continue;
                };
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf).to_string();
                    let line = head.lines().next().unwrap_or("").to_string();
                    if line.contains("/healthz") {
                        let _ = sock
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                            .await;
                        return;
                    }
                    seen.lock().unwrap().push(line);
                    // Closing after the request arrived: the exchange breaks
                    // mid-way, as when a replica crashes.
                    drop(sock);
                });
            }
        });
        Resetter {
            addr,
            swallowed,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn count(&self, method: &str) -> usize {
        self.swallowed
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with(method))
            .count()
    }
}

impl Drop for Resetter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A loopback address where nothing listens.
pub async fn closed_port() -> String {
    let [addr] = closed_ports().await;
    addr
}

/// `N` different loopback addresses where nothing listens (all bound at
/// once before being closed, so no two are the same port).
pub async fn closed_ports<const N: usize>() -> [String; N] {
    let mut listeners = Vec::with_capacity(N);
    for _ in 0..N {
        listeners.push(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    std::array::from_fn(|i| format!("http://{}", listeners[i].local_addr().unwrap()))
}

pub struct Shop {
    pub balancer: Running,
    /// The admin listener: `/metrics` and `/readyz` with the pools.
    pub admin: Running,
    pub http: reqwest::Client,
}

impl Shop {
    pub fn url(&self, path: &str) -> String {
        self.balancer.url(path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        self.admin.url(path)
    }

    /// A GET on the admin listener.
    pub async fn admin_get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.admin_url(path)).send().await.unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: &str) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    /// The detailed readiness, from the admin listener.
    pub async fn readyz(&self) -> Value {
        self.admin_get("/readyz").await.json().await.unwrap()
    }

    /// Polls `/readyz` until `replica` of `pool` has the wanted health.
    pub async fn wait_health(&self, pool: &str, replica: SocketAddr, healthy: bool) {
        for _ in 0..100 {
            let r = self.readyz().await;
            let found = r["pools"][pool]["replicas"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["addr"] == replica.to_string() && x["healthy"] == healthy);
            if found {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("replica {replica} of {pool} never became healthy={healthy}");
    }
}

/// The default table with every pool pointed at its own echo upstream.
pub async fn default_shop() -> (Shop, Vec<Upstream>) {
    let names = ["users", "products", "cart", "payments-mock", "stats"];
    let mut ups = Vec::new();
    for n in names {
        ups.push(Upstream::spawn(n).await);
    }
    let mut text = balancer::routes::DEFAULT_TABLE.to_string();
    for (n, u) in names.iter().zip(&ups) {
        // Point each default pool at its test upstream.
        let default = match *n {
            "users" => "8001",
            "products" => "8002",
            "cart" => "8003",
            "payments-mock" => "8006",
            _ => "8005",
        };
        text = text.replace(&format!("http://127.0.0.1:{default}"), &u.url());
    }
    let shop = spawn_balancer(&text, |_| {}).await;
    (shop, ups)
}

/// Starts a balancer with `table` and test settings changed by `tweak`.
pub async fn spawn_balancer(table: &str, tweak: impl FnOnce(&mut BalancerConfig)) -> Shop {
    let table = Table::parse(table).expect("test table is valid");
    let mut config = BalancerConfig::for_tests(table);
    tweak(&mut config);
    let b = Balancer::start(config).await;
    let (shared, options) = (b.shared.clone(), b.shared.config.server.clone());
    let admin =
        common::testing::spawn(move |l, s| balancer::admin::serve_admin(shared, l, options, s))
            .await;
    let balancer = common::testing::spawn(move |l, s| b.serve(l, s)).await;
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    Shop {
        balancer,
        admin,
        http,
    }
}

/// A one-pool table routing everything to `urls`, plus `extra` rules first.
pub fn table(extra: &str, urls: &[String]) -> String {
    let list = urls
        .iter()
        .map(|u| format!("{u:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("{extra}\n[[route]]\nname = \"all\"\nprefix = \"/\"\npool = \"main\"\n\n[pools.main]\nupstreams = [{list}]\n")
}

pub async fn problem(resp: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(resp.status().as_u16(), status, "status");
    assert_eq!(
        resp.headers()["content-type"],
        "application/problem+json",
        "content type"
    );
    assert!(resp.headers().contains_key("x-request-id"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    body
}

/// Sends raw bytes and returns everything the server wrote until it closed.
pub async fn raw(addr: SocketAddr, request: &str) -> String {
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    sock.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), sock.read_to_end(&mut out))
        .await
        .expect("server closed the connection")
        .unwrap();
    String::from_utf8_lossy(&out).to_string()
}

/// The JSON body of a raw HTTP/1.1 response with a Content-Length.
pub fn raw_json(response: &str) -> Value {
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {response}"))
}

/// Reads one response head from a keep-alive connection, then skips its
/// `Content-Length` body, so the next call starts at the next response.
/// Returns the head lower-cased (header checks need no case games), or a
/// note saying how the read ended early.
pub async fn read_head(sock: &mut tokio::net::TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let read = tokio::time::timeout(Duration::from_secs(10), sock.read(&mut byte)).await;
        match read {
            Ok(Ok(0)) => break,
            Ok(Ok(_)) => buf.push(byte[0]),
            Ok(Err(e)) => return format!("read error: {e}"),
            Err(_) => return "no answer within 10s".into(),
        }
    }
    if buf.is_empty() {
        return "connection closed without an answer".into();
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    let _ = tokio::time::timeout(Duration::from_secs(10), sock.read_exact(&mut body)).await;
    head
}

/// Whether a (lower-cased) response head announces `Connection: close`.
pub fn announces_close(head: &str) -> bool {
    head.lines()
        .any(|l| l.starts_with("connection:") && l.contains("close"))
}

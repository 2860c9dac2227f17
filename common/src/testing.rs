//! Helpers for integration tests: run a server on a loopback port chosen
//! by the kernel and stop it gracefully, as SIGTERM would; [`TestApp`], the
//! one harness of every service's tests; problem+json and metrics checks;
//! a recording loopback server; a trickling client.

mod app;

pub use app::{with_token, Cred, TestApp, TestConfig};

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
    spawn_on(loopback().await, serve)
}

/// Runs `serve(listener, shutdown)` in a task on a listener bound before
/// (so its address could be given to a neighbour first).
pub fn spawn_on<F, Fut>(listener: TcpListener, serve: F) -> Running
where
    F: FnOnce(TcpListener, Shutdown) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
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

/// A listener on a loopback port the kernel picks.
pub async fn loopback() -> TcpListener {
    TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding a loopback port")
}

/// Binds `addr` again after its server stopped (the kernel may need a
/// moment to let go of it).
pub async fn rebind(addr: SocketAddr) -> TcpListener {
    let start = std::time::Instant::now();
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return l,
            Err(_) if start.elapsed() < std::time::Duration::from_secs(10) => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("cannot bind {addr} again: {e}"),
        }
    }
}

/// The body of a `GET` that must succeed at the transport level, as text
/// (for `/metrics` and other plain-text endpoints).
pub async fn get_text(client: &reqwest::Client, url: &str) -> String {
    let resp = client
        .get(url)
        .send()
        .await
        .expect("GET reached the server");
    resp.text().await.expect("a readable body")
}

/// A `429`'s `Retry-After`, which the shop always gives in whole seconds.
pub fn retry_after(resp: &reqwest::Response) -> u64 {
    resp.headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in whole seconds")
}

/// Checks that an error answer is problem+json with a `status` matching the
/// HTTP status and the fields docs/api.md requires, and returns its body.
pub async fn problem(resp: reqwest::Response) -> serde_json::Value {
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json"),
        "errors are problem+json"
    );
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.expect("a JSON problem body");
    assert_eq!(body["status"], status);
    for key in ["type", "title", "detail", "code"] {
        assert!(body[key].is_string(), "problem lacks {key}: {body}");
    }
    body
}

/// The fields named in a `422` problem's `errors`.
pub fn fields(problem: &serde_json::Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["field"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The sum of the samples of metric `name` in Prometheus text `text` over
/// the series whose labels contain every one of `labels`
/// (`target="mailer"`); `None` when no series matches.
pub fn metric(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    let values: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// Polls `probe` every 25 ms until it yields a value; fails the test with
/// `what` after `deadline`. Background work is awaited this way, never with
/// a fixed sleep.
pub async fn eventually<T, F, Fut>(what: &str, deadline: std::time::Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(start.elapsed() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// One request a [`Recorder`] saw, and the status it answered with.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: http::Method,
    pub path: String,
    /// The query string without its `?`; empty when there is none.
    pub query: String,
    pub headers: http::HeaderMap,
    pub body: bytes::Bytes,
    pub status: u16,
}

impl Recorded {
    /// A header's value as text; empty when absent or not text.
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }

    /// The body as JSON; `Null` when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

type Answer = dyn Fn(&Recorded, &[Recorded]) -> u16 + Send + Sync;

type Log = std::sync::Arc<std::sync::Mutex<Vec<Recorded>>>;

type Reply = http::Response<http_body_util::Full<bytes::Bytes>>;

/// A loopback HTTP server that records every request: standing in for a
/// neighbour service ([`Recorder::start`]: the mailer, stats, the cart's
/// webhook), or relaying to a real one ([`Recorder::relay`]) so a test can
/// count the calls one service makes to another.
pub struct Recorder {
    server: Running,
    seen: Log,
}

impl Recorder {
    /// Answers `{}` with the status `answer` picks from the request and the
    /// ones before it — so a test can make the first deliveries fail.
    pub async fn start<A>(answer: A) -> Recorder
    where
        A: Fn(&Recorded, &[Recorded]) -> u16 + Send + Sync + 'static,
    {
        let answer: std::sync::Arc<Answer> = std::sync::Arc::new(answer);
        Recorder::serve(move |mut request, log| {
            let answer = answer.clone();
            async move {
                let mut log = crate::mutex::lock(&log);
                request.status = answer(&request, &log);
                let status = http::StatusCode::from_u16(request.status)
                    .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
                log.push(request);
                let mut resp = http::Response::new(http_body_util::Full::new(
                    bytes::Bytes::from_static(b"{}"),
                ));
                *resp.status_mut() = status;
                resp.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                );
                resp
            }
        })
        .await
    }

    /// Passes every request on to `target` (`http://127.0.0.1:PORT`)
    /// unchanged and its answer back (`502` when it cannot be reached):
    /// the test counts calls without standing in for either side.
    pub async fn relay(target: &str) -> Recorder {
        let target = target.trim_end_matches('/').to_string();
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("a reqwest client");
        Recorder::serve(move |mut request, log| {
            let (client, target) = (client.clone(), target.clone());
            async move {
                let query = match request.query.as_str() {
                    "" => String::new(),
                    q => format!("?{q}"),
                };
                let mut headers = request.headers.clone();
                headers.remove(http::header::HOST);
                let answer = client
                    .request(
                        request.method.clone(),
                        format!("{target}{}{query}", request.path),
                    )
                    .headers(headers)
                    .body(request.body.clone())
                    .send()
                    .await;
                let mut resp = http::Response::new(http_body_util::Full::default());
                *resp.status_mut() = http::StatusCode::BAD_GATEWAY;
                if let Ok(answer) = answer {
                    *resp.status_mut() = answer.status();
                    for (name, value) in answer.headers() {
                        // The body is passed on whole: its framing is ours.
                        if ![
                            http::header::TRANSFER_ENCODING,
                            http::header::CONTENT_LENGTH,
                            http::header::CONNECTION,
                        ]
                        .contains(name)
                        {
                            resp.headers_mut().append(name, value.clone());
                        }
                    }
                    *resp.body_mut() =
                        http_body_util::Full::new(answer.bytes().await.unwrap_or_default());
                }
                request.status = resp.status().as_u16();
                crate::mutex::lock(&log).push(request);
                resp
            }
        })
        .await
    }

    /// Serves on a loopback port: each request is read whole into a
    /// [`Recorded`] and `handle` answers it (and logs it).
    async fn serve<H, Fut>(handle: H) -> Recorder
    where
        H: Fn(Recorded, Log) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        use http_body_util::BodyExt;
        let seen: Log = Default::default();
        let log = seen.clone();
        let server = spawn(move |listener, shutdown| {
            crate::server::serve(
                listener,
                crate::server::ServerOptions::default(),
                move |req: http::Request<hyper::body::Incoming>, _| {
                    let (log, handle) = (log.clone(), handle.clone());
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let request = Recorded {
                            method: parts.method,
                            path: parts.uri.path().to_string(),
                            query: parts.uri.query().unwrap_or_default().to_string(),
                            headers: parts.headers,
                            body,
                            status: 0,
                        };
                        handle(request, log).await
                    }
                },
                shutdown,
            )
        })
        .await;
        Recorder { server, seen }
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        crate::mutex::lock(&self.seen).clone()
    }

    /// Forgets the requests so far.
    pub fn clear(&self) {
        crate::mutex::lock(&self.seen).clear();
    }
}

/// Sends `head` (a request head announcing a body) over a raw socket, then
/// `body` one byte every `every`, as a slow or hostile client would, and
/// returns everything the server wrote until it closed the connection.
/// Fails the test if the server keeps the connection open past `within`.
pub async fn trickle(
    addr: SocketAddr,
    head: &str,
    body: &[u8],
    every: std::time::Duration,
    within: std::time::Duration,
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sock = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connecting to the server");
    let (mut reader, mut writer) = sock.into_split();
    writer
        .write_all(head.as_bytes())
        .await
        .expect("sending the head");
    let body = body.to_vec();
    // Write errors end the trickle: the server may close mid-body.
    let sender = tokio::spawn(async move {
        for byte in body {
            tokio::time::sleep(every).await;
            if writer.write_all(&[byte]).await.is_err() {
                return;
            }
        }
        // Keep the write side open: a client that stops sending has not
        // hung up.
        std::future::pending::<()>().await;
    });
    let mut answer = Vec::new();
    let read = tokio::time::timeout(within, reader.read_to_end(&mut answer)).await;
    sender.abort();
    let text = String::from_utf8_lossy(&answer).to_string();
    assert!(
        read.is_ok(),
        "the server kept a trickling client's connection open past {within:?}; it wrote: {text:?}"
    );
    text
}

/// Asserts that a raw HTTP/1.1 answer (as [`trickle`] returns it) is a
/// problem+json with this status and `code`, announcing that the
/// connection closes.
pub fn assert_closing_problem(answer: &str, status: u16, code: &str) {
    let shown: String = answer.chars().take(600).collect();
    assert!(
        answer.starts_with(&format!("HTTP/1.1 {status} ")),
        "{shown}"
    );
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((answer, ""));
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains("\r\ncontent-type: application/problem+json"),
        "{shown}"
    );
    assert!(head.contains("\r\nconnection: close"), "{shown}");
    let problem: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {shown}"));
    assert_eq!(problem["status"], status, "{shown}");
    assert_eq!(problem["code"], code, "{shown}");
}

//! The outbound HTTP client: one reqwest client (one connection pool) per
//! service, connect and request timeouts, the current request id and trace
//! context passed on (each call in a client span when tracing is on), and
//! typed errors that map onto the right problem status.
//!
//! A service builds its [`HttpClient`] once at start and hands clones to
//! everything that calls out (its outbox, its typed clients): a clone
//! shares the pool, so connections to a neighbour are reused across them.
//! [`HttpClient::with_timeout`] gives a clone on the same pool with another
//! whole-request timeout (the outbox waits longer than a request handler).
//!
//! An error's `Display` names only its own layer; the cause is its
//! `source()`, which `error::chain` prints once.

use std::time::Duration;

use http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::request_id;
use crate::telemetry::{self, Attr as KeyValue, Kind};
use opentelemetry::trace::{FutureExt as _, TraceContextExt as _};

#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: reqwest::Client,
    /// How long one request may take in all, connecting included.
    timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answered: connection refused, DNS, reset, or a timeout.
    #[error("{url} is unreachable")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// It answered with a non-2xx status.
    #[error("{url} answered {status}")]
    Status {
        url: String,
        status: StatusCode,
        body: String,
    },
    /// It answered 2xx with a body we could not read.
    #[error("{url} sent an unreadable body")]
    Decode {
        url: String,
        #[source]
        source: reqwest::Error,
    },
}

impl ClientError {
    /// A short name of what went wrong, for spans and log fields.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientError::Unreachable { .. } => "unreachable",
            ClientError::Status { .. } => "status",
            ClientError::Decode { .. } => "decode",
        }
    }

    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl From<ClientError> for ApiError {
    /// A dependency that is down or broken is the server's problem, reported
    /// as `503` without the dependency's own words.
    fn from(e: ClientError) -> Self {
        ApiError::unavailable(
            "dependency_unavailable",
            "a service this request depends on is unavailable",
        )
        .with_cause(e)
    }
}

impl HttpClient {
    /// Builds a connection pool: call it once per service (or tool) and
    /// clone the result. The connect timeout belongs to the pool (reqwest
    /// has no per-request one); the request timeout to this handle.
    pub fn new(connect_timeout: Duration, request_timeout: Duration) -> Self {
        let inner = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .expect("building a reqwest client with static settings");
        HttpClient {
            inner,
            timeout: request_timeout,
        }
    }

    /// A clone on the same connection pool whose requests may take up to
    /// `request_timeout` in all.
    pub fn with_timeout(&self, request_timeout: Duration) -> Self {
        HttpClient {
            inner: self.inner.clone(),
            timeout: request_timeout,
        }
    }

    /// A request builder with this handle's timeout, carrying the current
    /// `X-Request-Id`, if any.
    pub fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let rb = self.inner.request(method, url).timeout(self.timeout);
        match request_id::current() {
            Some(id) => rb.header(request_id::HEADER, id),
            None => rb,
        }
    }

    /// Sends; a non-2xx answer becomes [`ClientError::Status`].
    pub async fn send(
        &self,
        rb: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        let (client, request) = rb.build_split();
        let mut request = request.map_err(|source| ClientError::Unreachable {
            url: String::new(),
            source,
        })?;
        let url = request.url().to_string();
        let span = telemetry::span("HTTP", Kind::Client, || {
            let u = request.url();
            vec![
                KeyValue::new("http.request.method", request.method().to_string()),
                KeyValue::new("server.address", u.host_str().unwrap_or("").to_string()),
                KeyValue::new(
                    "server.port",
                    i64::from(u.port_or_known_default().unwrap_or(0)),
                ),
            ]
        })
        .start();
        let Some(cx) = span else {
            return Self::execute(client, request, url).await;
        };
        cx.span().update_name(format!(
            "{} {}",
            request.method(),
            request.url().host_str().unwrap_or("")
        ));
        telemetry::inject(&cx, request.headers_mut());
        let result = Self::execute(client, request, url)
            .with_context(cx.clone())
            .await;
        match &result {
            Ok(resp) => telemetry::set_attributes(
                &cx,
                [KeyValue::new(
                    "http.response.status_code",
                    i64::from(resp.status().as_u16()),
                )],
            ),
            Err(e) => {
                if let Some(status) = e.status() {
                    telemetry::set_attributes(
                        &cx,
                        [KeyValue::new(
                            "http.response.status_code",
                            i64::from(status.as_u16()),
                        )],
                    );
                }
                telemetry::set_error(&cx, e.kind());
            }
        }
        cx.span().end();
        result
    }

    async fn execute(
        client: reqwest::Client,
        request: reqwest::Request,
        url: String,
    ) -> Result<reqwest::Response, ClientError> {
        let resp = client
            .execute(request)
            .await
            .map_err(|source| ClientError::Unreachable {
                url: url.clone(),
                source,
            })?;
        let status = resp.status();
        if status.is_success() {
            Ok(resp)
        } else {
            let body = resp.text().await.unwrap_or_default();
            Err(ClientError::Status { url, status, body })
        }
    }

    /// Sends and decodes a JSON answer.
    pub async fn json<T: DeserializeOwned>(
        &self,
        rb: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let resp = self.send(rb).await?;
        let url = resp.url().to_string();
        resp.json()
            .await
            .map_err(|source| ClientError::Decode { url, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unreachable_dependency_s_error_chain_names_each_cause_once() {
        // A port nothing listens on: bound, then closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = HttpClient::new(Duration::from_secs(2), Duration::from_secs(2));
        let url = format!("http://127.0.0.1:{port}/x");
        let err = client
            .send(client.request(reqwest::Method::GET, &url))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), "unreachable");
        let text = crate::error::chain(&err);
        assert!(
            text.starts_with(&format!("{url} is unreachable: ")),
            "{text}"
        );
        // reqwest names the URL in its own message; once is enough.
        assert_eq!(text.matches("error sending request").count(), 1, "{text}");
        assert_eq!(text.matches(url.as_str()).count(), 2, "{text}");
    }
}

//! The OTLP/HTTP (protobuf) span exporter: where to send, from the standard
//! `OTEL_EXPORTER_OTLP_*` variables, and one POST per batch, made by the
//! export thread on a runtime of its own (never the services').
//!
//! It replaces `opentelemetry-otlp`'s exporter for the encoding's sake
//! (see [`super::otlp_wire`]); what it reads from the environment is what
//! that exporter read, per the OpenTelemetry specification:
//!
//! - endpoint: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as given, else
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`;
//! - headers: `OTEL_EXPORTER_OTLP_TRACES_HEADERS`, else
//!   `OTEL_EXPORTER_OTLP_HEADERS` (`key=value,…`, values percent-decoded);
//! - timeout: `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`, else
//!   `OTEL_EXPORTER_OTLP_TIMEOUT`, in milliseconds (default 10 000);
//! - protocol (`…_TRACES_PROTOCOL`, else `…_PROTOCOL`): `http/protobuf`,
//!   the only one spoken; another one is refused rather than sent to a port
//!   that expects it.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};

use super::otlp_wire::{request, EncodedResource, EncodedScope};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how spans are sent, read from the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportConfig {
    pub endpoint: reqwest::Url,
    pub headers: HeaderMap,
    pub timeout: Duration,
}

impl ExportConfig {
    /// From the process environment.
    pub fn from_env() -> Result<Self, String> {
        Self::from_vars(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
    }

    /// From `var` (a variable's non-empty value), for tests.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let either = |signal: &str, general: &str| var(signal).or_else(|| var(general));
        if let Some(protocol) = either(
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ) {
            if protocol.trim() != "http/protobuf" {
                return Err(format!(
                    "OTLP protocol {protocol:?} is not supported: only http/protobuf is"
                ));
            }
        }
        let endpoint = match var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            Some(e) => e,
            None => {
                let base = var("OTEL_EXPORTER_OTLP_ENDPOINT")
                    .unwrap_or_else(|| "http://localhost:4318".into());
                format!("{}/v1/traces", base.trim_end_matches('/'))
            }
        };
        let endpoint = reqwest::Url::parse(endpoint.trim())
            .map_err(|e| format!("OTLP endpoint {endpoint:?}: {e}"))?;
        let headers = match either(
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            "OTEL_EXPORTER_OTLP_HEADERS",
        ) {
            Some(list) => parse_headers(&list)?,
            None => HeaderMap::new(),
        };
        let timeout = match either(
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
            "OTEL_EXPORTER_OTLP_TIMEOUT",
        ) {
            Some(ms) => Duration::from_millis(
                ms.trim()
                    .parse()
                    .map_err(|_| format!("OTLP timeout {ms:?} is not milliseconds"))?,
            ),
            None => DEFAULT_TIMEOUT,
        };
        Ok(Self {
            endpoint,
            headers,
            timeout,
        })
    }
}

/// `key=value,key2=value2` with percent-encoded values (the W3C Baggage
/// format the specification names).
fn parse_headers(list: &str) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    for entry in list.split(',').filter(|e| !e.trim().is_empty()) {
        let (name, value) = entry
            .split_once('=')
            .ok_or_else(|| format!("OTLP header {entry:?} is not key=value"))?;
        let value = percent_encoding::percent_decode_str(value.trim()).decode_utf8_lossy();
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("OTLP header name {:?} is not valid", name.trim()))?;
        let value = HeaderValue::from_str(&value)
            .map_err(|_| format!("OTLP header {name}'s value is not valid"))?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// Posts each batch, wrapped by [`request`], to the collector, from the
/// export thread itself: an async client on a single-threaded runtime of
/// the thread's own. reqwest's blocking client hands each request to a
/// thread of its own and back, which cost about 250 µs of CPU per export
/// whatever the batch's size (0.5 µs a request at 1 000 req/s, a tenth of
/// what tracing cost; `bench/tracing.md`, Round 4).
#[derive(Debug)]
pub struct OtlpHttpExporter {
    client: reqwest::Client,
    runtime: tokio::runtime::Runtime,
    config: ExportConfig,
    resource: EncodedResource,
    scope: EncodedScope,
    /// Whether the last export failed: a collector that is down is logged
    /// once, and again when it is back, not at every batch.
    failing: bool,
}

impl OtlpHttpExporter {
    pub fn new(
        config: ExportConfig,
        resource: EncodedResource,
        scope: EncodedScope,
    ) -> Result<Self, String> {
        // Only ever entered by the export thread (`block_on` in `post`),
        // and dropped there, never inside the service's runtime.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("building the OTLP exporter's runtime: {e}"))?;
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| format!("building the OTLP HTTP client: {e}"))?;
        Ok(Self {
            client,
            runtime,
            config,
            resource,
            scope,
            failing: false,
        })
    }

    /// Where the spans go.
    pub fn endpoint(&self) -> &reqwest::Url {
        &self.config.endpoint
    }

    /// Sends `spans` (concatenated span messages) as one request; a
    /// failure is logged (once until an export works again) and the batch
    /// is lost, as the SDK's batch processor lost it.
    pub fn export(&mut self, spans: &[u8]) {
        let mut body = Vec::new();
        request(&self.resource, &self.scope, spans, &mut body);
        match self.post(body) {
            Ok(()) => {
                if std::mem::replace(&mut self.failing, false) {
                    log::info!("tracing: exporting to {} again", self.config.endpoint);
                }
            }
            Err(e) => {
                if !std::mem::replace(&mut self.failing, true) {
                    log::warn!(
                        "tracing: exporting spans to {} failed (logged again only after \
                         it has worked): {e}",
                        self.config.endpoint
                    );
                }
            }
        }
    }

    fn post(&self, body: Vec<u8>) -> Result<(), String> {
        let body = bytes::Bytes::from(body);
        let first = self.runtime.block_on(self.send(body.clone()));
        match first {
            // The kept connection may have been closed by the collector
            // while no export ran (nothing polls it between exports): one
            // more try, on a new connection, before the batch is lost.
            Err(e) if e.is_connect() || e.is_request() => self
                .runtime
                .block_on(self.send(body))
                .map_err(|e| crate::error::chain(&e))?,
            other => other.map_err(|e| crate::error::chain(&e))?,
        }
    }

    /// One POST; `Ok` carries the collector's refusal, if it refused.
    async fn send(&self, body: bytes::Bytes) -> Result<Result<(), String>, reqwest::Error> {
        let resp = self
            .client
            .post(self.config.endpoint.clone())
            .headers(self.config.headers.clone())
            .header(CONTENT_TYPE, "application/x-protobuf")
            .body(body)
            .send()
            .await?;
        let status = resp.status();
        // Read to the end, or the connection is closed instead of kept for
        // the next batch (a new TCP connection for every export).
        let answer = resp.bytes().await?;
        Ok(if status.is_success() {
            Ok(())
        } else {
            let answer = String::from_utf8_lossy(&answer[..answer.len().min(200)]).into_owned();
            Err(format!("the collector answered {status}: {answer}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<ExportConfig, String> {
        ExportConfig::from_vars(crate::telemetry::vars_of(vars))
    }

    #[test]
    fn the_endpoint_follows_the_specification() {
        let general = config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://jaeger:4318")]).unwrap();
        assert_eq!(general.endpoint.as_str(), "http://jaeger:4318/v1/traces");
        let slash = config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/otlp/")]).unwrap();
        assert_eq!(slash.endpoint.as_str(), "http://c:4318/otlp/v1/traces");
        let signal = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://wrong:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:9999/custom"),
        ])
        .unwrap();
        assert_eq!(signal.endpoint.as_str(), "http://c:9999/custom");
        assert_eq!(signal.timeout, DEFAULT_TIMEOUT);
        assert!(config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "not a url")]).is_err());
    }

    #[test]
    fn headers_timeout_and_protocol_are_read() {
        let c = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-general=1"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                " authorization = Basic%20YWxhZGRpbg== , x-tenant=shop",
            ),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ])
        .unwrap();
        assert_eq!(c.headers["authorization"], "Basic YWxhZGRpbg==");
        assert_eq!(c.headers["x-tenant"], "shop");
        assert!(
            c.headers.get("x-general").is_none(),
            "the signal's own list wins"
        );
        assert_eq!(c.timeout, Duration::from_millis(2500));

        let grpc = config(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]).unwrap_err();
        assert!(grpc.contains("only http/protobuf"), "{grpc}");
        assert!(config(&[("OTEL_EXPORTER_OTLP_HEADERS", "novalue")]).is_err());
        assert!(config(&[("OTEL_EXPORTER_OTLP_TIMEOUT", "soon")]).is_err());
    }
}

//! The OTLP/HTTP (protobuf) span exporter: where to send, from the standard
//! `OTEL_EXPORTER_OTLP_*` variables, and one POST per batch, made from the
//! batch processor's own thread (never the services' runtime).
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

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use opentelemetry_sdk::Resource;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};

use super::otlp_wire::{encode_request, EncodedResource};

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

/// Posts each batch, encoded by [`encode_request`], to the collector.
#[derive(Debug)]
pub struct OtlpHttpExporter {
    client: reqwest::blocking::Client,
    config: ExportConfig,
    resource: EncodedResource,
    /// The last body's size: the next one reserves as much at once.
    last_len: AtomicUsize,
    /// Whether the last export failed: a collector that is down is logged
    /// once, and again when it is back, not at every batch.
    failing: AtomicBool,
}

impl OtlpHttpExporter {
    pub fn new(config: ExportConfig) -> Result<Self, String> {
        let timeout = config.timeout;
        // reqwest's blocking client runs a runtime of its own, which may
        // not be made (or dropped) inside the service's: build it on a
        // thread of its own, as `opentelemetry-otlp` did.
        let client = std::thread::spawn(move || {
            reqwest::blocking::Client::builder()
                .timeout(timeout)
                .build()
        })
        .join()
        .map_err(|_| "building the OTLP HTTP client panicked".to_string())?
        .map_err(|e| format!("building the OTLP HTTP client: {e}"))?;
        Ok(Self {
            client,
            config,
            resource: EncodedResource::default(),
            last_len: AtomicUsize::new(0),
            failing: AtomicBool::new(false),
        })
    }

    /// Where the spans go.
    pub fn endpoint(&self) -> &reqwest::Url {
        &self.config.endpoint
    }

    fn post(&self, body: Vec<u8>) -> Result<(), String> {
        let resp = self
            .client
            .post(self.config.endpoint.clone())
            .headers(self.config.headers.clone())
            .header(CONTENT_TYPE, "application/x-protobuf")
            .body(body)
            .send()
            .map_err(|e| crate::error::chain(&e))?;
        let status = resp.status();
        // Read to the end, or the connection is closed instead of kept for
        // the next batch (a new TCP connection for every export).
        let answer = resp.bytes().map_err(|e| crate::error::chain(&e))?;
        if status.is_success() {
            Ok(())
        } else {
            let answer = String::from_utf8_lossy(&answer[..answer.len().min(200)]).into_owned();
            Err(format!("the collector answered {status}: {answer}"))
        }
    }
}

impl SpanExporter for OtlpHttpExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut body = Vec::with_capacity(self.last_len.load(Ordering::Relaxed));
        encode_request(&batch, &self.resource, &mut body);
        drop(batch);
        self.last_len.store(body.len(), Ordering::Relaxed);
        match self.post(body) {
            Ok(()) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    log::info!("tracing: exporting to {} again", self.config.endpoint);
                }
                Ok(())
            }
            Err(e) => {
                if !self.failing.swap(true, Ordering::Relaxed) {
                    log::warn!(
                        "tracing: exporting spans to {} failed (logged again only after \
                         it has worked): {e}",
                        self.config.endpoint
                    );
                }
                Err(OTelSdkError::InternalFailure(e))
            }
        }
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = EncodedResource::new(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<ExportConfig, String> {
        ExportConfig::from_vars(|k| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.to_string())
        })
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

//! Distributed tracing with OpenTelemetry: W3C Trace Context in and out,
//! spans around the work that takes time, OTLP/HTTP (protobuf) export.
//!
//! Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or `…_TRACES_ENDPOINT`) is set.
//! Off means no recorder at all: every helper here checks one `OnceLock`
//! and goes straight to the work, so a request allocates nothing for
//! tracing. On, the SDK reads the standard variables (`OTEL_SERVICE_NAME`,
//! `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER(_ARG)`,
//! `OTEL_SPAN_*_COUNT_LIMIT`), [`export_queue`] `OTEL_BSP_*` and
//! [`otlp_http`] the exporter's (`OTEL_EXPORTER_OTLP_*`); the service's
//! own name is the default name.
//!
//! Spans are the API's (`Context`, `SpanContext`, `Span`), made by our
//! [`recorder`] rather than the SDK's tracer: it costs half the CPU the
//! SDK's spans and batch processor did (`bench/tracing.md`, Round 4).
//! The path of a span: [`SpanSpec::start`] → `recorder::Recorder::start`
//! (sampler, ids) → the span lives in the request's `Context` → `end()`
//! encodes it ([`otlp_wire`]) into the [`export_queue`] → the export
//! thread posts batches ([`otlp_http`]).
//!
//! The current span travels in OpenTelemetry's [`Context`], attached to
//! each future with [`FutureExt::with_context`] (never a guard held across
//! an `.await`). Attributes name what was done — routes, tables, statement
//! kinds, targets — and never carry values a user sent.

use std::borrow::Cow;
use std::future::Future;
use std::sync::OnceLock;

use http::{HeaderMap, HeaderName, HeaderValue};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use opentelemetry::trace::{FutureExt, Link, SpanKind, Status, TraceContextExt};
use opentelemetry::{InstrumentationScope, KeyValue};

mod export_queue;
mod otlp_http;
mod otlp_wire;
mod recorder;

pub use opentelemetry::trace::{SpanContext, SpanKind as Kind};
pub use opentelemetry::{Context, KeyValue as Attr};
/// The OTLP encoder on its own, for `bench/src/bin/otlp_encode.rs`.
pub use otlp_wire::{encode_request, to_span_data, EncodedResource, EncodedScope};
pub use recorder::SpanRecord;

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";
// Made at compile time: `from_static` checks every byte, at each call.
const TRACEPARENT_HEADER: HeaderName = HeaderName::from_static(TRACEPARENT);
const TRACESTATE_HEADER: HeaderName = HeaderName::from_static(TRACESTATE);

struct Telemetry {
    recorder: recorder::Recorder,
    exporter: Mutex<Option<JoinHandle<()>>>,
}

static TELEMETRY: OnceLock<Telemetry> = OnceLock::new();

/// Starts exporting when an OTLP endpoint is configured; a no-op otherwise
/// and on later calls. `service` is the default `service.name`, and the
/// instrumentation scope's name.
pub fn init(service: &'static str) {
    let configured = [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|k| std::env::var(k).is_ok_and(|v| !v.trim().is_empty()));
    if !configured || TELEMETRY.get().is_some() {
        return;
    }
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var("OTEL_SERVICE_NAME").is_err() {
        resource = resource.with_service_name(service);
    }
    let resource = otlp_wire::EncodedResource::new(&resource.build());
    let scope = otlp_wire::EncodedScope::new(&InstrumentationScope::builder(service).build());
    let mut exporter = match otlp_http::ExportConfig::from_env()
        .and_then(|c| otlp_http::OtlpHttpExporter::new(c, resource, scope))
    {
        Ok(e) => e,
        Err(e) => {
            log::error!("tracing stays off: {e}");
            return;
        }
    };
    let endpoint = exporter.endpoint().clone();
    let queue = Arc::new(export_queue::ExportQueue::new(
        export_queue::BatchConfig::from_env(),
    ));
    let recorder = recorder::Recorder::new(
        opentelemetry_sdk::trace::Config::default(),
        Arc::clone(&queue),
    );
    let thread = {
        let queue = Arc::clone(&queue);
        std::thread::Builder::new()
            .name("otlp-export".into())
            .spawn(move || queue.run(|spans| exporter.export(spans)))
    };
    let thread = match thread {
        Ok(t) => t,
        Err(e) => {
            log::error!("tracing stays off: starting the export thread: {e}");
            return;
        }
    };
    let telemetry = Telemetry {
        recorder,
        exporter: Mutex::new(Some(thread)),
    };
    if TELEMETRY.set(telemetry).is_ok() {
        log::info!("tracing: exporting spans over OTLP/HTTP to {endpoint}");
    }
}

/// Sends the spans still queued and stops the export thread; call once
/// at exit. Spans ended after this are dropped.
pub fn shutdown() {
    if let Some(t) = TELEMETRY.get() {
        t.recorder.queue().shut_down();
        let thread = crate::mutex::lock(&t.exporter).take();
        if let Some(thread) = thread {
            if thread.join().is_err() {
                log::warn!("tracing: the export thread panicked");
            }
        }
        let dropped = t.recorder.queue().dropped();
        if dropped > 0 {
            log::warn!("tracing: {dropped} spans were dropped (the queue was full)");
        }
    }
}

/// Whether spans are made at all.
#[inline]
pub fn enabled() -> bool {
    TELEMETRY.get().is_some()
}

fn recorder() -> Option<&'static recorder::Recorder> {
    TELEMETRY.get().map(|t| &t.recorder)
}

/// A span to start: built only when tracing is on, so the attribute
/// closure (and its allocations) never runs otherwise.
pub struct SpanSpec<A> {
    name: &'static str,
    /// Appended to `name` after a space (`SELECT` + `orders`).
    suffix: Option<&'static str>,
    kind: SpanKind,
    attrs: A,
    parent: Option<Context>,
    links: Vec<Link>,
}

/// `name` with attributes from `attrs`, as a child of the current span.
pub fn span<A: FnOnce() -> Vec<KeyValue>>(
    name: &'static str,
    kind: SpanKind,
    attrs: A,
) -> SpanSpec<A> {
    SpanSpec {
        name,
        suffix: None,
        kind,
        attrs,
        parent: None,
        links: Vec::new(),
    }
}

impl<A: FnOnce() -> Vec<KeyValue>> SpanSpec<A> {
    /// A child of `parent` rather than of the current span.
    pub fn parent(mut self, parent: Context) -> Self {
        self.parent = Some(parent);
        self
    }

    /// Linked to these span contexts (the causes of a batch).
    pub fn links(mut self, links: Vec<SpanContext>) -> Self {
        self.links = links.into_iter().map(Link::with_context).collect();
        self
    }

    /// The started span's context, or `None` when tracing is off.
    pub fn start(self) -> Option<Context> {
        let recorder = recorder()?;
        let parent = self.parent.unwrap_or_else(Context::current);
        let name = match self.suffix {
            Some(suffix) => span_name(self.name, suffix),
            None => self.name.into(),
        };
        let span = recorder.start(&parent, name, self.kind, self.attrs, self.links);
        Some(parent.with_span(span))
    }

    /// Runs `fut` inside the span; a `Result` marks the span as failed.
    pub async fn run<F, T, E>(self, fut: F) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        let Some(cx) = self.start() else {
            return fut.await;
        };
        let out = fut.with_context(cx.clone()).await;
        if let Err(e) = &out {
            cx.span().set_status(Status::error(e.to_string()));
        }
        cx.span().end();
        out
    }

    /// Runs `fut` inside the span, whatever it returns.
    pub async fn wrap<F: Future>(self, fut: F) -> F::Output {
        let Some(cx) = self.start() else {
            return fut.await;
        };
        let out = fut.with_context(cx.clone()).await;
        cx.span().end();
        out
    }
}

/// `"{first} {second}"` (a method and a route, a statement kind and a
/// table), made once per pair and kept: span names come from a small
/// fixed set, and `format!` per span cost a traced request 700
/// instructions (callgrind).
pub fn span_name(first: &'static str, second: &str) -> Cow<'static, str> {
    use rustc_hash::FxHashMap;
    // FxHash: SipHash of the keys cost as much as the lookup saved.
    type Names = FxHashMap<&'static str, FxHashMap<Box<str>, &'static str>>;
    static NAMES: Mutex<Option<Names>> = Mutex::new(None);
    // Beyond this many per first word, names are made per span: a route
    // table reloaded again and again must not grow the process unbounded.
    const MAX_NAMES: usize = 4096;
    let mut names = crate::mutex::lock(&NAMES);
    let by_second = names
        .get_or_insert_with(Default::default)
        .entry(first)
        .or_default();
    if let Some(name) = by_second.get(second) {
        return Cow::Borrowed(name);
    }
    let name = format!("{first} {second}");
    if by_second.len() >= MAX_NAMES {
        return name.into();
    }
    let name: &'static str = Box::leak(name.into_boxed_str());
    by_second.insert(second.into(), name);
    Cow::Borrowed(name)
}

/// A database call: its statement kind (`SELECT`, `INSERT`, … or
/// `TRANSACTION` for several) and main table — never values.
pub fn db(
    operation: &'static str,
    table: &'static str,
) -> SpanSpec<impl FnOnce() -> Vec<KeyValue>> {
    let mut spec = span(operation, SpanKind::Client, move || {
        vec![
            KeyValue::new("db.operation.name", operation),
            KeyValue::new("db.collection.name", table),
        ]
    });
    spec.suffix = Some(table);
    spec
}

/// A standard HTTP method's name as a static string.
fn method_str(method: &http::Method) -> Option<&'static str> {
    use http::Method as M;
    Some(match *method {
        M::GET => "GET",
        M::POST => "POST",
        M::PUT => "PUT",
        M::DELETE => "DELETE",
        M::HEAD => "HEAD",
        M::OPTIONS => "OPTIONS",
        M::PATCH => "PATCH",
        M::CONNECT => "CONNECT",
        M::TRACE => "TRACE",
        _ => return None,
    })
}

/// An HTTP method as an attribute value; the standard ones are static
/// strings, so naming them allocates nothing.
pub fn method_value(method: &http::Method) -> opentelemetry::Value {
    match method_str(method) {
        Some(name) => name.into(),
        None => method.as_str().to_string().into(),
    }
}

/// A server span's name, `"{method} {route}"` ([`span_name`]).
pub fn http_span_name(method: &http::Method, route: &str) -> Cow<'static, str> {
    match method_str(method) {
        Some(m) => span_name(m, route),
        None => format!("{method} {route}").into(),
    }
}

/// Marks a span failed (with the error's kind, never its values).
pub fn set_error(cx: &Context, kind: impl Into<Cow<'static, str>>) {
    cx.span().set_status(Status::Error {
        description: kind.into(),
    });
}

/// Adds attributes to the span of `cx`.
pub fn set_attributes(cx: &Context, attrs: impl IntoIterator<Item = KeyValue>) {
    cx.span().set_attributes(attrs);
}

/// The span context of the current span, when one is being recorded.
pub fn current_span_context() -> Option<SpanContext> {
    if !enabled() {
        return None;
    }
    let cx = Context::current();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then_some(sc)
}

/// `(trace_id, span_id)` of the current span, as hex, for log lines.
pub fn current_ids() -> Option<(String, String)> {
    current_span_context().map(|sc| (sc.trace_id().to_string(), sc.span_id().to_string()))
}

/// The W3C `traceparent` of the current span (for the outbox).
pub fn current_traceparent() -> Option<String> {
    let sc = current_span_context()?;
    let tp = traceparent(&sc, sc.trace_flags().to_u8());
    Some(std::str::from_utf8(&tp).expect("ASCII").to_string())
}

/// `00-<trace id>-<span id>-<flags>` (W3C Trace Context, version 00),
/// written into a buffer: the propagator's `format!` of the ids through
/// `fmt` cost as much as starting the span did.
fn traceparent(sc: &SpanContext, flags: u8) -> [u8; 55] {
    fn hex(out: &mut [u8], bytes: &[u8]) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
            pair[0] = DIGITS[usize::from(b >> 4)];
            pair[1] = DIGITS[usize::from(b & 0xf)];
        }
    }
    let mut out = *b"00-00000000000000000000000000000000-0000000000000000-00";
    hex(&mut out[3..35], &sc.trace_id().to_bytes());
    hex(&mut out[36..52], &sc.span_id().to_bytes());
    hex(&mut out[53..55], &[flags]);
    out
}

/// The remote parent a stored `traceparent` names (an empty context if it
/// does not parse).
pub fn context_from_traceparent(traceparent: &str) -> Context {
    remote_parent(Some(traceparent.as_bytes()), None)
}

/// The remote parent the request's `traceparent`/`tracestate` name, if any.
pub fn extract(headers: &HeaderMap) -> Context {
    let parent = headers.get(TRACEPARENT_HEADER);
    if parent.is_none() {
        return Context::new();
    }
    let state = headers.get(TRACESTATE_HEADER);
    remote_parent(parent.map(|v| v.as_bytes()), state.map(|v| v.as_bytes()))
}

/// W3C Trace Context's `traceparent` (and `tracestate`) parsed by hand,
/// accepting what `TraceContextPropagator` accepts of well-formed headers
/// (the unit tests compare the two). The propagator splits, collects and
/// parses each part through `from_str_radix`, and cost as much as all the
/// rest of a span did on a request that carries one — which, behind the
/// balancer, is every request.
fn remote_parent(traceparent: Option<&[u8]>, tracestate: Option<&[u8]>) -> Context {
    use opentelemetry::trace::{SpanId, TraceFlags, TraceId, TraceState};
    fn hex<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
        fn digit(c: u8) -> Option<u8> {
            match c {
                b'0'..=b'9' => Some(c - b'0'),
                b'a'..=b'f' => Some(c - b'a' + 10),
                _ => None,
            }
        }
        if s.len() != 2 * N {
            return None;
        }
        let mut out = [0; N];
        for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
            *o = digit(pair[0])? << 4 | digit(pair[1])?;
        }
        Some(out)
    }
    let parse = || -> Option<SpanContext> {
        let tp = traceparent?.trim_ascii();
        // version-traceid-parentid-flags, and for a later version whatever
        // follows the flags after a dash.
        if tp.len() < 55 || tp[2] != b'-' || tp[35] != b'-' || tp[52] != b'-' {
            return None;
        }
        let [version] = hex::<1>(&tp[..2])?;
        let rest_ok = match version {
            0 => tp.len() == 55,
            0xff => false,
            _ => tp.len() == 55 || tp[55] == b'-',
        };
        let [flags] = hex::<1>(&tp[53..55])?;
        if !rest_ok || (version == 0 && flags > 2) {
            return None;
        }
        let trace_id = TraceId::from_bytes(hex::<16>(&tp[3..35])?);
        let span_id = SpanId::from_bytes(hex::<8>(&tp[36..52])?);
        let state = tracestate
            .and_then(|s| std::str::from_utf8(s).ok())
            .and_then(|s| s.parse::<TraceState>().ok())
            .unwrap_or_default();
        let sc = SpanContext::new(
            trace_id,
            span_id,
            TraceFlags::new(flags) & TraceFlags::SAMPLED,
            true,
            state,
        );
        sc.is_valid().then_some(sc)
    };
    match parse() {
        Some(sc) => Context::new().with_remote_span_context(sc),
        None => Context::new(),
    }
}

/// Writes `cx`'s span as `traceparent`/`tracestate` into outbound headers,
/// as `TraceContextPropagator` does (an empty `tracestate` included), with
/// the header names ready-made and the ids hex-encoded by hand.
pub fn inject(cx: &Context, headers: &mut HeaderMap) {
    let span = cx.span();
    let sc = span.span_context();
    if !sc.is_valid() {
        return;
    }
    let flags = sc.trace_flags() & opentelemetry::trace::TraceFlags::SAMPLED;
    let tp = traceparent(sc, flags.to_u8());
    headers.insert(
        TRACEPARENT_HEADER,
        HeaderValue::from_bytes(&tp).expect("hex digits and dashes"),
    );
    let state = sc.trace_state().header();
    let state = if state.is_empty() {
        HeaderValue::from_static("")
    } else {
        match HeaderValue::try_from(state) {
            Ok(v) => v,
            Err(_) => return,
        }
    };
    headers.insert(TRACESTATE_HEADER, state);
}

/// Writes the current span (if any is recorded) into outbound headers.
pub fn inject_current(headers: &mut HeaderMap) {
    if enabled() {
        inject(&Context::current(), headers);
    }
}

/// A variable lookup over `vars`, for the tests of what reads the
/// environment through a `from_vars` (the exporter, the export queue).
#[cfg(test)]
fn vars_of<'a>(vars: &'a [(&str, &str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |k| {
        vars.iter()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| v.to_string())
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::propagation::{Extractor, TextMapPropagator};
    use opentelemetry_sdk::propagation::TraceContextPropagator;

    use super::*;

    struct HeaderExtractor<'a>(&'a HeaderMap);

    impl Extractor for HeaderExtractor<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }

        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(|k| k.as_str()).collect()
        }
    }

    /// What the SDK's propagator extracts from these headers.
    fn reference(headers: &HeaderMap) -> SpanContext {
        TraceContextPropagator::new()
            .extract_with_context(&Context::new(), &HeaderExtractor(headers))
            .span()
            .span_context()
            .clone()
    }

    #[test]
    fn extract_takes_what_the_propagator_takes() {
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        let span = "00f067aa0ba902b7";
        let parents = [
            format!("00-{id}-{span}-01"),
            format!("00-{id}-{span}-00"),
            format!("00-{id}-{span}-02"),
            format!("  00-{id}-{span}-01 "),
            format!("01-{id}-{span}-01"),
            format!("01-{id}-{span}-09-later-fields"),
            format!("cc-{id}-{span}-03"),
            // Refused by both:
            format!("00-{id}-{span}-03"),
            format!("00-{id}-{span}-01-extra"),
            format!("ff-{id}-{span}-01"),
            format!("00-{}-{span}-01", id.to_uppercase()),
            format!("00-{id}-{}-01", span.to_uppercase()),
            format!("00-00000000000000000000000000000000-{span}-01"),
            format!("00-{id}-0000000000000000-01"),
            format!("00-{id}-{span}-zz"),
            format!("0x-{id}-{span}-01"),
            format!("00-{id}-{span}01"),
            format!("00_{id}_{span}_01"),
            format!("00-{id}-{span}"),
            String::new(),
            "garbage".into(),
        ];
        let states = [None, Some("vendor=x,other=y"), Some("not a valid state")];
        for tp in &parents {
            for state in states {
                let mut h = HeaderMap::new();
                h.insert(TRACEPARENT, HeaderValue::from_str(tp).unwrap());
                if let Some(state) = state {
                    h.insert(TRACESTATE, HeaderValue::from_str(state).unwrap());
                }
                let ours = extract(&h).span().span_context().clone();
                assert_eq!(ours, reference(&h), "{tp:?} {state:?}");
                if state.is_none() {
                    let stored = context_from_traceparent(tp).span().span_context().clone();
                    assert_eq!(stored, ours, "{tp:?}");
                }
            }
        }
        assert!(extract(&HeaderMap::new()).span().span_context() == &SpanContext::empty_context());
    }

    #[test]
    fn a_stored_traceparent_becomes_a_remote_parent() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let cx = context_from_traceparent(tp);
        let sc = cx.span().span_context().clone();
        assert!(sc.is_remote());
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(sc.span_id().to_string(), "00f067aa0ba902b7");
        assert!(!context_from_traceparent("garbage")
            .span()
            .span_context()
            .is_valid());
    }

    #[test]
    fn inject_writes_what_the_propagator_writes() {
        let sampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let unsampled = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
        for (tp, state) in [(sampled, Some("vendor=x,other=y")), (unsampled, None)] {
            let mut incoming = HeaderMap::new();
            incoming.insert(TRACEPARENT, HeaderValue::from_static(tp));
            if let Some(state) = state {
                incoming.insert(TRACESTATE, HeaderValue::from_static(state));
            }
            let cx = extract(&incoming);
            let mut ours = HeaderMap::new();
            inject(&cx, &mut ours);
            let mut theirs = std::collections::HashMap::<String, String>::new();
            TraceContextPropagator::new().inject_context(&cx, &mut theirs);
            assert_eq!(ours.len(), theirs.len());
            for (name, value) in &theirs {
                assert_eq!(ours[name.as_str()], value.as_str(), "{name}");
            }
            assert_eq!(ours[TRACEPARENT], tp);
        }
        let mut none = HeaderMap::new();
        inject(&Context::new(), &mut none);
        assert!(none.is_empty());
    }

    #[test]
    fn off_means_no_ids_and_no_headers() {
        // No exporter is configured in unit tests.
        assert!(!enabled());
        assert_eq!(current_traceparent(), None);
        let mut h = HeaderMap::new();
        inject_current(&mut h);
        assert!(h.is_empty());
    }
}

//! OTLP's protobuf encoding of finished spans, written straight from our
//! [`SpanRecord`]s: each span is encoded once, by the thread that ends it
//! ([`span_message`]), and a batch of them is wrapped into an
//! `ExportTraceServiceRequest` by the exporter ([`request`]).
//!
//! Why not `opentelemetry-otlp`'s own: it clones each span, converts the
//! clone into `opentelemetry-proto`'s structs (a `Vec` or `String` for
//! every id, name, key and value) and lets prost encode those, and prost
//! recomputes a nested message's length at every level above it. With 100 %
//! sampling that was most of what tracing cost a request (`bench/tracing.md`
//! has the counts). Here each field is written once, and a nested message's
//! length is filled in after its body (see [`message`]).
//!
//! The unit tests decode what this writes with `opentelemetry-proto`'s types
//! and require exactly what that crate's own conversion of the same spans
//! (as the SDK's `SpanData`) gives.

use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanId, SpanKind, Status};
use opentelemetry::{Array, InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use opentelemetry_sdk::Resource;

use super::recorder::SpanRecord;

// Protobuf wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

// `SpanFlags` bits: the W3C trace flags, then whether the parent's
// remoteness is known (always, here) and whether it was remote.
const CONTEXT_HAS_IS_REMOTE: u32 = 0x100;
const CONTEXT_IS_REMOTE: u32 = 0x200;

/// The `Resource` and `schema_url` fields of a `ResourceSpans`, encoded
/// once: they are the same in every batch.
#[derive(Debug, Default, Clone)]
pub struct EncodedResource {
    resource: Vec<u8>,
    schema_url: Vec<u8>,
}

impl EncodedResource {
    pub fn new(resource: &Resource) -> Self {
        let mut out = Self::default();
        message(&mut out.resource, 1, |b| {
            for (key, value) in resource.iter() {
                message(b, 1, |b| key_value(b, key.as_str(), value));
            }
        });
        string(&mut out.schema_url, 3, resource.schema_url().unwrap_or(""));
        out
    }
}

/// The `scope` and `schema_url` fields of a `ScopeSpans`, encoded once:
/// every span of a process comes from one instrumentation scope.
#[derive(Debug, Default, Clone)]
pub struct EncodedScope {
    scope: Vec<u8>,
    schema_url: Vec<u8>,
}

impl EncodedScope {
    pub fn new(scope: &InstrumentationScope) -> Self {
        let mut out = Self::default();
        message(&mut out.scope, 1, |b| instrumentation_scope(b, scope));
        string(&mut out.schema_url, 3, scope.schema_url().unwrap_or(""));
        out
    }
}

/// Appends `span` as one `ScopeSpans.spans` field: what [`request`] takes
/// a concatenation of.
pub fn span_message(buf: &mut Vec<u8>, span: &SpanRecord) {
    message(buf, 2, |b| encode_span(b, span));
}

/// Appends an `ExportTraceServiceRequest` to `out`: one `ResourceSpans`
/// holding one `ScopeSpans` whose spans are `spans`, a concatenation of
/// [`span_message`]s (nothing if there are none).
pub fn request(resource: &EncodedResource, scope: &EncodedScope, spans: &[u8], out: &mut Vec<u8>) {
    if spans.is_empty() {
        return;
    }
    let scope_spans = scope.scope.len() + spans.len() + scope.schema_url.len();
    let resource_spans = resource.resource.len()
        + 1
        + varint_bytes(scope_spans as u64).1
        + scope_spans
        + resource.schema_url.len();
    out.reserve(resource_spans + 12);
    tag(out, 1, LEN);
    varint(out, resource_spans as u64);
    out.extend_from_slice(&resource.resource);
    tag(out, 2, LEN);
    varint(out, scope_spans as u64);
    out.extend_from_slice(&scope.scope);
    out.extend_from_slice(spans);
    out.extend_from_slice(&scope.schema_url);
    out.extend_from_slice(&resource.schema_url);
}

/// [`request`] for these spans at once (tests and `bench/`).
pub fn encode_request(
    spans: &[SpanRecord],
    scope: &EncodedScope,
    resource: &EncodedResource,
    out: &mut Vec<u8>,
) {
    let mut messages = Vec::new();
    for span in spans {
        span_message(&mut messages, span);
    }
    request(resource, scope, &messages, out);
}

/// `record` as the SDK's `SpanData`: what `opentelemetry-proto`'s
/// conversion (and so `opentelemetry-otlp`) takes, for the tests that
/// compare our bytes with its and for `bench/src/bin/otlp_encode.rs`.
pub fn to_span_data(record: &SpanRecord, scope: &InstrumentationScope) -> SpanData {
    // Both are `#[non_exhaustive]`: filled in through their fields.
    let mut events = SpanEvents::default();
    events.events = record.events.clone();
    events.dropped_count = record.dropped_events_count;
    let mut links = SpanLinks::default();
    links.links = record.links.clone();
    links.dropped_count = record.dropped_links_count;
    SpanData {
        span_context: record.span_context.clone(),
        parent_span_id: record.parent_span_id,
        parent_span_is_remote: record.parent_span_is_remote,
        span_kind: record.kind.clone(),
        name: record.name.clone(),
        start_time: record.start_time,
        end_time: record.end_time,
        attributes: record.attributes.clone(),
        dropped_attributes_count: record.dropped_attributes_count,
        events,
        links,
        status: record.status.clone(),
        instrumentation_scope: scope.clone(),
    }
}

fn instrumentation_scope(b: &mut Vec<u8>, scope: &InstrumentationScope) {
    string(b, 1, scope.name());
    string(b, 2, scope.version().unwrap_or(""));
    attributes(b, 3, scope.attributes());
}

fn encode_span(b: &mut Vec<u8>, span: &SpanRecord) {
    // Most spans fit: the pushes below then never grow the buffer.
    b.reserve(512);
    let cx = &span.span_context;
    bytes(b, 1, &cx.trace_id().to_bytes());
    bytes(b, 2, &cx.span_id().to_bytes());
    trace_state(b, 3, cx.trace_state());
    if span.parent_span_id != SpanId::INVALID {
        bytes(b, 4, &span.parent_span_id.to_bytes());
    }
    string(b, 5, &span.name);
    uint(b, 6, span_kind(&span.kind));
    fixed64(b, 7, nanos(span.start_time));
    fixed64(b, 8, nanos(span.end_time));
    attributes(b, 9, &span.attributes);
    uint(b, 10, span.dropped_attributes_count.into());
    for event in &span.events {
        message(b, 11, |b| {
            fixed64(b, 1, nanos(event.timestamp));
            string(b, 2, &event.name);
            attributes(b, 3, &event.attributes);
            uint(b, 4, event.dropped_attributes_count.into());
        });
    }
    uint(b, 12, span.dropped_events_count.into());
    for link in &span.links {
        let lcx = &link.span_context;
        message(b, 13, |b| {
            bytes(b, 1, &lcx.trace_id().to_bytes());
            bytes(b, 2, &lcx.span_id().to_bytes());
            trace_state(b, 3, lcx.trace_state());
            attributes(b, 4, &link.attributes);
            uint(b, 5, link.dropped_attributes_count.into());
            fixed32(b, 6, flags(lcx.is_remote(), lcx.trace_flags().to_u8()));
        });
    }
    uint(b, 14, span.dropped_links_count.into());
    // Always present, as the reference conversion writes it (even unset).
    message(b, 15, |b| {
        let (code, description) = match &span.status {
            Status::Unset => (0, ""),
            Status::Ok => (1, ""),
            Status::Error { description } => (2, description.as_ref()),
        };
        string(b, 2, description);
        uint(b, 3, code);
    });
    fixed32(
        b,
        16,
        flags(
            span.parent_span_is_remote,
            span.span_context.trace_flags().to_u8(),
        ),
    );
}

/// A `tracestate` header's text; most spans have none, and `header()`
/// allocates even for an empty one.
#[inline]
fn trace_state(b: &mut Vec<u8>, field: u32, state: &opentelemetry::trace::TraceState) {
    if *state != opentelemetry::trace::TraceState::NONE {
        string(b, field, &state.header());
    }
}

#[inline]
fn flags(parent_is_remote: bool, trace_flags: u8) -> u32 {
    let remote = if parent_is_remote {
        CONTEXT_IS_REMOTE
    } else {
        0
    };
    u32::from(trace_flags) | CONTEXT_HAS_IS_REMOTE | remote
}

#[inline]
fn span_kind(kind: &SpanKind) -> u64 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

#[inline]
fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[inline]
fn attributes<'a>(b: &mut Vec<u8>, field: u32, kvs: impl IntoIterator<Item = &'a KeyValue>) {
    for kv in kvs {
        if !short_attribute(b, field, kv.key.as_str(), &kv.value) {
            message(b, field, |b| key_value(b, kv.key.as_str(), &kv.value));
        }
    }
}

/// The common attribute — a short key with a short string or an integer
/// — written with its lengths known up front: four slices instead of a
/// dozen pushes and two length fix-ups (a third of what encoding a span
/// cost, callgrind). The same bytes as the general path (the unit tests
/// compare both with prost's); `false` if it does not apply.
#[inline]
fn short_attribute(b: &mut Vec<u8>, field: u32, key: &str, value: &Value) -> bool {
    // `AnyValue`'s field and its body: a string's bytes, or an integer's
    // varint.
    let int;
    let (value_field, body): (u8, &[u8]) = match value {
        Value::String(s) => (1 << 3 | LEN, s.as_str().as_bytes()),
        Value::I64(v) => {
            let (bytes, n) = varint_bytes(*v as u64);
            int = bytes;
            (3 << 3 | VARINT, &int[..n])
        }
        _ => return false,
    };
    let is_string = value_field & 7 == LEN;
    let any_len = 1 + usize::from(is_string) + body.len();
    let kv_len = 2 + key.len() + 2 + any_len;
    if field >= 16 || kv_len >= 0x80 {
        return false; // a length or tag of more than one byte
    }
    b.reserve(2 + kv_len);
    b.extend_from_slice(&[
        (field << 3) as u8 | LEN,
        kv_len as u8,
        1 << 3 | LEN,
        key.len() as u8,
    ]);
    b.extend_from_slice(key.as_bytes());
    if is_string {
        b.extend_from_slice(&[2 << 3 | LEN, any_len as u8, value_field, body.len() as u8]);
    } else {
        b.extend_from_slice(&[2 << 3 | LEN, any_len as u8, value_field]);
    }
    b.extend_from_slice(body);
    true
}

/// A `KeyValue`'s fields; its value is always present.
#[inline]
fn key_value(b: &mut Vec<u8>, key: &str, value: &Value) {
    string(b, 1, key);
    message(b, 2, |b| any_value(b, value));
}

/// An `AnyValue`'s fields. Its variants are a `oneof`, written even when
/// they hold the default (an empty string, `false`, `0`).
#[inline]
fn any_value(b: &mut Vec<u8>, value: &Value) {
    match value {
        Value::String(s) => string_always(b, 1, s.as_str()),
        Value::Bool(v) => {
            tag(b, 2, VARINT);
            varint(b, u64::from(*v));
        }
        Value::I64(v) => {
            tag(b, 3, VARINT);
            varint(b, *v as u64);
        }
        Value::F64(v) => {
            tag(b, 4, FIXED64);
            b.extend_from_slice(&v.to_bits().to_le_bytes());
        }
        Value::Array(array) => message(b, 5, |b| match array {
            Array::Bool(vs) => array_values(b, vs, |v| Value::Bool(*v)),
            Array::I64(vs) => array_values(b, vs, |v| Value::I64(*v)),
            Array::F64(vs) => array_values(b, vs, |v| Value::F64(*v)),
            Array::String(vs) => array_values(b, vs, |v: &StringValue| Value::String(v.clone())),
            // A kind added to the API later: an empty array, not a panic.
            _ => {}
        }),
        // A kind added to the API later: an `AnyValue` with nothing set.
        _ => {}
    }
}

fn array_values<T>(b: &mut Vec<u8>, values: &[T], to_value: impl Fn(&T) -> Value) {
    for v in values {
        message(b, 1, |b| any_value(b, &to_value(v)));
    }
}

/// A length-delimited field whose body `write` appends. One byte is kept
/// for the length, which is filled in after the body: most messages here
/// (a key and its value, an id) are under 128 bytes and are never moved; a
/// longer one is moved once, right, to make room for its longer length.
/// Computing each message's size before writing it, as prost does, means
/// computing it again at every level above.
#[inline(always)]
fn message(b: &mut Vec<u8>, field: u32, write: impl FnOnce(&mut Vec<u8>)) {
    tag(b, field, LEN);
    let at = b.len();
    b.push(0);
    write(b);
    let end = b.len();
    let len = end - at - 1;
    if len < 0x80 {
        b[at] = len as u8;
        return;
    }
    let (head, n) = varint_bytes(len as u64);
    b.resize(end + n - 1, 0);
    b.copy_within(at + 1..end, at + n);
    b[at..at + n].copy_from_slice(&head[..n]);
}

#[inline(always)]
fn tag(b: &mut Vec<u8>, field: u32, wire: u8) {
    varint(b, u64::from(field << 3 | u32::from(wire)));
}

#[inline(always)]
fn varint(b: &mut Vec<u8>, v: u64) {
    if v < 0x80 {
        b.push(v as u8);
    } else {
        let (bytes, n) = varint_bytes(v);
        b.extend_from_slice(&bytes[..n]);
    }
}

/// `v` as a base-128 varint: the bytes and how many of them are used.
fn varint_bytes(mut v: u64) -> ([u8; 10], usize) {
    let mut out = [0; 10];
    let mut n = 0;
    while v >= 0x80 {
        out[n] = v as u8 | 0x80;
        v >>= 7;
        n += 1;
    }
    out[n] = v as u8;
    (out, n + 1)
}

/// proto3: a scalar at its default is not written.
#[inline(always)]
fn uint(b: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        tag(b, field, VARINT);
        varint(b, v);
    }
}

#[inline(always)]
fn fixed64(b: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        tag(b, field, FIXED64);
        b.extend_from_slice(&v.to_le_bytes());
    }
}

#[inline(always)]
fn fixed32(b: &mut Vec<u8>, field: u32, v: u32) {
    if v != 0 {
        tag(b, field, FIXED32);
        b.extend_from_slice(&v.to_le_bytes());
    }
}

#[inline(always)]
fn bytes(b: &mut Vec<u8>, field: u32, v: &[u8]) {
    if !v.is_empty() {
        string_always_bytes(b, field, v);
    }
}

#[inline(always)]
fn string(b: &mut Vec<u8>, field: u32, v: &str) {
    bytes(b, field, v.as_bytes());
}

#[inline(always)]
fn string_always(b: &mut Vec<u8>, field: u32, v: &str) {
    string_always_bytes(b, field, v.as_bytes());
}

#[inline(always)]
fn string_always_bytes(b: &mut Vec<u8>, field: u32, v: &[u8]) {
    tag(b, field, LEN);
    varint(b, v.len() as u64);
    b.extend_from_slice(v);
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::time::Duration;

    use opentelemetry::trace::{Event, Link, SpanContext, TraceFlags, TraceId, TraceState};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
    use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
    use prost::Message;

    use super::*;

    fn context(trace: u128, span: u64, remote: bool, state: &str) -> SpanContext {
        SpanContext::new(
            TraceId::from(trace),
            SpanId::from(span),
            TraceFlags::SAMPLED,
            remote,
            state.parse::<TraceState>().unwrap(),
        )
    }

    /// Spans with every kind of field a span can have.
    fn spans() -> Vec<SpanRecord> {
        let at = UNIX_EPOCH + Duration::from_nanos(1_765_000_000_123_456_789);
        let root = SpanRecord {
            span_context: context(
                0x4bf92f3577b34da6a3ce929d0e0e4736,
                0x00f067aa0ba902b7,
                false,
                "",
            ),
            parent_span_id: SpanId::from(0xb7ad6b7169203331),
            parent_span_is_remote: true,
            kind: SpanKind::Server,
            name: Cow::Borrowed("POST /cart/{user_id}/checkout"),
            start_time: at,
            end_time: at + Duration::from_micros(1234),
            attributes: vec![
                KeyValue::new("http.route", "/cart/{user_id}/checkout"),
                KeyValue::new("http.response.status_code", 201_i64),
                KeyValue::new("negative", -7_i64),
                KeyValue::new("zero", 0_i64),
                KeyValue::new("empty", ""),
                KeyValue::new("ok", false),
                KeyValue::new("ratio", 0.25_f64),
                KeyValue::new(
                    "a.strings",
                    Value::Array(Array::String(vec!["x".into(), "".into()])),
                ),
                KeyValue::new("a.ints", Value::Array(Array::I64(vec![1, -2]))),
                KeyValue::new("a.bools", Value::Array(Array::Bool(vec![true, false]))),
                KeyValue::new("a.floats", Value::Array(Array::F64(vec![1.5]))),
                KeyValue::new("long", "é".repeat(200)),
            ],
            dropped_attributes_count: 3,
            events: vec![Event::new(
                "retry",
                at + Duration::from_micros(5),
                vec![KeyValue::new("retry.attempt", 1_i64)],
                2,
            )],
            dropped_events_count: 1,
            links: vec![Link::new(
                context(7, 9, true, "vendor=x,other=y"),
                vec![KeyValue::new("link.kind", "cause")],
                4,
            )],
            dropped_links_count: 5,
            status: Status::error("payment_declined"),
        };
        let child = SpanRecord {
            span_context: context(0x4bf92f3577b34da6a3ce929d0e0e4736, 2, false, "k=v"),
            parent_span_id: SpanId::from(0x00f067aa0ba902b7),
            parent_span_is_remote: false,
            kind: SpanKind::Client,
            name: Cow::Owned("SELECT orders".into()),
            start_time: at,
            end_time: at,
            attributes: vec![],
            dropped_attributes_count: 0,
            events: vec![],
            dropped_events_count: 0,
            links: vec![],
            dropped_links_count: 0,
            status: Status::Ok,
        };
        let orphan = SpanRecord {
            span_context: context(1, 3, false, ""),
            parent_span_id: SpanId::INVALID,
            kind: SpanKind::Consumer,
            name: Cow::Borrowed(""),
            start_time: UNIX_EPOCH,
            end_time: at,
            status: Status::Unset,
            ..child.clone()
        };
        let mut kinds = Vec::new();
        for kind in [SpanKind::Internal, SpanKind::Producer] {
            kinds.push(SpanRecord {
                kind,
                ..orphan.clone()
            });
        }
        [vec![root, child, orphan], kinds].concat()
    }

    fn resource() -> Resource {
        Resource::builder_empty()
            .with_service_name("cart")
            .with_attributes([
                KeyValue::new("deployment.environment.name", "test"),
                KeyValue::new("host.cpus", 2_i64),
            ])
            .with_schema_url([], "https://opentelemetry.io/schemas/1.30.0")
            .build()
    }

    fn scopes() -> [InstrumentationScope; 2] {
        [
            InstrumentationScope::builder("cart").build(),
            InstrumentationScope::builder("sqlx")
                .with_version("0.8")
                .with_schema_url("https://opentelemetry.io/schemas/1.30.0")
                .with_attributes([KeyValue::new("lib.flag", true)])
                .build(),
        ]
    }

    /// What `opentelemetry-otlp` would send for these spans.
    fn reference(
        spans: &[SpanRecord],
        scope: &InstrumentationScope,
        resource: &Resource,
    ) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(
                spans.iter().map(|s| to_span_data(s, scope)).collect(),
                &ResourceAttributesWithSchema::from(resource),
            ),
        }
    }

    /// What we send for these spans.
    fn ours(spans: &[SpanRecord], scope: &InstrumentationScope, resource: &Resource) -> Vec<u8> {
        let mut out = Vec::new();
        encode_request(
            spans,
            &EncodedScope::new(scope),
            &EncodedResource::new(resource),
            &mut out,
        );
        out
    }

    #[test]
    fn decodes_to_what_the_reference_conversion_gives() {
        for resource in [resource(), Resource::builder_empty().build()] {
            for scope in scopes() {
                let spans = spans();
                let ours = ours(&spans, &scope, &resource);
                let decoded = ExportTraceServiceRequest::decode(ours.as_slice()).unwrap();
                assert_eq!(decoded, reference(&spans, &scope, &resource));
            }
        }
    }

    #[test]
    fn the_bytes_are_the_canonical_encoding() {
        // prost writes fields in field order, as we do: the bytes match.
        let resource = resource();
        for scope in scopes() {
            let spans = spans();
            let ours = ours(&spans, &scope, &resource);
            assert_eq!(ours, reference(&spans, &scope, &resource).encode_to_vec());
        }
    }

    #[test]
    fn an_empty_batch_is_an_empty_request() {
        let mut out = Vec::new();
        let scope = EncodedScope::new(&scopes()[0]);
        encode_request(&[], &scope, &EncodedResource::new(&resource()), &mut out);
        assert!(out.is_empty());
        assert_eq!(
            ExportTraceServiceRequest::decode(out.as_slice()).unwrap(),
            ExportTraceServiceRequest::default()
        );
    }
}

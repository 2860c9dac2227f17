//! OTLP's protobuf encoding of a batch of finished spans, written straight
//! from the SDK's [`SpanData`] into one buffer.
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
//! and require exactly what that crate's own conversion gives.

use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanId, SpanKind, Status};
use opentelemetry::{Array, InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_sdk::trace::SpanData;
use opentelemetry_sdk::Resource;

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
/// once when the resource is set: they are the same in every batch.
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

/// Appends an `ExportTraceServiceRequest` holding `spans` to `buf`: one
/// `ResourceSpans`, one `ScopeSpans` per instrumentation scope (in the
/// order first seen), the spans in their order.
pub fn encode_request(spans: &[SpanData], resource: &EncodedResource, buf: &mut Vec<u8>) {
    if spans.is_empty() {
        return;
    }
    // Scopes are few (one per tracer): a linear search beats hashing.
    let mut scopes: Vec<&InstrumentationScope> = Vec::new();
    for span in spans {
        if !scopes.contains(&&span.instrumentation_scope) {
            scopes.push(&span.instrumentation_scope);
        }
    }
    message(buf, 1, |b| {
        b.extend_from_slice(&resource.resource);
        for scope in scopes {
            message(b, 2, |b| {
                message(b, 1, |b| instrumentation_scope(b, scope));
                for span in spans.iter().filter(|s| &s.instrumentation_scope == scope) {
                    message(b, 2, |b| encode_span(b, span));
                }
                string(b, 3, scope.schema_url().unwrap_or(""));
            });
        }
        b.extend_from_slice(&resource.schema_url);
    });
}

fn instrumentation_scope(b: &mut Vec<u8>, scope: &InstrumentationScope) {
    string(b, 1, scope.name());
    string(b, 2, scope.version().unwrap_or(""));
    attributes(b, 3, scope.attributes());
}

fn encode_span(b: &mut Vec<u8>, span: &SpanData) {
    let cx = &span.span_context;
    bytes(b, 1, &cx.trace_id().to_bytes());
    bytes(b, 2, &cx.span_id().to_bytes());
    string(b, 3, &cx.trace_state().header());
    if span.parent_span_id != SpanId::INVALID {
        bytes(b, 4, &span.parent_span_id.to_bytes());
    }
    string(b, 5, &span.name);
    uint(b, 6, span_kind(&span.span_kind));
    fixed64(b, 7, nanos(span.start_time));
    fixed64(b, 8, nanos(span.end_time));
    attributes(b, 9, &span.attributes);
    uint(b, 10, span.dropped_attributes_count.into());
    for event in span.events.iter() {
        message(b, 11, |b| {
            fixed64(b, 1, nanos(event.timestamp));
            string(b, 2, &event.name);
            attributes(b, 3, &event.attributes);
            uint(b, 4, event.dropped_attributes_count.into());
        });
    }
    uint(b, 12, span.events.dropped_count.into());
    for link in span.links.iter() {
        let lcx = &link.span_context;
        message(b, 13, |b| {
            bytes(b, 1, &lcx.trace_id().to_bytes());
            bytes(b, 2, &lcx.span_id().to_bytes());
            string(b, 3, &lcx.trace_state().header());
            attributes(b, 4, &link.attributes);
            uint(b, 5, link.dropped_attributes_count.into());
            fixed32(b, 6, flags(lcx.is_remote(), lcx.trace_flags().to_u8()));
        });
    }
    uint(b, 14, span.links.dropped_count.into());
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

fn flags(parent_is_remote: bool, trace_flags: u8) -> u32 {
    let remote = if parent_is_remote {
        CONTEXT_IS_REMOTE
    } else {
        0
    };
    u32::from(trace_flags) | CONTEXT_HAS_IS_REMOTE | remote
}

fn span_kind(kind: &SpanKind) -> u64 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn attributes<'a>(b: &mut Vec<u8>, field: u32, kvs: impl IntoIterator<Item = &'a KeyValue>) {
    for kv in kvs {
        message(b, field, |b| key_value(b, kv.key.as_str(), &kv.value));
    }
}

/// A `KeyValue`'s fields; its value is always present.
fn key_value(b: &mut Vec<u8>, key: &str, value: &Value) {
    string(b, 1, key);
    message(b, 2, |b| any_value(b, value));
}

/// An `AnyValue`'s fields. Its variants are a `oneof`, written even when
/// they hold the default (an empty string, `false`, `0`).
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

fn tag(b: &mut Vec<u8>, field: u32, wire: u8) {
    varint(b, u64::from(field << 3 | u32::from(wire)));
}

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
fn uint(b: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        tag(b, field, VARINT);
        varint(b, v);
    }
}

fn fixed64(b: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        tag(b, field, FIXED64);
        b.extend_from_slice(&v.to_le_bytes());
    }
}

fn fixed32(b: &mut Vec<u8>, field: u32, v: u32) {
    if v != 0 {
        tag(b, field, FIXED32);
        b.extend_from_slice(&v.to_le_bytes());
    }
}

fn bytes(b: &mut Vec<u8>, field: u32, v: &[u8]) {
    if !v.is_empty() {
        string_always_bytes(b, field, v);
    }
}

fn string(b: &mut Vec<u8>, field: u32, v: &str) {
    bytes(b, field, v.as_bytes());
}

fn string_always(b: &mut Vec<u8>, field: u32, v: &str) {
    string_always_bytes(b, field, v.as_bytes());
}

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
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
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

    /// Spans with every kind of field the SDK can hand over.
    fn spans() -> Vec<SpanData> {
        let at = UNIX_EPOCH + Duration::from_nanos(1_765_000_000_123_456_789);
        let server = InstrumentationScope::builder("cart").build();
        let library = InstrumentationScope::builder("sqlx")
            .with_version("0.8")
            .with_schema_url("https://opentelemetry.io/schemas/1.30.0")
            .with_attributes([KeyValue::new("lib.flag", true)])
            .build();
        // Both are `#[non_exhaustive]`: filled in through their fields.
        let mut events = SpanEvents::default();
        events.events.push(Event::new(
            "retry",
            at + Duration::from_micros(5),
            vec![KeyValue::new("retry.attempt", 1_i64)],
            2,
        ));
        events.dropped_count = 1;
        let mut links = SpanLinks::default();
        links.links.push(Link::new(
            context(7, 9, true, "vendor=x,other=y"),
            vec![KeyValue::new("link.kind", "cause")],
            4,
        ));
        links.dropped_count = 5;
        let root = SpanData {
            span_context: context(
                0x4bf92f3577b34da6a3ce929d0e0e4736,
                0x00f067aa0ba902b7,
                false,
                "",
            ),
            parent_span_id: SpanId::from(0xb7ad6b7169203331),
            parent_span_is_remote: true,
            span_kind: SpanKind::Server,
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
            events,
            links,
            status: Status::error("payment_declined"),
            instrumentation_scope: server.clone(),
        };
        let child = SpanData {
            span_context: context(0x4bf92f3577b34da6a3ce929d0e0e4736, 2, false, "k=v"),
            parent_span_id: SpanId::from(0x00f067aa0ba902b7),
            parent_span_is_remote: false,
            span_kind: SpanKind::Client,
            name: Cow::Owned("SELECT orders".into()),
            start_time: at,
            end_time: at,
            attributes: vec![],
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Ok,
            instrumentation_scope: library,
        };
        let orphan = SpanData {
            span_context: context(1, 3, false, ""),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Consumer,
            name: Cow::Borrowed(""),
            start_time: UNIX_EPOCH,
            end_time: at,
            status: Status::Unset,
            instrumentation_scope: server,
            ..child.clone()
        };
        let mut kinds = Vec::new();
        for kind in [SpanKind::Internal, SpanKind::Producer] {
            kinds.push(SpanData {
                span_kind: kind,
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

    fn by_scope(mut req: ExportTraceServiceRequest) -> ExportTraceServiceRequest {
        for rs in &mut req.resource_spans {
            rs.scope_spans.sort_by(|a, b| {
                a.scope
                    .as_ref()
                    .map(|s| &s.name)
                    .cmp(&b.scope.as_ref().map(|s| &s.name))
            });
        }
        req
    }

    #[test]
    fn decodes_to_what_the_reference_conversion_gives() {
        for resource in [resource(), Resource::builder_empty().build()] {
            let spans = spans();
            let mut ours = Vec::new();
            encode_request(&spans, &EncodedResource::new(&resource), &mut ours);
            let decoded = ExportTraceServiceRequest::decode(ours.as_slice()).unwrap();
            let reference = ExportTraceServiceRequest {
                resource_spans: group_spans_by_resource_and_scope(
                    spans,
                    &ResourceAttributesWithSchema::from(&resource),
                ),
            };
            assert_eq!(by_scope(decoded), by_scope(reference));
        }
    }

    #[test]
    fn the_bytes_are_the_canonical_encoding() {
        // One scope, so the reference's grouping has a single order, and
        // prost writes fields in field order as we do: the bytes match.
        let spans: Vec<SpanData> = spans()
            .into_iter()
            .filter(|s| s.instrumentation_scope.name() == "cart")
            .collect();
        let resource = resource();
        let mut ours = Vec::new();
        encode_request(&spans, &EncodedResource::new(&resource), &mut ours);
        let reference = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(
                spans,
                &ResourceAttributesWithSchema::from(&resource),
            ),
        };
        assert_eq!(ours, reference.encode_to_vec());
    }

    #[test]
    fn an_empty_batch_is_an_empty_request() {
        let mut out = Vec::new();
        encode_request(&[], &EncodedResource::new(&resource()), &mut out);
        assert!(out.is_empty());
        assert_eq!(
            ExportTraceServiceRequest::decode(out.as_slice()).unwrap(),
            ExportTraceServiceRequest::default()
        );
    }
}

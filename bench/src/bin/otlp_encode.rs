//! What turning finished spans into an OTLP/protobuf body costs, two ways,
//! on batches like a traced product read's (a server span and its
//! database span, the attributes our services set):
//!
//! - `reference`: what `opentelemetry-otlp` 0.31 does in its HTTP exporter
//!   (`opentelemetry-proto`'s `group_spans_by_resource_and_scope`, then
//!   prost's `encode_to_vec`);
//! - `ours`: `common::telemetry`'s direct encoder, from our `SpanRecord`s
//!   (the reference is handed the same spans as the SDK's `SpanData`).
//!
//! Usage: `otlp_encode [both|reference|ours] [ROUNDS]` (default `both 20`).
//! Each round encodes 100 batches of 512 spans each way (interleaved, the
//! order alternating) and prints nanoseconds per span; under
//! `valgrind --tool=callgrind`, run one way at a time and divide the total
//! by the spans it prints. Both ways are handed owned batches and drop them,
//! as the batch processor hands the exporter its `Vec`.

use std::borrow::Cow;
use std::time::{Duration, Instant, SystemTime};

use common::telemetry::{encode_request, to_span_data, EncodedResource, EncodedScope, SpanRecord};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::trace::SpanData;
use opentelemetry_sdk::Resource;
use prost::Message;

const BATCH: usize = 512;
const BATCHES_PER_ROUND: usize = 100;

fn batch() -> Vec<SpanRecord> {
    let now = SystemTime::now();
    let mut spans = Vec::with_capacity(BATCH);
    for i in 0..BATCH as u64 / 2 {
        let trace = TraceId::from(0x4bf92f3577b34da6a3ce929d0e0e4736_u128 + u128::from(i));
        let cx = |span: u64| {
            SpanContext::new(
                trace,
                SpanId::from(span),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            )
        };
        let server = SpanRecord {
            span_context: cx(2 * i + 1),
            parent_span_id: SpanId::from(0xb7ad6b7169203331),
            parent_span_is_remote: true,
            kind: SpanKind::Server,
            name: Cow::Owned("GET /product/{id}".into()),
            start_time: now,
            end_time: now + Duration::from_micros(180),
            attributes: vec![
                KeyValue::new("http.request.method", "GET"),
                KeyValue::new("http.route", "/product/{id}"),
                KeyValue::new("http.response.status_code", 200_i64),
            ],
            dropped_attributes_count: 0,
            events: Vec::new(),
            dropped_events_count: 0,
            links: Vec::new(),
            dropped_links_count: 0,
            status: Status::Unset,
        };
        let db = SpanRecord {
            span_context: cx(2 * i + 2),
            parent_span_id: SpanId::from(2 * i + 1),
            parent_span_is_remote: false,
            kind: SpanKind::Client,
            name: Cow::Owned("SELECT products".into()),
            start_time: now + Duration::from_micros(20),
            end_time: now + Duration::from_micros(120),
            attributes: vec![
                KeyValue::new("db.operation.name", "SELECT"),
                KeyValue::new("db.collection.name", "products"),
            ],
            ..server.clone()
        };
        spans.push(server);
        spans.push(db);
    }
    spans
}

fn reference(spans: Vec<SpanData>, resource: &ResourceAttributesWithSchema) -> usize {
    let resource_spans = group_spans_by_resource_and_scope(spans, resource);
    ExportTraceServiceRequest { resource_spans }
        .encode_to_vec()
        .len()
}

fn ours(spans: Vec<SpanRecord>, scope: &EncodedScope, resource: &EncodedResource) -> usize {
    let mut body = Vec::with_capacity(64 * 1024);
    encode_request(&spans, scope, resource, &mut body);
    drop(spans);
    body.len()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "both".into());
    let rounds: usize = args.next().map_or(20, |r| r.parse().expect("ROUNDS"));
    let resource = Resource::builder_empty()
        .with_service_name("products")
        .build();
    let (ref_resource, our_resource) = (
        ResourceAttributesWithSchema::from(&resource),
        EncodedResource::new(&resource),
    );
    let scope = InstrumentationScope::builder("products").build();
    let our_scope = EncodedScope::new(&scope);
    let template = batch();
    let template_data: Vec<SpanData> = template.iter().map(|r| to_span_data(r, &scope)).collect();
    let ways: &[&str] = match which.as_str() {
        "both" => &["reference", "ours"],
        "reference" => &["reference"],
        "ours" => &["ours"],
        other => panic!("unknown way {other}"),
    };
    let mut ns: Vec<(&str, Vec<f64>)> = ways.iter().map(|w| (*w, Vec::new())).collect();
    let mut sizes = vec![0; ways.len()];
    for round in 0..rounds {
        for k in 0..ways.len() {
            let k = if round % 2 == 0 {
                k
            } else {
                ways.len() - 1 - k
            };
            let began;
            if ns[k].0 == "reference" {
                let batches: Vec<Vec<SpanData>> = (0..BATCHES_PER_ROUND)
                    .map(|_| template_data.clone())
                    .collect();
                began = Instant::now();
                for b in batches {
                    sizes[k] = reference(b, &ref_resource);
                }
            } else {
                let batches: Vec<Vec<SpanRecord>> =
                    (0..BATCHES_PER_ROUND).map(|_| template.clone()).collect();
                began = Instant::now();
                for b in batches {
                    sizes[k] = ours(b, &our_scope, &our_resource);
                }
            }
            let per_span = began.elapsed().as_nanos() as f64 / (BATCHES_PER_ROUND * BATCH) as f64;
            ns[k].1.push(per_span);
        }
    }
    println!(
        "spans encoded per way: {}",
        rounds * BATCHES_PER_ROUND * BATCH
    );
    for (k, (way, mut v)) in ns.into_iter().enumerate() {
        v.sort_by(f64::total_cmp);
        println!(
            "{way}: median {:.0} ns/span (min {:.0}, max {:.0}), {} bytes a batch",
            v[v.len() / 2],
            v[0],
            v[v.len() - 1],
            sizes[k]
        );
    }
}

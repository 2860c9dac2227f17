//! Our spans: started with the SDK's sampler and id generator, recorded
//! into a plain struct, and encoded to OTLP's protobuf on the thread that
//! ends them, straight into the export queue ([`super::export_queue`]).
//!
//! Why not the SDK's `SdkTracer` spans and `BatchSpanProcessor`: with 100 %
//! sampling they cost a product read +7 600 instructions (+27 %) and +24 %
//! CPU at 1 000 req/s (`bench/tracing.md`, Round 3): a `SpanBuilder` and a
//! tracer clone per span, a lock per attribute, `SpanData` built, sent over
//! a channel, freed on another thread and converted there. This keeps what
//! the SDK decides — which spans are sampled (`OTEL_TRACES_SAMPLER`), their
//! ids, the limits (`OTEL_SPAN_*_COUNT_LIMIT`), the resource — and does
//! what is left with one struct and one encoding per span. Round 4 of
//! `bench/tracing.md` has what it saved.
//!
//! Semantics kept from the SDK's tracer: a child takes its parent's trace
//! id and flags; the sampler's `Drop` gives a span that records nothing
//! but has ids (they still go into `traceparent` and log lines);
//! `RecordOnly` records without exporting; a span dropped unended is ended
//! then; attributes, events and links past the limits are counted as
//! dropped. One difference: the sampler is asked before the span's
//! attributes are built (with none), so that an unsampled span never
//! builds them. The samplers one can configure (`OTEL_TRACES_SAMPLER`)
//! never read them.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::SystemTime;

use opentelemetry::trace::{
    Event, Link, SamplingDecision, SpanContext, SpanId, SpanKind, Status, TraceContextExt,
    TraceFlags,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{Config, IdGenerator, ShouldSample, SpanLimits};

use super::export_queue::ExportQueue;
use super::otlp_wire;

/// A finished span's fields, as OTLP's `Span` message has them.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanRecord {
    pub span_context: SpanContext,
    pub parent_span_id: SpanId,
    pub parent_span_is_remote: bool,
    pub kind: SpanKind,
    pub name: Cow<'static, str>,
    pub start_time: SystemTime,
    pub end_time: SystemTime,
    pub attributes: Vec<KeyValue>,
    pub dropped_attributes_count: u32,
    pub events: Vec<Event>,
    pub dropped_events_count: u32,
    pub links: Vec<Link>,
    pub dropped_links_count: u32,
    pub status: Status,
}

/// Starts spans; one per process, set up by `telemetry::init`.
pub(super) struct Recorder {
    sampler: Box<dyn ShouldSample>,
    ids: Box<dyn IdGenerator>,
    limits: SpanLimits,
    queue: Arc<ExportQueue>,
}

impl Recorder {
    /// The sampler, ids and limits the environment asks for (the SDK's
    /// `Config::default()` reads `OTEL_TRACES_SAMPLER(_ARG)` and
    /// `OTEL_SPAN_*_COUNT_LIMIT`).
    pub(super) fn new(config: Config, queue: Arc<ExportQueue>) -> Self {
        Self {
            sampler: config.sampler,
            ids: config.id_generator,
            limits: config.span_limits,
            queue,
        }
    }

    /// A span child of `parent`'s span (or the root of a new trace), with
    /// the attributes `attrs` builds, only called if the span records.
    pub(super) fn start(
        &'static self,
        parent: &Context,
        name: Cow<'static, str>,
        kind: SpanKind,
        attrs: impl FnOnce() -> Vec<KeyValue>,
        links: Vec<Link>,
    ) -> RecordedSpan {
        let parent_span = parent.span();
        let psc = parent_span.span_context();
        let (trace_id, parent_flags) = if psc.is_valid() {
            (psc.trace_id(), psc.trace_flags())
        } else {
            (self.ids.new_trace_id(), TraceFlags::default())
        };
        let span_id = self.ids.new_span_id();
        let sampling =
            self.sampler
                .should_sample(Some(parent), trace_id, &name, &kind, &[], &links);
        let sampled = match sampling.decision {
            SamplingDecision::Drop => {
                let sc = SpanContext::new(
                    trace_id,
                    span_id,
                    TraceFlags::default(),
                    false,
                    sampling.trace_state,
                );
                return RecordedSpan {
                    span_context: sc,
                    record: None,
                    recorder: self,
                };
            }
            SamplingDecision::RecordOnly => false,
            SamplingDecision::RecordAndSample => true,
        };
        let span_context = SpanContext::new(
            trace_id,
            span_id,
            parent_flags.with_sampled(sampled),
            false,
            sampling.trace_state,
        );
        let mut attributes = attrs();
        attributes.extend(sampling.attributes);
        let dropped_attributes_count =
            truncate(&mut attributes, self.limits.max_attributes_per_span);
        let mut links = links;
        let dropped_links_count = truncate(&mut links, self.limits.max_links_per_span);
        for link in &mut links {
            link.dropped_attributes_count =
                truncate(&mut link.attributes, self.limits.max_attributes_per_link);
        }
        let start_time = opentelemetry::time::now();
        RecordedSpan {
            record: Some(Box::new(SpanRecord {
                parent_span_id: if psc.is_valid() {
                    psc.span_id()
                } else {
                    SpanId::INVALID
                },
                parent_span_is_remote: psc.is_valid() && psc.is_remote(),
                span_context: span_context.clone(),
                kind,
                name,
                start_time,
                end_time: start_time,
                attributes,
                dropped_attributes_count,
                events: Vec::new(),
                dropped_events_count: 0,
                links,
                dropped_links_count,
                status: Status::Unset,
            })),
            span_context,
            recorder: self,
        }
    }

    /// Where ended spans go (for shutdown and its count of drops).
    pub(super) fn queue(&self) -> &ExportQueue {
        &self.queue
    }

    fn finish(&self, record: &SpanRecord) {
        if !record.span_context.is_sampled() {
            return; // RecordOnly: recorded, never exported.
        }
        self.queue
            .push_with(|buf| otlp_wire::span_message(buf, record));
    }
}

/// Cuts `items` to `limit`; how many were cut.
fn truncate<T>(items: &mut Vec<T>, limit: u32) -> u32 {
    let limit = limit as usize;
    let dropped = items.len().saturating_sub(limit);
    items.truncate(limit);
    dropped as u32
}

/// A span as the API sees it (`Context::with_span` holds it).
pub(super) struct RecordedSpan {
    span_context: SpanContext,
    /// `None` for a span the sampler dropped, and once ended. Boxed: the
    /// span is moved several times on its way into a `Context` (and the
    /// record out of it at the end); a pointer is cheaper to move than
    /// 280 bytes.
    record: Option<Box<SpanRecord>>,
    recorder: &'static Recorder,
}

impl RecordedSpan {
    fn limits(&self) -> &SpanLimits {
        &self.recorder.limits
    }
}

impl opentelemetry::trace::Span for RecordedSpan {
    fn add_event_with_timestamp<T>(
        &mut self,
        name: T,
        timestamp: SystemTime,
        mut attributes: Vec<KeyValue>,
    ) where
        T: Into<Cow<'static, str>>,
    {
        let (max_events, max_attrs) = (
            self.limits().max_events_per_span as usize,
            self.limits().max_attributes_per_event,
        );
        if let Some(r) = &mut self.record {
            if r.events.len() < max_events {
                let dropped = truncate(&mut attributes, max_attrs);
                r.events
                    .push(Event::new(name, timestamp, attributes, dropped));
            } else {
                r.dropped_events_count += 1;
            }
        }
    }

    fn span_context(&self) -> &SpanContext {
        &self.span_context
    }

    fn is_recording(&self) -> bool {
        self.record.is_some()
    }

    fn set_attribute(&mut self, attribute: KeyValue) {
        let max = self.limits().max_attributes_per_span as usize;
        if let Some(r) = &mut self.record {
            if r.attributes.len() < max {
                r.attributes.push(attribute);
            } else {
                r.dropped_attributes_count += 1;
            }
        }
    }

    fn set_status(&mut self, status: Status) {
        if let Some(r) = &mut self.record {
            // Ok > Error > Unset, as the SDK orders them.
            if status > r.status {
                r.status = status;
            }
        }
    }

    fn update_name<T>(&mut self, new_name: T)
    where
        T: Into<Cow<'static, str>>,
    {
        if let Some(r) = &mut self.record {
            r.name = new_name.into();
        }
    }

    fn add_link(&mut self, span_context: SpanContext, mut attributes: Vec<KeyValue>) {
        let (max_links, max_attrs) = (
            self.limits().max_links_per_span as usize,
            self.limits().max_attributes_per_link,
        );
        if let Some(r) = &mut self.record {
            if r.links.len() < max_links {
                let dropped = truncate(&mut attributes, max_attrs);
                r.links.push(Link::new(span_context, attributes, dropped));
            } else {
                r.dropped_links_count += 1;
            }
        }
    }

    fn end_with_timestamp(&mut self, timestamp: SystemTime) {
        if let Some(mut r) = self.record.take() {
            r.end_time = timestamp;
            self.recorder.finish(&r);
        }
    }
}

impl Drop for RecordedSpan {
    /// A span dropped unended (its future cancelled) is ended now, as the
    /// SDK's are.
    fn drop(&mut self) {
        use opentelemetry::trace::Span as _;
        if self.record.is_some() {
            self.end();
        }
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SamplingResult, Span as _, TraceId, TraceState};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::Span as ProtoSpan;
    use opentelemetry_sdk::trace::Sampler;
    use prost::Message;

    use super::super::export_queue::BatchConfig;
    use super::super::otlp_wire::{request, EncodedResource, EncodedScope};
    use super::*;

    fn recorder(sampler: impl ShouldSample + 'static, limits: SpanLimits) -> &'static Recorder {
        let mut config = Config::default();
        config.sampler = Box::new(sampler);
        config.span_limits = limits;
        let queue = Arc::new(ExportQueue::new(BatchConfig::default()));
        Box::leak(Box::new(Recorder::new(config, queue)))
    }

    /// What the recorder queued, as a collector decodes it.
    fn exported(recorder: &Recorder) -> Vec<ProtoSpan> {
        let mut spans = Vec::new();
        recorder.queue.shut_down();
        recorder.queue.run(|batch| {
            let mut body = Vec::new();
            let scope =
                EncodedScope::new(&opentelemetry::InstrumentationScope::builder("test").build());
            request(&EncodedResource::default(), &scope, batch, &mut body);
            let req = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
            for rs in req.resource_spans {
                for ss in rs.scope_spans {
                    spans.extend(ss.spans);
                }
            }
        });
        spans
    }

    fn attrs<'a>(list: &'a [(&'static str, &'static str)]) -> impl FnOnce() -> Vec<KeyValue> + 'a {
        move || list.iter().map(|(k, v)| KeyValue::new(*k, *v)).collect()
    }

    #[test]
    fn children_join_their_parents_trace_and_every_field_is_exported() {
        let rec = recorder(
            Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
            SpanLimits::default(),
        );
        let root_span = rec.start(
            &Context::new(),
            "GET /product/{id}".into(),
            SpanKind::Server,
            attrs(&[("http.route", "/product/{id}")]),
            Vec::new(),
        );
        let root = Context::new().with_span(root_span);
        let root_sc = root.span().span_context().clone();
        assert!(root_sc.is_valid() && root_sc.is_sampled() && root.span().is_recording());
        let cause = SpanContext::new(
            TraceId::from(7),
            SpanId::from(9),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        let mut child = rec.start(
            &root,
            "SELECT products".into(),
            SpanKind::Client,
            attrs(&[("db.operation.name", "SELECT")]),
            vec![Link::with_context(cause.clone())],
        );
        assert_eq!(child.span_context().trace_id(), root_sc.trace_id());
        child.add_event("retry", vec![KeyValue::new("retry.attempt", 1_i64)]);
        child.set_status(Status::error("busy"));
        child.set_status(Status::Unset); // lower: ignored
        child.end();
        child.set_attribute(KeyValue::new("late", "ignored")); // after end
        root.span().update_name("GET /product/{id} renamed");
        root.span()
            .set_attribute(KeyValue::new("http.response.status_code", 200_i64));
        root.span().end();

        // A remote parent (a `traceparent` that came in).
        let remote = crate::telemetry::context_from_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        );
        let mut from_remote = rec.start(
            &remote,
            "POST /log".into(),
            SpanKind::Server,
            Vec::new,
            Vec::new(),
        );
        from_remote.end();

        let spans = exported(rec);
        assert_eq!(spans.len(), 3, "{spans:?}");
        let (db, server, remote_child) = (&spans[0], &spans[1], &spans[2]);
        assert_eq!(db.name, "SELECT products");
        assert_eq!(db.trace_id, root_sc.trace_id().to_bytes());
        assert_eq!(db.parent_span_id, root_sc.span_id().to_bytes());
        assert_eq!(db.kind, 3);
        assert_eq!(db.events.len(), 1);
        assert_eq!(db.events[0].name, "retry");
        assert_eq!(db.links.len(), 1);
        assert_eq!(db.links[0].span_id, cause.span_id().to_bytes());
        let status = db.status.as_ref().unwrap();
        assert_eq!((status.code, status.message.as_str()), (2, "busy"));
        assert_eq!(db.attributes.len(), 1, "nothing is added after the end");
        assert!(db.end_time_unix_nano >= db.start_time_unix_nano);
        assert_eq!(db.flags & 0x300, 0x100, "a local parent");

        assert_eq!(server.name, "GET /product/{id} renamed");
        assert!(server.parent_span_id.is_empty(), "a root");
        assert_eq!(server.span_id, root_sc.span_id().to_bytes());
        let keys: Vec<&str> = server.attributes.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(keys, ["http.route", "http.response.status_code"]);
        assert_eq!(server.flags & 0xff, 1, "sampled");

        assert_eq!(
            TraceId::from_bytes(remote_child.trace_id.clone().try_into().unwrap()).to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(remote_child.flags & 0x300, 0x300, "a remote parent");
    }

    #[test]
    fn what_the_sampler_drops_has_ids_but_records_and_exports_nothing() {
        let rec = recorder(
            Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
            SpanLimits::default(),
        );
        // The caller's trace was not sampled: neither is its child.
        let unsampled = crate::telemetry::context_from_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
        );
        let built = std::cell::Cell::new(false);
        let mut span = rec.start(
            &unsampled,
            "GET /".into(),
            SpanKind::Server,
            || {
                built.set(true);
                Vec::new()
            },
            Vec::new(),
        );
        assert!(span.span_context().is_valid());
        assert!(!span.span_context().is_sampled());
        assert!(!span.is_recording());
        assert!(!built.get(), "attributes are not built for a dropped span");
        span.set_attribute(KeyValue::new("k", "v"));
        span.end();
        assert!(exported(rec).is_empty());
    }

    /// A sampler that records without sampling.
    #[derive(Debug, Clone)]
    struct RecordOnly;
    impl ShouldSample for RecordOnly {
        fn should_sample(
            &self,
            _: Option<&Context>,
            _: opentelemetry::trace::TraceId,
            _: &str,
            _: &SpanKind,
            _: &[KeyValue],
            _: &[Link],
        ) -> SamplingResult {
            SamplingResult {
                decision: SamplingDecision::RecordOnly,
                attributes: Vec::new(),
                trace_state: TraceState::default(),
            }
        }
    }

    #[test]
    fn record_only_records_but_is_not_exported() {
        let rec = recorder(RecordOnly, SpanLimits::default());
        let mut span = rec.start(
            &Context::new(),
            "x".into(),
            SpanKind::Internal,
            Vec::new,
            Vec::new(),
        );
        assert!(span.is_recording() && !span.span_context().is_sampled());
        span.end();
        assert!(exported(rec).is_empty());
    }

    #[test]
    fn limits_count_what_they_drop_and_a_dropped_span_is_ended() {
        let limits = SpanLimits {
            max_attributes_per_span: 2,
            max_events_per_span: 1,
            max_links_per_span: 1,
            max_attributes_per_event: 1,
            max_attributes_per_link: 1,
        };
        let rec = recorder(Sampler::AlwaysOn, limits);
        let link = |n: u64| {
            Link::new(
                SpanContext::new(
                    TraceId::from(1),
                    SpanId::from(n),
                    TraceFlags::SAMPLED,
                    false,
                    TraceState::default(),
                ),
                vec![KeyValue::new("a", "1"), KeyValue::new("b", "2")],
                0,
            )
        };
        let mut span = rec.start(
            &Context::new(),
            "limited".into(),
            SpanKind::Internal,
            attrs(&[("a", "1"), ("b", "2"), ("c", "3")]),
            vec![link(1), link(2)],
        );
        span.set_attribute(KeyValue::new("d", "4"));
        span.add_event("e1", vec![KeyValue::new("a", "1"), KeyValue::new("b", "2")]);
        span.add_event("e2", Vec::new());
        span.add_link(link(3).span_context, Vec::new());
        drop(span); // never ended: ended now
        let spans = exported(rec);
        assert_eq!(spans.len(), 1);
        let s = &spans[0];
        assert_eq!((s.attributes.len(), s.dropped_attributes_count), (2, 2));
        assert_eq!((s.events.len(), s.dropped_events_count), (1, 1));
        assert_eq!(s.events[0].dropped_attributes_count, 1);
        assert_eq!((s.links.len(), s.dropped_links_count), (1, 2));
        assert_eq!(s.links[0].dropped_attributes_count, 1);
    }
}

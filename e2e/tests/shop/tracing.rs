//! Observability end to end: a shop started with an OTLP endpoint and
//! `LOG_FORMAT=json`. An OTLP/HTTP receiver in this test (decoding with the
//! `opentelemetry-proto` types) collects every span the services export;
//! a checkout and the payment that follows must each be one trace across
//! the services they touch — through the outboxes to the webhook, the mail
//! and the stats event — with sensible parents and no secret in any
//! attribute. The same requests' JSON log lines carry their fields.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{eventually, mails_to, Client, Shop};

/// One exported span, flattened.
#[derive(Clone, Debug)]
struct Span {
    service: String,
    name: String,
    kind: i32,
    trace_id: String,
    span_id: String,
    parent: String,
    start: u64,
    attrs: Vec<(String, String)>,
    /// `(trace_id, span_id)` of each link.
    links: Vec<(String, String)>,
}

impl Span {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn value_text(v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn pairs(kvs: &[KeyValue]) -> Vec<(String, String)> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), value_text(&kv.value)))
        .collect()
}

/// An OTLP/HTTP (protobuf) trace receiver on a loopback port.
struct Receiver {
    addr: SocketAddr,
    spans: Arc<Mutex<Vec<Span>>>,
    /// Every attribute and event of every request, resource included.
    texts: Arc<Mutex<Vec<String>>>,
    stop: tokio_util::sync::CancellationToken,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let texts = Arc::new(Mutex::new(Vec::new()));
        let stop = tokio_util::sync::CancellationToken::new();
        let (s, t, c) = (spans.clone(), texts.clone(), stop.clone());
        tokio::spawn(async move {
            common::server::serve(
                listener,
                common::server::ServerOptions::default(),
                move |req: http::Request<hyper::body::Incoming>, _peer| {
                    let (spans, texts) = (s.clone(), t.clone());
                    async move {
                        let ok = req.uri().path() == "/v1/traces";
                        let body = req.into_body().collect().await.map(|b| b.to_bytes());
                        let status = match body.ok().filter(|_| ok) {
                            Some(bytes) => match ExportTraceServiceRequest::decode(bytes) {
                                Ok(export) => {
                                    record(export, &spans, &texts);
                                    200
                                }
                                Err(_) => 400,
                            },
                            None => 404,
                        };
                        let mut resp = http::Response::new(Full::new(Bytes::new()));
                        *resp.status_mut() = http::StatusCode::from_u16(status).unwrap();
                        resp.headers_mut().insert(
                            http::header::CONTENT_TYPE,
                            http::HeaderValue::from_static("application/x-protobuf"),
                        );
                        resp
                    }
                },
                c.cancelled_owned(),
            )
            .await
        });
        Receiver {
            addr,
            spans,
            texts,
            stop,
        }
    }

    fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn record(export: ExportTraceServiceRequest, spans: &Mutex<Vec<Span>>, texts: &Mutex<Vec<String>>) {
    let mut spans = spans.lock().unwrap();
    let mut texts = texts.lock().unwrap();
    for rs in export.resource_spans {
        let resource = rs
            .resource
            .map(|r| pairs(&r.attributes))
            .unwrap_or_default();
        let service = resource
            .iter()
            .find(|(k, _)| k == "service.name")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        texts.extend(resource.iter().map(|(k, v)| format!("{k}={v}")));
        for ss in rs.scope_spans {
            for s in ss.spans {
                let attrs = pairs(&s.attributes);
                texts.push(s.name.clone());
                texts.extend(attrs.iter().map(|(k, v)| format!("{k}={v}")));
                for e in &s.events {
                    texts.push(e.name.clone());
                    texts.extend(pairs(&e.attributes).iter().map(|(k, v)| format!("{k}={v}")));
                }
                if let Some(status) = &s.status {
                    texts.push(status.message.clone());
                }
                spans.push(Span {
                    service: service.clone(),
                    name: s.name,
                    kind: s.kind,
                    trace_id: hex::encode(&s.trace_id),
                    span_id: hex::encode(&s.span_id),
                    parent: hex::encode(&s.parent_span_id),
                    start: s.start_time_unix_nano,
                    attrs,
                    links: s
                        .links
                        .iter()
                        .map(|l| (hex::encode(&l.trace_id), hex::encode(&l.span_id)))
                        .collect(),
                });
            }
        }
    }
}

/// The spans of `trace`, and whether every expected part is there.
fn trace_of(spans: &[Span], trace: &str) -> Vec<Span> {
    let mut out: Vec<Span> = spans
        .iter()
        .filter(|s| s.trace_id == trace)
        .cloned()
        .collect();
    out.sort_by_key(|s| s.start);
    out
}

/// The trace as an indented tree, for the test's output and failures.
fn tree(spans: &[Span]) -> String {
    let ids: HashSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    let mut children: HashMap<&str, Vec<&Span>> = HashMap::new();
    let mut roots = Vec::new();
    for s in spans {
        if s.parent.is_empty() || !ids.contains(s.parent.as_str()) {
            roots.push(s);
        } else {
            children.entry(s.parent.as_str()).or_default().push(s);
        }
    }
    fn walk(s: &Span, depth: usize, children: &HashMap<&str, Vec<&Span>>, out: &mut String) {
        let kind = match SpanKind::try_from(s.kind) {
            Ok(SpanKind::Server) => "server",
            Ok(SpanKind::Client) => "client",
            Ok(SpanKind::Producer) => "producer",
            Ok(SpanKind::Consumer) => "consumer",
            _ => "internal",
        };
        let status = s
            .attr("http.response.status_code")
            .map(|c| format!(" → {c}"))
            .unwrap_or_default();
        out.push_str(&format!(
            "{}{} {} [{kind}]{status}\n",
            "  ".repeat(depth),
            s.service,
            s.name
        ));
        for c in children.get(s.span_id.as_str()).into_iter().flatten() {
            walk(c, depth + 1, children, out);
        }
    }
    let mut out = String::new();
    for r in roots {
        walk(r, 0, &children, &mut out);
    }
    out
}

/// Checks the parent/child shape of one trace: one root, the balancer's
/// proxy span; every other span's parent is in the trace; a server span
/// is the child of another service's span (a client call or the proxy).
fn check_shape(trace: &[Span]) {
    let by_id: HashMap<&str, &Span> = trace.iter().map(|s| (s.span_id.as_str(), s)).collect();
    let roots: Vec<&Span> = trace.iter().filter(|s| s.parent.is_empty()).collect();
    assert_eq!(roots.len(), 1, "one root:\n{}", tree(trace));
    assert_eq!(roots[0].service, "balancer", "{}", tree(trace));
    assert_eq!(roots[0].kind, SpanKind::Server as i32);
    for s in trace.iter().filter(|s| !s.parent.is_empty()) {
        let parent = by_id.get(s.parent.as_str()).unwrap_or_else(|| {
            panic!("the parent of {} is in the trace:\n{}", s.name, tree(trace))
        });
        if s.kind == SpanKind::Server as i32 {
            assert_ne!(
                parent.service, s.service,
                "{} is called from elsewhere",
                s.name
            );
        }
        if s.kind == SpanKind::Client as i32 && s.name.starts_with("HTTP") {
            panic!("a client span without its final name: {}", s.name);
        }
    }
}

fn services(trace: &[Span]) -> HashSet<&str> {
    trace.iter().map(|s| s.service.as_str()).collect()
}

/// The trace the balancer started for the request with id `rid`.
async fn trace_for(receiver: &Receiver, rid: &str) -> String {
    eventually("the balancer's span", Duration::from_secs(30), || async {
        receiver
            .spans()
            .iter()
            .find(|s| s.service == "balancer" && s.attr("shop.request_id") == Some(rid))
            .map(|s| s.trace_id.clone())
            .ok_or_else(|| format!("{} spans so far", receiver.spans().len()))
    })
    .await
}

/// Waits until `trace` has spans from each of `wanted` (and `also` holds).
async fn wait_for_trace(
    receiver: &Receiver,
    trace: &str,
    what: &str,
    ok: impl Fn(&[Span]) -> bool,
) -> Vec<Span> {
    eventually(what, Duration::from_secs(60), || async {
        let t = trace_of(&receiver.spans(), trace);
        if ok(&t) {
            Ok(t)
        } else {
            Err(tree(&t))
        }
    })
    .await
}

fn has(trace: &[Span], service: &str, name: &str) -> bool {
    trace.iter().any(|s| s.service == service && s.name == name)
}

/// A stats batch write linked to `trace`.
fn linked_write(spans: &[Span], trace: &str) -> bool {
    spans
        .iter()
        .any(|s| s.name == "stats.write_batch" && s.links.iter().any(|(t, _)| t == trace))
}

/// The spans of other traces that link to `trace`, one line each.
fn linked_roots(spans: &[Span], trace: &str) -> String {
    spans
        .iter()
        .filter(|s| s.links.iter().any(|(t, _)| t == trace))
        .map(|s| {
            format!(
                "(linked from trace {}) {} {}\n",
                s.trace_id, s.service, s.name
            )
        })
        .collect()
}

/// One shopper action's trace, found by the request id the balancer put on
/// its span: waits until it spans every one of `wanted` services, holds
/// what `also` asks and has a stats batch write linked to it; prints its
/// tree and checks its shape.
async fn action_trace(
    receiver: &Receiver,
    action: &str,
    rid: &str,
    wanted: &[&str],
    also: impl Fn(&[Span]) -> bool,
) -> (String, Vec<Span>) {
    let trace = trace_for(receiver, rid).await;
    let spans = wait_for_trace(receiver, &trace, &format!("the {action}'s trace"), |t| {
        wanted.iter().all(|s| services(t).contains(s))
            && also(t)
            && linked_write(&receiver.spans(), &trace)
    })
    .await;
    println!(
        "{action} trace {trace}:\n{}{}",
        tree(&spans),
        linked_roots(&receiver.spans(), &trace)
    );
    check_shape(&spans);
    (trace, spans)
}

/// The JSON log lines (launcher prefixes stripped) that parse.
fn json_lines(shop: &Shop) -> Vec<Value> {
    let text = std::fs::read_to_string(&shop.log_path).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.find('{').map(|i| &l[i..]))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[tokio::test]
async fn a_checkout_and_its_payment_are_each_one_trace_and_their_logs_carry_fields() {
    let receiver = Receiver::start().await;
    let shop = Shop::options()
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://{}", receiver.addr),
        )
        .env("OTEL_BSP_SCHEDULE_DELAY", "200")
        .env("LOG_FORMAT", "json")
        .start()
        .await;
    let api = Client::new(shop.url(""));
    let password = "tracing-secret-pw-1";
    let email = crate::support::unique_email("traced");
    api.register(&email, password, "Traced").await.expect(201);
    let session = api.session(&email, password).await;
    let catalog = api.catalog().await;
    let product = catalog[0]["id"].as_str().unwrap().to_string();
    api.add_to_cart(&session, &product, 2).await;

    // The checkout, with an id of our own to find its trace by.
    let checkout_rid = format!("trace-checkout-{}", uuid::Uuid::new_v4().simple());
    let order = api
        .send(
            Method::POST,
            &format!("/user/{}/cart/checkout", session.user_id),
            Some(&session.token),
            None,
            &[("x-request-id", checkout_rid.as_str())],
        )
        .await
        .expect(201)
        .body;
    let invoice = order["invoice_id"].as_str().unwrap().to_string();
    let (t1, checkout) = action_trace(
        &receiver,
        "checkout",
        &checkout_rid,
        &["balancer", "cart", "products", "payments-mock", "stats"],
        |t| has(t, "cart", "outbox.deliver"),
    )
    .await;
    assert!(
        checkout.iter().any(|s| s.service == "cart"
            && s.kind == SpanKind::Server as i32
            && s.attr("http.route") == Some("/user/{uid}/cart/checkout")
            && s.attr("http.response.status_code") == Some("201")),
        "cart's server span names the route pattern and status:\n{}",
        tree(&checkout)
    );
    assert!(
        checkout.iter().any(|s| s.service == "cart"
            && s.attr("db.operation.name") == Some("SELECT")
            && s.attr("db.collection.name") == Some("cart_items")),
        "reading the cart is a database span:\n{}",
        tree(&checkout)
    );

    // The payment: the provider's webhook reaches cart through the
    // outbox, cart's mail and event follow through its own.
    let pay_rid = format!("trace-pay-{}", uuid::Uuid::new_v4().simple());
    let card = "4242 4242 4242 4242";
    api.send(
        Method::POST,
        &format!("/invoices/{invoice}/pay"),
        None,
        Some(&json!({"card_number": card, "exp_month": 12,
                     "exp_year": crate::support::client::future_year(), "cvc": "123"})),
        &[("x-request-id", pay_rid.as_str())],
    )
    .await
    .expect(200);
    let (t2, payment) = action_trace(
        &receiver,
        "payment",
        &pay_rid,
        &["balancer", "payments-mock", "cart", "mailer", "stats"],
        |t| has(t, "payments-mock", "outbox.deliver") && has(t, "mailer", "smtp.send"),
    )
    .await;
    assert_ne!(t1, t2, "the payment is a request of its own");
    // The webhook into cart is a server span under payments' delivery.
    let by_id: HashMap<&str, &Span> = payment.iter().map(|s| (s.span_id.as_str(), s)).collect();
    let webhook = payment
        .iter()
        .find(|s| s.service == "cart" && s.kind == SpanKind::Server as i32)
        .expect("cart's webhook span");
    let mut up = by_id.get(webhook.parent.as_str()).copied();
    let mut via_outbox = false;
    while let Some(s) = up {
        via_outbox |= s.service == "payments-mock" && s.name == "outbox.deliver";
        up = by_id.get(s.parent.as_str()).copied();
    }
    assert!(
        via_outbox,
        "the webhook descends from the outbox delivery:\n{}",
        tree(&payment)
    );
    let arg = payment.iter().any(|s| {
        s.service == "payments-mock" && s.attr("http.route").is_some_and(|r| r.contains("pay"))
    });
    assert!(
        arg,
        "payments' server span names its route:\n{}",
        tree(&payment)
    );

    // No secret in any attribute, event or status of any span.
    let mail = mails_to(&shop.outbox(), &email);
    let body_lines: Vec<String> = mail
        .iter()
        .flat_map(|m| {
            m.body
                .lines()
                .map(str::trim)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter(|l| l.len() >= 12)
        .collect();
    let texts = receiver.texts.lock().unwrap().clone();
    let digits = card.replace(' ', "");
    for text in &texts {
        for secret in [
            password,
            session.token.as_str(),
            card,
            digits.as_str(),
            email.as_str(),
        ] {
            assert!(!text.contains(secret), "a span holds a secret: {text}");
        }
        assert!(!text.contains('@'), "no email address in spans: {text}");
        for line in &body_lines {
            assert!(
                !text.contains(line.as_str()),
                "a span holds the mail body: {text}"
            );
        }
    }

    // The logs of the same requests, as JSON lines with fields.
    let lines = eventually("the access lines", Duration::from_secs(10), || async {
        let lines = json_lines(&shop);
        let access: Vec<Value> = lines
            .into_iter()
            .filter(|l| l["target"] == "access" && l["request_id"] == checkout_rid.as_str())
            .collect();
        let services: HashSet<String> = access
            .iter()
            .filter_map(|l| l["service"].as_str().map(String::from))
            .collect();
        if ["balancer", "cart", "products", "payments-mock"]
            .iter()
            .all(|s| services.contains(*s))
        {
            Ok(access)
        } else {
            Err(format!("{access:?}"))
        }
    })
    .await;
    let cart_line = lines
        .iter()
        .find(|l| l["service"] == "cart")
        .expect("cart's access line");
    assert_eq!(cart_line["method"], "POST", "{cart_line}");
    assert_eq!(
        cart_line["route"], "/user/{uid}/cart/checkout",
        "{cart_line}"
    );
    assert_eq!(cart_line["status"], 201, "{cart_line}");
    assert!(cart_line["duration_ms"].as_f64().is_some(), "{cart_line}");
    assert_eq!(
        cart_line["user_id"],
        session.user_id.as_str(),
        "{cart_line}"
    );
    assert_eq!(cart_line["trace_id"], t1.as_str(), "{cart_line}");
    assert_eq!(
        cart_line["span_id"].as_str().map(str::len),
        Some(16),
        "{cart_line}"
    );
    let balancer_line = lines.iter().find(|l| l["service"] == "balancer").unwrap();
    assert_eq!(balancer_line["trace_id"], t1.as_str(), "{balancer_line}");
    assert_eq!(balancer_line["status"], 201, "{balancer_line}");

    // A failed request's lines say what kind of error it was.
    let missing_rid = format!("trace-missing-{}", uuid::Uuid::new_v4().simple());
    api.send(
        Method::GET,
        &format!("/user/{}/orders/{}", session.user_id, uuid::Uuid::new_v4()),
        Some(&session.token),
        None,
        &[("x-request-id", missing_rid.as_str())],
    )
    .await
    .expect(404);
    let line = eventually("the 404's access line", Duration::from_secs(10), || async {
        json_lines(&shop)
            .into_iter()
            .find(|l| {
                l["service"] == "cart"
                    && l["target"] == "access"
                    && l["request_id"] == missing_rid.as_str()
            })
            .ok_or_else(|| "not yet".to_string())
    })
    .await;
    assert_eq!(line["error.kind"], "not_found", "{line}");
    assert_eq!(line["status"], 404, "{line}");
}

/// A client on an untrusted address cannot choose the trace: its
/// `traceparent` is dropped and the balancer starts a new trace.
#[tokio::test]
async fn a_client_s_traceparent_is_not_believed() {
    let receiver = Receiver::start().await;
    let shop = Shop::options()
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://{}", receiver.addr),
        )
        .env("OTEL_BSP_SCHEDULE_DELAY", "200")
        .services(&["products", "balancer"])
        .start()
        .await;
    let api = Client::new(shop.url(""));
    let forged = "4bf92f3577b34da6a3ce929d0e0e4736";
    let rid = format!("trace-forged-{}", uuid::Uuid::new_v4().simple());
    api.send(
        Method::GET,
        "/products/",
        None,
        None,
        &[
            ("x-request-id", rid.as_str()),
            ("traceparent", &format!("00-{forged}-00f067aa0ba902b7-01")),
        ],
    )
    .await
    .expect(200);
    let trace = trace_for(&receiver, &rid).await;
    assert_ne!(trace, forged);
    let spans = wait_for_trace(&receiver, &trace, "products' span", |t| {
        services(t).contains("products")
    })
    .await;
    check_shape(&spans);
    assert!(receiver.spans().iter().all(|s| s.trace_id != forged));
}

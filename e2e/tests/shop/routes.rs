//! The routes the services register against the two OpenAPI documents, so
//! the documents cannot drift from the code: every route of every service's
//! `router()` is documented in exactly one of `openapi.json` (public) and
//! `docs/openapi-internal.json` (internal); neither document describes a
//! route nobody serves; the balancer's default table sends each public
//! route to its service's pool and never routes an internal one. The
//! internal document is held to the same form as the public one, and each
//! of its operations answers on its service as documented.

use std::collections::{BTreeMap, BTreeSet};

use balancer::routes::{Table, Target, DEFAULT_TABLE};
use reqwest::Method;
use serde_json::{json, Value};

use crate::openapi::{check_well_formed, conforms, document, load, operations};
use crate::support::{unique_email, Client, Shop};

const INTERNAL: &str = "docs/openapi-internal.json";

/// What `common::App` answers on every service before routing (GET/HEAD).
const BUILT_IN: [&str; 3] = ["/healthz", "/readyz", "/metrics"];
/// What the balancer answers itself (GET/HEAD).
const BALANCER_OWN: [&str; 4] = ["/healthz", "/readyz", "/metrics", "/openapi.json"];

/// A service, its balancer pool (none: nothing of it is public) and the
/// routes its router registers.
struct Service {
    name: &'static str,
    pool: Option<&'static str>,
    routes: Vec<(Method, &'static str)>,
}

/// The routes service `S` registers.
fn listed<S: common::host::Service>() -> Vec<(Method, &'static str)> {
    S::router().routes().map(|(m, p)| (m.clone(), p)).collect()
}

fn services() -> Vec<Service> {
    let service = |name, pool, routes| Service { name, pool, routes };
    vec![
        service("users", Some("users"), listed::<users::State>()),
        service("products", Some("products"), listed::<products::State>()),
        service("cart", Some("cart"), listed::<cart::State>()),
        service("mailer", None, listed::<mailer::State>()),
        service("stats", Some("stats"), listed::<stats::State>()),
        service(
            "payments-mock",
            Some("payments-mock"),
            listed::<payments_mock::State>(),
        ),
    ]
}

/// The documented operations as `(METHOD, path template)`.
fn documented(doc: &Value) -> BTreeSet<(Method, String)> {
    operations(doc).into_values().map(|(p, m)| (m, p)).collect()
}

/// A path the template stands for: every `{param}` a UUID.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|s| {
            if s.starts_with('{') {
                "0190e5b0-c6a5-7d7c-9b1e-2f3a4b5c6d7e"
            } else {
                s
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The pool the default table sends `method path` to, if any (the
/// storefront's files are served by the balancer itself, not a pool).
fn routed_pool(table: &Table, method: &Method, path: &str) -> Option<String> {
    match table.find(method, path)?.1.target {
        Target::Pool(i) => Some(table.pools[i].name.clone()),
        Target::Deny | Target::Static => None,
    }
}

#[test]
fn every_route_a_service_registers_is_documented_exactly_once() {
    let public = documented(&document());
    let internal = documented(&load(INTERNAL));
    let table = Table::parse(DEFAULT_TABLE).expect("the default route table parses");
    let mut registered: BTreeMap<(Method, String), &str> = BTreeMap::new();
    for service in services() {
        for (method, pattern) in &service.routes {
            let key = (method.clone(), pattern.to_string());
            let (in_public, in_internal) = (public.contains(&key), internal.contains(&key));
            assert!(
                in_public != in_internal,
                "{} registers {method} {pattern}: it must be documented in exactly one of \
                 openapi.json (public) and {INTERNAL} (internal); public: {in_public}, internal: {in_internal}",
                service.name
            );
            let pool = routed_pool(&table, method, &concrete(pattern));
            if in_public {
                assert_eq!(
                    pool.as_deref(),
                    service.pool,
                    "{method} {pattern} is documented as public, so the balancer's default table \
                     must send it to {}'s pool",
                    service.name
                );
            } else {
                assert_eq!(
                    pool, None,
                    "{method} {pattern} is internal, so the balancer must not route it"
                );
            }
            // The revocation endpoint is common's, on every service that
            // verifies tokens (`common::token_versions`); any other route
            // has one owner.
            let shared = *pattern == common::token_versions::PATH;
            if let Some(other) = registered.insert(key, service.name).filter(|_| !shared) {
                panic!(
                    "{method} {pattern} is registered by both {other} and {}",
                    service.name
                );
            }
        }
    }
    // Nothing documented that nobody serves.
    for (doc, own, name) in [
        (&public, &BALANCER_OWN[..], "openapi.json"),
        (&internal, &BUILT_IN[..], INTERNAL),
    ] {
        for (method, path) in doc {
            assert!(
                registered.contains_key(&(method.clone(), path.clone()))
                    || (method == Method::GET && own.contains(&path.as_str())),
                "{name} documents {method} {path}, which nothing serves"
            );
        }
    }
    // Every service's own endpoints are in the internal document.
    for path in BUILT_IN {
        assert!(
            internal.contains(&(Method::GET, path.to_string())),
            "{INTERNAL} documents GET {path}"
        );
    }
}

#[test]
fn the_internal_document_is_well_formed_and_names_its_credentials() {
    let doc = load(INTERNAL);
    check_well_formed(&doc);
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    assert_eq!(schemes["internalKey"]["scheme"], "bearer");
    assert_eq!(schemes["webhookSignature"]["in"], "header");
    assert_eq!(schemes["webhookSignature"]["name"], "Shop-Signature");
    for (id, (path, method)) in operations(&doc) {
        let op = &doc["paths"][&path][method.as_str().to_lowercase()];
        let security = op["security"]
            .as_array()
            .unwrap_or_else(|| panic!("{id}: every operation names its credential"));
        for requirement in security {
            for name in requirement.as_object().unwrap().keys() {
                assert!(schemes.contains_key(name), "{id}: unknown scheme {name}");
            }
        }
        assert_eq!(
            security.is_empty(),
            BUILT_IN.contains(&path.as_str()),
            "{id}: only health, readiness and metrics are open"
        );
    }
}

#[tokio::test]
async fn every_internal_operation_answers_on_its_service_and_conforms() {
    let doc = load(INTERNAL);
    let shop = Shop::shared().await;
    let key = shop.internal_key();
    let customer = Client::new(shop.url("")).new_customer("internal").await;
    let mut covered = BTreeSet::new();
    let mut check = |op: &str, what: &str, resp: crate::support::Resp, status: u16| {
        assert_eq!(resp.status, status, "{op} ({what}): {}", resp.text);
        conforms(&doc, op, what, &resp);
        covered.insert(op.to_string());
    };

    for service in [
        "users",
        "products",
        "cart",
        "mailer",
        "stats",
        "payments-mock",
    ] {
        let api = Client::new(shop.service_url(service, ""));
        check(
            "serviceHealth",
            service,
            api.get("/healthz", None).await,
            200,
        );
        check(
            "serviceReadiness",
            service,
            api.get("/readyz", None).await,
            200,
        );
        check(
            "serviceMetrics",
            service,
            api.get("/metrics", None).await,
            200,
        );
    }

    let mailer = Client::new(shop.service_url("mailer", ""));
    let mail = json!({"to": unique_email("internal"), "subject": "Hello", "body": "Documented."});
    check(
        "sendEmail",
        "internal key",
        mailer.post("/send_email/", Some(&key), &mail).await,
        202,
    );
    check(
        "sendEmail",
        "no key",
        mailer.post("/send_email/", None, &mail).await,
        401,
    );
    check(
        "sendEmail",
        "a user token",
        mailer
            .post("/send_email/", Some(&customer.token), &mail)
            .await,
        403,
    );
    let bad = mailer
        .post(
            "/send_email/",
            Some(&key),
            &json!({"to": "nobody", "subject": "", "body": ""}),
        )
        .await;
    check("sendEmail", "invalid fields", bad, 422);
    let text = mailer
        .send_raw(
            Method::POST,
            "/send_email/",
            Some(&key),
            "text/plain",
            b"hi".to_vec(),
        )
        .await;
    check("sendEmail", "text/plain", text, 415);

    let stats = Client::new(shop.service_url("stats", ""));
    let range = "from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z&limit=5";
    for (op, path) in [("listEvents", "/log"), ("summarizeEvents", "/log/summary")] {
        let with_range = format!("{path}?{range}");
        check(
            op,
            "internal key",
            stats.get(&with_range, Some(&key)).await,
            200,
        );
        check(op, "no key", stats.get(&with_range, None).await, 401);
        check(
            op,
            "a user token",
            stats.get(&with_range, Some(&customer.token)).await,
            403,
        );
        check(op, "no range", stats.get(path, Some(&key)).await, 422);
    }

    // The webhook: signed with the shared secret over the exact bytes sent.
    let cart = Client::new(shop.service_url("cart", ""));
    let secret = shop.secret("webhook_secret");
    let now = common::time::now_ms() / 1000;
    let (ping, no_type) = (
        br#"{"id":"evt_doc","type":"test.ping"}"#,
        br#"{"id":"evt_x"}"#,
    );
    let json = "application/json";
    // (what, the signature's secret and age in seconds, body, content type, status)
    type Case<'a> = (&'a str, Option<(&'a str, i64)>, &'a [u8], &'a str, u16);
    let cases: [Case; 7] = [
        ("signed", Some((&secret, 0)), ping, json, 200),
        ("unsigned", None, ping, json, 401),
        (
            "another secret",
            Some(("not-the-secret", 0)),
            ping,
            json,
            401,
        ),
        ("stale", Some((&secret, 3600)), ping, json, 401),
        (
            "signed, not JSON",
            Some((&secret, 0)),
            b"{\"id\":",
            json,
            400,
        ),
        (
            "signed text/plain",
            Some((&secret, 0)),
            b"hello",
            "text/plain",
            415,
        ),
        ("signed, no type", Some((&secret, 0)), no_type, json, 422),
    ];
    let signatures = cases
        .iter()
        .map(|(what, signer, body, content_type, status)| {
            let signature = signer.map(|(key, age)| common::webhook::sign(key, now - age, body));
            (*what, signature, *body, *content_type, *status)
        })
        .chain([(
            "malformed signature",
            Some("v1=zz".into()),
            &ping[..],
            json,
            400,
        )]);
    for (what, signature, body, content_type, status) in signatures {
        let mut headers = vec![("content-type", content_type)];
        if let Some(signature) = &signature {
            headers.push(("shop-signature", signature));
        }
        let resp = cart
            .send_bytes(
                Method::POST,
                "/internal/payments/webhook",
                &headers,
                body.to_vec(),
            )
            .await;
        check("paymentWebhook", what, resp, status);
    }

    // Token revocations: an account nobody uses, at version 0, changes nothing.
    let nobody = json!({"user_id": uuid::Uuid::new_v4().to_string(), "version": 0});
    for service in ["products", "cart"] {
        let api = Client::new(shop.service_url(service, ""));
        let path = "/internal/token-versions";
        let op = "recordTokenVersion";
        check(op, service, api.post(path, Some(&key), &nobody).await, 200);
        check(op, "no key", api.post(path, None, &nobody).await, 401);
        let user = api.post(path, Some(&customer.token), &nobody).await;
        check(op, "a user token", user, 403);
        let negative = json!({"user_id": "", "version": -1});
        check(
            op,
            "invalid fields",
            api.post(path, Some(&key), &negative).await,
            422,
        );
    }

    let all: BTreeSet<String> = operations(&doc).into_keys().collect();
    assert_eq!(covered, all, "every internal operation was exercised");
}

//! `openapi.json` (at the repository root) against docs/api.md and the running
//! shop: it is OpenAPI 3.1 with JSON Schema 2020-12 schemas that compile,
//! it documents every public path of docs/api.md, every documented operation
//! answers through the balancer (not a routing 404), and every answer —
//! successes and the usual errors — has a documented status, content type,
//! required headers and a body that validates against its schema. The
//! balancer serves the same document at `GET /openapi.json`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{unique_email, Client, Resp, Session, Shop};

/// A file of the repository, by its path from the root.
pub(crate) fn repository_file(path: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join(path)
}

/// The public document, `openapi.json`.
pub(crate) fn document() -> Value {
    load("openapi.json")
}

/// A JSON document of the repository.
pub(crate) fn load(file: &str) -> Value {
    let path = repository_file(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// A validator for `schema`, a part of `doc`: its `#/components/...`
/// references resolve against the whole document, which travels along
/// under a key that JSON Schema ignores.
pub(crate) fn validator(doc: &Value, schema: &Value) -> jsonschema::Validator {
    let mut root = match schema {
        Value::Object(map) => map.clone(),
        // `true`/`false` schemas.
        other => return compile(other),
    };
    root.insert("components".into(), doc["components"].clone());
    compile(&Value::Object(root))
}

fn compile(schema: &Value) -> jsonschema::Validator {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(schema)
        .unwrap_or_else(|e| panic!("schema does not compile: {e}\n{schema}"))
}

/// Follows a local `$ref` (`#/components/responses/NotFound`).
pub(crate) fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let pointer = r
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("non-local $ref {r}"));
            resolve(
                doc,
                doc.pointer(pointer)
                    .unwrap_or_else(|| panic!("dangling $ref {r}")),
            )
        }
        None => v,
    }
}

/// Every operation: operationId → (path template, method).
pub(crate) fn operations(doc: &Value) -> BTreeMap<String, (String, Method)> {
    let mut out = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().unwrap() {
            let Ok(m) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            if !matches!(
                m,
                Method::GET | Method::POST | Method::PUT | Method::DELETE | Method::PATCH
            ) {
                continue;
            }
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            assert!(
                out.insert(id.to_string(), (path.clone(), m)).is_none(),
                "operationId {id} is used twice"
            );
        }
    }
    out
}

/// Checks one live answer against the document: its status is documented
/// for the operation, its content type is one documented for that status,
/// its required headers are present and valid, and its body validates.
pub(crate) fn conforms(doc: &Value, op_id: &str, what: &str, resp: &Resp) {
    let ops = operations(doc);
    let (path, method) = &ops[op_id];
    let op = &doc["paths"][path][method.as_str().to_lowercase()];
    let status = resp.status.to_string();
    let Some(documented) = op["responses"].get(&status) else {
        panic!(
            "{op_id} ({what}): status {status} is not documented for {method} {path}: {}",
            resp.text
        )
    };
    let documented = resolve(doc, documented);
    for (name, header) in documented["headers"].as_object().into_iter().flatten() {
        let header = resolve(doc, header);
        match resp.header(name) {
            Some(value) => {
                let schema = validator(doc, &header["schema"]);
                assert!(
                    schema.is_valid(&json!(value)),
                    "{op_id} ({what}): header {name}: {value:?} does not match {}",
                    header["schema"]
                );
            }
            None => assert!(
                header["required"] != true,
                "{op_id} ({what}): {status} lacks required header {name}: {:?}",
                resp.headers
            ),
        }
    }
    let Some(content) = documented.get("content").and_then(Value::as_object) else {
        assert!(
            resp.text.is_empty(),
            "{op_id} ({what}): {status} documents no body, got {}",
            resp.text
        );
        return;
    };
    let mime = resp.content_type().split(';').next().unwrap_or("").trim();
    let Some(media) = content.get(mime) else {
        panic!(
            "{op_id} ({what}): content type {mime:?} is not documented for {status} (documented: {:?})",
            content.keys().collect::<Vec<_>>()
        )
    };
    let instance = if mime.ends_with("json") {
        serde_json::from_str(&resp.text).unwrap_or_else(|e| {
            panic!(
                "{op_id} ({what}): {mime} body is not JSON ({e}): {}",
                resp.text
            )
        })
    } else {
        json!(resp.text)
    };
    let schema = validator(doc, &media["schema"]);
    let errors: Vec<String> = schema
        .iter_errors(&instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{op_id} ({what}): the {status} body does not match its schema:\n  {}\nbody: {}",
        errors.join("\n  "),
        resp.text
    );
}

/// What every OpenAPI document of the repository must be: OpenAPI 3.1 with
/// JSON Schema 2020-12 schemas that compile (with formats), references that
/// resolve, `X-Request-Id` on every answer, problem+json for every error,
/// the credential errors of every secured operation, and the body errors
/// exactly for the operations that read a body.
pub(crate) fn check_well_formed(doc: &Value) {
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        doc["openapi"]
    );
    assert_eq!(
        doc["jsonSchemaDialect"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    let problem = &doc["components"]["schemas"]["Problem"];
    let required: BTreeSet<&str> = problem["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        required,
        BTreeSet::from(["type", "title", "status", "detail", "code"])
    );

    // Every schema compiles as JSON Schema 2020-12 (with formats), every
    // $ref resolves, every error answer is problem+json.
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        let _ = validator(doc, schema);
        let _ = name;
    }
    for (id, (path, method)) in operations(doc) {
        let op = &doc["paths"][&path][method.as_str().to_lowercase()];
        assert!(
            op["responses"].as_object().is_some_and(|r| !r.is_empty()),
            "{id}"
        );
        for (status, resp) in op["responses"].as_object().unwrap() {
            let resp = resolve(doc, resp);
            assert!(
                resp["headers"]["X-Request-Id"].is_object(),
                "{id} {status}: X-Request-Id"
            );
            if status.starts_with('4') || (status.starts_with('5') && path != "/readyz") {
                assert!(
                    resp["content"]["application/problem+json"].is_object(),
                    "{id} {status} is problem+json"
                );
            }
            for (name, link) in resp["links"].as_object().into_iter().flatten() {
                let target = link["operationId"].as_str().unwrap_or_default();
                assert!(
                    operations(doc).contains_key(target),
                    "{id} {status}: link {name} to {target:?}"
                );
            }
            for media in resp["content"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(_, m)| m)
            {
                let _ = validator(doc, &media["schema"]);
            }
        }
        // Every credential can be missing (401); a user token or internal
        // key can also be valid but not allowed here (403).
        let schemes: Vec<&String> = op["security"]
            .as_array()
            .or(doc["security"].as_array())
            .into_iter()
            .flatten()
            .filter_map(Value::as_object)
            .flat_map(|s| s.keys())
            .collect();
        if !schemes.is_empty() {
            assert!(op["responses"]["401"].is_object(), "{id}: 401 documented");
        }
        if schemes
            .iter()
            .any(|s| *s == "bearerAuth" || *s == "internalKey")
        {
            assert!(op["responses"]["403"].is_object(), "{id}: 403 documented");
        }
        // Only operations that read a body can refuse its media type.
        assert_eq!(
            op["responses"].get("415").is_some(),
            op.get("requestBody").is_some(),
            "{id}: 415 is documented exactly when a request body is"
        );
        if let Some(body) = op.get("requestBody") {
            let schema = &body["content"]["application/json"]["schema"];
            let _ = validator(doc, schema);
            // The schema's own example is valid against it.
            let target = resolve(doc, schema);
            for example in target["examples"].as_array().into_iter().flatten() {
                assert!(
                    validator(doc, schema).is_valid(example),
                    "{id}: example {example}"
                );
            }
            for code in ["400", "413", "415", "422"] {
                assert!(op["responses"][code].is_object(), "{id}: {code} documented");
            }
        }
    }
}

#[test]
fn the_document_is_openapi_3_1_and_documents_every_public_path_of_api_md() {
    let doc = document();
    check_well_formed(&doc);
    assert_eq!(
        doc["components"]["securitySchemes"]["bearerAuth"]["scheme"],
        "bearer"
    );

    // docs/api.md's public table, as routed by the balancer.
    let expected: &[(&str, &[&str])] = &[
        ("/user/", &["post"]),
        ("/user/login", &["post"]),
        ("/user/{id}", &["get", "put", "delete"]),
        ("/product/", &["post"]),
        ("/product/{id}", &["get", "put", "delete"]),
        ("/products/", &["get"]),
        ("/user/{uid}/cart/", &["post", "get"]),
        ("/user/{uid}/cart/{id}", &["get", "put", "delete"]),
        ("/user/{uid}/cart/checkout", &["post"]),
        ("/user/{uid}/orders/", &["get"]),
        ("/user/{uid}/orders/{id}", &["get"]),
        ("/invoices", &["post"]),
        ("/invoices/{id}", &["get"]),
        ("/invoices/{id}/pay", &["post"]),
        ("/log", &["post"]),
        ("/healthz", &["get"]),
        ("/readyz", &["get"]),
        ("/openapi.json", &["get"]),
    ];
    let paths = doc["paths"].as_object().unwrap();
    let documented: BTreeSet<&str> = paths.keys().map(String::as_str).collect();
    let wanted: BTreeSet<&str> = expected.iter().map(|(p, _)| *p).collect();
    assert_eq!(documented, wanted, "exactly the public paths");
    for (path, methods) in expected {
        let item = paths[*path].as_object().unwrap();
        let have: BTreeSet<&str> = item
            .keys()
            .map(String::as_str)
            .filter(|k| *k != "parameters")
            .collect();
        assert_eq!(have, methods.iter().copied().collect(), "methods of {path}");
    }
    // Nothing internal is documented as public.
    for internal in ["/send_email/", "/internal/payments/webhook", "/log/summary"] {
        assert!(!paths.contains_key(internal), "{internal} is internal");
    }
    assert!(paths["/log"].get("get").is_none(), "GET /log is internal");
}

/// One answer checked against the document, remembering the operation as
/// covered.
struct Probe<'a> {
    doc: &'a Value,
    api: &'a Client,
    covered: BTreeSet<String>,
}

impl Probe<'_> {
    async fn call(
        &mut self,
        op_id: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        expect: u16,
    ) -> Resp {
        let method = operations(self.doc)
            .get(op_id)
            .unwrap_or_else(|| panic!("{op_id} is not documented"))
            .1
            .clone();
        let resp = self
            .api
            .send(method.clone(), path, token, body.as_ref(), &[])
            .await;
        assert_eq!(
            resp.status, expect,
            "{op_id}: {method} {path}: {}",
            resp.text
        );
        conforms(self.doc, op_id, &format!("{method} {path}"), &resp);
        self.covered.insert(op_id.to_string());
        // The usual errors of this operation conform too.
        self.errors(op_id, &method, path, token).await;
        resp
    }

    async fn errors(&self, op_id: &str, method: &Method, path: &str, token: Option<&str>) {
        let ops = operations(self.doc);
        let (template, _) = &ops[op_id];
        let op = &self.doc["paths"][template][method.as_str().to_lowercase()];
        let secured = op["security"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s.get("bearerAuth").is_some()));
        let has_body = op.get("requestBody").is_some();
        if secured {
            let anonymous = self.api.send(method.clone(), path, None, None, &[]).await;
            assert_eq!(
                anonymous.status, 401,
                "{op_id} without a token: {}",
                anonymous.text
            );
            conforms(self.doc, op_id, "without a token", &anonymous);
        }
        if has_body {
            let bad = self
                .api
                .send_raw(
                    method.clone(),
                    path,
                    token,
                    "application/json",
                    b"{\"oops\":".to_vec(),
                )
                .await;
            assert_eq!(bad.status, 400, "{op_id} with malformed JSON: {}", bad.text);
            conforms(self.doc, op_id, "malformed JSON", &bad);
            let text = self
                .api
                .send_raw(method.clone(), path, token, "text/plain", b"hello".to_vec())
                .await;
            assert_eq!(text.status, 415, "{op_id} with text/plain: {}", text.text);
            conforms(self.doc, op_id, "text/plain", &text);
            let wrong = self
                .api
                .send(method.clone(), path, token, Some(&json!([1, 2])), &[])
                .await;
            assert_eq!(
                wrong.status, 422,
                "{op_id} with an array body: {}",
                wrong.text
            );
            conforms(self.doc, op_id, "an array body", &wrong);
        }
        if template.contains('{') && !template.contains("{uid}") {
            // The last parameter replaced by an id that cannot exist.
            let (prefix, _) = path.rsplit_once('/').expect("a path with a parameter");
            let missing = if template.starts_with("/invoices") {
                format!("/invoices/inv_{}", "0".repeat(32))
            } else {
                format!("{prefix}/{}", uuid::Uuid::new_v4())
            };
            let missing = if template.ends_with("/pay") {
                format!("{missing}/pay")
            } else {
                missing
            };
            let body = has_body.then(|| example_body(self.doc, op));
            let resp = self
                .api
                .send(method.clone(), &missing, token, body.as_ref(), &[])
                .await;
            // 401 after the caller's own account was deleted a moment ago.
            assert!(
                matches!(resp.status, 401 | 403 | 404),
                "{op_id} for an unknown id: {} {}",
                resp.status,
                resp.text
            );
            conforms(self.doc, op_id, "an unknown id", &resp);
        }
    }
}

/// The first example of the operation's request body schema.
fn example_body(doc: &Value, op: &Value) -> Value {
    let schema = resolve(
        doc,
        &op["requestBody"]["content"]["application/json"]["schema"],
    );
    schema["examples"][0].clone()
}

#[tokio::test]
async fn every_documented_operation_answers_through_the_balancer_and_conforms() {
    let doc = document();
    let shop = Shop::shared().await;
    let api = Client::new(shop.url(""));
    let mut p = Probe {
        doc: &doc,
        api: &api,
        covered: BTreeSet::new(),
    };

    // users
    let email = unique_email("openapi");
    let user = p
        .call(
            "registerUser",
            "/user/",
            None,
            Some(json!({"email": email, "password": "password-1", "name": "Oa"})),
            201,
        )
        .await;
    let uid = user.body["id"].as_str().unwrap().to_string();
    let session = p
        .call(
            "login",
            "/user/login",
            None,
            Some(json!({"email": email, "password": "password-1"})),
            200,
        )
        .await;
    let token = session.body["token"].as_str().unwrap().to_string();
    let t = Some(token.as_str());
    let me = Session {
        user_id: uid.clone(),
        email: email.clone(),
        password: "password-1".into(),
        token: token.clone(),
    };
    p.call("getUser", &format!("/user/{uid}"), t, None, 200)
        .await;
    p.call(
        "updateUser",
        &format!("/user/{uid}"),
        t,
        Some(json!({"name": "Oa 2"})),
        200,
    )
    .await;
    let wrong = api.login(&email, "wrong-password").await;
    conforms(&doc, "login", "wrong password", &wrong);

    // products (admin)
    let admin = api.admin().await;
    let a = Some(admin.token.as_str());
    let product = p
        .call(
            "createProduct",
            "/product/",
            a,
            Some(json!({"name": "OpenAPI Mug", "description": "Conforms.", "price_cents": 1200, "stock": 3})),
            201,
        )
        .await;
    let pid = product.body["id"].as_str().unwrap().to_string();
    p.call("getProduct", &format!("/product/{pid}"), None, None, 200)
        .await;
    p.call(
        "updateProduct",
        &format!("/product/{pid}"),
        a,
        Some(json!({"stock": 4})),
        200,
    )
    .await;
    p.call(
        "listProducts",
        "/products/?limit=5&offset=1&q=mug",
        None,
        None,
        200,
    )
    .await;
    let customer_write = api
        .put(&format!("/product/{pid}"), t, &json!({"stock": 1}))
        .await;
    assert_eq!(customer_write.status, 403);
    conforms(&doc, "updateProduct", "as a customer", &customer_write);
    let invalid = api
        .post("/product/", a, &json!({"name": "", "price_cents": -1}))
        .await;
    assert_eq!(invalid.status, 422);
    conforms(&doc, "createProduct", "invalid fields", &invalid);

    // cart and orders
    let catalog = api.catalog().await;
    let other = catalog.iter().find(|x| x["id"] != pid.as_str()).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let cart = format!("/user/{uid}/cart/");
    let line = p
        .call(
            "addCartItem",
            &cart,
            t,
            Some(json!({"product_id": pid, "quantity": 2})),
            201,
        )
        .await;
    let line_id = line.body["id"].as_str().unwrap().to_string();
    let second = api.add_to_cart(&me, &other, 1).await;
    p.call("getCart", &cart, t, None, 200).await;
    p.call("getCartItem", &format!("{cart}{line_id}"), t, None, 200)
        .await;
    p.call(
        "updateCartItem",
        &format!("{cart}{line_id}"),
        t,
        Some(json!({"quantity": 3})),
        200,
    )
    .await;
    p.call(
        "deleteCartItem",
        &format!("{cart}{}", second["id"].as_str().unwrap()),
        t,
        None,
        204,
    )
    .await;
    let unknown_product = api
        .post(
            &cart,
            t,
            &json!({"product_id": uuid::Uuid::new_v4().to_string(), "quantity": 1}),
        )
        .await;
    conforms(&doc, "addCartItem", "unknown product", &unknown_product);
    let order = p
        .call(
            "checkout",
            &format!("/user/{uid}/cart/checkout"),
            t,
            None,
            201,
        )
        .await;
    let empty = api.checkout(&me, None).await;
    assert_eq!(empty.status, 409);
    conforms(&doc, "checkout", "empty cart", &empty);
    let order_id = order.body["id"].as_str().unwrap().to_string();
    let invoice = order.body["invoice_id"].as_str().unwrap().to_string();
    p.call(
        "listOrders",
        &format!("/user/{uid}/orders/?limit=10"),
        t,
        None,
        200,
    )
    .await;
    p.call(
        "getOrder",
        &format!("/user/{uid}/orders/{order_id}"),
        t,
        None,
        200,
    )
    .await;
    let other_user = api.new_customer("oa-other").await;
    let foreign = api
        .get(
            &format!("/user/{uid}/orders/{order_id}"),
            Some(&other_user.token),
        )
        .await;
    assert_eq!(foreign.status, 403);
    conforms(&doc, "getOrder", "another user's", &foreign);

    // payments
    p.call(
        "getInvoice",
        &format!("/invoices/{invoice}"),
        None,
        None,
        200,
    )
    .await;
    let declined = api.pay(&invoice, "4000000000000002").await;
    conforms(&doc, "payInvoice", "declined", &declined);
    p.call(
        "payInvoice",
        &format!("/invoices/{invoice}/pay"),
        None,
        Some(json!({"card_number": "4242424242424242", "exp_month": 12, "exp_year": crate::support::client::future_year(), "cvc": "123"})),
        200,
    )
    .await;
    let again = api.pay(&invoice, "4242424242424242").await;
    assert_eq!(again.status, 409);
    conforms(&doc, "payInvoice", "already paid", &again);
    let server_key = shop.secret("server_key");
    let created = p
        .call(
            "createInvoice",
            "/invoices",
            Some(&server_key),
            Some(json!({"amount_cents": 100, "reference": "openapi"})),
            201,
        )
        .await;
    assert_eq!(created.body["status"], "open");
    let no_key = api
        .post("/invoices", t, &json!({"amount_cents": 100}))
        .await;
    assert_eq!(no_key.status, 401);
    conforms(&doc, "createInvoice", "a user token", &no_key);

    // stats and the balancer's own
    p.call(
        "logEvent",
        "/log",
        None,
        Some(json!({"user_id": uid, "action": "openapi_probe", "data": {}})),
        202,
    )
    .await;
    p.call("health", "/healthz", None, None, 200).await;
    p.call("readiness", "/readyz", None, None, 200).await;

    // Deletions last: they end what the others use.
    p.call("deleteProduct", &format!("/product/{pid}"), a, None, 204)
        .await;
    p.call("deleteUser", &format!("/user/{uid}"), t, None, 204)
        .await;

    // `GET /openapi.json` has a test of its own (it needs the balancer to
    // serve the file); everything else must have been exercised.
    let mut all: BTreeSet<String> = operations(&doc).into_keys().collect();
    all.remove("openapi");
    assert_eq!(p.covered, all, "every documented operation was exercised");
}

#[tokio::test]
async fn the_balancer_serves_the_document_at_openapi_json() {
    let shop = Shop::shared().await;
    let api = Client::new(shop.url(""));
    let resp = api.get("/openapi.json", None).await;
    assert_eq!(
        resp.status, 200,
        "GET /openapi.json through the balancer (the balancer must serve the repository's openapi.json): {}",
        resp.text
    );
    assert!(
        resp.content_type().starts_with("application/json"),
        "{:?}",
        resp.headers
    );
    assert_eq!(
        resp.body,
        document(),
        "the served document is the repository's openapi.json"
    );
    conforms(&document(), "openapi", "served", &resp);
}

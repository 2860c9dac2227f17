//! A client that talks to the shop as the frontend does — through the
//! balancer, with a bearer token — plus the few typed steps every scenario
//! repeats (register, log in, add to cart, check out, pay).

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};

/// One answer, read completely.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    /// The body as JSON, or `Null` when it is empty or not JSON.
    pub body: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn content_type(&self) -> &str {
        self.header("content-type").unwrap_or("")
    }

    /// Asserts the status, showing the body when it is another.
    #[track_caller]
    pub fn expect(self, status: u16) -> Resp {
        assert_eq!(
            self.status, status,
            "expected {status}, got {}: {}",
            self.status, self.text
        );
        self
    }

    /// Asserts an RFC 9457 problem with this status and `code`.
    #[track_caller]
    pub fn problem(self, status: u16, code: &str) -> Resp {
        let resp = self.expect(status);
        assert_eq!(
            resp.content_type(),
            "application/problem+json",
            "errors are problem+json: {}",
            resp.text
        );
        assert_eq!(resp.body["status"], status, "{}", resp.text);
        assert_eq!(resp.body["code"], code, "{}", resp.text);
        for key in ["type", "title", "detail"] {
            assert!(
                resp.body[key].is_string(),
                "problem lacks {key}: {}",
                resp.text
            );
        }
        resp
    }
}

/// A logged-in customer.
#[derive(Debug, Clone)]
pub struct Session {
    pub user_id: String,
    pub email: String,
    pub password: String,
    pub token: String,
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
}

/// An email address no other test uses.
pub fn unique_email(tag: &str) -> String {
    format!(
        "{tag}-{}@example.com",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

impl Client {
    /// A client for `base` (the balancer's URL, or a service's for the
    /// internal reads).
    pub fn new(base: impl Into<String>) -> Client {
        let http = reqwest::Client::builder()
            // Far above any answer the shop should give; a hang fails the
            // test instead of stalling the suite.
            .timeout(Duration::from_secs(30))
            .build()
            .expect("building an HTTP client");
        Client {
            http,
            base: base.into(),
        }
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        read(resp).await
    }

    /// A raw request: any body bytes and content type.
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
    ) -> Resp {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("content-type", content_type)];
        if let Some(auth) = &auth {
            headers.push(("authorization", auth));
        }
        self.send_bytes(method, path, &headers, body).await
    }

    /// Body bytes exactly as given, with exactly these headers (a signed
    /// webhook is signed over the bytes sent).
    pub async fn send_bytes(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Resp {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        read(resp).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.send(Method::GET, path, token, None, &[]).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Resp {
        self.send(Method::POST, path, token, Some(body), &[]).await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: &Value) -> Resp {
        self.send(Method::PUT, path, token, Some(body), &[]).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Resp {
        self.send(Method::DELETE, path, token, None, &[]).await
    }

    pub async fn register(&self, email: &str, password: &str, name: &str) -> Resp {
        self.post(
            "/user/",
            None,
            &json!({"email": email, "password": password, "name": name}),
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str) -> Resp {
        self.post(
            "/user/login",
            None,
            &json!({"email": email, "password": password}),
        )
        .await
    }

    /// Registers a new customer and logs them in.
    pub async fn new_customer(&self, tag: &str) -> Session {
        let email = unique_email(tag);
        let password = format!("pw-{tag}-secret");
        let user = self.register(&email, &password, tag).await.expect(201).body;
        let session = self.session(&email, &password).await;
        assert_eq!(session.user_id, user["id"].as_str().unwrap());
        session
    }

    pub async fn session(&self, email: &str, password: &str) -> Session {
        let login = self.login(email, password).await.expect(200).body;
        Session {
            user_id: login["user_id"].as_str().expect("user_id").to_string(),
            email: email.to_string(),
            password: password.to_string(),
            token: login["token"].as_str().expect("token").to_string(),
        }
    }

    pub async fn admin(&self) -> Session {
        self.session(super::harness::ADMIN_EMAIL, super::harness::ADMIN_PASSWORD)
            .await
    }

    /// The demo catalog's live products (first page of up to 100).
    pub async fn catalog(&self) -> Vec<Value> {
        self.get("/products/?limit=100", None)
            .await
            .expect(200)
            .body["items"]
            .as_array()
            .expect("items")
            .clone()
    }

    pub async fn add_to_cart(&self, s: &Session, product_id: &str, quantity: i64) -> Value {
        self.post(
            &format!("/user/{}/cart/", s.user_id),
            Some(&s.token),
            &json!({"product_id": product_id, "quantity": quantity}),
        )
        .await
        .expect(201)
        .body
    }

    pub async fn cart(&self, s: &Session) -> Value {
        self.get(&format!("/user/{}/cart/", s.user_id), Some(&s.token))
            .await
            .expect(200)
            .body
    }

    /// `POST …/cart/checkout`, with an `Idempotency-Key` if given.
    pub async fn checkout(&self, s: &Session, key: Option<&str>) -> Resp {
        let headers: Vec<(&str, &str)> = key.map(|k| ("idempotency-key", k)).into_iter().collect();
        self.send(
            Method::POST,
            &format!("/user/{}/cart/checkout", s.user_id),
            Some(&s.token),
            None,
            &headers,
        )
        .await
    }

    pub async fn order(&self, s: &Session, order_id: &str) -> Resp {
        self.get(
            &format!("/user/{}/orders/{order_id}", s.user_id),
            Some(&s.token),
        )
        .await
    }

    pub async fn orders(&self, s: &Session) -> Value {
        self.get(
            &format!("/user/{}/orders/?limit=100", s.user_id),
            Some(&s.token),
        )
        .await
        .expect(200)
        .body
    }

    /// Pays an invoice with a card expiring in the future.
    pub async fn pay(&self, invoice_id: &str, card: &str) -> Resp {
        self.post(
            &format!("/invoices/{invoice_id}/pay"),
            None,
            &json!({"card_number": card, "exp_month": 12, "exp_year": future_year(), "cvc": "123"}),
        )
        .await
    }
}

/// A card expiry year a few years ahead (the provider refuses past ones
/// and ones more than 50 years ahead).
pub fn future_year() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    1970 + (secs / 31_556_952) as i64 + 5
}

async fn read(resp: reqwest::Response) -> Resp {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Resp {
        status,
        headers,
        text,
        body,
    }
}

//! The shop's public API as the generator drives it (docs/api.md): one
//! function per request, each returning how it ended and what the journey
//! needs from the answer.

use std::time::Duration;

use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

use crate::accounts::Account;
use crate::journey::{Outcome, Placed, Product, Step};
use crate::record::Status;

/// What one request came to.
#[derive(Debug)]
pub struct Answer {
    pub status: Status,
    pub body: Value,
    /// `Retry-After` of a 429 or 503, in seconds.
    pub retry_after: Option<u64>,
}

impl Answer {
    pub fn is(&self, code: u16) -> bool {
        self.status == Status::Http(code)
    }

    /// A successful login's `(token, user_id)`.
    pub fn login_creds(&self) -> Option<(String, String)> {
        match (
            self.is(200),
            self.str_field("token"),
            self.str_field("user_id"),
        ) {
            (true, Some(t), Some(u)) => Some((t, u)),
            _ => None,
        }
    }

    /// The `id` of what was created (a registered user, an order).
    pub fn id(&self) -> Option<String> {
        self.str_field("id")
    }

    fn str_field(&self, name: &str) -> Option<String> {
        match &self.body[name] {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Shop {
    http: Client,
    base: String,
    card: String,
}

impl Shop {
    pub fn new(base: &str, timeout: Duration, card: &str) -> Result<Shop, reqwest::Error> {
        let http = Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .pool_max_idle_per_host(4096)
            .pool_idle_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .build()?;
        Ok(Shop {
            http,
            base: base.to_string(),
            card: card.to_string(),
        })
    }

    /// Sends one request; the body of the answer is read whole and parsed
    /// as JSON when it is JSON (Null otherwise).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        idempotency_key: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(k) = idempotency_key {
            req = req.header("Idempotency-Key", k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let fail = |e: reqwest::Error| Answer {
            status: if e.is_timeout() {
                Status::Timeout
            } else {
                Status::Transport
            },
            body: Value::Null,
            retry_after: None,
        };
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return fail(e),
        };
        let status = resp.status();
        let retry_after = matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        )
        .then(|| {
            resp.headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok())
        })
        .flatten();
        match resp.bytes().await {
            Ok(bytes) => Answer {
                status: Status::Http(status.as_u16()),
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                retry_after,
            },
            Err(e) => fail(e),
        }
    }

    pub async fn register(&self, email: &str, password: &str) -> Answer {
        self.call(
            Method::POST,
            "/user/",
            None,
            None,
            Some(json!({"email": email, "password": password, "name": "Load Test"})),
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str) -> Answer {
        self.call(
            Method::POST,
            "/user/login",
            None,
            None,
            Some(json!({"email": email, "password": password})),
        )
        .await
    }

    /// One page of the catalog: `(id, name)` of each product, and the total.
    pub async fn products(&self, offset: usize) -> Result<(Vec<(Value, String)>, u64), String> {
        let a = self
            .call(
                Method::GET,
                &format!("/products/?limit=100&offset={offset}"),
                None,
                None,
                None,
            )
            .await;
        if !a.is(200) {
            return Err(format!("GET /products/ answered {}", a.status.label()));
        }
        let items = a.body["items"]
            .as_array()
            .ok_or("GET /products/ answered without items")?
            .iter()
            .map(|p| {
                (
                    p["id"].clone(),
                    p["name"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        Ok((items, a.body["total"].as_u64().unwrap_or(0)))
    }

    /// One page of an account's orders: `(id, status)` of each, and the total.
    pub async fn orders(
        &self,
        account: &Account,
        offset: usize,
    ) -> Result<(Vec<(String, String)>, u64), String> {
        let a = self
            .call(
                Method::GET,
                &format!(
                    "/user/{}/orders/?limit=100&offset={offset}",
                    account.user_id()
                ),
                Some(account.token()),
                None,
                None,
            )
            .await;
        if !a.is(200) {
            return Err(format!(
                "GET /user/{}/orders/ answered {}",
                account.user_id(),
                a.status.label()
            ));
        }
        let items = a.body["items"]
            .as_array()
            .ok_or("the order list has no items")?
            .iter()
            .map(|o| {
                let id = match &o["id"] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (id, o["status"].as_str().unwrap_or_default().to_string())
            })
            .collect();
        Ok((items, a.body["total"].as_u64().unwrap_or(0)))
    }

    /// Performs one journey step for `account`: how it ended, whether that
    /// counts as an error, and what the session learns from it.
    pub async fn step(&self, step: &Step, account: &Account) -> (Answer, bool, Outcome) {
        let uid = account.user_id();
        let token = Some(account.token());
        let (answer, expected) = match step {
            Step::Register => (self.register(&account.email, &account.password).await, 201),
            Step::Login => {
                let a = self.login(&account.email, &account.password).await;
                if let Some(creds) = a.login_creds() {
                    account.logged_in(creds);
                }
                (a, 200)
            }
            Step::Browse(p) => (
                self.get(&format!("/product/{}", p.path_id), None).await,
                200,
            ),
            Step::List { offset } => (
                self.get(&format!("/products/?limit=20&offset={offset}"), None)
                    .await,
                200,
            ),
            Step::Search(word) => (self.get(&format!("/products/?q={word}"), None).await, 200),
            Step::ViewCart => (self.get(&format!("/user/{uid}/cart/"), token).await, 200),
            Step::AddToCart { product, quantity } => {
                (self.add(uid, token, product, *quantity).await, 201)
            }
            Step::Checkout { key } => (
                self.call(
                    Method::POST,
                    &format!("/user/{uid}/cart/checkout"),
                    token,
                    Some(key),
                    None,
                )
                .await,
                201,
            ),
            Step::Pay(placed) => (self.pay(placed).await, 200),
            Step::Orders => (
                self.get(&format!("/user/{uid}/orders/?limit=10"), token)
                    .await,
                200,
            ),
        };
        let ok = answer.is(expected);
        let outcome = match step {
            Step::Checkout { .. } if ok => {
                match (answer.str_field("id"), answer.str_field("invoice_id")) {
                    (Some(order_id), Some(invoice_id)) => Outcome::Placed(Placed {
                        order_id,
                        invoice_id,
                    }),
                    _ => Outcome::Failed,
                }
            }
            Step::Checkout { .. } if answer.is(409) && answer.body["code"] == "cart_empty" => {
                Outcome::CartEmpty
            }
            _ if ok => Outcome::Ok,
            _ => Outcome::Failed,
        };
        let error = outcome == Outcome::Failed || outcome == Outcome::CartEmpty;
        (answer, error, outcome)
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.call(Method::GET, path, token, None, None).await
    }

    async fn add(
        &self,
        uid: &str,
        token: Option<&str>,
        product: &Product,
        quantity: u32,
    ) -> Answer {
        self.call(
            Method::POST,
            &format!("/user/{uid}/cart/"),
            token,
            None,
            Some(json!({"product_id": product.id, "quantity": quantity})),
        )
        .await
    }

    async fn pay(&self, placed: &Placed) -> Answer {
        // A card that expires in a few years, whatever the year is now.
        let exp_year = time::OffsetDateTime::now_utc().year() + 3;
        self.call(
            Method::POST,
            &format!("/invoices/{}/pay", placed.invoice_id),
            None,
            None,
            Some(json!({
                "card_number": self.card,
                "exp_month": 12,
                "exp_year": exp_year,
                "cvc": "123",
            })),
        )
        .await
    }
}

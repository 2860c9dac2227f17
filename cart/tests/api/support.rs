//! Test harness: a small shop per test. The real products and payments-mock
//! services run in-process in common's [`TestApp`], each with a fresh
//! database (SQLite, or PostgreSQL when `TEST_DATABASE_URL` is set); a
//! recording loopback receiver stands in for the mailer and stats; the
//! cart runs on a port bound before payments starts, so payments' webhooks
//! can reach it, and each can be stopped and restarted on its same port.
//! Every service shares the fixed test secrets of the `for_tests`
//! configurations.

use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

use cart::config::CartConfig;
use common::auth::{Role, TokenKeys};
use common::db::TestDb;
use common::testing::{loopback, with_token, Recorder, TestApp};
use serde_json::{json, Value};
use tokio::task::JoinHandle;

pub const TOKEN_SECRET: &str = "test-token-secret-test-token-secret";

/// How soon after the payment an order must read as paid.
pub const PAID_WITHIN: Duration = Duration::from_secs(5);
/// payments-mock's card that always pays.
pub const GOOD_CARD: &str = "4242424242424242";

/// How the shop of one test is put together.
pub struct Options {
    /// Payments' webhooks go to the cart (else to a dead port: only
    /// reconciliation can then notice a payment).
    pub webhooks: bool,
    pub cart: Box<dyn FnOnce(&mut CartConfig) + Send>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            webhooks: true,
            cart: Box::new(|_| {}),
        }
    }
}

pub struct Shop {
    pub client: reqwest::Client,
    pub keys: TokenKeys,
    pub receiver: Receiver,
    pub products: TestApp<products::State>,
    pub payments: TestApp<payments_mock::State>,
    pub cart: TestApp<cart::State>,
}

pub async fn shop() -> Shop {
    shop_with(Options::default()).await
}

pub async fn shop_with(options: Options) -> Shop {
    let receiver = Receiver::start().await;
    // Creating a PostgreSQL database takes a while; three at once.
    let (products_db, payments_db, cart_db) =
        tokio::join!(TestDb::new(), TestDb::new(), TestDb::new());

    let products =
        TestApp::<products::State>::spawn_on(products_db, loopback().await, |_| {}).await;

    // The cart's port first: payments must know where its webhooks go.
    let cart_listener = loopback().await;
    let cart_addr = cart_listener.local_addr().unwrap();

    let payments = TestApp::<payments_mock::State>::spawn_on(payments_db, loopback().await, |c| {
        if options.webhooks {
            c.webhook_url = format!("http://{cart_addr}/internal/payments/webhook");
        }
    })
    .await;

    let cart = TestApp::<cart::State>::spawn_on(cart_db, cart_listener, |c| {
        c.products_url = products.url("");
        c.payments_url = payments.url("");
        c.mailer_url = receiver.url();
        c.stats_url = receiver.url();
        (options.cart)(c);
    })
    .await;

    Shop {
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        keys: TokenKeys::new(TOKEN_SECRET, 3600),
        receiver,
        products,
        payments,
        cart,
    }
}

impl Shop {
    // ---- the services ---------------------------------------------------

    pub async fn stop_cart(&mut self) {
        self.cart.stop().await;
    }

    /// Starts the cart again on its old port and database.
    pub async fn start_cart_again(&mut self) {
        self.cart.start_again_on_same_port().await;
    }

    /// Puts a recording relay between the cart and products (restarting
    /// the cart on its port), so a test can count the cart's calls.
    pub async fn relay_products(&mut self) -> Recorder {
        let relay = Recorder::relay(&self.products.url("")).await;
        self.cart.config.products_url = relay.url("");
        self.stop_cart().await;
        self.start_cart_again().await;
        relay
    }

    pub async fn stop_products(&mut self) {
        self.products.stop().await;
    }

    pub async fn start_products_again(&mut self) {
        self.products.start_again_on_same_port().await;
    }

    pub async fn stop_payments(&mut self) {
        self.payments.stop().await;
    }

    pub async fn start_payments_again(&mut self) {
        self.payments.start_again_on_same_port().await;
    }

    /// A separate pool on the cart's database, to inspect and tamper.
    pub async fn cart_db(&self) -> sqlx::AnyPool {
        self.cart.pool().await
    }

    pub fn payments_database_url(&self) -> String {
        self.payments.config.base.database_url.clone()
    }

    /// How many invoices payments holds, read from its own database.
    pub async fn invoice_count(&self) -> i64 {
        let pool = self.payments.pool().await;
        let n: i64 = sqlx::Row::get(
            &sqlx::query("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM invoices")
                .fetch_one(&pool)
                .await
                .unwrap(),
            "n",
        );
        pool.close().await;
        n
    }

    // ---- people -----------------------------------------------------------

    /// A customer: a fresh user id and a token carrying their email.
    pub fn customer(&self) -> (String, String) {
        let id = uuid::Uuid::now_v7().to_string();
        let (token, _) = self
            .keys
            .issue_for(&id, Role::Customer, &format!("{id}@example.com"), 0);
        (id, token)
    }

    pub fn admin(&self) -> String {
        let id = uuid::Uuid::now_v7().to_string();
        self.keys
            .issue_for(&id, Role::Admin, "admin@example.com", 0)
            .0
    }

    // ---- products -----------------------------------------------------------

    pub async fn product(&self, name: &str, price_cents: i64, currency: &str) -> String {
        let resp = self
            .client
            .post(self.products.url("/product/"))
            .bearer_auth(self.admin())
            .json(&json!({
                "name": name,
                "description": format!("{name}, for tests"),
                "price_cents": price_cents,
                "currency": currency,
                "stock": 50,
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "creating a product");
        let body: Value = resp.json().await.unwrap();
        body["id"].as_str().unwrap().to_string()
    }

    pub async fn update_product(&self, id: &str, changes: Value) {
        let resp = self
            .client
            .put(self.products.url(&format!("/product/{id}")))
            .bearer_auth(self.admin())
            .json(&changes)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "updating a product");
    }

    pub async fn delete_product(&self, id: &str) {
        let resp = self
            .client
            .delete(self.products.url(&format!("/product/{id}")))
            .bearer_auth(self.admin())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204, "deleting a product");
    }

    // ---- the cart over HTTP -------------------------------------------------

    pub fn url(&self, path: &str) -> String {
        self.cart.url(path)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        with_token(self.client.get(self.url(path)), token)
            .send()
            .await
            .unwrap()
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> reqwest::Response {
        with_token(self.client.post(self.url(path)), token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: &Value) -> reqwest::Response {
        with_token(self.client.put(self.url(path)), token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        with_token(self.client.delete(self.url(path)), token)
            .send()
            .await
            .unwrap()
    }

    /// Adds and expects `201`; returns the item.
    pub async fn add(&self, uid: &str, token: &str, product_id: &str, quantity: i64) -> Value {
        let resp = self
            .post(
                &format!("/user/{uid}/cart/"),
                Some(token),
                &json!({"product_id": product_id, "quantity": quantity}),
            )
            .await;
        assert_eq!(resp.status(), 201, "adding to the cart");
        resp.json().await.unwrap()
    }

    pub async fn cart(&self, uid: &str, token: &str) -> Value {
        let resp = self.get(&format!("/user/{uid}/cart/"), Some(token)).await;
        assert_eq!(resp.status(), 200, "reading the cart");
        resp.json().await.unwrap()
    }

    /// The user's order list, as JSON (whatever the status).
    pub async fn orders(&self, uid: &str, token: &str) -> Value {
        self.get(&format!("/user/{uid}/orders/"), Some(token))
            .await
            .json()
            .await
            .unwrap()
    }

    pub async fn checkout(&self, uid: &str, token: &str, key: Option<&str>) -> reqwest::Response {
        let mut rb = self
            .client
            .post(self.url(&format!("/user/{uid}/cart/checkout")))
            .bearer_auth(token);
        if let Some(key) = key {
            rb = rb.header("idempotency-key", key);
        }
        rb.send().await.unwrap()
    }

    pub async fn checkout_ok(&self, uid: &str, token: &str) -> Value {
        let resp = self.checkout(uid, token, None).await;
        assert_eq!(resp.status(), 201, "checking out");
        resp.json().await.unwrap()
    }

    pub async fn order(&self, uid: &str, token: &str, id: &str) -> Value {
        let resp = self
            .get(&format!("/user/{uid}/orders/{id}"), Some(token))
            .await;
        assert_eq!(resp.status(), 200, "reading an order");
        resp.json().await.unwrap()
    }

    // ---- paying -------------------------------------------------------------

    pub async fn pay(&self, invoice_id: &str, card: &str) -> reqwest::Response {
        let year: i64 = common::time::rfc3339(common::time::now_ms())[..4]
            .parse()
            .unwrap();
        self.client
            .post(self.payments.url(&format!("/invoices/{invoice_id}/pay")))
            .json(&json!({
                "card_number": card,
                "exp_month": 12,
                "exp_year": year + 3,
                "cvc": "123",
            }))
            .send()
            .await
            .unwrap()
    }

    /// Polls the order until its status is `status`, or panics at `deadline`.
    pub async fn wait_for_status(
        &self,
        uid: &str,
        token: &str,
        id: &str,
        status: &str,
        deadline: Duration,
    ) -> Value {
        eventually(deadline, &format!("order {id} to be {status}"), || async {
            let order = self.order(uid, token, id).await;
            (order["status"] == status).then_some(order)
        })
        .await
    }

    /// The order's status in the cart's database, without the reconciliation
    /// a read through the API would do.
    pub async fn stored_status(&self, id: &str) -> String {
        let pool = self.cart_db().await;
        let status: String = sqlx::Row::get(
            &sqlx::query("SELECT status FROM orders WHERE id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap(),
            "status",
        );
        pool.close().await;
        status
    }
}

/// Polls `check` until it yields a value, or panics after `deadline`
/// (common's `eventually`, arguments in this harness's order).
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    common::testing::eventually(what, deadline, check).await
}

/// The keys of a JSON object.
pub fn keys(v: &Value) -> HashSet<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

/// A `SELECT … AS n` count on the cart's database.
pub async fn count(shop: &Shop, sql: &str) -> i64 {
    let pool = shop.cart_db().await;
    let n: i64 = sqlx::Row::get(&sqlx::query(sql).fetch_one(&pool).await.unwrap(), "n");
    pool.close().await;
    n
}

/// Confirmation emails queued in the cart's outbox (delivered or not).
pub async fn queued_emails(shop: &Shop) -> i64 {
    count(
        shop,
        "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM outbox WHERE target = 'mailer'",
    )
    .await
}

/// Asserts an error answer is problem+json with the given status and code.
pub async fn problem(resp: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(resp.status().as_u16(), status, "status for {code}");
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json"),
        "errors are problem+json"
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    for key in ["type", "title", "detail"] {
        assert!(body[key].is_string(), "problem lacks {key}: {body}");
    }
    body
}

/// One request the receiver saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub idempotency_key: String,
    pub authorization: String,
    pub body: Value,
}

/// A loopback HTTP server standing in for the mailer and stats: answers
/// every request `202` and records it.
pub struct Receiver(Recorder);

impl Receiver {
    pub async fn start() -> Receiver {
        Receiver(Recorder::start(|_, _| 202).await)
    }

    pub fn url(&self) -> String {
        self.0.url("")
    }

    /// Distinct messages (by outbox id) sent to `path`: a redelivery of one
    /// message is not a second message.
    fn distinct(&self, path: &str) -> Vec<Seen> {
        let mut out: Vec<Seen> = Vec::new();
        for r in self.0.requests() {
            let key = r.header("idempotency-key");
            if r.path == path && !out.iter().any(|o| o.idempotency_key == key) {
                out.push(Seen {
                    idempotency_key: key,
                    authorization: r.header("authorization"),
                    body: r.json(),
                });
            }
        }
        out
    }

    pub fn emails(&self) -> Vec<Seen> {
        self.distinct("/send_email/")
    }

    /// Stats events with this action.
    pub fn events(&self, action: &str) -> Vec<Seen> {
        self.distinct("/log")
            .into_iter()
            .filter(|s| s.body["action"] == action)
            .collect()
    }
}

/// A server that accepts connections and never answers: a dependency that
/// hangs.
pub async fn black_hole() -> (String, JoinHandle<()>) {
    let listener = loopback().await;
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    (url, handle)
}

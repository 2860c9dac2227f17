//! The shopper's journey through the balancer, as the frontend drives it:
//! register, log in, browse and search, fill a cart, check out (with and
//! without `Idempotency-Key`), pay with each test card, see the order paid,
//! the confirmation email in the outbox and the events in stats — and
//! nobody seeing anybody else's things.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{events_of, eventually, mails_to, unique_email, Client, Shop};

/// docs/api.md: "Within 5 seconds of its invoice being paid the order reads paid".
const PAID_WITHIN: Duration = Duration::from_secs(5);
/// Outbox deliveries and the stats writer's flush (1 s) on a busy machine.
const DELIVERED_WITHIN: Duration = Duration::from_secs(20);

#[tokio::test]
async fn registration_and_login() {
    let shop = Shop::shared().await;
    let api = Client::new(shop.url(""));
    let email = unique_email("ann");

    let user = api
        .register(&email, "correct horse", " Ann ")
        .await
        .expect(201);
    assert!(user.header("x-request-id").is_some());
    let keys: HashSet<&str> = user
        .body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        HashSet::from(["id", "email", "name", "role", "created_at"]),
        "a user is shown without any secret: {}",
        user.text
    );
    assert_eq!(user.body["name"], "Ann");
    assert_eq!(user.body["role"], "customer");

    // The same address in another case is the same account.
    api.register(&email.to_uppercase(), "another secret", "Ann 2")
        .await
        .problem(409, "email_taken");
    let invalid = api
        .post(
            "/user/",
            None,
            &json!({"email": "nope", "password": "short", "name": ""}),
        )
        .await
        .problem(422, "validation_failed");
    let fields: HashSet<&str> = invalid.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, HashSet::from(["email", "password", "name"]));

    let login = api.login(&email, "correct horse").await.expect(200);
    assert_eq!(login.body["user_id"], user.body["id"]);
    assert!(login.body["expires_at"].as_str().unwrap().ends_with('Z'));
    let token = login.body["token"].as_str().unwrap();

    // One answer for a wrong password and an unknown account.
    let wrong = api
        .login(&email, "wrong horse")
        .await
        .problem(401, "invalid_credentials");
    let unknown = api
        .login(&unique_email("nobody"), "correct horse")
        .await
        .problem(401, "invalid_credentials");
    assert_eq!(wrong.body["detail"], unknown.body["detail"]);

    let id = user.body["id"].as_str().unwrap();
    let me = api
        .get(&format!("/user/{id}"), Some(token))
        .await
        .expect(200);
    assert_eq!(me.body, user.body);
    let renamed = api
        .put(
            &format!("/user/{id}"),
            Some(token),
            &json!({"name": "Annie"}),
        )
        .await
        .expect(200);
    assert_eq!(renamed.body["name"], "Annie");
    assert_eq!(renamed.body["email"], email.as_str());

    let missing = api
        .get(&format!("/user/{id}"), None)
        .await
        .problem(401, "unauthorized");
    assert_eq!(missing.header("www-authenticate"), Some("Bearer"));
    api.get(&format!("/user/{id}"), Some("not-a-token"))
        .await
        .problem(401, "unauthorized");

    api.delete(&format!("/user/{id}"), Some(token))
        .await
        .expect(204);
    api.login(&email, "correct horse")
        .await
        .problem(401, "invalid_credentials");
    let admin = api.admin().await;
    api.get(&format!("/user/{id}"), Some(&admin.token))
        .await
        .expect(404);
}

#[tokio::test]
async fn browsing_and_searching_the_demo_catalog() {
    let shop = Shop::shared().await;
    let api = Client::new(shop.url(""));

    let first = api.get("/products/", None).await.expect(200);
    let total = first.body["total"].as_u64().unwrap();
    assert!(total >= 12, "the demo catalog is seeded: {}", first.text);
    assert_eq!(first.body["limit"], 20);
    assert_eq!(first.body["offset"], 0);
    assert_eq!(
        first.body["items"].as_array().unwrap().len() as u64,
        total.min(20)
    );

    // Pages do not overlap and add up to the whole catalog.
    let mut seen = HashSet::new();
    let mut offset = 0;
    while offset < total {
        let page = api
            .get(&format!("/products/?limit=7&offset={offset}"), None)
            .await
            .expect(200);
        for p in page.body["items"].as_array().unwrap() {
            assert!(
                seen.insert(p["id"].as_str().unwrap().to_string()),
                "repeated {p}"
            );
        }
        offset += 7;
    }
    assert_eq!(seen.len() as u64, total);

    // Every demo product's picture is served by the shop itself.
    for p in first.body["items"].as_array().unwrap() {
        let image = p["image_url"].as_str().unwrap_or_else(|| panic!("{p}"));
        let art = api.get(image, None).await.expect(200);
        assert_eq!(art.content_type(), "image/svg+xml", "{image}");
        assert!(art.text.starts_with("<svg"), "{image}");
    }

    // Search is a case-insensitive substring of the name.
    let mugs = api.get("/products/?q=MUG", None).await.expect(200);
    let items = mugs.body["items"].as_array().unwrap();
    assert!(!items.is_empty(), "the demo catalog has a mug");
    for p in items {
        assert!(
            p["name"].as_str().unwrap().to_lowercase().contains("mug"),
            "{p}"
        );
    }
    let none = api
        .get("/products/?q=no-such-thing-at-all", None)
        .await
        .expect(200);
    assert_eq!(none.body["total"], 0);

    let product = &items[0];
    let id = product["id"].as_str().unwrap();
    let one = api.get(&format!("/product/{id}"), None).await.expect(200);
    assert_eq!(&one.body, product);
    assert!(one.body["price_cents"].is_i64(), "money is an integer");
    assert_eq!(one.body["currency"], "USD");

    // Conditional reads: the ETag comes back, and matching it is a 304.
    let etag = one.header("etag").expect("an ETag").to_string();
    let again = api
        .send(
            Method::GET,
            &format!("/product/{id}"),
            None,
            None,
            &[("if-none-match", &etag)],
        )
        .await;
    assert_eq!(again.status, 304, "{}", again.text);

    api.get(&format!("/product/{}", uuid::Uuid::new_v4()), None)
        .await
        .problem(404, "not_found");
    api.get("/product/not-an-id", None)
        .await
        .problem(404, "not_found");
    api.get("/products/?limit=101", None)
        .await
        .problem(422, "validation_failed");

    // The catalog is the admin's to change, nobody else's.
    let customer = api.new_customer("browser").await;
    let new = json!({"name": "E2E Teapot", "description": "For tests.", "price_cents": 2500});
    api.post("/product/", None, &new)
        .await
        .problem(401, "unauthorized");
    api.post("/product/", Some(&customer.token), &new)
        .await
        .problem(403, "forbidden");
    let admin = api.admin().await;
    let created = api
        .post("/product/", Some(&admin.token), &new)
        .await
        .expect(201);
    let pid = created.body["id"].as_str().unwrap();
    assert_eq!(created.body["currency"], "USD");
    assert_eq!(created.body["stock"], 0);
    let updated = api
        .put(
            &format!("/product/{pid}"),
            Some(&admin.token),
            &json!({"price_cents": 2600}),
        )
        .await
        .expect(200);
    assert_eq!(updated.body["price_cents"], 2600);
    api.delete(&format!("/product/{pid}"), Some(&admin.token))
        .await
        .expect(204);
    api.get(&format!("/product/{pid}"), None)
        .await
        .problem(404, "not_found");
}

/// The price of `product` as the catalog shows it now.
fn price(product: &Value) -> i64 {
    product["price_cents"].as_i64().unwrap()
}

#[tokio::test]
async fn two_shoppers_fill_carts_check_out_and_pay() {
    let shop = Shop::shared().await;
    let api = Client::new(shop.url(""));
    let ann = api.new_customer("ann").await;
    let bob = api.new_customer("bob").await;
    let catalog = api.catalog().await;
    let (kettle, mug, beans) = (&catalog[0], &catalog[1], &catalog[2]);
    let id = |p: &Value| p["id"].as_str().unwrap().to_string();

    // Ann: the same product twice adds up in one line.
    let first = api.add_to_cart(&ann, &id(mug), 1).await;
    let second = api.add_to_cart(&ann, &id(mug), 2).await;
    assert_eq!(first["id"], second["id"]);
    assert_eq!(second["quantity"], 3);
    assert_eq!(second["line_total_cents"], price(mug) * 3);
    let kettle_line = api.add_to_cart(&ann, &id(kettle), 1).await;
    let beans_line = api.add_to_cart(&ann, &id(beans), 5).await;
    let item = format!(
        "/user/{}/cart/{}",
        ann.user_id,
        kettle_line["id"].as_str().unwrap()
    );
    let changed = api
        .put(&item, Some(&ann.token), &json!({"quantity": 2}))
        .await
        .expect(200);
    assert_eq!(changed.body["quantity"], 2);
    api.get(&item, Some(&ann.token)).await.expect(200);
    let beans_item = format!(
        "/user/{}/cart/{}",
        ann.user_id,
        beans_line["id"].as_str().unwrap()
    );
    api.delete(&beans_item, Some(&ann.token)).await.expect(204);
    api.get(&beans_item, Some(&ann.token))
        .await
        .problem(404, "not_found");
    api.post(
        &format!("/user/{}/cart/", ann.user_id),
        Some(&ann.token),
        &json!({"product_id": uuid::Uuid::new_v4().to_string(), "quantity": 1}),
    )
    .await
    .problem(404, "product_not_found");
    api.post(
        &format!("/user/{}/cart/", ann.user_id),
        Some(&ann.token),
        &json!({"product_id": id(mug), "quantity": 1000}),
    )
    .await
    .problem(422, "validation_failed");

    let cart = api.cart(&ann).await;
    let expected = price(mug) * 3 + price(kettle) * 2;
    assert_eq!(cart["total_cents"], expected, "{cart}");
    assert_eq!(cart["currency"], "USD");
    assert_eq!(cart["items"].as_array().unwrap().len(), 2);

    // Ann checks out without a key.
    let order = api.checkout(&ann, None).await.expect(201).body;
    assert_eq!(order["status"], "pending_payment");
    assert_eq!(order["user_id"], ann.user_id.as_str());
    assert_eq!(order["amount_cents"], expected);
    assert_eq!(order["items"].as_array().unwrap().len(), 2);
    let invoice = order["invoice_id"].as_str().unwrap().to_string();
    assert!(api.cart(&ann).await["items"].as_array().unwrap().is_empty());
    api.checkout(&ann, None).await.problem(409, "cart_empty");

    // Bob checks out with a key: a retry gets the same order.
    api.add_to_cart(&bob, &id(beans), 2).await;
    let key = uuid::Uuid::new_v4().to_string();
    let bobs = api.checkout(&bob, Some(&key)).await.expect(201).body;
    let retry = api.checkout(&bob, Some(&key)).await.expect(201);
    assert_eq!(retry.body, bobs, "the same key replays the same order");
    assert_eq!(api.orders(&bob).await["total"], 1, "one order, not two");
    let bob_invoice = bobs["invoice_id"].as_str().unwrap().to_string();

    // Each declining test card: 402 with its code, and nothing changes.
    for (card, code) in [
        ("4000000000000002", "card_declined"),
        ("4000000000009995", "insufficient_funds"),
        ("4000000000000069", "expired_card"),
        ("4000000000000119", "processing_error"),
    ] {
        api.pay(&invoice, card).await.problem(402, code);
        let open = api
            .get(&format!("/invoices/{invoice}"), None)
            .await
            .expect(200);
        assert_eq!(
            open.body["status"], "open",
            "{card} leaves the invoice open"
        );
    }
    let expired = api
        .post(
            &format!("/invoices/{invoice}/pay"),
            None,
            &json!({"card_number": "4242424242424242", "exp_month": 1, "exp_year": 2020, "cvc": "123"}),
        )
        .await;
    expired.problem(402, "expired_card");
    api.pay(&invoice, "4242424242424241")
        .await
        .problem(422, "validation_failed");
    assert_eq!(
        api.order(&ann, order["id"].as_str().unwrap())
            .await
            .expect(200)
            .body["status"],
        "pending_payment",
        "declines leave the order pending"
    );

    // 4242 pays Ann's; another Luhn-valid number (a Mastercard) pays Bob's.
    let paid = api.pay(&invoice, "4242 4242 4242 4242").await.expect(200);
    assert_eq!(paid.body["status"], "paid");
    assert_eq!(paid.body["card"], json!({"brand": "visa", "last4": "4242"}));
    assert!(
        !paid.text.contains("424242424242"),
        "only the last four digits are kept"
    );
    api.pay(&invoice, "4242424242424242")
        .await
        .problem(409, "already_paid");
    api.pay(&bob_invoice, "5555555555554444").await.expect(200);

    for (who, order_id) in [
        (&ann, order["id"].as_str().unwrap()),
        (&bob, bobs["id"].as_str().unwrap()),
    ] {
        eventually("the order reads paid", PAID_WITHIN, || async {
            let o = api.order(who, order_id).await;
            match o.body["status"].as_str() {
                Some("paid") => Ok(()),
                _ => Err(o.text),
            }
        })
        .await;
    }
    let listed = api.orders(&ann).await;
    assert_eq!(listed["total"], 1);
    assert_eq!(listed["items"][0]["status"], "paid");
    assert!(listed["items"][0]["paid_at"].is_string());

    // The mail: one welcome and one confirmation each, to the right address.
    for (who, order_id) in [
        (&ann, order["id"].as_str().unwrap()),
        (&bob, bobs["id"].as_str().unwrap()),
    ] {
        let outbox = shop.outbox();
        let mail = eventually(
            "the welcome and confirmation mails",
            DELIVERED_WITHIN,
            || async {
                let mail = mails_to(&outbox, &who.email);
                if mail.len() >= 2 {
                    Ok(mail)
                } else {
                    Err(format!("{mail:?}"))
                }
            },
        )
        .await;
        assert_eq!(mail.len(), 2, "{mail:?}");
        let welcome: Vec<_> = mail
            .iter()
            .filter(|m| m.subject == "Welcome to the shop")
            .collect();
        assert_eq!(welcome.len(), 1, "{mail:?}");
        let confirmation: Vec<_> = mail
            .iter()
            .filter(|m| m.subject.to_lowercase().contains("paid"))
            .collect();
        assert_eq!(confirmation.len(), 1, "{mail:?}");
        assert!(
            confirmation[0].body.contains(order_id),
            "the confirmation names the order: {:?}",
            confirmation[0]
        );
    }

    // The events: registered, items added, order created and paid.
    let ann_events = eventually("Ann's stats events", DELIVERED_WITHIN, || async {
        let events = events_of(&shop, &ann.user_id).await;
        let count = |a: &str| events.iter().filter(|(action, _)| action == a).count();
        if count("user_registered") == 1
            && count("cart_item_added") == 4
            && count("order_created") == 1
            && count("order_paid") == 1
        {
            Ok(events)
        } else {
            Err(format!("{events:?}"))
        }
    })
    .await;
    let paid_event = ann_events.iter().find(|(a, _)| a == "order_paid").unwrap();
    assert_eq!(paid_event.1["order_id"], order["id"]);
    assert_eq!(paid_event.1["amount_cents"], expected);
    let mut bob_events = eventually("Bob's stats events", DELIVERED_WITHIN, || async {
        let events = events_of(&shop, &bob.user_id).await;
        if events.len() >= 4 {
            Ok(events.into_iter().map(|(a, _)| a).collect::<Vec<_>>())
        } else {
            Err(format!("{events:?}"))
        }
    })
    .await;
    bob_events.sort();
    assert_eq!(
        bob_events,
        [
            "cart_item_added",
            "order_created",
            "order_paid",
            "user_registered"
        ],
        "each event once, none doubled"
    );
    // The internal read lists oldest first.
    let all = crate::support::stats_events(&shop).await;
    let times: Vec<&str> = all.iter().map(|e| e["ts"].as_str().unwrap()).collect();
    let mut sorted = times.clone();
    sorted.sort_by_key(|t| parse_ts(t));
    assert_eq!(times, sorted, "events are listed oldest first");
}

/// An RFC 3339 UTC time as comparable parts (the fraction may be absent or
/// of any length, so plain string order is not time order).
fn parse_ts(t: &str) -> (String, u64) {
    let t = t.trim_end_matches('Z');
    match t.split_once('.') {
        Some((secs, frac)) => (
            secs.to_string(),
            format!("{frac:0<9}")[..9].parse().unwrap_or(0),
        ),
        None => (t.to_string(), 0),
    }
}

#[tokio::test]
async fn idempotency_keys_are_honoured_and_scoped() {
    let shop = Shop::shared().await;
    let api = Client::new(shop.url(""));
    let carol = api.new_customer("carol").await;
    let dave = api.new_customer("dave").await;
    let product = api.catalog().await[3]["id"].as_str().unwrap().to_string();
    api.add_to_cart(&carol, &product, 1).await;
    api.add_to_cart(&dave, &product, 1).await;

    let key = "checkout-1";
    let order = api.checkout(&carol, Some(key)).await.expect(201);
    let replay = api.checkout(&carol, Some(key)).await.expect(201);
    assert_eq!(replay.body, order.body);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));

    // Another request under the same key is refused, not replayed.
    let other = api
        .send(
            Method::POST,
            &format!("/user/{}/cart/checkout", carol.user_id),
            Some(&carol.token),
            Some(&json!({"note": "different"})),
            &[("idempotency-key", key)],
        )
        .await;
    other.problem(422, "idempotency_key_reused");

    // Keys are scoped to the caller: Dave's "checkout-1" is his own.
    let daves = api.checkout(&dave, Some(key)).await.expect(201);
    assert_ne!(daves.body["id"], order.body["id"]);
    assert_eq!(daves.body["user_id"], dave.user_id.as_str());

    api.checkout(&carol, Some("naïve"))
        .await
        .problem(422, "invalid_idempotency_key");
    assert_eq!(api.orders(&carol).await["total"], 1);
}

#[tokio::test]
async fn each_user_sees_only_their_own_things() {
    let shop = Shop::shared().await;
    let api = Client::new(shop.url(""));
    let erin = api.new_customer("erin").await;
    let frank = api.new_customer("frank").await;
    let product = api.catalog().await[4]["id"].as_str().unwrap().to_string();
    let line = api.add_to_cart(&frank, &product, 1).await;
    let line_id = line["id"].as_str().unwrap();
    api.add_to_cart(&frank, &product, 1).await;
    let order = api.checkout(&frank, None).await.expect(201).body;
    let order_id = order["id"].as_str().unwrap();
    api.add_to_cart(&frank, &product, 2).await;

    let f = &frank.user_id;
    let erin_token = Some(erin.token.as_str());
    for (method, path, body) in [
        (Method::GET, format!("/user/{f}"), None),
        (
            Method::PUT,
            format!("/user/{f}"),
            Some(json!({"name": "Mallory"})),
        ),
        (Method::DELETE, format!("/user/{f}"), None),
        (Method::GET, format!("/user/{f}/cart/"), None),
        (
            Method::POST,
            format!("/user/{f}/cart/"),
            Some(json!({"product_id": product, "quantity": 1})),
        ),
        (Method::GET, format!("/user/{f}/cart/{line_id}"), None),
        (
            Method::PUT,
            format!("/user/{f}/cart/{line_id}"),
            Some(json!({"quantity": 9})),
        ),
        (Method::DELETE, format!("/user/{f}/cart/{line_id}"), None),
        (Method::POST, format!("/user/{f}/cart/checkout"), None),
        (Method::GET, format!("/user/{f}/orders/"), None),
        (Method::GET, format!("/user/{f}/orders/{order_id}"), None),
    ] {
        let resp = api
            .send(method.clone(), &path, erin_token, body.as_ref(), &[])
            .await;
        assert_eq!(
            resp.status, 403,
            "{method} {path} as another user: {}",
            resp.text
        );
        let anonymous = api
            .send(method.clone(), &path, None, body.as_ref(), &[])
            .await;
        assert_eq!(
            anonymous.status, 401,
            "{method} {path} without a token: {}",
            anonymous.text
        );
        assert_eq!(anonymous.header("www-authenticate"), Some("Bearer"));
    }
    // Frank's things are as he left them.
    let cart = api.cart(&frank).await;
    assert_eq!(cart["items"][0]["quantity"], 2, "{cart}");
    assert_eq!(api.orders(&frank).await["total"], 1);
    // Erin's own lists do not show Frank's.
    assert!(api.cart(&erin).await["items"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(api.orders(&erin).await["total"], 0);
    // Someone else's order id under one's own user is simply not found.
    api.order(&erin, order_id).await.problem(404, "not_found");

    // An admin may look at anybody's.
    let admin = api.admin().await;
    api.get(&format!("/user/{f}/orders/{order_id}"), Some(&admin.token))
        .await
        .expect(200);
}

#[tokio::test]
async fn internal_endpoints_and_unknown_paths_are_404_through_the_balancer() {
    let shop = Shop::shared().await;
    let api = Client::new(shop.url(""));
    let key = shop.internal_key();
    for (method, path) in [
        (
            Method::GET,
            "/log?from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z",
        ),
        (
            Method::GET,
            "/log/summary?from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z",
        ),
        (Method::POST, "/send_email/"),
        (Method::POST, "/send_email"),
        (Method::POST, "/internal/payments/webhook"),
        (Method::GET, "/nothing-here"),
        (Method::GET, "/users"),
    ] {
        // Even with the real internal key: the balancer never routes them.
        let body = json!({"to": "x@example.com", "subject": "s", "body": "b"});
        let resp = api
            .send(method.clone(), path, Some(&key), Some(&body), &[])
            .await;
        resp.problem(404, "not_found");
    }
    // The same read works on the stats port itself, with the key only.
    let stats = Client::new(shop.ports.url("stats"));
    let path = "/log?from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z";
    stats.get(path, Some(&key)).await.expect(200);
    stats.get(path, None).await.expect(401);
    let customer = api.new_customer("snoop").await;
    stats.get(path, Some(&customer.token)).await.expect(403);

    // POST /log is public.
    api.post(
        "/log",
        None,
        &json!({"action": "e2e_probe", "data": {"n": 1}}),
    )
    .await
    .expect(202);
    // Known path, wrong method: 405 naming what is allowed.
    let wrong = api
        .send(Method::DELETE, "/user/login", None, None, &[])
        .await
        .problem(405, "method_not_allowed");
    assert_eq!(wrong.header("allow"), Some("POST"));
}

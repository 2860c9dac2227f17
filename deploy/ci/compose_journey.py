#!/usr/bin/env python3
"""The operator's checks against a shop that docker-compose runs, all through
published ports (the balancer's and Mailpit's), standard library only.
deploy/ci/compose-test.sh calls one subcommand per step:

  journey SHOP MAIL STATE     register, log in, find a demo product, cart,
                              checkout, pay, order paid, the email arrived;
                              internal paths 404; / is the storefront.
                              Writes what it made to STATE (JSON).
  load SHOP SECONDS WORKERS   GETs through the balancer; exits 1 if any
                              request fails (status other than 200, or no
                              answer at all).
  traffic SHOP SECONDS STATE  light traffic (catalog and the user's orders);
                              prints each status count; exits 1 if any
                              answer is neither 200 nor 503 (a 500, a 502,
                              no answer at all).
  after-outage SHOP STATE     every request answers, none 500; the journey's
                              order and account are still there.
  persisted SHOP STATE        after down/up: login, the paid order, the same
                              catalog size (the seed added nothing again).
  targets PROM EXPECTED       waits until Prometheus has EXPECTED targets,
                              all up.
"""
import json
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid


def call(method, url, body=None, token=None, headers=None, timeout=10):
    """(status, parsed JSON or text); connection errors are status 0."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", "Bearer " + token)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw, ctype = r.status, r.read(), r.headers.get("content-type", "")
    except urllib.error.HTTPError as e:
        status, raw, ctype = e.code, e.read(), e.headers.get("content-type", "")
    except (urllib.error.URLError, OSError) as e:
        return 0, str(e)
    if "json" in ctype and raw:
        return status, json.loads(raw)
    return status, raw.decode(errors="replace")


def expect(what, got, want):
    status, body = got
    if status != want:
        sys.exit(f"FAIL {what}: expected {want}, got {status}: {str(body)[:300]}")
    print(f"ok   {what} ({status})")
    return body


def until(what, fn, seconds=60):
    deadline = time.time() + seconds
    while True:
        result = fn()
        if result:
            print(f"ok   {what}")
            return result
        if time.time() > deadline:
            sys.exit(f"FAIL {what}: not within {seconds}s")
        time.sleep(1)


def login(shop, email, password):
    body = expect("login", call("POST", f"{shop}/user/login", {"email": email, "password": password}), 200)
    return body["token"], body["user_id"]


def catalog_total(shop):
    body = expect("catalog", call("GET", f"{shop}/products/?limit=100"), 200)
    return len(body["items"])


def journey(shop, mail, state_path):
    page = expect("GET / serves the storefront", call("GET", f"{shop}/"), 200)
    if "<html" not in str(page).lower():
        sys.exit("FAIL GET /: not HTML")
    # The page's own code and a client-side route, as a browser loads them.
    expect("GET /assets/app.js (the storefront's code)", call("GET", f"{shop}/assets/app.js"), 200)
    route = expect("a reload of /shop/cart is the page", call("GET", f"{shop}/shop/cart", headers={"accept": "text/html"}), 200)
    if "<html" not in str(route).lower():
        sys.exit("FAIL GET /shop/cart: not HTML")
    for path in ("/internal/payments/webhook", "/internal/tokens", "/metrics", "/log"):
        expect(f"{path} is not public", call("GET", f"{shop}{path}"), 404)

    email = f"ci-{uuid.uuid4().hex[:12]}@example.com"
    password = "correct horse battery"
    expect("register", call("POST", f"{shop}/user/", {"email": email, "password": password, "name": "CI"}), 201)
    token, me = login(shop, email, password)

    total = catalog_total(shop)
    if total < 10:
        sys.exit(f"FAIL the demo catalog is seeded: {total} products")
    found = expect("search the demo catalog for 'mug'", call("GET", f"{shop}/products/?q=mug"), 200)["items"]
    if not found:
        sys.exit("FAIL no demo product matches 'mug'")
    product = found[0]
    print(f"     found {product['name']!r}")

    expect("add to cart", call("POST", f"{shop}/user/{me}/cart/", {"product_id": product["id"], "quantity": 2}, token), 201)
    cart = expect("look at the cart", call("GET", f"{shop}/user/{me}/cart/", token=token), 200)
    if cart["total_cents"] != 2 * product["price_cents"]:
        sys.exit(f"FAIL cart total {cart['total_cents']} for 2 x {product['price_cents']}")
    order = expect("checkout", call("POST", f"{shop}/user/{me}/cart/checkout", token=token,
                                    headers={"Idempotency-Key": "ci-" + uuid.uuid4().hex}), 201)
    card = {"card_number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"}
    expect("pay the invoice", call("POST", f"{shop}/invoices/{order['invoice_id']}/pay", card), 200)
    until("the order turns paid", lambda: call("GET", f"{shop}/user/{me}/orders/{order['id']}", token=token)[1].get("status") == "paid")

    def mails():
        status, body = call("GET", f"{mail}/api/v1/messages")
        if status != 200:
            return None
        mine = [m for m in body["messages"] if any(t["Address"] == email for t in m["To"])]
        return mine if any("is paid" in m["Subject"] for m in mine) else None
    mine = until("the order email reached the mail container (Mailpit)", mails)
    print("     subjects: " + "; ".join(m["Subject"] for m in mine))

    with open(state_path, "w") as f:
        json.dump({"email": email, "password": password, "user_id": me, "order_id": order["id"],
                   "product_id": product["id"], "catalog": total}, f)


def load(shop, seconds, workers):
    """Bounded load: WORKERS threads in a loop for SECONDS."""
    counts, failures, lock = {}, [], threading.Lock()
    stop = time.time() + seconds

    def worker():
        while time.time() < stop:
            status, body = call("GET", f"{shop}/products/?limit=5")
            with lock:
                counts[status] = counts.get(status, 0) + 1
                if status != 200:
                    failures.append((status, str(body)[:200]))
    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"load: {sum(counts.values())} requests, statuses {counts}")
    if failures:
        sys.exit(f"FAIL {len(failures)} requests failed, e.g. {failures[:3]}")


def traffic(shop, seconds, state_path):
    state = json.load(open(state_path))
    token, me = login(shop, state["email"], state["password"])
    counts, last500, odd = {}, None, []
    began = time.time()
    stop = began + seconds
    while time.time() < stop:
        for method, url in (("GET", f"{shop}/products/?limit=5"), ("GET", f"{shop}/user/{me}/orders/")):
            status, body = call(method, url, token=token, timeout=5)
            counts[status] = counts.get(status, 0) + 1
            if status == 500:
                last500 = time.time()
            if status not in (200, 503):
                # Which request, when, and the problem's detail: enough to
                # tell a replica that went away from a broken exchange.
                odd.append(f"{time.time() - began:.1f}s {method} {url.removeprefix(shop)} {status} {str(body)[:160]}")
        time.sleep(0.2)
    print(f"traffic: statuses {counts}" + (f"; last 500 at {last500}" if last500 else ""))
    for line in odd:
        print(f"  not 200 or 503: {line}")
    if odd:
        sys.exit(f"FAIL traffic: {len(odd)} answers were neither 200 nor 503")


def after_outage(shop, state_path):
    state = json.load(open(state_path))
    token, me = login(shop, state["email"], state["password"])
    for _ in range(20):
        for url in (f"{shop}/products/?limit=5", f"{shop}/user/{me}/orders/", f"{shop}/user/{me}/cart/"):
            status, body = call("GET", url, token=token)
            if status != 200:
                sys.exit(f"FAIL after recovery {url}: {status} {str(body)[:200]}")
    order = expect("the order from before", call("GET", f"{shop}/user/{me}/orders/{state['order_id']}", token=token), 200)
    if order["status"] != "paid":
        sys.exit(f"FAIL order status {order['status']}")
    # A write commits again.
    expect("a cart write after recovery", call("POST", f"{shop}/user/{me}/cart/", {"product_id": state["product_id"], "quantity": 1}, token), 201)
    print("ok   60 reads after recovery, none failed; the order is still paid")


def persisted(shop, state_path):
    state = json.load(open(state_path))
    token, me = login(shop, state["email"], state["password"])
    order = expect("the order after down/up", call("GET", f"{shop}/user/{me}/orders/{state['order_id']}", token=token), 200)
    if order["status"] != "paid":
        sys.exit(f"FAIL order status {order['status']}")
    total = catalog_total(shop)
    if total != state["catalog"]:
        sys.exit(f"FAIL catalog has {total} products, had {state['catalog']} (seeded twice?)")
    print(f"ok   account, paid order and the {total}-product catalog survived down/up")


def targets(prom, expected):
    def all_up():
        status, body = call("GET", f"{prom}/api/v1/targets")
        if status != 200:
            return None
        active = body["data"]["activeTargets"]
        health = sorted(f"{t['labels']['job']}@{t['labels']['instance']}={t['health']}" for t in active)
        print("     " + " ".join(health))
        return active if len(active) == expected and all(t["health"] == "up" for t in active) else None
    until(f"Prometheus reports {expected} targets, all up", all_up, seconds=90)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "journey":
        journey(*args)
    elif cmd == "load":
        load(args[0], float(args[1]), int(args[2]))
    elif cmd == "traffic":
        traffic(args[0], float(args[1]), args[2])
    elif cmd == "after-outage":
        after_outage(*args)
    elif cmd == "persisted":
        persisted(*args)
    elif cmd == "targets":
        targets(args[0], int(args[1]))
    else:
        sys.exit(__doc__)

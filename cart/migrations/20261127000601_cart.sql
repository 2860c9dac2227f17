-- The cart service's tables. Money is integer minor units, times are epoch
-- milliseconds, ids are UUIDv7 strings (time-ordered).

-- One line per (user, product): adding a product again adds to its
-- quantity through an upsert on this key. `name`, `unit_price_cents` and
-- `currency` are the product as last seen; reads show the current product
-- and fall back to these only for a product deleted since.
CREATE TABLE cart_items (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    product_id TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    name TEXT NOT NULL,
    unit_price_cents BIGINT NOT NULL,
    currency TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (user_id, product_id)
);

-- Orders. `status` is `creating` (written before the invoice exists, not
-- shown to clients), `pending_payment`, `paid` or `abandoned` (a checkout
-- that failed or lost a race; not shown). `checkout_key` is the client's
-- Idempotency-Key (prefixed with the caller), so a retry after a crash
-- finds the order it started; it is cleared when the order is abandoned.
-- `email` is where the confirmation goes (from the checkout token).
CREATE TABLE orders (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    email TEXT,
    checkout_key TEXT,
    amount_cents BIGINT NOT NULL,
    currency TEXT NOT NULL,
    invoice_id TEXT,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    paid_at BIGINT,
    next_check_at BIGINT NOT NULL DEFAULT 0
);

CREATE UNIQUE INDEX orders_checkout_key ON orders (user_id, checkout_key);
CREATE INDEX orders_user_created ON orders (user_id, created_at);
CREATE INDEX orders_status_check ON orders (status, next_check_at);
CREATE UNIQUE INDEX orders_invoice ON orders (invoice_id);

-- The item snapshot of an order: name and price as they were at checkout.
CREATE TABLE order_items (
    id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL REFERENCES orders (id),
    position BIGINT NOT NULL,
    product_id TEXT NOT NULL,
    name TEXT NOT NULL,
    unit_price_cents BIGINT NOT NULL,
    quantity BIGINT NOT NULL,
    UNIQUE (order_id, product_id)
);

-- Webhook events already applied, so a redelivered event changes nothing.
-- Inserted in the same transaction as the change the event causes.
CREATE TABLE webhook_events (
    event_id TEXT PRIMARY KEY,
    event_type TEXT NOT NULL,
    received_at BIGINT NOT NULL
);

CREATE INDEX webhook_events_received ON webhook_events (received_at);

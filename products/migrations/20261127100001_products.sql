-- The catalog. `name_lower` is the name lower-cased by the service (Rust's
-- Unicode rules, identical on SQLite and PostgreSQL) for case-insensitive
-- search. `seed_key` marks products loaded from the bundled demo catalog;
-- its uniqueness makes `products seed` idempotent, and it is NULL (never
-- conflicting) for products an admin created. Deletion is soft so orders
-- and carts that name a product keep meaning something.
CREATE TABLE products (
    id TEXT PRIMARY KEY,
    seed_key TEXT UNIQUE,
    name TEXT NOT NULL,
    name_lower TEXT NOT NULL,
    description TEXT NOT NULL,
    price_cents BIGINT NOT NULL,
    currency TEXT NOT NULL,
    stock BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    deleted_at BIGINT
);

-- Lists read live products in creation order.
CREATE INDEX products_live_order ON products (created_at, id) WHERE deleted_at IS NULL;

-- Invoices of the mock payment provider. Of a card only the brand and the
-- last four digits are ever stored; the number and CVC never reach a table.
CREATE TABLE invoices (
    id TEXT PRIMARY KEY,
    amount_cents BIGINT NOT NULL,
    currency TEXT NOT NULL,
    reference TEXT,
    status TEXT NOT NULL,
    card_brand TEXT,
    card_last4 TEXT,
    created_at BIGINT NOT NULL,
    paid_at BIGINT
);

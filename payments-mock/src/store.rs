//! All SQL of the payments-mock service.

use common::db::Db;
use common::messages::{InvoicePaid, Message};
use common::time::{now_ms, rfc3339};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::domain::{new_invoice_id, CardSummary, Invoice, NewInvoice, Status};

#[derive(Debug, thiserror::Error)]
pub enum PayError {
    #[error("the invoice does not exist")]
    NotFound,
    #[error("the invoice is already paid")]
    AlreadyPaid,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

#[derive(Clone, Debug)]
pub struct Store {
    pub db: Db,
}

const COLUMNS: &str =
    "id, amount_cents, currency, reference, status, card_brand, card_last4, created_at, paid_at";

fn invoice_from_row(row: &AnyRow) -> Invoice {
    let status: String = row.get("status");
    let card = match (
        row.get::<Option<String>, _>("card_brand"),
        row.get::<Option<String>, _>("card_last4"),
    ) {
        (Some(brand), Some(last4)) => Some(CardSummary { brand, last4 }),
        _ => None,
    };
    Invoice {
        id: row.get("id"),
        amount_cents: row.get("amount_cents"),
        currency: row.get("currency"),
        reference: row.get("reference"),
        // Only this service writes the column, always from a Status.
        status: Status::parse(&status).unwrap_or(Status::Open),
        created_at: rfc3339(row.get("created_at")),
        paid_at: row.get::<Option<i64>, _>("paid_at").map(rfc3339),
        card,
    }
}

impl Store {
    pub async fn create(&self, new: &NewInvoice) -> Result<Invoice, sqlx::Error> {
        common::telemetry::db("INSERT", "invoices")
            .run(async move {
                let id = new_invoice_id();
                let now = now_ms();
                sqlx::query(
                "INSERT INTO invoices (id, amount_cents, currency, reference, status, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&id)
            .bind(new.amount_cents)
            .bind(new.currency.as_str())
            .bind(new.reference.as_deref())
            .bind(Status::Open.as_str())
            .bind(now)
            .execute(&mut *self.db.writer().await?)
            .await?;
                Ok(Invoice {
                    id,
                    amount_cents: new.amount_cents,
                    currency: new.currency.to_string(),
                    reference: new.reference.clone(),
                    status: Status::Open,
                    created_at: rfc3339(now),
                    paid_at: None,
                    card: None,
                })
            })
            .await
    }

    pub async fn get(&self, id: &str) -> Result<Option<Invoice>, sqlx::Error> {
        common::telemetry::db("SELECT", "invoices")
            .run(async move {
                let row = sqlx::query(&format!("SELECT {COLUMNS} FROM invoices WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(&self.db.pool)
                    .await?;
                Ok(row.as_ref().map(invoice_from_row))
            })
            .await
    }

    /// Marks an open invoice paid and, in the same transaction, queues the
    /// `invoice.paid` webhook. Of many concurrent payments exactly one
    /// passes the conditional UPDATE; the others see `AlreadyPaid`.
    pub async fn pay(&self, id: &str, card: &CardSummary) -> Result<Invoice, PayError> {
        common::telemetry::db("TRANSACTION", "invoices")
            .run(async move {
                let now = now_ms();
                let mut tx = self.db.begin_write().await?;
                let updated = sqlx::query(
                "UPDATE invoices SET status = $1, paid_at = $2, card_brand = $3, card_last4 = $4 \
                 WHERE id = $5 AND status = $6",
            )
            .bind(Status::Paid.as_str())
            .bind(now)
            .bind(&card.brand)
            .bind(&card.last4)
            .bind(id)
            .bind(Status::Open.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
                let row = sqlx::query(&format!("SELECT {COLUMNS} FROM invoices WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(invoice) = row.as_ref().map(invoice_from_row) else {
                    return Err(PayError::NotFound);
                };
                if updated == 0 {
                    return Err(PayError::AlreadyPaid);
                }
                InvoicePaid::new(&invoice, now)
                    .outgoing()
                    .enqueue(&mut tx)
                    .await?;
                tx.commit().await?;
                Ok(invoice)
            })
            .await
    }
}

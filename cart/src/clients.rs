//! Typed clients for the services the cart calls: products (the current
//! name and price of what is in a cart) and the payment provider
//! (invoices). Both go through common's [`HttpClient`]: short timeouts,
//! the request id passed on, and a dependency that is down becomes an
//! error the handlers answer `503` — never `500`, never a hang.

use std::collections::HashMap;

use common::client::{ClientError, HttpClient};
use common::messages::{CreateInvoice, Message};
use common::money::Money;
use http::StatusCode;
use serde::Deserialize;

use crate::domain::Product;

/// Most ids products' batch read (`GET /products/?ids=`) takes at once;
/// also its largest page, so one request answers for every id it names.
const BATCH: usize = 100;

/// The part of products' list envelope a batch read needs.
#[derive(Deserialize)]
struct ProductPage {
    items: Vec<Product>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProductError {
    #[error("the product does not exist or was deleted")]
    NotFound,
    #[error(transparent)]
    Unavailable(#[from] ClientError),
}

#[derive(Clone, Debug)]
pub struct ProductsClient {
    http: HttpClient,
    base_url: String,
}

impl ProductsClient {
    /// `http` is the service's one client (shared connection pool).
    pub fn new(http: HttpClient, base_url: &str) -> Self {
        ProductsClient {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
        }
    }

    /// `GET /product/{id}`; `id` must be a canonical UUID (it goes into the
    /// path as is).
    pub async fn get(&self, id: &str) -> Result<Product, ProductError> {
        let url = format!("{}/product/{id}", self.base_url);
        match self
            .http
            .json::<Product>(self.http.request(reqwest::Method::GET, &url))
            .await
        {
            Ok(p) => Ok(p),
            Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => Err(ProductError::NotFound),
            Err(e) => Err(ProductError::Unavailable(e)),
        }
    }

    /// Reads several products with one batch request per [`BATCH`] ids
    /// (one for any cart), `GET /products/?ids=…`; answers in the order of
    /// `ids`, `None` for a product products does not list (deleted or
    /// never made). `ids` must be canonical UUIDs, as stored lines hold.
    pub async fn get_many(&self, ids: &[String]) -> Result<Vec<Option<Product>>, ClientError> {
        let mut found: HashMap<String, Product> = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(BATCH) {
            let url = format!(
                "{}/products/?limit={BATCH}&ids={}",
                self.base_url,
                chunk.join(",")
            );
            let page: ProductPage = self
                .http
                .json(self.http.request(reqwest::Method::GET, &url))
                .await?;
            found.extend(page.items.into_iter().map(|p| (p.id.clone(), p)));
        }
        Ok(ids.iter().map(|id| found.get(id).cloned()).collect())
    }
}

/// An invoice at the payment provider (the fields the cart uses).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Invoice {
    pub id: String,
    pub status: String,
    pub amount_cents: i64,
    pub currency: String,
}

impl Invoice {
    /// What the invoice asks to be paid.
    pub fn amount(&self) -> Money<'_> {
        Money::new(self.amount_cents, &self.currency)
    }

    pub fn is_paid(&self) -> bool {
        self.status == "paid"
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PaymentsError {
    /// The provider refused the invoice itself (`400`/`422`): retrying the
    /// same request cannot help.
    #[error("the payment provider rejected the invoice: {0}")]
    Rejected(String),
    #[error(transparent)]
    Unavailable(#[from] ClientError),
}

#[derive(Clone)]
pub struct PaymentsClient {
    http: HttpClient,
    base_url: String,
    server_key: String,
}

impl std::fmt::Debug for PaymentsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentsClient")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// Invoice ids go into URL paths; the provider's are `inv_<hex>`, and
/// anything outside a conservative alphabet is refused rather than escaped.
fn is_safe_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 100
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl PaymentsClient {
    /// `http` is the service's one client (shared connection pool).
    pub fn new(http: HttpClient, base_url: &str, server_key: &str) -> Self {
        PaymentsClient {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            server_key: server_key.to_string(),
        }
    }

    /// `POST /invoices` for an order, with `Idempotency-Key: order-<id>`:
    /// however often this runs for one order (a retry, the recovery sweep
    /// after a crash), the provider creates one invoice and answers each
    /// call with it.
    pub async fn create_invoice(
        &self,
        order_id: &str,
        amount_cents: i64,
        currency: &str,
    ) -> Result<Invoice, PaymentsError> {
        let url = format!("{}{}", self.base_url, CreateInvoice::PATH);
        let rb = self
            .http
            .request(reqwest::Method::POST, &url)
            .bearer_auth(&self.server_key)
            .header("idempotency-key", format!("order-{order_id}"))
            .json(&CreateInvoice {
                amount_cents,
                currency,
                reference: Some(format!("order {order_id}")),
            });
        match self.http.json::<Invoice>(rb).await {
            Ok(invoice) if is_safe_id(&invoice.id) => Ok(invoice),
            Ok(invoice) => Err(PaymentsError::Rejected(format!(
                "the provider answered with an unusable invoice id {:?}",
                invoice.id
            ))),
            Err(ClientError::Status {
                status, body, url, ..
            }) if matches!(status.as_u16(), 400 | 422) => {
                log::warn!("{url} refused an invoice: {status} {body}");
                Err(PaymentsError::Rejected(problem_detail(&body)))
            }
            Err(e) => {
                if matches!(e.status().map(|s| s.as_u16()), Some(401 | 403)) {
                    log::error!(
                        "the payment provider refuses our server key: check payments_key / SHOP_PAYMENTS_KEY"
                    );
                }
                Err(PaymentsError::Unavailable(e))
            }
        }
    }

    /// `GET /invoices/{id}`; `None` when the provider does not know it.
    pub async fn get_invoice(&self, id: &str) -> Result<Option<Invoice>, ClientError> {
        if !is_safe_id(id) {
            return Ok(None);
        }
        let url = format!("{}/invoices/{id}", self.base_url);
        match self
            .http
            .json::<Invoice>(self.http.request(reqwest::Method::GET, &url))
            .await
        {
            Ok(invoice) => Ok(Some(invoice)),
            Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The `detail` of a problem+json body, for passing a refusal on; the raw
/// body is not shown to clients.
fn problem_detail(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("detail").and_then(|d| d.as_str()).map(str::to_string))
        .unwrap_or_else(|| "the invoice was refused".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_invoice_ids_reach_a_url() {
        assert!(is_safe_id("inv_0190e5b0c6a57d7c9b1e2f3a4b5c6d7e"));
        for bad in ["", "../x", "a/b", "a?b", "a b", "ä"] {
            assert!(!is_safe_id(bad), "{bad}");
        }
    }

    #[test]
    fn refusals_pass_on_only_the_detail() {
        assert_eq!(
            problem_detail(r#"{"detail":"amount_cents: too large","code":"x"}"#),
            "amount_cents: too large"
        );
        assert_eq!(problem_detail("<html>"), "the invoice was refused");
    }
}

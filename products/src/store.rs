//! All SQL of the products service.
//!
//! Written once for SQLite and PostgreSQL (see `common::db`): `$n`
//! placeholders, epoch-millisecond times, and every aggregate cast to BIGINT.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use common::db::Db;
use common::pagination::PageParams;
use common::time::{now_ms, rfc3339};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::domain::{CategoryCount, NewProduct, Product, ProductChanges};
use crate::listing::ListQuery;

#[derive(Clone)]
pub struct Store {
    pub db: Db,
    /// Moves on after every write made through this store (and its
    /// clones), so caches of reads can tell they may be stale.
    version: Arc<AtomicU64>,
}

/// The columns a [`Product`] is read from, in one place; a macro so the
/// queries are assembled at compile time with `concat!`.
macro_rules! columns {
    () => {
        "id, name, description, price_cents, currency, stock, category, image_url, created_at, updated_at"
    };
}

const GET: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM products WHERE id = $1 AND deleted_at IS NULL"
);

// Grouped in SQL, ordered in Rust: PostgreSQL's collation may ignore the
// hyphens of slugs, and both engines must answer in the same order.
const CATEGORIES: &str = "SELECT category, CAST(COUNT(*) AS BIGINT) AS count FROM products \
     WHERE deleted_at IS NULL GROUP BY category";

macro_rules! insert {
    () => {
        "INSERT INTO products \
         (id, seed_key, name, name_lower, description, price_cents, currency, stock, category, image_url, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)"
    };
}
const INSERT: &str = insert!();
// Idempotent seeding: a product whose key is present is left alone, even if
// an admin has since edited or deleted it.
const INSERT_SEED: &str = concat!(insert!(), " ON CONFLICT (seed_key) DO NOTHING");

// One statement, so concurrent partial updates of different fields never
// undo each other, and RETURNING hands back exactly the row this update
// wrote (name and name_lower always from the same write).
const UPDATE: &str = concat!(
    "UPDATE products SET \
       name = COALESCE($1, name), name_lower = COALESCE($2, name_lower), \
       description = COALESCE($3, description), price_cents = COALESCE($4, price_cents), \
       currency = COALESCE($5, currency), stock = COALESCE($6, stock), \
       category = COALESCE($9, category), \
       image_url = CASE WHEN $10 THEN $11 ELSE image_url END, updated_at = $7 \
     WHERE id = $8 AND deleted_at IS NULL RETURNING ",
    columns!()
);

const DELETE: &str =
    "UPDATE products SET deleted_at = $1, updated_at = $1 WHERE id = $2 AND deleted_at IS NULL";

fn product_from_row(row: &AnyRow) -> Result<Product, sqlx::Error> {
    Ok(Product {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        price_cents: row.try_get("price_cents")?,
        currency: row.try_get("currency")?,
        stock: row.try_get("stock")?,
        category: row.try_get("category")?,
        image_url: row.try_get("image_url")?,
        created_at: rfc3339(row.try_get("created_at")?),
        updated_at: rfc3339(row.try_get("updated_at")?),
    })
}

/// The LIKE pattern for "name contains `q`", case-insensitively: `q` is
/// lower-cased like `name_lower`, and `\`, `%` and `_` are escaped so they
/// match themselves. The pattern is always bound as a parameter.
pub fn contains_pattern(q: &str) -> String {
    let lower = q.to_lowercase();
    let mut pattern = String::with_capacity(lower.len() + 2);
    pattern.push('%');
    for c in lower.chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// The WHERE clause of a list (live products matching `filter`) and the
/// values it binds, numbered from placeholder `$first`. Only constant text
/// goes into the SQL; every value is bound.
fn list_filter(filter: &ListQuery, first: usize) -> (String, Vec<String>) {
    let mut sql = String::from("deleted_at IS NULL");
    let mut values = Vec::new();
    if let Some(q) = &filter.q {
        sql.push_str(&format!(
            " AND name_lower LIKE ${} ESCAPE '\\'",
            first + values.len()
        ));
        values.push(contains_pattern(q));
    }
    if let Some(category) = &filter.category {
        sql.push_str(&format!(" AND category = ${}", first + values.len()));
        values.push(category.as_str().to_string());
    }
    if let Some(ids) = &filter.ids {
        let from = first + values.len();
        let placeholders: Vec<String> = (from..from + ids.len()).map(|n| format!("${n}")).collect();
        sql.push_str(&format!(" AND id IN ({})", placeholders.join(", ")));
        values.extend(ids.iter().cloned());
    }
    (sql, values)
}

/// One product of the bundled catalog, identified by a stable key.
pub struct SeedProduct<'a> {
    pub key: &'a str,
    pub product: &'a NewProduct,
}

impl Store {
    pub fn new(db: Db) -> Store {
        Store {
            db,
            version: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The local write version. Read it *before* a query whose result is
    /// cached: a write that lands meanwhile moves it on, so that result is
    /// never served as current.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::SeqCst)
    }

    /// Called after every write, whatever its outcome: a failed commit may
    /// still have changed something, and a needless bump costs one miss.
    fn wrote(&self) {
        self.version.fetch_add(1, Ordering::SeqCst);
    }

    pub async fn create(&self, p: &NewProduct) -> Result<Product, sqlx::Error> {
        common::telemetry::db("INSERT", "products")
            .run(async move {
                let id = uuid::Uuid::now_v7().to_string();
                let now = now_ms();
                let inserted = self.insert(&self.db.pool, &id, None, p, now).await;
                self.wrote();
                inserted?;
                let at = rfc3339(now);
                Ok(Product {
                    id,
                    name: p.name.as_str().to_string(),
                    description: p.description.as_str().to_string(),
                    price_cents: p.price_cents.get(),
                    currency: p.currency.as_str().to_string(),
                    stock: p.stock.get(),
                    category: p.category.as_str().to_string(),
                    image_url: p.image_url.as_ref().map(|u| u.as_str().to_string()),
                    created_at: at.clone(),
                    updated_at: at,
                })
            })
            .await
    }

    /// Inserts one row; `Ok(false)` when a seed key already exists.
    async fn insert<'e, E>(
        &self,
        exec: E,
        id: &str,
        seed_key: Option<&str>,
        p: &NewProduct,
        now: i64,
    ) -> Result<bool, sqlx::Error>
    where
        E: sqlx::Executor<'e, Database = sqlx::Any>,
    {
        let sql = if seed_key.is_some() {
            INSERT_SEED
        } else {
            INSERT
        };
        let result = sqlx::query(sql)
            .bind(id)
            .bind(seed_key)
            .bind(p.name.as_str())
            .bind(p.name.as_str().to_lowercase())
            .bind(p.description.as_str())
            .bind(p.price_cents.get())
            .bind(p.currency.as_str())
            .bind(p.stock.get())
            .bind(p.category.as_str())
            .bind(p.image_url.as_ref().map(|u| u.as_str()))
            .bind(now)
            .execute(exec)
            .await?;
        Ok(result.rows_affected() == 1)
    }

    /// A live product by (canonical) id.
    pub async fn get(&self, id: &str) -> Result<Option<Product>, sqlx::Error> {
        common::telemetry::db("SELECT", "products")
            .run(async move {
                let row = sqlx::query(GET)
                    .bind(id)
                    .fetch_optional(&self.db.pool)
                    .await?;
                row.as_ref().map(product_from_row).transpose()
            })
            .await
    }

    /// A page of the live products `filter` selects, in its order, and
    /// how many it selects in all.
    pub async fn list(
        &self,
        filter: &ListQuery,
        page: PageParams,
    ) -> Result<(Vec<Product>, i64), sqlx::Error> {
        common::telemetry::db("SELECT", "products")
            .run(async move {
                // The page and the total come from one statement (a window count),
                // so they always describe the same snapshot even while admins write.
                let (condition, values) = list_filter(filter, 3);
                let sql = format!(
                    concat!(
                        "SELECT ",
                        columns!(),
                        ", CAST(COUNT(*) OVER () AS BIGINT) AS total FROM products WHERE {} \
                     ORDER BY {} LIMIT $1 OFFSET $2"
                    ),
                    condition,
                    filter.sort.order_by()
                );
                let mut query = sqlx::query(&sql).bind(page.limit).bind(page.offset);
                for value in &values {
                    query = query.bind(value.as_str());
                }
                let rows = query.fetch_all(&self.db.pool).await?;
                let total = match rows.first() {
                    Some(row) => row.try_get::<i64, _>("total")?,
                    None if page.offset == 0 => 0,
                    // A page past the end has no row to carry the window count.
                    None => {
                        let (condition, values) = list_filter(filter, 1);
                        let sql = format!(
                            "SELECT CAST(COUNT(*) AS BIGINT) FROM products WHERE {condition}"
                        );
                        let mut count = sqlx::query_scalar(&sql);
                        for value in &values {
                            count = count.bind(value.as_str());
                        }
                        count.fetch_one(&self.db.pool).await?
                    }
                };
                let items = rows
                    .iter()
                    .map(product_from_row)
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((items, total))
            })
            .await
    }

    /// The categories that have live products, with how many, by name.
    pub async fn categories(&self) -> Result<Vec<CategoryCount>, sqlx::Error> {
        common::telemetry::db("SELECT", "products")
            .run(async move {
                let rows = sqlx::query(CATEGORIES).fetch_all(&self.db.pool).await?;
                let mut items = rows
                    .iter()
                    .map(|row| {
                        Ok(CategoryCount {
                            name: row.try_get("category")?,
                            count: row.try_get("count")?,
                        })
                    })
                    .collect::<Result<Vec<_>, sqlx::Error>>()?;
                items.sort_by(|a, b| a.name.cmp(&b.name));
                Ok(items)
            })
            .await
    }

    /// Applies the given changes to a live product in one statement and
    /// returns the row as written; `None` if there is no such product.
    pub async fn update(
        &self,
        id: &str,
        c: &ProductChanges,
    ) -> Result<Option<Product>, sqlx::Error> {
        common::telemetry::db("UPDATE", "products")
            .run(async move {
                let name = c.name.as_ref().map(|n| n.as_str());
                let row = sqlx::query(UPDATE)
                    .bind(name)
                    .bind(name.map(str::to_lowercase))
                    .bind(c.description.as_ref().map(|d| d.as_str()))
                    .bind(c.price_cents.map(|p| p.get()))
                    .bind(c.currency.as_ref().map(|x| x.as_str()))
                    .bind(c.stock.map(|s| s.get()))
                    .bind(now_ms())
                    .bind(id)
                    .bind(c.category.as_ref().map(|x| x.as_str()))
                    .bind(c.image_url.is_some())
                    .bind(
                        c.image_url
                            .as_ref()
                            .and_then(|u| u.as_ref().map(|u| u.as_str())),
                    )
                    .fetch_optional(&mut *self.db.writer().await?)
                    .await;
                self.wrote();
                row?.as_ref().map(product_from_row).transpose()
            })
            .await
    }

    /// Marks a live product deleted; `false` if there was none.
    pub async fn delete(&self, id: &str) -> Result<bool, sqlx::Error> {
        common::telemetry::db("DELETE", "products")
            .run(async move {
                let result = sqlx::query(DELETE)
                    .bind(now_ms())
                    .bind(id)
                    .execute(&mut *self.db.writer().await?)
                    .await;
                self.wrote();
                Ok(result?.rows_affected() == 1)
            })
            .await
    }

    /// Inserts the catalog products whose keys are not present yet, in one
    /// transaction and in catalog order; returns how many were inserted.
    pub async fn insert_seed(&self, products: &[SeedProduct<'_>]) -> Result<usize, sqlx::Error> {
        let inserted = self.insert_seed_tx(products).await;
        self.wrote();
        inserted
    }

    async fn insert_seed_tx(&self, products: &[SeedProduct<'_>]) -> Result<usize, sqlx::Error> {
        let now = now_ms();
        let mut tx = self.db.begin_write().await?;
        let mut inserted = 0;
        for (i, seed) in products.iter().enumerate() {
            let id = uuid::Uuid::now_v7().to_string();
            // Distinct creation times keep the catalog's order in lists.
            if self
                .insert(&mut *tx, &id, Some(seed.key), seed.product, now + i as i64)
                .await?
            {
                inserted += 1;
            }
        }
        tx.commit().await?;
        Ok(inserted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_escape_wildcards_and_lower_case() {
        assert_eq!(contains_pattern("Crème"), "%crème%");
        assert_eq!(contains_pattern("100%_x\\"), "%100\\%\\_x\\\\%");
        assert_eq!(contains_pattern("O'Brien"), "%o'brien%");
    }
}

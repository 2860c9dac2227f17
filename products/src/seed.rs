//! The bundled demo catalog (`demo/catalog.json`, compiled into the binary)
//! and the idempotent load behind `products seed`, so a fresh shop has
//! something to sell.

use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::domain::{NewProduct, ProductFields};
use crate::store::{SeedProduct, Store};

const CATALOG: &str = include_str!("../demo/catalog.json");

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("the bundled catalog is invalid: {0}")]
    Catalog(String),
    #[error("cannot write the catalog: {0}")]
    Db(#[from] sqlx::Error),
}

/// The bundled catalog: each entry is a product body as `POST /product/`
/// takes it plus `key`, a stable slug that makes loading twice a no-op.
/// Entries are checked by the same rules as `POST /product/`.
pub fn catalog() -> Result<Vec<(String, NewProduct)>, SeedError> {
    let entries: Vec<Map<String, Value>> =
        serde_json::from_str(CATALOG).map_err(|e| SeedError::Catalog(e.to_string()))?;
    let mut keys = HashSet::new();
    let mut out = Vec::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        let invalid = |what: String| SeedError::Catalog(format!("entry {i}: {what}"));
        let key = match entry.get("key") {
            Some(Value::String(key)) => key.clone(),
            _ => return Err(invalid("`key` must be a string".to_string())),
        };
        if key.is_empty() || !keys.insert(key.clone()) {
            return Err(invalid(format!("key `{key}` is empty or repeated")));
        }
        let product = NewProduct::from_fields(&ProductFields::from_object(entry))
            .map_err(|e| invalid(e.to_string()))?;
        out.push((key, product));
    }
    Ok(out)
}

/// Loads the catalog products not loaded before; returns how many were
/// added (0 on every run after the first). A demo product an admin has
/// deleted or edited since stays as the admin left it.
pub async fn seed(store: &Store) -> Result<usize, SeedError> {
    let catalog = catalog()?;
    let products: Vec<SeedProduct<'_>> = catalog
        .iter()
        .map(|(key, product)| SeedProduct { key, product })
        .collect();
    Ok(store.insert_seed(&products).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_catalog_is_valid_and_realistic() {
        let products = catalog().unwrap();
        assert!(
            (12..=16).contains(&products.len()),
            "{} products",
            products.len()
        );
        assert!(products.iter().all(|(_, p)| p.price_cents.get() > 0));
        assert!(products
            .iter()
            .all(|(_, p)| p.description.as_str().len() > 20));
        // The demo shows off non-ASCII names and search.
        assert!(products.iter().any(|(_, p)| !p.name.as_str().is_ascii()));
        // The storefront shows each with its generated picture, by category.
        for (key, p) in &products {
            let want = format!("/assets/products/{key}.svg");
            assert_eq!(
                p.image_url.as_ref().map(|u| u.as_str()),
                Some(want.as_str())
            );
        }
        let categories: HashSet<&str> = products.iter().map(|(_, p)| p.category.as_str()).collect();
        assert!((4..=5).contains(&categories.len()), "{categories:?}");
    }
}

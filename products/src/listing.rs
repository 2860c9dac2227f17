//! What `GET /products/` may ask for besides the page: `?q=` (name
//! contains), `?category=` (exact), `?ids=` (a batch read: these products
//! only) and `?sort=`, read from the query string into one value that both
//! the SQL and the read cache's key are made from.

use std::collections::HashMap;

use common::validate::{all, field};
use common::ApiError;

use crate::domain::{parse_id, Category};

/// Most product ids one `?ids=` may name: a full cart, and one page of the
/// largest size, so a batch read never needs a second page.
pub const MAX_IDS: usize = 100;

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
const HYPHENATED_LEN: usize = 36;

/// `?ids=a,b,c` → the canonical ids, sorted and without repeats, so the
/// same set read in any order or with repeats is one cache entry. Every
/// item must be a product id (a hyphenated UUID); there may be at most
/// [`MAX_IDS`], repeats counted.
pub fn parse_ids(raw: &str) -> Result<Vec<String>, String> {
    // Counting stops one past the bound: a long list costs no more.
    if raw.split(',').nth(MAX_IDS).is_some() {
        return Err(format!("must name at most {MAX_IDS} product ids"));
    }
    let mut ids = Vec::new();
    for (n, item) in raw.split(',').enumerate() {
        // The hyphenated form only (any case), as openapi.json's pattern
        // says: the other spellings `GET /product/{id}` takes are not needed.
        let id = Some(item)
            .filter(|i| i.len() == HYPHENATED_LEN)
            .and_then(parse_id)
            .ok_or_else(|| {
                format!(
                    "must be product ids (UUIDs) separated by commas; item {} is not one",
                    n + 1
                )
            })?;
        ids.push(id);
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// The orders a list can come in. Every one ends in a unique column, so
/// pages never overlap or skip rows that tie on the sort key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Sort {
    Newest,
    /// Creation order, the order of the list before sorting existed.
    #[default]
    Oldest,
    PriceAsc,
    PriceDesc,
    NameAsc,
    NameDesc,
}

impl Sort {
    pub const ALL: [(&'static str, Sort); 6] = [
        ("newest", Sort::Newest),
        ("oldest", Sort::Oldest),
        ("price_asc", Sort::PriceAsc),
        ("price_desc", Sort::PriceDesc),
        ("name_asc", Sort::NameAsc),
        ("name_desc", Sort::NameDesc),
    ];

    pub fn parse(raw: &str) -> Result<Sort, String> {
        Sort::ALL
            .iter()
            .find(|(name, _)| *name == raw)
            .map(|(_, sort)| *sort)
            .ok_or_else(|| {
                let names: Vec<&str> = Sort::ALL.iter().map(|(name, _)| *name).collect();
                format!("must be one of {}", names.join(", "))
            })
    }

    /// The ORDER BY clause; constant text, never built from input. Names
    /// sort case-insensitively (`name_lower`); ties fall back to creation
    /// order, and `id` makes the order total.
    pub fn order_by(self) -> &'static str {
        match self {
            Sort::Newest => "created_at DESC, id DESC",
            Sort::Oldest => "created_at, id",
            Sort::PriceAsc => "price_cents, created_at, id",
            Sort::PriceDesc => "price_cents DESC, created_at, id",
            Sort::NameAsc => "name_lower, created_at, id",
            Sort::NameDesc => "name_lower DESC, created_at, id",
        }
    }
}

/// The filters and order of one list request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ListQuery {
    pub q: Option<String>,
    pub category: Option<Category>,
    /// Only these products (canonical, sorted, distinct): a batch read.
    pub ids: Option<Vec<String>>,
    pub sort: Sort,
}

impl ListQuery {
    /// Reads `category`, `ids` and `sort` from the query string, naming
    /// each bad one; `q` has been checked by the caller. An empty
    /// `category`, `ids` or `sort` is no choice, as an unset select box
    /// would send it.
    pub fn from_query(
        query: &HashMap<String, String>,
        q: Option<&str>,
    ) -> Result<ListQuery, ApiError> {
        let present = |name: &str| {
            query
                .get(name)
                .map(String::as_str)
                .filter(|s| !s.is_empty())
        };
        let (category, ids, sort) = all((
            field(
                "category",
                present("category").map(Category::parse).transpose(),
            ),
            field("ids", present("ids").map(parse_ids).transpose()),
            field("sort", present("sort").map(Sort::parse).transpose()),
        ))?;
        Ok(ListQuery {
            q: q.map(str::to_string),
            category,
            ids,
            sort: sort.unwrap_or_default(),
        })
    }

    /// Bytes this key holds beyond its fixed size, for the cache's budget.
    pub fn size(&self) -> usize {
        self.q.as_ref().map_or(0, String::len)
            + self.category.as_ref().map_or(0, |c| c.as_str().len())
            + self
                .ids
                .as_ref()
                .map_or(0, |ids| ids.iter().map(String::len).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<ListQuery, Vec<String>> {
        let query = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ListQuery::from_query(&query, None)
            .map_err(|e| e.errors.into_iter().map(|e| e.field).collect())
    }

    #[test]
    fn defaults_and_choices() {
        assert_eq!(parse(&[]).unwrap(), ListQuery::default());
        assert_eq!(
            parse(&[("sort", ""), ("category", "")]).unwrap(),
            ListQuery::default()
        );
        let l = parse(&[("sort", "price_desc"), ("category", "kitchen")]).unwrap();
        assert_eq!(l.sort, Sort::PriceDesc);
        assert_eq!(l.category.unwrap().as_str(), "kitchen");
        for (name, sort) in Sort::ALL {
            assert_eq!(Sort::parse(name), Ok(sort));
        }
    }

    #[test]
    fn ids_are_canonical_sorted_and_distinct() {
        let a = "0190e5b0-c6a5-7d7c-9b1e-2f3a4b5c6d7e";
        let b = "0190e5b0-c6a5-7d7c-9b1e-000000000001";
        let l = parse(&[("ids", &format!("{a},{},{b},{a}", a.to_uppercase()))]).unwrap();
        assert_eq!(l.ids.unwrap(), [b, a]);
        let hundred = vec![a; MAX_IDS].join(",");
        assert_eq!(parse_ids(&hundred).unwrap(), [a]);
        assert!(parse_ids(&format!("{hundred},{a}")).is_err());
        let simple = a.replace('-', "");
        let spaced = format!(" {a}");
        for bad in [
            "x",
            "1",
            &format!("{a},"),
            &format!("{a},,{b}"),
            "' OR 1=1 --",
            &simple,
            &spaced,
        ] {
            assert_eq!(parse(&[("ids", bad)]).unwrap_err(), ["ids"], "{bad}");
        }
    }

    #[test]
    fn bad_values_name_their_parameter() {
        assert_eq!(parse(&[("sort", "cheapest")]).unwrap_err(), ["sort"]);
        assert_eq!(parse(&[("sort", "PRICE_ASC")]).unwrap_err(), ["sort"]);
        assert_eq!(
            parse(&[("category", "Kitchen"), ("sort", "x")]).unwrap_err(),
            ["category", "sort"]
        );
    }
}

//! `?limit=&offset=` as docs/api.md defines them, and the list envelope.

use std::collections::HashMap;

use serde::Serialize;

use crate::error::ApiError;
use crate::validate::{all, field};

pub const DEFAULT_LIMIT: i64 = 20;
pub const MAX_LIMIT: i64 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageParams {
    pub limit: i64,
    pub offset: i64,
}

impl PageParams {
    /// Reads `limit` (1..=100, default 20) and `offset` (≥ 0, default 0);
    /// anything else is `422` naming the parameter.
    pub fn from_query(query: &HashMap<String, String>) -> Result<Self, ApiError> {
        let limit = match query.get("limit") {
            None => Ok(DEFAULT_LIMIT),
            Some(s) => field(
                "limit",
                s.parse::<i64>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| format!("must be an integer from 1 to {MAX_LIMIT}")),
            ),
        };
        let offset = match query.get("offset") {
            None => Ok(0),
            Some(s) => field(
                "offset",
                s.parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| "must be a non-negative integer".to_string()),
            ),
        };
        let (limit, offset) = all((limit, offset))?;
        Ok(PageParams { limit, offset })
    }
}

/// `{"items": [...], "total": N, "limit": L, "offset": O}`
#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

impl<T> Page<T> {
    pub fn new(items: Vec<T>, total: i64, params: PageParams) -> Self {
        Page {
            items,
            total,
            limit: params.limit,
            offset: params.offset,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_and_bounds() {
        assert_eq!(
            PageParams::from_query(&q(&[])).unwrap(),
            PageParams {
                limit: 20,
                offset: 0
            }
        );
        assert_eq!(
            PageParams::from_query(&q(&[("limit", "100")]))
                .unwrap()
                .limit,
            100
        );
        for bad in [
            ("limit", "101"),
            ("limit", "0"),
            ("limit", "x"),
            ("offset", "-1"),
        ] {
            let e = PageParams::from_query(&q(&[bad])).unwrap_err();
            assert_eq!(e.status, 422);
            assert_eq!(e.errors[0].field, bad.0);
        }
    }
}

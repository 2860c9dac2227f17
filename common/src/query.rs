//! Bounds on the request target: its whole length, and free-text query
//! parameters. Numbers have their bounds in their parsers (`limit`,
//! `offset`, times); text has none of its own, and an unbounded search
//! term reaches the database as an oversized pattern (SQLite refuses a LIKE
//! pattern over 50 000 bytes with an error that would otherwise be a `500`).

use std::collections::HashMap;

use http::{StatusCode, Uri};

use crate::error::ApiError;

/// Longest request target (path and query) served; longer is `414`. No
/// route needs more (nginx and Apache stop at about the same), and without
/// it a path or query of hyper's whole buffer (hundreds of KiB) would be
/// parsed, echoed in a `404` and logged.
pub const MAX_TARGET_BYTES: usize = 8 * 1024;

/// `414` when the path and query together exceed [`MAX_TARGET_BYTES`].
pub fn check_target(uri: &Uri) -> Result<(), ApiError> {
    let len = uri.path_and_query().map_or(0, |p| p.as_str().len());
    if len <= MAX_TARGET_BYTES {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::URI_TOO_LONG,
        "uri_too_long",
        format!("the path and query may be at most {MAX_TARGET_BYTES} bytes"),
    ))
}

/// A text parameter: `None` when absent or empty (a cleared search box);
/// `422` naming the parameter when it is longer than `max_chars`
/// characters or holds NUL, which PostgreSQL cannot take as text.
pub fn text<'a>(
    query: &'a HashMap<String, String>,
    name: &str,
    max_chars: usize,
) -> Result<Option<&'a str>, ApiError> {
    let Some(value) = query
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
    else {
        return Ok(None);
    };
    // Counting stops one past the bound: a huge value costs no more than that.
    if value.chars().nth(max_chars).is_some() {
        return Err(ApiError::invalid_field(
            name,
            format!("must be at most {max_chars} characters"),
        ));
    }
    if value.contains('\0') {
        return Err(ApiError::invalid_field(
            name,
            "must not contain NUL characters",
        ));
    }
    Ok(Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(value: &str) -> HashMap<String, String> {
        [("q".to_string(), value.to_string())].into_iter().collect()
    }

    #[test]
    fn bounds_in_characters_not_bytes() {
        assert_eq!(text(&q(""), "q", 3).unwrap(), None);
        assert_eq!(text(&HashMap::new(), "q", 3).unwrap(), None);
        assert_eq!(text(&q("äöü"), "q", 3).unwrap(), Some("äöü"));
        let e = text(&q("abcd"), "q", 3).unwrap_err();
        assert_eq!(e.status, 422);
        assert_eq!(e.errors[0].field, "q");
        assert_eq!(text(&q("a\0"), "q", 3).unwrap_err().errors[0].field, "q");
    }
}

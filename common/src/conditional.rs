//! Conditional requests (RFC 9110 §13): whether a client's cached copy,
//! named by `If-None-Match`, is still the current one, so a read can answer
//! `304 Not Modified` without a body. Used by the catalog's JSON reads and
//! the balancer's static files alike.

use http::header::{HeaderMap, HeaderValue, IF_NONE_MATCH};

/// True when `If-None-Match` lists `etag` or is `*` (§13.1.2, weak
/// comparison: `W/"x"` matches `"x"`). Several headers and comma-separated
/// lists are both allowed.
pub fn none_match(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let etag = etag.as_bytes();
    headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag).as_bytes() == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(IF_NONE_MATCH, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn if_none_match_forms() {
        let tag = &HeaderValue::from_static("\"abc\"");
        assert!(none_match(&headers(&["\"abc\""]), tag));
        assert!(none_match(&headers(&["*"]), tag));
        assert!(none_match(&headers(&["\"x\", W/\"abc\""]), tag));
        assert!(none_match(&headers(&["\"x\"", "\"abc\""]), tag));
        assert!(!none_match(&headers(&[]), tag));
        assert!(!none_match(&headers(&["\"abcd\""]), tag));
        assert!(!none_match(&headers(&["abc"]), tag));
    }
}

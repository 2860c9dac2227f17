//! `X-Request-Id`: taken from the client when sane, else generated; carried
//! in the task's [`crate::request_context`] so outbound calls and logs can
//! pass it on. One shared `Arc<str>` per request: the context and the
//! handler's [`crate::Req`] hold the same id, copied once from the header.

use std::sync::Arc;

use http::{HeaderMap, HeaderName};

pub const HEADER: &str = "x-request-id";
/// [`HEADER`] ready-made: a `&str` name is parsed again on every lookup.
pub const HEADER_NAME: HeaderName = HeaderName::from_static(HEADER);
const MAX_LEN: usize = 128;

/// The incoming id if it is 1..=128 printable ASCII characters, else a new one.
pub fn from_headers(headers: &HeaderMap) -> Arc<str> {
    headers
        .get(HEADER_NAME)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_sane(v))
        .map(Arc::from)
        .unwrap_or_else(generate)
}

pub fn is_sane(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_LEN && id.bytes().all(|b| b.is_ascii_graphic())
}

pub fn generate() -> Arc<str> {
    let mut buf = uuid::Uuid::encode_buffer();
    Arc::from(&*uuid::Uuid::new_v4().simple().encode_lower(&mut buf))
}

/// The current task's request id, if it runs inside a request.
pub fn current() -> Option<String> {
    crate::request_context::with(|c| c.request_id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn sane_ids_are_kept_and_others_replaced() {
        let mut h = HeaderMap::new();
        h.insert(HEADER, HeaderValue::from_static("abc-123"));
        assert_eq!(&*from_headers(&h), "abc-123");
        h.insert(HEADER, HeaderValue::from_static("has space"));
        assert_ne!(&*from_headers(&h), "has space");
        h.insert(HEADER, HeaderValue::from_str(&"x".repeat(200)).unwrap());
        assert_eq!(from_headers(&h).len(), 32);
        assert_eq!(from_headers(&HeaderMap::new()).len(), 32);
    }
}

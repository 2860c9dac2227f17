//! Reading JSON request bodies and writing JSON responses.
//!
//! The order of checks follows docs/api.md: wrong content type `415`, too large
//! `413`, not JSON `400`, JSON of the wrong shape `422` naming the field.
//! A body that takes too long to arrive is `408`.

use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{ApiError, FieldError};

/// `application/json` or any `+json` type, parameters (charset) ignored.
pub fn is_json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mime = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// Collects a body of at most `limit` bytes within `timeout`; `413` beyond
/// the size, `408` beyond the time.
pub async fn read_body(
    headers: &HeaderMap,
    body: Incoming,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body exceeds {limit} bytes"),
        )
    };
    // A declared length over the limit is refused before reading anything.
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    // A client trickling its body would otherwise hold a task and a
    // connection for as long as it likes.
    let read = tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await;
    let Ok(read) = read else {
        return Err(body_timeout(timeout));
    };
    match read {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(body_unreadable().with_cause(e)),
    }
}

/// `400` for a body that is not valid HTTP (broken chunked framing, an
/// overlong chunk extension) or was cut short.
pub fn body_unreadable() -> ApiError {
    ApiError::bad_request("body_unreadable", "the request body could not be read")
}

/// `408` for a body still incomplete after `timeout`. The rest of it may
/// still be on its way, so the connection cannot carry another request:
/// it is closed after the answer.
pub fn body_timeout(timeout: Duration) -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        format!(
            "the request body did not arrive within {}",
            humantime::format_duration(timeout)
        ),
    )
    .with_header(CONNECTION, HeaderValue::from_static("close"))
}

/// `415` unless the request declares a JSON body.
pub fn require_json_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    if is_json_content_type(headers) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the request body must be application/json",
        ))
    }
}

/// Parses bytes into `T`: syntax errors are `400`, shape errors `422`.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request(
            "malformed_json",
            format!("the request body is not valid JSON: {e}"),
        )
    })?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        ApiError::validation(vec![shape_error(&path, &inner)])
    })
}

/// Turns serde's message into a field error; a missing field is reported on
/// the field itself rather than on its parent object.
fn shape_error(path: &str, message: &str) -> FieldError {
    let parent = if path == "." { "" } else { path };
    if let Some(rest) = message.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or(rest);
        let field = if parent.is_empty() {
            name.to_string()
        } else {
            format!("{parent}.{name}")
        };
        return FieldError {
            field,
            message: "is required".to_string(),
        };
    }
    FieldError {
        field: parent.to_string(),
        message: message.to_string(),
    }
}

/// A JSON response with `status`.
pub fn json_response<T: Serialize>(status: StatusCode, value: &T) -> Response<Full<Bytes>> {
    // Serializing our own response types cannot fail: no maps with non-string
    // keys, no failing Serialize impls.
    let bytes = serde_json::to_vec(value).expect("response types always serialize");
    let mut resp = Response::new(Full::new(Bytes::from(bytes)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

/// `204 No Content`.
pub fn no_content() -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Item {
        name: String,
        price_cents: i64,
        tags: Option<Vec<String>>,
    }

    #[test]
    fn malformed_json_is_400() {
        let e = parse_json::<Item>(b"{\"name\":").unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.code, "malformed_json");
    }

    #[test]
    fn a_string_where_a_number_belongs_is_422_naming_the_field() {
        let e = parse_json::<Item>(br#"{"name":"x","price_cents":"12"}"#).unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.errors[0].field, "price_cents");
    }

    #[test]
    fn a_missing_field_is_422_naming_it() {
        let e = parse_json::<Item>(br#"{"price_cents":1}"#).unwrap_err();
        assert_eq!(e.errors[0].field, "name");
        assert_eq!(e.errors[0].message, "is required");
    }

    #[test]
    fn nested_paths_are_reported() {
        let e = parse_json::<Item>(br#"{"name":"x","price_cents":1,"tags":["a",2]}"#).unwrap_err();
        assert_eq!(e.errors[0].field, "tags[1]");
    }

    #[test]
    fn the_wrong_top_level_shape_is_422() {
        let e = parse_json::<Item>(b"[1,2]").unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
    }

    #[test]
    fn content_types() {
        let mut h = HeaderMap::new();
        assert!(!is_json_content_type(&h));
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        assert!(is_json_content_type(&h));
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("Application/Merge-Patch+JSON"),
        );
        assert!(is_json_content_type(&h));
        h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert!(!is_json_content_type(&h));
    }
}

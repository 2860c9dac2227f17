//! The one error type every handler returns, and its RFC 9457 rendering.
//!
//! Services keep their own typed errors (thiserror) and convert them into
//! [`ApiError`] at the HTTP edge. A 5xx logs its cause chain here, once, and
//! shows the client only a generic detail.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, ALLOW, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;

/// Where problem `type` URIs live; the code is appended.
pub const PROBLEM_BASE: &str = "https://shop.example/problems/";

/// One invalid field in a `422` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// An HTTP error on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: Cow<'static, str>,
    pub detail: String,
    pub errors: Vec<FieldError>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The internal cause; logged for 5xx, never sent.
    pub cause: Option<Box<dyn StdError + Send + Sync>>,
}

#[derive(Serialize)]
struct ProblemBody<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    code: &'a str,
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    errors: &'a [FieldError],
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        detail: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            code: code.into(),
            detail: detail.into(),
            errors: Vec::new(),
            headers: Vec::new(),
            cause: None,
        }
    }

    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    /// `401` with the `WWW-Authenticate: Bearer` challenge docs/api.md requires.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
            .with_header(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, detail)
    }

    /// `422` listing every invalid field.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = match errors.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            _ => format!("{} fields are invalid", errors.len()),
        };
        let mut e = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            detail,
        );
        e.errors = errors;
        e
    }

    /// `422` for a single field.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError {
            field: field.into(),
            message: message.into(),
        }])
    }

    /// `429` with `Retry-After` in whole seconds (at least one).
    pub fn too_many_requests(retry_after_secs: u64, detail: impl Into<String>) -> Self {
        let secs = retry_after_secs.max(1).to_string();
        Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", detail).with_header(
            RETRY_AFTER,
            HeaderValue::from_str(&secs).expect("digits are a valid header value"),
        )
    }

    pub fn method_not_allowed(allowed: &[Method]) -> Self {
        let allow = allowed
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        let detail = format!("allowed methods: {allow}");
        let value = HeaderValue::from_str(&allow).expect("method names are valid header values");
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", detail)
            .with_header(ALLOW, value)
    }

    /// `503`: a dependency is down; the client may retry later.
    pub fn unavailable(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, detail)
    }

    /// `500` for anything unexpected. The cause is logged, the client sees
    /// only that something went wrong.
    pub fn internal(cause: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        let mut e = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "an internal error occurred",
        );
        e.cause = Some(cause.into());
        e
    }

    pub fn with_cause(mut self, cause: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        self.cause = Some(cause.into());
        self
    }

    /// Renders the problem+json response; logs the cause chain of a 5xx.
    pub fn into_response(self, request_id: &str) -> Response<Full<Bytes>> {
        crate::request_context::set_error_kind(&self.code);
        if self.status.is_server_error() {
            match &self.cause {
                Some(cause) => log::error!(
                    "request {request_id} failed: {}: {}",
                    self.code,
                    chain(cause.as_ref())
                ),
                None => log::warn!(
                    "request {request_id} answered {}: {}",
                    self.status,
                    self.detail
                ),
            }
        }
        let body = ProblemBody {
            kind: format!("{PROBLEM_BASE}{}", self.code.replace('_', "-")),
            title: self.status.canonical_reason().unwrap_or("Error"),
            status: self.status.as_u16(),
            detail: &self.detail,
            code: &self.code,
            errors: &self.errors,
        };
        let bytes = serde_json::to_vec(&body).expect("problem body always serializes");
        let mut resp = Response::new(Full::new(Bytes::from(bytes)));
        *resp.status_mut() = self.status;
        resp.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        for (name, value) in self.headers {
            resp.headers_mut().append(name, value);
        }
        resp
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.detail)
    }
}

impl StdError for ApiError {}

/// `error: cause: cause-of-cause`, for logs.
pub fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        out.push_str(": ");
        out.push_str(&e.to_string());
        next = e.source();
    }
    out
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        // A pool that cannot hand out a connection is an outage, not a bug.
        match e {
            // PostgreSQL cannot store U+0000 in text (SQLite can): a client's
            // string, not our bug, so a 422 rather than a 500.
            sqlx::Error::Database(ref d) if d.code().as_deref() == Some("22021") => {
                ApiError::invalid_field("", "text must not contain the NUL character")
            }
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                ApiError::unavailable("database_unavailable", "the database is not reachable")
                    .with_cause(e)
            }
            other => ApiError::internal(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_json(resp: Response<Full<Bytes>>) -> serde_json::Value {
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn validation_errors_render_as_problem_json_with_fields() {
        let resp =
            ApiError::invalid_field("email", "must be an email address").into_response("rid");
        assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(resp.headers()[CONTENT_TYPE], "application/problem+json");
        let body = body_json(resp).await;
        assert_eq!(body["status"], 422);
        assert_eq!(body["code"], "validation_failed");
        assert_eq!(body["title"], "Unprocessable Entity");
        assert_eq!(
            body["type"],
            "https://shop.example/problems/validation-failed"
        );
        assert_eq!(body["errors"][0]["field"], "email");
        assert!(body["detail"].as_str().unwrap().contains("email"));
    }

    #[tokio::test]
    async fn internal_errors_hide_their_cause() {
        let cause = std::io::Error::other("SELECT secret FROM users at /srv/db.rs:42");
        let resp = ApiError::internal(cause).into_response("rid");
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let text = body_json(resp).await.to_string();
        assert!(!text.contains("SELECT"), "{text}");
        assert!(!text.contains("/srv"), "{text}");
        assert!(!text.contains("errors"), "no empty errors array: {text}");
    }

    #[tokio::test]
    async fn unauthorized_carries_the_bearer_challenge() {
        let resp = ApiError::unauthorized("token required").into_response("rid");
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(resp.headers()[WWW_AUTHENTICATE], "Bearer");
    }

    #[tokio::test]
    async fn method_not_allowed_lists_allowed_methods() {
        let resp = ApiError::method_not_allowed(&[Method::GET, Method::PUT]).into_response("rid");
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(resp.headers()[ALLOW], "GET, PUT");
    }

    #[tokio::test]
    async fn too_many_requests_has_retry_after() {
        let resp = ApiError::too_many_requests(0, "slow down").into_response("rid");
        assert_eq!(resp.headers()[RETRY_AFTER], "1");
    }
}

//! `Idempotency-Key`, as docs/api.md's "Everywhere" section defines it and as
//! Stripe documents the pattern: the first response to a key is stored with
//! a hash of its request and replayed (status and body) for any retry with
//! the same key and the same request; the same key with a different request
//! is `422 idempotency_key_reused`; a retry while the first is still in
//! flight is `409 request_in_progress`. Keys live in the `idempotency_keys`
//! table (common's migration 2) for at least 24 hours and are scoped to the
//! caller: each service picks a `scope` string that names who is asking.
//!
//! Who gets to run a key is settled by the database: the first request
//! inserts the row (`INSERT … ON CONFLICT DO NOTHING`), everyone else reads
//! it. The usual way to use this module is [`Idempotency::run`]:
//!
//! ```ignore
//! let key = Key::from_headers(req.headers())?;            // 422 when malformed
//! let body = req.bytes().await?;
//! let hash = request_hash(&req.parts.method, req.parts.uri.path(), &body);
//! let work = async move { /* parse `body`, do the change, build the response */ };
//! state.idempotency.run(&scope, key.as_ref(), &hash, work).await
//! ```
//!
//! What is stored: 2xx, 3xx and 4xx answers (also a handler's `ApiError`
//! with such a status, rendered as problem+json), because a retry of the
//! same request would get the same answer. Not stored: 5xx, 408 and 429,
//! which say "try again" — the key is released so the retry runs afresh.
//! A replay restores the status, `Content-Type` and body byte for byte and
//! adds `Idempotent-Replayed: true`; other headers of the first answer are
//! not kept.
//!
//! The work runs in its own task, so a client that hangs up mid-request does
//! not cancel it half-way and leave the key locked. Only a crash can do that;
//! such a row is taken over by the next retry once it is older than the
//! lock timeout (60 s by default), which must therefore exceed the longest
//! request.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, Method, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use opentelemetry::trace::FutureExt as _;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::db::Db;
use crate::error::{ApiError, FieldError};
use crate::router::HandlerResult;
use crate::time::now_ms;

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// Set on replayed responses, as Stripe does.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// Longest accepted key (Stripe's limit).
pub const MAX_KEY_LEN: usize = 255;

/// A well-formed idempotency key: 1 to 255 printable ASCII characters
/// (spaces allowed inside, not only spaces).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key(String);

impl Key {
    pub fn parse(raw: &str) -> Result<Key, String> {
        if raw.len() > MAX_KEY_LEN {
            return Err(format!("must be at most {MAX_KEY_LEN} characters"));
        }
        if !raw.bytes().all(|b| b.is_ascii_graphic() || b == b' ') || raw.trim().is_empty() {
            return Err(format!(
                "must be 1 to {MAX_KEY_LEN} printable ASCII characters"
            ));
        }
        Ok(Key(raw.to_string()))
    }

    /// The key of a request, `None` when it sent none; a malformed or
    /// repeated header is `422 invalid_idempotency_key`.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Key>, ApiError> {
        let mut values = headers.get_all(HEADER).iter();
        let Some(first) = values.next() else {
            return Ok(None);
        };
        let parsed = if values.next().is_some() {
            Err("must be sent once".to_string())
        } else {
            first
                .to_str()
                .map_err(|_| format!("must be 1 to {MAX_KEY_LEN} printable ASCII characters"))
                .and_then(Key::parse)
        };
        parsed.map(Some).map_err(|message| {
            let mut e = ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_idempotency_key",
                format!("Idempotency-Key: {message}"),
            );
            e.errors = vec![FieldError {
                field: "Idempotency-Key".to_string(),
                message,
            }];
            e
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The hash a key's request is remembered by: SHA-256 over the method, the
/// path (a trailing slash is not significant, as in routing) and the body
/// bytes, hex-encoded. Newlines cannot occur in a method or a path, so the
/// framing is unambiguous.
pub fn request_hash(method: &Method, path: &str, body: &[u8]) -> String {
    let trimmed = path.trim_end_matches('/');
    let path = if trimmed.is_empty() { "/" } else { trimmed };
    let mut h = Sha256::new();
    h.update(method.as_str().as_bytes());
    h.update(b"\n");
    h.update(path.as_bytes());
    h.update(b"\n");
    h.update(body);
    hex::encode(h.finalize())
}

/// `422 idempotency_key_reused`: the key was first used for another request.
pub fn key_reused() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
        "this Idempotency-Key was already used for a different request",
    )
}

/// `409 request_in_progress`: the first request with this key is still running.
pub fn in_progress() -> ApiError {
    ApiError::conflict(
        "request_in_progress",
        "a request with this Idempotency-Key is still in progress; retry shortly",
    )
    .with_header(RETRY_AFTER, HeaderValue::from_static("1"))
}

/// Whether an answer with `status` is kept and replayed (see the module doc).
pub fn is_replayable(status: StatusCode) -> bool {
    !(status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS)
}

#[derive(Debug, Clone)]
pub struct IdempotencyOptions {
    /// How long a key is remembered, counted from its first use. docs/api.md
    /// promises at least 24 hours.
    pub retention: Duration,
    /// An in-flight row older than this is taken to be abandoned (its
    /// process died) and may be taken over by a retry.
    pub lock_timeout: Duration,
    /// How often expired keys are deleted ([`crate::host::Wiring::idempotency`]).
    pub prune_interval: Duration,
}

impl Default for IdempotencyOptions {
    fn default() -> Self {
        IdempotencyOptions {
            retention: Duration::from_secs(24 * 3600),
            lock_timeout: Duration::from_secs(60),
            prune_interval: Duration::from_secs(3600),
        }
    }
}

/// A stored first answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub body: Bytes,
}

impl StoredResponse {
    /// The replay: same status, content type and body, marked as a replay.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        let mut resp = Response::new(Full::new(self.body));
        *resp.status_mut() = self.status;
        if let Some(v) = self
            .content_type
            .and_then(|ct| HeaderValue::from_str(&ct).ok())
        {
            resp.headers_mut().insert(CONTENT_TYPE, v);
        }
        resp.headers_mut().insert(
            HeaderName::from_static(REPLAYED_HEADER),
            HeaderValue::from_static("true"),
        );
        resp
    }
}

/// Ownership of a key's row by one request; pass it to
/// [`Idempotency::complete`] or [`Idempotency::release`].
#[derive(Debug)]
pub struct Claim {
    scope: String,
    key: String,
    token: String,
}

/// What [`Idempotency::begin`] found.
#[derive(Debug)]
pub enum Begin {
    /// This request owns the key: do the work, then complete or release.
    Started(Claim),
    /// The key's first answer; send it again.
    Replay(StoredResponse),
    /// The key was used for a different request ([`key_reused`]).
    Mismatch,
    /// The first request is still running ([`in_progress`]).
    InProgress,
}

/// Idempotency keys in one service's database.
#[derive(Clone, Debug)]
pub struct Idempotency {
    db: Db,
    options: IdempotencyOptions,
}

impl Idempotency {
    pub fn new(db: Db, options: IdempotencyOptions) -> Self {
        Idempotency { db, options }
    }

    pub fn options(&self) -> &IdempotencyOptions {
        &self.options
    }

    /// Runs `work` at most once per `(scope, key)` and request: the first
    /// request runs it and its answer is stored; retries get that answer.
    /// Without a key, `work` simply runs. `work` must not depend on being
    /// polled by the caller: it is spawned so a client hanging up cannot
    /// cancel it half-way.
    pub async fn run<Fut>(
        &self,
        scope: &str,
        key: Option<&Key>,
        request_hash: &str,
        work: Fut,
    ) -> HandlerResult
    where
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        let Some(key) = key else {
            return work.await;
        };
        let claim = match self.begin(scope, key, request_hash).await? {
            Begin::Started(claim) => claim,
            Begin::Replay(stored) => {
                log::debug!("idempotency key replayed in scope {scope}");
                return Ok(stored.into_response());
            }
            Begin::Mismatch => return Err(key_reused()),
            Begin::InProgress => return Err(in_progress()),
        };
        let this = self.clone();
        let request = crate::request_context::current();
        let task = async move {
            let result = match AssertUnwindSafe(work).catch_unwind().await {
                Ok(result) => result,
                Err(_) => Err(ApiError::internal(std::io::Error::other(
                    "handler panicked under an idempotency key",
                ))),
            };
            this.finish(claim, result).await
        };
        // The spawned task keeps the request's context and span, so its
        // logs and the outbox rows it writes still carry them.
        let task = task.with_context(opentelemetry::Context::current());
        let handle = match request {
            Some(request) => tokio::spawn(crate::request_context::scope(request, task)),
            None => tokio::spawn(task),
        };
        match handle.await {
            Ok(result) => result,
            // Only a runtime shutting down gets here; the row then times out.
            Err(e) => Err(ApiError::internal(e)),
        }
    }

    /// Stores or releases according to the outcome and returns the answer.
    async fn finish(&self, claim: Claim, result: HandlerResult) -> HandlerResult {
        let resp = match result {
            Ok(resp) => resp,
            Err(e) if !is_replayable(e.status) => {
                self.release_logged(&claim).await;
                return Err(e);
            }
            Err(e) => e.into_response(&crate::request_id::current().unwrap_or_default()),
        };
        if !is_replayable(resp.status()) {
            self.release_logged(&claim).await;
            return Ok(resp);
        }
        let (parts, body) = resp.into_parts();
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(never) => match never {},
        };
        let stored = StoredResponse {
            status: parts.status,
            content_type: parts
                .headers
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            body: body.clone(),
        };
        // The work is done whatever happens to the bookkeeping, so the
        // client gets its real answer even when storing it fails.
        match self.complete(&claim, &stored).await {
            Ok(true) => {}
            Ok(false) => log::warn!(
                "idempotency key in scope {} was taken over before its first request finished; \
                 its answer is not stored (is the lock timeout shorter than the request?)",
                claim.scope
            ),
            Err(e) => log::error!(
                "idempotency key in scope {}: cannot store the answer: {e}",
                claim.scope
            ),
        }
        Ok(Response::from_parts(parts, Full::new(body)))
    }

    /// Claims `(scope, key)` for a request with `request_hash`, or says why not.
    pub async fn begin(
        &self,
        scope: &str,
        key: &Key,
        request_hash: &str,
    ) -> Result<Begin, sqlx::Error> {
        // A row can vanish between our INSERT and SELECT (released by a
        // failed first request, or pruned), and a takeover can race; each
        // round settles one of those, so a few rounds are plenty.
        for _ in 0..5 {
            let now = now_ms();
            let token = uuid::Uuid::new_v4().simple().to_string();
            let inserted = sqlx::query(
                "INSERT INTO idempotency_keys (scope, idempotency_key, request_hash, claim, locked_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (scope, idempotency_key) DO NOTHING",
            )
            .bind(scope)
            .bind(key.as_str())
            .bind(request_hash)
            .bind(&token)
            .bind(now)
            .execute(&mut *self.db.writer().await?)
            .await?
            .rows_affected();
            if inserted == 1 {
                return Ok(Begin::Started(self.claim(scope, key, token)));
            }
            let row = sqlx::query(
                "SELECT request_hash, claim, locked_at, status_code, content_type, response_body \
                 FROM idempotency_keys WHERE scope = $1 AND idempotency_key = $2",
            )
            .bind(scope)
            .bind(key.as_str())
            .fetch_optional(&self.db.pool)
            .await?;
            let Some(row) = row else {
                continue;
            };
            if row.get::<String, _>("request_hash") != request_hash {
                return Ok(Begin::Mismatch);
            }
            if let Some(code) = row.get::<Option<i64>, _>("status_code") {
                let status = u16::try_from(code)
                    .ok()
                    .and_then(|c| StatusCode::from_u16(c).ok())
                    .ok_or_else(|| {
                        sqlx::Error::Decode(
                            format!("stored status code {code} is not an HTTP status").into(),
                        )
                    })?;
                return Ok(Begin::Replay(StoredResponse {
                    status,
                    content_type: row.get("content_type"),
                    body: Bytes::from(
                        row.get::<Option<String>, _>("response_body")
                            .unwrap_or_default(),
                    ),
                }));
            }
            let locked_at: i64 = row.get("locked_at");
            if locked_at > now - self.options.lock_timeout.as_millis() as i64 {
                return Ok(Begin::InProgress);
            }
            // Abandoned by a request that died: take it over, unless another
            // retry did so first (then the next round sees it in progress).
            let old: String = row.get("claim");
            let taken = sqlx::query(
                "UPDATE idempotency_keys SET claim = $1, locked_at = $2 \
                 WHERE scope = $3 AND idempotency_key = $4 AND claim = $5 AND status_code IS NULL",
            )
            .bind(&token)
            .bind(now)
            .bind(scope)
            .bind(key.as_str())
            .bind(&old)
            .execute(&mut *self.db.writer().await?)
            .await?
            .rows_affected();
            if taken == 1 {
                log::warn!(
                    "idempotency key in scope {scope}: taking over a request abandoned {} ms ago",
                    now - locked_at
                );
                return Ok(Begin::Started(self.claim(scope, key, token)));
            }
        }
        Ok(Begin::InProgress)
    }

    fn claim(&self, scope: &str, key: &Key, token: String) -> Claim {
        Claim {
            scope: scope.to_string(),
            key: key.as_str().to_string(),
            token,
        }
    }

    /// Stores the first answer. `false` when the claim was lost (taken
    /// over after the lock timeout) and nothing was stored. Bodies must be
    /// UTF-8 (JSON is); another body is not stored, and the key is released.
    pub async fn complete(
        &self,
        claim: &Claim,
        response: &StoredResponse,
    ) -> Result<bool, sqlx::Error> {
        let Ok(body) = std::str::from_utf8(&response.body) else {
            log::warn!(
                "idempotency key in scope {}: the answer is not UTF-8 and is not stored",
                claim.scope
            );
            self.release(claim).await?;
            return Ok(false);
        };
        let done = sqlx::query(
            "UPDATE idempotency_keys SET status_code = $1, content_type = $2, response_body = $3, completed_at = $4 \
             WHERE scope = $5 AND idempotency_key = $6 AND claim = $7 AND status_code IS NULL",
        )
        .bind(i64::from(response.status.as_u16()))
        .bind(response.content_type.as_deref())
        .bind(body)
        .bind(now_ms())
        .bind(&claim.scope)
        .bind(&claim.key)
        .bind(&claim.token)
        .execute(&mut *self.db.writer().await?)
        .await?
        .rows_affected();
        Ok(done == 1)
    }

    /// Forgets an unfinished key so a retry runs afresh (after a 5xx).
    pub async fn release(&self, claim: &Claim) -> Result<(), sqlx::Error> {
        sqlx::query(
            "DELETE FROM idempotency_keys \
             WHERE scope = $1 AND idempotency_key = $2 AND claim = $3 AND status_code IS NULL",
        )
        .bind(&claim.scope)
        .bind(&claim.key)
        .bind(&claim.token)
        .execute(&mut *self.db.writer().await?)
        .await?;
        Ok(())
    }

    async fn release_logged(&self, claim: &Claim) {
        // If this fails the row times out after the lock timeout instead.
        if let Err(e) = self.release(claim).await {
            log::warn!(
                "idempotency key in scope {}: cannot release it: {e}",
                claim.scope
            );
        }
    }

    /// Deletes keys first used longer ago than the retention; returns how many.
    pub async fn prune(&self) -> Result<u64, sqlx::Error> {
        let cutoff = now_ms() - self.options.retention.as_millis() as i64;
        let result = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(cutoff)
            .execute(&mut *self.db.writer().await?)
            .await?;
        Ok(result.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::db::TestDb;
    use crate::json::json_response;

    async fn setup() -> (TestDb, Idempotency) {
        let test_db = TestDb::new().await;
        let db = Db::connect(&test_db.url, 5, crate::outbox::migrations())
            .await
            .unwrap();
        (test_db, Idempotency::new(db, IdempotencyOptions::default()))
    }

    fn key(s: &str) -> Key {
        Key::parse(s).unwrap()
    }

    fn stored(status: u16, body: &str) -> StoredResponse {
        StoredResponse {
            status: StatusCode::from_u16(status).unwrap(),
            content_type: Some("application/json; charset=utf-8".into()),
            body: Bytes::from(body.to_string()),
        }
    }

    async fn body_of(resp: Response<Full<Bytes>>) -> Bytes {
        resp.into_body().collect().await.unwrap().to_bytes()
    }

    #[test]
    fn keys_are_bounded_printable_ascii() {
        assert!(Key::parse("a").is_ok());
        assert!(Key::parse("order 42/retry-1").is_ok());
        assert!(Key::parse(&"k".repeat(255)).is_ok());
        for bad in ["", "   ", "tab\there", "naïve", "line\nbreak"] {
            assert!(Key::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Key::parse(&"k".repeat(256)).is_err());

        let mut h = HeaderMap::new();
        assert_eq!(Key::from_headers(&h).unwrap(), None);
        h.insert(HEADER, HeaderValue::from_static("abc"));
        assert_eq!(Key::from_headers(&h).unwrap(), Some(key("abc")));
        h.append(HEADER, HeaderValue::from_static("def"));
        let e = Key::from_headers(&h).unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.code, "invalid_idempotency_key");
        let mut h = HeaderMap::new();
        h.insert(HEADER, HeaderValue::from_bytes(b"caf\xe9").unwrap());
        assert_eq!(
            Key::from_headers(&h).unwrap_err().errors[0].field,
            "Idempotency-Key"
        );
    }

    #[test]
    fn the_hash_covers_method_path_and_body() {
        let base = request_hash(&Method::POST, "/invoices", b"{}");
        assert_eq!(base.len(), 64);
        assert_eq!(base, request_hash(&Method::POST, "/invoices/", b"{}"));
        assert_ne!(base, request_hash(&Method::PUT, "/invoices", b"{}"));
        assert_ne!(base, request_hash(&Method::POST, "/invoice", b"{}"));
        assert_ne!(base, request_hash(&Method::POST, "/invoices", b"{ }"));
        assert_eq!(
            request_hash(&Method::GET, "/", b""),
            request_hash(&Method::GET, "", b"")
        );
    }

    #[tokio::test]
    async fn first_request_runs_then_replays_and_mismatches() {
        let (_t, idem) = setup().await;
        let k = key("k1");
        let Begin::Started(claim) = idem.begin("caller-a", &k, "h1").await.unwrap() else {
            panic!("first use starts");
        };
        assert!(matches!(
            idem.begin("caller-a", &k, "h1").await.unwrap(),
            Begin::InProgress
        ));
        assert!(matches!(
            idem.begin("caller-a", &k, "h2").await.unwrap(),
            Begin::Mismatch
        ));
        assert!(idem
            .complete(&claim, &stored(201, r#"{"id":1}"#))
            .await
            .unwrap());
        match idem.begin("caller-a", &k, "h1").await.unwrap() {
            Begin::Replay(r) => assert_eq!(r, stored(201, r#"{"id":1}"#)),
            other => panic!("expected a replay, got {other:?}"),
        }
        assert!(matches!(
            idem.begin("caller-a", &k, "h2").await.unwrap(),
            Begin::Mismatch
        ));
        // Completing twice does nothing.
        assert!(!idem.complete(&claim, &stored(500, "{}")).await.unwrap());
    }

    #[tokio::test]
    async fn keys_are_scoped_to_the_caller() {
        let (_t, idem) = setup().await;
        let k = key("shared-key");
        assert!(matches!(
            idem.begin("caller-a", &k, "h").await.unwrap(),
            Begin::Started(_)
        ));
        assert!(matches!(
            idem.begin("caller-b", &k, "other").await.unwrap(),
            Begin::Started(_)
        ));
    }

    #[tokio::test]
    async fn a_released_key_runs_again() {
        let (_t, idem) = setup().await;
        let k = key("k");
        let Begin::Started(claim) = idem.begin("s", &k, "h").await.unwrap() else {
            panic!("starts");
        };
        idem.release(&claim).await.unwrap();
        assert!(matches!(
            idem.begin("s", &k, "h").await.unwrap(),
            Begin::Started(_)
        ));
    }

    #[tokio::test]
    async fn an_abandoned_request_is_taken_over_after_the_lock_timeout() {
        let (_t, idem) = setup().await;
        let k = key("k");
        let Begin::Started(dead) = idem.begin("s", &k, "h").await.unwrap() else {
            panic!("starts");
        };
        // The first request's process "died" 61 s ago.
        sqlx::query("UPDATE idempotency_keys SET locked_at = locked_at - 61000")
            .execute(&idem.db.pool)
            .await
            .unwrap();
        assert!(matches!(
            idem.begin("s", &k, "other").await.unwrap(),
            Begin::Mismatch
        ));
        let Begin::Started(successor) = idem.begin("s", &k, "h").await.unwrap() else {
            panic!("a stale row is taken over");
        };
        assert!(matches!(
            idem.begin("s", &k, "h").await.unwrap(),
            Begin::InProgress
        ));
        // The dead request's late bookkeeping cannot touch its successor's row.
        assert!(!idem.complete(&dead, &stored(201, "{}")).await.unwrap());
        idem.release(&dead).await.unwrap();
        assert!(idem
            .complete(&successor, &stored(201, r#"{"n":2}"#))
            .await
            .unwrap());
        assert!(matches!(
            idem.begin("s", &k, "h").await.unwrap(),
            Begin::Replay(_)
        ));
    }

    #[tokio::test]
    async fn keys_are_kept_for_the_retention_then_pruned() {
        let (_t, idem) = setup().await;
        for name in ["old", "new"] {
            let Begin::Started(c) = idem.begin("s", &key(name), "h").await.unwrap() else {
                panic!("starts");
            };
            idem.complete(&c, &stored(201, "{}")).await.unwrap();
        }
        assert_eq!(idem.prune().await.unwrap(), 0, "nothing is 24 h old yet");
        sqlx::query("UPDATE idempotency_keys SET created_at = created_at - 86400001 WHERE idempotency_key = 'old'")
            .execute(&idem.db.pool)
            .await
            .unwrap();
        assert_eq!(idem.prune().await.unwrap(), 1);
        assert!(matches!(
            idem.begin("s", &key("old"), "x").await.unwrap(),
            Begin::Started(_)
        ));
        assert!(matches!(
            idem.begin("s", &key("new"), "x").await.unwrap(),
            Begin::Mismatch
        ));
    }

    #[tokio::test]
    async fn run_executes_once_for_concurrent_retries() {
        let (_t, idem) = setup().await;
        let runs = Arc::new(AtomicUsize::new(0));
        let k = key("concurrent");
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (idem, runs, k) = (idem.clone(), runs.clone(), k.clone());
            tasks.push(tokio::spawn(async move {
                let work = async move {
                    let n = runs.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok(json_response(
                        StatusCode::CREATED,
                        &serde_json::json!({"run": n}),
                    ))
                };
                match idem.run("s", Some(&k), "h", work).await {
                    Ok(resp) => Ok((resp.status(), body_of(resp).await)),
                    Err(e) => Err(e.code.to_string()),
                }
            }));
        }
        let mut created = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok((status, body)) => {
                    assert_eq!(status, StatusCode::CREATED);
                    assert_eq!(&body[..], br#"{"run":0}"#);
                    created += 1;
                }
                Err(code) => assert_eq!(code, "request_in_progress"),
            }
        }
        assert!(created >= 1);
        assert_eq!(runs.load(Ordering::SeqCst), 1, "the work ran exactly once");
    }

    #[tokio::test]
    async fn run_stores_client_errors_and_releases_server_errors() {
        let (_t, idem) = setup().await;
        let runs = Arc::new(AtomicUsize::new(0));
        let attempt = |status: StatusCode| {
            let runs = runs.clone();
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                Err::<Response<Full<Bytes>>, _>(ApiError::new(status, "nope", "no"))
            }
        };
        // 4xx: stored, the retry is a replay of the same problem.
        let k = key("four");
        let first = idem
            .run(
                "s",
                Some(&k),
                "h",
                attempt(StatusCode::UNPROCESSABLE_ENTITY),
            )
            .await
            .unwrap();
        assert_eq!(first.status(), 422);
        assert_eq!(first.headers()[CONTENT_TYPE], "application/problem+json");
        let first_body = body_of(first).await;
        let again = idem
            .run(
                "s",
                Some(&k),
                "h",
                attempt(StatusCode::UNPROCESSABLE_ENTITY),
            )
            .await
            .unwrap();
        assert_eq!(again.headers()[REPLAYED_HEADER], "true");
        assert_eq!(body_of(again).await, first_body);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // 5xx and 429: released, the retry runs again.
        for (name, status) in [
            ("five", StatusCode::SERVICE_UNAVAILABLE),
            ("limit", StatusCode::TOO_MANY_REQUESTS),
        ] {
            let before = runs.load(Ordering::SeqCst);
            let k = key(name);
            assert_eq!(
                idem.run("s", Some(&k), "h", attempt(status))
                    .await
                    .unwrap_err()
                    .status,
                status
            );
            assert_eq!(
                idem.run("s", Some(&k), "h", attempt(status))
                    .await
                    .unwrap_err()
                    .status,
                status
            );
            assert_eq!(runs.load(Ordering::SeqCst), before + 2);
        }
    }

    #[tokio::test]
    async fn a_panicking_handler_releases_its_key() {
        let (_t, idem) = setup().await;
        let k = key("boom");
        let work = async {
            if true {
                panic!("boom");
            }
            Ok(json_response(StatusCode::OK, &()))
        };
        let e = idem.run("s", Some(&k), "h", work).await.unwrap_err();
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(matches!(
            idem.begin("s", &k, "h").await.unwrap(),
            Begin::Started(_)
        ));
    }

    #[tokio::test]
    async fn without_a_key_the_work_just_runs() {
        let (_t, idem) = setup().await;
        let resp = idem
            .run("s", None, "h", async {
                Ok(json_response(StatusCode::OK, &1))
            })
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let count: i64 = sqlx::query("SELECT COUNT(*) AS n FROM idempotency_keys")
            .fetch_one(&idem.db.pool)
            .await
            .unwrap()
            .get("n");
        assert_eq!(count, 0);
    }
}

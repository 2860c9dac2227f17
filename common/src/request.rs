//! What a handler receives: the request head, its body, path parameters,
//! the request id and the client's address.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::request::Parts;
use http::HeaderMap;
use hyper::body::Incoming;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::json;
use crate::validate::FromBody;

pub struct Req {
    pub parts: Parts,
    /// Shared with the App, which drains whatever the handler left unread.
    body: BodySlot,
    pub params: HashMap<&'static str, String>,
    /// Shared with the request's log context.
    pub request_id: Arc<str>,
    pub peer: SocketAddr,
    pub body_limit: usize,
    /// How long the body may take to arrive once reading it starts.
    pub body_timeout: Duration,
}

/// The request body until someone takes it.
pub type BodySlot = Arc<Mutex<Option<Incoming>>>;

impl Req {
    pub fn new(
        parts: Parts,
        body: BodySlot,
        params: HashMap<&'static str, String>,
        request_id: Arc<str>,
        peer: SocketAddr,
    ) -> Self {
        Req {
            parts,
            body,
            params,
            request_id,
            peer,
            body_limit: crate::app::DEFAULT_BODY_LIMIT,
            body_timeout: crate::server::ServerOptions::default().body_read_timeout,
        }
    }

    /// The largest body accepted and how long it may take to arrive.
    pub fn body_bounds(mut self, limit: usize, timeout: Duration) -> Self {
        self.body_limit = limit;
        self.body_timeout = timeout;
        self
    }

    pub fn headers(&self) -> &HeaderMap {
        &self.parts.headers
    }

    /// A header as text; absent or non-UTF-8 values are `None`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.parts.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A path parameter declared in the route pattern.
    pub fn param(&self, name: &str) -> &str {
        // The router only calls a handler whose pattern declares the name,
        // so a missing one is a typo in the handler.
        self.params
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("route has no parameter {name}"))
    }

    /// The JSON body, read once, with the service's size limit.
    pub async fn json<T: DeserializeOwned>(&mut self) -> Result<T, ApiError> {
        json::require_json_content_type(&self.parts.headers)?;
        let bytes = self.bytes().await?;
        json::parse_json(&bytes)
    }

    /// The JSON body checked into `T` (`common::validate`): `422` names
    /// every bad field.
    pub async fn body<T: FromBody>(&mut self) -> Result<T, ApiError> {
        T::check(self.json::<T::Raw>().await?)
    }

    /// The raw body bytes, read once, with the service's size and time
    /// limits.
    pub async fn bytes(&mut self) -> Result<bytes::Bytes, ApiError> {
        // The lock is held only to take the body, never across the read.
        let body = self.body.lock().ok().and_then(|mut slot| slot.take());
        let body = body
            .ok_or_else(|| ApiError::internal(std::io::Error::other("request body read twice")))?;
        json::read_body(
            &self.parts.headers,
            body,
            self.body_limit,
            self.body_timeout,
        )
        .await
    }

    /// Query parameters; a repeated name keeps its last value.
    pub fn query(&self) -> HashMap<String, String> {
        self.parts
            .uri
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default()
    }
}

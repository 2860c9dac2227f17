//! One async function per endpoint of the products API, and the HTTP
//! caching of catalog reads (ETag, If-None-Match, Cache-Control) on top of
//! the in-process read cache.

use std::sync::Arc;

use bytes::Bytes;
use common::auth::Claims;
use common::conditional::none_match;
use common::json::{json_response, no_content};
use common::pagination::{Page, PageParams};
use common::validate::both;
use common::{ApiError, HandlerResult, Req};
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, ETAG, LOCATION};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::Full;

use crate::cache::{CacheKey, Rendered};
use crate::domain::{parse_id, CategoryList, NewProduct, ProductChanges};
use crate::listing::ListQuery;
use crate::State;

/// Longest search term: far beyond any product name, far below what the
/// database accepts as a pattern.
pub const MAX_SEARCH_CHARS: usize = 200;

fn not_found() -> ApiError {
    ApiError::not_found("product")
}

/// Writes need an admin token, verified locally with the shared secret and
/// against the revocations users announced: `401` without a valid, current
/// token, `403` for a customer's.
async fn require_admin(state: &State, req: &Req) -> Result<Claims, ApiError> {
    let claims = state
        .keys
        .authenticate_current(req.headers(), &state.versions)
        .await?;
    claims.require_admin()?;
    Ok(claims)
}

/// `POST /internal/token-versions` (internal): users announces a revocation.
pub async fn token_version(state: Arc<State>, req: Req) -> HandlerResult {
    let internal_key = &state.config.base.internal_key;
    state.versions.receive(req, internal_key, &state.keys).await
}

/// `POST /product/`
pub async fn create(state: Arc<State>, mut req: Req) -> HandlerResult {
    let admin = require_admin(&state, &req).await?;
    let new: NewProduct = req.body().await?;
    let product = state.store.create(&new).await?;
    log::info!("product {} created by {}", product.id, admin.sub);
    let mut resp = json_response(StatusCode::CREATED, &product);
    if let Ok(location) = HeaderValue::from_str(&format!("/product/{}", product.id)) {
        resp.headers_mut().insert(LOCATION, location);
    }
    Ok(resp)
}

/// `GET /product/{id}`
pub async fn get(state: Arc<State>, req: Req) -> HandlerResult {
    let id = parse_id(req.param("id")).ok_or_else(not_found)?;
    let key = CacheKey::Product(id.clone());
    let version = state.store.version();
    if let Some(hit) = state.cache.get(&key, version) {
        return Ok(cached(req.headers(), &hit, &state.cache_control));
    }
    // Misses are not cached: a product created elsewhere appears at once.
    let product = state.store.get(&id).await?.ok_or_else(not_found)?;
    let rendered = Rendered::json(&product);
    let resp = cached(req.headers(), &rendered, &state.cache_control);
    state.cache.put(key, version, rendered);
    Ok(resp)
}

/// `PUT /product/{id}`: partial update; absent fields keep their value.
pub async fn update(state: Arc<State>, mut req: Req) -> HandlerResult {
    let admin = require_admin(&state, &req).await?;
    let id = parse_id(req.param("id")).ok_or_else(not_found)?;
    let changes: ProductChanges = req.body().await?;
    let product = if changes.is_empty() {
        // Nothing to change: answer with the product as it is, and leave
        // `updated_at` (and so the ETag) alone.
        state.store.get(&id).await?
    } else {
        state.store.update(&id, &changes).await?
    }
    .ok_or_else(not_found)?;
    log::info!("product {id} updated by {}", admin.sub);
    Ok(json_response(StatusCode::OK, &product))
}

/// `DELETE /product/{id}`: a soft delete; the product leaves get and list.
pub async fn delete(state: Arc<State>, req: Req) -> HandlerResult {
    let admin = require_admin(&state, &req).await?;
    let id = parse_id(req.param("id")).ok_or_else(not_found)?;
    if !state.store.delete(&id).await? {
        return Err(not_found());
    }
    log::info!("product {id} deleted by {}", admin.sub);
    Ok(no_content())
}

/// `GET /products/?limit=&offset=&q=&category=&ids=&sort=`
pub async fn list(state: Arc<State>, req: Req) -> HandlerResult {
    let query = req.query();
    let page = PageParams::from_query(&query);
    // An empty `q` is no filter, as in a search box that was cleared.
    let q = common::query::text(&query, "q", MAX_SEARCH_CHARS)?;
    // One 422 names every bad parameter, paging ones first.
    let (page, filter) = both(page, ListQuery::from_query(&query, q))?;
    let key = CacheKey::List {
        filter: filter.clone(),
        limit: page.limit,
        offset: page.offset,
    };
    let version = state.store.version();
    if let Some(hit) = state.cache.get(&key, version) {
        return Ok(cached(req.headers(), &hit, &state.cache_control));
    }
    let (items, total) = state.store.list(&filter, page).await?;
    let rendered = Rendered::json(&Page::new(items, total, page));
    let resp = cached(req.headers(), &rendered, &state.cache_control);
    state.cache.put(key, version, rendered);
    Ok(resp)
}

/// `GET /products/categories`: live products per category, by name.
pub async fn categories(state: Arc<State>, req: Req) -> HandlerResult {
    let key = CacheKey::Categories;
    let version = state.store.version();
    if let Some(hit) = state.cache.get(&key, version) {
        return Ok(cached(req.headers(), &hit, &state.cache_control));
    }
    let items = state.store.categories().await?;
    let rendered = Rendered::json(&CategoryList { items });
    let resp = cached(req.headers(), &rendered, &state.cache_control);
    state.cache.put(key, version, rendered);
    Ok(resp)
}

/// A cacheable JSON `200` with its strong ETag, or `304 Not Modified` when
/// the client's `If-None-Match` already names that ETag.
fn cached(
    headers: &HeaderMap,
    rendered: &Rendered,
    cache_control: &HeaderValue,
) -> Response<Full<Bytes>> {
    let mut resp = if none_match(headers, &rendered.etag) {
        let mut resp = Response::new(Full::new(Bytes::new()));
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        resp
    } else {
        let mut resp = Response::new(Full::new(rendered.body.clone()));
        resp.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        resp
    };
    resp.headers_mut().insert(ETAG, rendered.etag.clone());
    resp.headers_mut()
        .insert(CACHE_CONTROL, cache_control.clone());
    resp
}

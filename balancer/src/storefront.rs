//! The storefront's files: what a `static = true` rule serves from the
//! `storefront_dir` setting.
//!
//! GET and HEAD only (others get 405 on an existing file, else 404), the
//! Content-Type by extension, a validator ETag (size and modification time)
//! with `If-None-Match` → 304, `Cache-Control` (HTML: `no-cache`; other
//! files: a short `max-age`, then revalidation, as their names are not
//! content-hashed), precompressed `.br`/`.gz` siblings when the client
//! accepts them, and the single-page app's fallback to `index.html`.
//!
//! Nothing outside the directory is ever served: the path is decoded and
//! refused with `..`, `.` or hidden segments, backslashes or NUL, and the
//! file found is resolved (symlinks included) and must still lie inside the
//! directory. There is no directory listing. Reads are async and bounded.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use common::conditional::none_match;
use http::header::{
    HeaderMap, HeaderValue, ACCEPT, ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING,
    CONTENT_LENGTH, CONTENT_TYPE, ETAG, VARY,
};
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use tokio::io::AsyncReadExt;

use crate::body::DownBody;

/// The largest file served. The storefront's files are small; the bound
/// keeps a stray large file from being read into memory per request.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// Where the files are and how long browsers may keep them.
#[derive(Debug, Clone)]
pub struct Options {
    /// `None`: no storefront; every static request is a 404.
    pub dir: Option<PathBuf>,
    /// `max-age` of files other than HTML; zero means `no-cache`.
    pub max_age: Duration,
}

/// What a static rule answers.
pub enum Outcome {
    Served(Response<DownBody>),
    /// No file here (and no fallback): the caller's 404 problem.
    NotFound,
    /// A file exists, but only GET and HEAD read it.
    MethodNotAllowed,
    /// The file exists but cannot be served (unreadable, too large).
    Failed(io::Error),
}

/// The storefront directory, resolved once at start.
#[derive(Debug)]
pub struct Storefront {
    /// Canonical (symlinks resolved); `None` when unset or missing.
    root: Option<PathBuf>,
    asset_cache: HeaderValue,
}

static NO_CACHE: HeaderValue = HeaderValue::from_static("no-cache");

impl Storefront {
    /// Resolves the directory; a missing one is logged, not fatal, so the
    /// API works without a storefront.
    pub fn new(options: &Options) -> Storefront {
        let root = options.dir.as_ref().and_then(|dir| match dir.canonicalize() {
            Ok(root) if root.is_dir() => {
                log::info!("serving the storefront from {}", root.display());
                Some(root)
            }
            Ok(_) | Err(_) => {
                log::warn!(
                    "storefront_dir {} is not a readable directory; the storefront is not served (/ answers 404)",
                    dir.display()
                );
                None
            }
        });
        let asset_cache = if options.max_age.is_zero() {
            NO_CACHE.clone()
        } else {
            HeaderValue::from_str(&format!(
                "public, max-age={}, must-revalidate",
                options.max_age.as_secs()
            ))
            .expect("digits make a valid header value")
        };
        Storefront { root, asset_cache }
    }

    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    /// Answers `method path` from the files. `is_api_path` says whether
    /// another rule of the table owns the path (for any method): such a
    /// path never falls back to the app.
    pub async fn serve(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        is_api_path: impl FnOnce(&str) -> bool,
    ) -> Outcome {
        let Some(root) = &self.root else {
            return Outcome::NotFound;
        };
        let reads = method == Method::GET || method == Method::HEAD;
        let found = match relative_path(path) {
            Some(relative) => find(root, &relative).await,
            None => None,
        };
        if !reads {
            return match found {
                Some(_) => Outcome::MethodNotAllowed,
                None => Outcome::NotFound,
            };
        }
        let (file, size, html) = match found {
            Some(file) => {
                let html = is_html(&file.0);
                (file.0, file.1, html)
            }
            None if spa_fallback(path, headers) && !is_api_path(path) => {
                match find(root, Path::new("index.html")).await {
                    Some((file, size)) => (file, size, true),
                    None => return Outcome::NotFound,
                }
            }
            None => return Outcome::NotFound,
        };
        let cache = if html {
            NO_CACHE.clone()
        } else {
            self.asset_cache.clone()
        };
        match respond(root, method, headers, &file, size, cache).await {
            Ok(resp) => Outcome::Served(resp),
            Err(e) => Outcome::Failed(e),
        }
    }
}

/// The request path as a relative file path, or `None` when it could name
/// something outside the directory or hidden in it. `/` and paths ending
/// in `/` name `index.html` only at the root (no listings, no index pages
/// elsewhere).
fn relative_path(path: &str) -> Option<PathBuf> {
    let decoded = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .ok()?;
    if decoded.contains(['\0', '\\']) {
        return None;
    }
    if decoded == "/" {
        return Some(PathBuf::from("index.html"));
    }
    if decoded.ends_with('/') {
        return None;
    }
    let mut relative = PathBuf::new();
    for segment in decoded.split('/').skip(1) {
        // Empty (`//`), `.`, `..` and hidden (`.git`, `.env`) segments.
        if segment.is_empty() || segment.starts_with('.') {
            return None;
        }
        relative.push(segment);
    }
    Some(relative)
}

/// The canonical path and size of a regular file at `relative` under
/// `root`, if it is one and still under `root` once symlinks are resolved.
async fn find(root: &Path, relative: &Path) -> Option<(PathBuf, u64)> {
    let real = tokio::fs::canonicalize(root.join(relative)).await.ok()?;
    if !real.starts_with(root) {
        log::warn!(
            "storefront: {} leads outside the directory; not served",
            relative.display()
        );
        return None;
    }
    let meta = tokio::fs::metadata(&real).await.ok()?;
    meta.is_file().then_some((real, meta.len()))
}

/// A browser navigation: GET/HEAD that accepts HTML (explicitly; `*/*`
/// from curl or an API client does not count), to a path outside /assets/
/// (a missing script or picture is a plain 404, never the app).
fn spa_fallback(path: &str, headers: &HeaderMap) -> bool {
    let assets = path == "/assets" || path.starts_with("/assets/");
    !assets && accepts(headers, ACCEPT, "text/html")
}

/// Whether a list header (`Accept`, `Accept-Encoding`) names `wanted`
/// with a non-zero quality (RFC 9110 §12.4.2).
fn accepts(headers: &HeaderMap, name: http::header::HeaderName, wanted: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let token = parts.next().unwrap_or("").trim();
            let zero = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q <= 0.0))
            });
            token.eq_ignore_ascii_case(wanted) && !zero
        })
}

fn is_html(file: &Path) -> bool {
    matches!(extension(file).as_deref(), Some("html" | "htm"))
}

fn extension(file: &Path) -> Option<String> {
    file.extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
}

/// The media type by extension; unknown ones are plain bytes.
pub fn content_type(file: &Path) -> &'static str {
    match extension(file).as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("webp") => "image/webp",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        Some("woff2") => "font/woff2",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The precompressed sibling to send, if the client accepts its encoding:
/// Brotli before gzip, as it is smaller.
async fn precompressed(root: &Path, file: &Path, headers: &HeaderMap) -> Option<Encoded> {
    for (suffix, encoding) in [("br", "br"), ("gz", "gzip")] {
        if !accepts(headers, ACCEPT_ENCODING, encoding) {
            continue;
        }
        let mut name = file.as_os_str().to_owned();
        name.push(".");
        name.push(suffix);
        let sibling = PathBuf::from(name);
        let relative = sibling.strip_prefix(root).ok()?.to_path_buf();
        if let Some((path, size)) = find(root, &relative).await {
            return Some(Encoded {
                path,
                size,
                encoding,
            });
        }
    }
    None
}

struct Encoded {
    path: PathBuf,
    size: u64,
    encoding: &'static str,
}

/// The answer for one file: 304 when the client's copy is current, else
/// the file (or its precompressed sibling), headers only for HEAD.
async fn respond(
    root: &Path,
    method: &Method,
    headers: &HeaderMap,
    file: &Path,
    size: u64,
    cache: HeaderValue,
) -> io::Result<Response<DownBody>> {
    let encoded = precompressed(root, file, headers).await;
    let (path, size, encoding) = match &encoded {
        Some(e) => (e.path.as_path(), e.size, Some(e.encoding)),
        None => (file, size, None),
    };
    if size > MAX_FILE_BYTES {
        return Err(io::Error::other(format!(
            "{} is larger than {MAX_FILE_BYTES} bytes",
            path.display()
        )));
    }
    let etag = etag(path, size, encoding).await?;
    let mut resp = Response::new(DownBody::from(Full::new(Bytes::new())));
    let h = resp.headers_mut();
    h.insert(ETAG, etag.clone());
    h.insert(CACHE_CONTROL, cache);
    h.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
    if none_match(headers, &etag) {
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        return Ok(resp);
    }
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type(file)));
    h.insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Some(encoding) = encoding {
        h.insert(CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    if method == Method::HEAD {
        h.insert(CONTENT_LENGTH, HeaderValue::from(size));
        return Ok(resp);
    }
    let body = read_bounded(path).await?;
    *resp.body_mut() = DownBody::from(Full::new(Bytes::from(body)));
    Ok(resp)
}

/// Reads a whole file, refusing one that grew past the bound meanwhile.
async fn read_bounded(path: &Path) -> io::Result<Vec<u8>> {
    let file = tokio::fs::File::open(path).await?;
    let mut body = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut body).await?;
    if body.len() as u64 > MAX_FILE_BYTES {
        return Err(io::Error::other(format!(
            "{} grew larger than {MAX_FILE_BYTES} bytes",
            path.display()
        )));
    }
    Ok(body)
}

/// A validator from the size and modification time (nanoseconds) of what
/// is sent, so a changed or replaced file gets a new tag without hashing
/// it; the encoding is part of it, as each encoding is its own bytes.
async fn etag(path: &Path, size: u64, encoding: Option<&str>) -> io::Result<HeaderValue> {
    let modified = tokio::fs::metadata(path).await?.modified()?;
    let nanos = modified
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let suffix = encoding.map(|e| format!("-{e}")).unwrap_or_default();
    HeaderValue::from_str(&format!("\"{size:x}-{nanos:x}{suffix}\"")).map_err(io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: http::header::HeaderName, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn paths_map_inside_the_directory_only() {
        assert_eq!(relative_path("/"), Some(PathBuf::from("index.html")));
        assert_eq!(
            relative_path("/assets/app.js"),
            Some(PathBuf::from("assets/app.js"))
        );
        assert_eq!(
            relative_path("/assets/a%20b.svg"),
            Some(PathBuf::from("assets/a b.svg"))
        );
        for bad in [
            "/assets/",
            "/../etc/passwd",
            "/assets/%2e%2e/%2e%2e/etc/passwd",
            "/assets/..%2fsecret",
            "/a\\..\\b",
            "/a%5c..%5cb",
            "/x%00.js",
            "/.env",
            "/assets/.hidden",
            "//etc/passwd",
            "/a//b",
            "/%ff",
        ] {
            assert_eq!(relative_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn accept_lists_honour_quality() {
        let html = |v: &str| accepts(&headers(ACCEPT, v), ACCEPT, "text/html");
        assert!(html("text/html,application/xhtml+xml,*/*;q=0.8"));
        assert!(html("TEXT/HTML;q=0.5"));
        assert!(!html("*/*"));
        assert!(!html("application/json"));
        assert!(!html("text/html;q=0"));
        let br = |v: &str| accepts(&headers(ACCEPT_ENCODING, v), ACCEPT_ENCODING, "br");
        assert!(br("gzip, deflate, br"));
        assert!(br("br;q=1.0"));
        assert!(!br("br;q=0, gzip"));
        assert!(!br("gzip"));
    }

    #[test]
    fn content_types_by_extension() {
        for (file, want) in [
            ("index.html", "text/html; charset=utf-8"),
            ("a/app.JS", "text/javascript; charset=utf-8"),
            ("m.mjs", "text/javascript; charset=utf-8"),
            ("s.css", "text/css; charset=utf-8"),
            ("p.svg", "image/svg+xml"),
            ("p.png", "image/png"),
            ("p.jpg", "image/jpeg"),
            ("p.jpeg", "image/jpeg"),
            ("p.webp", "image/webp"),
            ("favicon.ico", "image/x-icon"),
            ("m.json", "application/json"),
            ("f.woff2", "font/woff2"),
            ("robots.txt", "text/plain; charset=utf-8"),
            ("x.bin", "application/octet-stream"),
            ("noext", "application/octet-stream"),
        ] {
            assert_eq!(content_type(Path::new(file)), want, "{file}");
        }
    }
}

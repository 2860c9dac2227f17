//! The storefront's files through a `static = true` rule, over real HTTP
//! against a temporary directory: types, ETags and 304, Cache-Control,
//! precompressed siblings, HEAD, 405, the single-page app's fallback, and
//! every way out of the directory refused.

use std::path::Path;

use serde_json::Value;

use crate::support::*;

/// The files of a small storefront, and a secret beside it that must
/// never be served.
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let public = dir.path().join("public");
        for (file, body) in [
            ("index.html", "<!doctype html><title>Shop</title>"),
            ("assets/app.js", "import './router.js';"),
            ("assets/router.mjs", "export {};"),
            ("assets/style.css", "body{margin:0}"),
            (
                "assets/products/mug.svg",
                "<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
            ),
            ("assets/pic.png", "png"),
            ("assets/pic.jpg", "jpg"),
            ("assets/pic.webp", "webp"),
            ("assets/font.woff2", "woff2"),
            ("assets/data.json", "{\"a\":1}"),
            ("assets/blob.bin", "bin"),
            ("favicon.ico", "ico"),
            ("robots.txt", "User-agent: *"),
            ("about.html", "<p>about</p>"),
            ("assets/app.js.br", "BROTLI-BYTES"),
            ("assets/app.js.gz", "GZIP-BYTES"),
            ("assets/style.css.gz", "GZIP-CSS"),
            (".env", "SECRET=in-the-dir"),
            ("assets/.hidden", "HIDDEN-CONTENT"),
        ] {
            write(&public.join(file), body);
        }
        write(&dir.path().join("secret.txt"), "TOP-SECRET outside");
        Site { dir }
    }

    fn public(&self) -> std::path::PathBuf {
        self.dir.path().join("public")
    }
}

fn write(path: &Path, body: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, body).unwrap();
}

/// The default route table with every pool at `upstream`, serving `dir`.
async fn shop_with(dir: Option<std::path::PathBuf>, upstream: &Upstream) -> Shop {
    let mut text = balancer::routes::DEFAULT_TABLE.to_string();
    for port in ["8001", "8002", "8003", "8005", "8006"] {
        text = text.replace(&format!("http://127.0.0.1:{port}"), &upstream.url());
    }
    spawn_balancer(&text, |c| c.storefront.dir = dir).await
}

async fn get(shop: &Shop, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = shop.http.get(shop.url(path));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.unwrap()
}

fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

const HTML: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

#[tokio::test]
async fn files_are_served_with_their_type_and_caching_headers() {
    let site = Site::new();
    let up = Upstream::spawn("products").await;
    let shop = shop_with(Some(site.public()), &up).await;
    for (path, ctype, body) in [
        (
            "/",
            "text/html; charset=utf-8",
            "<!doctype html><title>Shop</title>",
        ),
        (
            "/index.html",
            "text/html; charset=utf-8",
            "<!doctype html><title>Shop</title>",
        ),
        ("/about.html", "text/html; charset=utf-8", "<p>about</p>"),
        (
            "/assets/app.js",
            "text/javascript; charset=utf-8",
            "import './router.js';",
        ),
        (
            "/assets/router.mjs",
            "text/javascript; charset=utf-8",
            "export {};",
        ),
        (
            "/assets/style.css",
            "text/css; charset=utf-8",
            "body{margin:0}",
        ),
        (
            "/assets/products/mug.svg",
            "image/svg+xml",
            "<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
        ),
        ("/assets/pic.png", "image/png", "png"),
        ("/assets/pic.jpg", "image/jpeg", "jpg"),
        ("/assets/pic.webp", "image/webp", "webp"),
        ("/assets/font.woff2", "font/woff2", "woff2"),
        ("/assets/data.json", "application/json", "{\"a\":1}"),
        ("/assets/blob.bin", "application/octet-stream", "bin"),
        ("/favicon.ico", "image/x-icon", "ico"),
        ("/robots.txt", "text/plain; charset=utf-8", "User-agent: *"),
    ] {
        let resp = get(&shop, path, &[]).await;
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(header(&resp, "content-type"), ctype, "{path}");
        assert_eq!(header(&resp, "x-content-type-options"), "nosniff");
        assert_eq!(header(&resp, "vary"), "Accept-Encoding");
        assert!(header(&resp, "etag").starts_with('"'), "{path}");
        assert!(resp.headers().contains_key("x-request-id"));
        let cache = header(&resp, "cache-control");
        if ctype.starts_with("text/html") {
            assert_eq!(cache, "no-cache", "{path}: HTML is always revalidated");
        } else {
            assert_eq!(cache, "public, max-age=60, must-revalidate", "{path}");
        }
        assert_eq!(header(&resp, "content-length"), body.len().to_string());
        assert!(!resp.headers().contains_key("content-encoding"));
        assert_eq!(resp.text().await.unwrap(), body, "{path}");
    }
    // API routes are untouched: they still reach the service.
    let api = get(&shop, "/products/?q=mug", &[("accept", HTML)]).await;
    assert_eq!(api.status(), 200);
    assert_eq!(header(&api, "x-upstream"), "products");
    assert_eq!(
        up.state.total(),
        1,
        "only the API request reached a service"
    );
}

#[tokio::test]
async fn etags_answer_304_until_the_file_changes() {
    let site = Site::new();
    let up = Upstream::spawn("products").await;
    let shop = shop_with(Some(site.public()), &up).await;
    let first = get(&shop, "/assets/app.js", &[]).await;
    let etag = header(&first, "etag");
    assert_eq!(
        header(&get(&shop, "/assets/app.js", &[]).await, "etag"),
        etag
    );
    let weak = format!("W/{etag}");
    let listed = format!("\"nope\", {etag}");
    for tag in [etag.as_str(), weak.as_str(), listed.as_str(), "*"] {
        let resp = get(&shop, "/assets/app.js", &[("if-none-match", tag)]).await;
        assert_eq!(resp.status(), 304, "{tag}");
        assert_eq!(header(&resp, "etag"), etag);
        assert_eq!(
            header(&resp, "cache-control"),
            "public, max-age=60, must-revalidate"
        );
        assert!(resp.bytes().await.unwrap().is_empty());
    }
    let stale = get(&shop, "/assets/app.js", &[("if-none-match", "\"stale\"")]).await;
    assert_eq!(stale.status(), 200);

    // A new version (other size) gets a new tag, and the old one is stale.
    write(&site.public().join("assets/app.js"), "console.log('v2');");
    let resp = get(&shop, "/assets/app.js", &[("if-none-match", &etag)]).await;
    assert_eq!(resp.status(), 200);
    assert_ne!(header(&resp, "etag"), etag);
    assert_eq!(resp.text().await.unwrap(), "console.log('v2');");
    // index.html revalidates the same way.
    let index = header(&get(&shop, "/", &[]).await, "etag");
    let resp = get(&shop, "/", &[("if-none-match", &index)]).await;
    assert_eq!(resp.status(), 304);
    assert_eq!(header(&resp, "cache-control"), "no-cache");
}

#[tokio::test]
async fn precompressed_siblings_are_served_when_accepted() {
    let site = Site::new();
    let up = Upstream::spawn("products").await;
    let shop = shop_with(Some(site.public()), &up).await;
    let cases = [
        ("/assets/app.js", "gzip, deflate, br", "br", "BROTLI-BYTES"),
        ("/assets/app.js", "br;q=1.0", "br", "BROTLI-BYTES"),
        ("/assets/app.js", "gzip", "gzip", "GZIP-BYTES"),
        ("/assets/app.js", "br;q=0, gzip", "gzip", "GZIP-BYTES"),
        ("/assets/app.js", "identity", "", "import './router.js';"),
        ("/assets/app.js", "", "", "import './router.js';"),
        ("/assets/style.css", "br, gzip", "gzip", "GZIP-CSS"),
        ("/assets/pic.png", "br, gzip", "", "png"),
    ];
    let mut tags = std::collections::BTreeSet::new();
    for (path, accept, encoding, body) in cases {
        let resp = get(&shop, path, &[("accept-encoding", accept)]).await;
        assert_eq!(resp.status(), 200, "{path} {accept}");
        assert_eq!(
            header(&resp, "content-encoding"),
            encoding,
            "{path} {accept}"
        );
        assert_eq!(header(&resp, "vary"), "Accept-Encoding");
        // The type is the original file's, not the compressed one's.
        assert!(
            !header(&resp, "content-type").contains("gzip"),
            "{path} {accept}"
        );
        if path == "/assets/app.js" {
            tags.insert(header(&resp, "etag"));
        }
        assert_eq!(resp.text().await.unwrap(), body, "{path} {accept}");
    }
    assert_eq!(tags.len(), 3, "each encoding has its own ETag: {tags:?}");
    // Asked for by name, a compressed sibling is plain bytes: never labelled
    // with an encoding the client did not negotiate.
    let resp = get(&shop, "/assets/app.js.br", &[]).await;
    assert_eq!(header(&resp, "content-type"), "application/octet-stream");
    assert!(!resp.headers().contains_key("content-encoding"));
}

#[tokio::test]
async fn head_has_the_headers_of_get_without_a_body() {
    let site = Site::new();
    let up = Upstream::spawn("products").await;
    let shop = shop_with(Some(site.public()), &up).await;
    let head = raw(
        shop.balancer.addr,
        "HEAD /assets/style.css HTTP/1.1\r\nhost: shop\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(
        lower.contains("content-type: text/css; charset=utf-8"),
        "{head}"
    );
    assert!(lower.contains("content-length: 14\r\n"), "{head}");
    assert!(lower.contains("etag: \""), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "no body: {head:?}");
    // The app's fallback answers HEAD too.
    let head = raw(
        shop.balancer.addr,
        &format!(
            "HEAD /shop/cart HTTP/1.1\r\nhost: shop\r\naccept: {HTML}\r\nconnection: close\r\n\r\n"
        ),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "no body: {head:?}");
}

#[tokio::test]
async fn browser_navigations_fall_back_to_the_app_and_nothing_else_does() {
    let site = Site::new();
    let up = Upstream::spawn("products").await;
    let shop = shop_with(Some(site.public()), &up).await;
    let index = "<!doctype html><title>Shop</title>";
    for path in [
        "/shop/cart",
        "/shop/products/42",
        "/shop/orders/x?y=1",
        "/nope",
    ] {
        let resp = get(&shop, path, &[("accept", HTML)]).await;
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(header(&resp, "content-type"), "text/html; charset=utf-8");
        assert_eq!(header(&resp, "cache-control"), "no-cache", "{path}");
        assert_eq!(resp.text().await.unwrap(), index, "{path}");
    }
    // Not a navigation (curl, fetch, API clients), a missing asset, an API
    // path (for another method), an internal path: a 404 problem. (A path
    // no rule knows, like /log/summary, is the app's to call unknown.)
    for (path, accept) in [
        ("/shop/cart", "*/*"),
        ("/shop/cart", "application/json"),
        ("/shop/cart", "text/html;q=0"),
        ("/assets/missing.js", HTML),
        ("/assets/", HTML),
        ("/assets", HTML),
        ("/log", HTML),
        ("/log/summary", "application/json"),
        ("/products-but-not", "*/*"),
        ("/internal/anything", HTML),
        ("/send_email/", "*/*"),
    ] {
        let resp = get(&shop, path, &[("accept", accept)]).await;
        assert_eq!(resp.status(), 404, "{path} ({accept})");
        problem(resp, 404, "not_found").await;
    }
    // Other methods: 405 on a file (with Allow), 404 where there is none.
    for (method, path, status) in [
        ("POST", "/", 405),
        ("PUT", "/assets/app.js", 405),
        ("DELETE", "/index.html", 405),
        ("POST", "/shop/cart", 404),
        ("DELETE", "/nope", 404),
        ("POST", "/send_email/", 404),
    ] {
        let resp = shop
            .http
            .request(method.parse().unwrap(), shop.url(path))
            .header("accept", HTML)
            .send()
            .await
            .unwrap();
        if status == 405 {
            assert_eq!(header(&resp, "allow"), "GET, HEAD", "{method} {path}");
            problem(resp, 405, "method_not_allowed").await;
        } else {
            problem(resp, 404, "not_found").await;
        }
    }
    // A CORS preflight to a static path is not an API's to answer.
    let resp = shop
        .http
        .request(reqwest::Method::OPTIONS, shop.url("/assets/app.js"))
        .header("origin", "http://localhost:5173")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    problem(resp, 404, "not_found").await;
    assert_eq!(up.state.total(), 0, "no service was reached");
}

#[tokio::test]
async fn nothing_outside_the_directory_or_hidden_in_it_is_served() {
    let site = Site::new();
    let public = site.public();
    // Symlinks: to a file and a directory outside, and one inside (fine).
    std::os::unix::fs::symlink(site.dir.path().join("secret.txt"), public.join("leak.txt"))
        .unwrap();
    std::os::unix::fs::symlink(site.dir.path(), public.join("assets/up")).unwrap();
    std::os::unix::fs::symlink(public.join("robots.txt"), public.join("alias.txt")).unwrap();
    let up = Upstream::spawn("products").await;
    let shop = shop_with(Some(public.clone()), &up).await;

    assert_eq!(get(&shop, "/alias.txt", &[]).await.status(), 200);
    for path in [
        "/../secret.txt",
        "/assets/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/assets/%2E%2E/%2e%2e/secret.txt",
        "/assets/..%2f..%2fsecret.txt",
        "/assets%2f..%2f..%2fsecret.txt",
        "/..%5csecret.txt",
        "/assets\\..\\..\\secret.txt",
        "/assets/%5c..%5c..%5csecret.txt",
        "/secret.txt%00.js",
        "/index.html%00",
        "/leak.txt",
        "/assets/up/secret.txt",
        "/.env",
        "/assets/.hidden",
        "/%2eenv",
        "//secret.txt",
        "/assets//app.js",
        "/assets/products/",
        "/assets/up/",
    ] {
        for accept in ["*/*", "image/png"] {
            let resp = raw(
                shop.balancer.addr,
                &format!("GET {path} HTTP/1.1\r\nhost: shop\r\naccept: {accept}\r\nconnection: close\r\n\r\n"),
            )
            .await;
            let status: u16 = resp[9..12].parse().unwrap_or(0);
            assert!(
                matches!(status, 400 | 404),
                "{path}: {}",
                resp.lines().next().unwrap_or("")
            );
            assert!(!resp.contains("SECRET"), "{path} leaked: {resp}");
            assert!(!resp.contains("HIDDEN-CONTENT"), "{path} leaked: {resp}");
        }
    }
    // A directory is never listed, whatever the client accepts.
    let resp = get(&shop, "/assets/products/", &[("accept", HTML)]).await;
    assert_eq!(resp.status(), 404);
    assert!(!resp.text().await.unwrap().contains("mug.svg"));
}

#[tokio::test]
async fn without_the_directory_the_api_works_and_the_storefront_is_404() {
    let up = Upstream::spawn("products").await;
    let missing = tempfile::tempdir().unwrap().path().join("gone");
    for dir in [Some(missing), None] {
        let shop = shop_with(dir, &up).await;
        for path in ["/", "/index.html", "/assets/app.js", "/shop/cart"] {
            problem(
                get(&shop, path, &[("accept", HTML)]).await,
                404,
                "not_found",
            )
            .await;
        }
        let api = get(&shop, "/products/", &[]).await;
        assert_eq!(api.status(), 200);
        let body: Value = api.json().await.unwrap();
        assert_eq!(body["path"], "/products/");
    }
}

#[tokio::test]
async fn a_zero_max_age_revalidates_every_file() {
    let site = Site::new();
    let up = Upstream::spawn("products").await;
    let mut text = balancer::routes::DEFAULT_TABLE.to_string();
    text = text.replace("http://127.0.0.1:8002", &up.url());
    let public = site.public();
    let shop = spawn_balancer(&text, |c| {
        c.storefront.dir = Some(public);
        c.storefront.max_age = std::time::Duration::ZERO;
    })
    .await;
    let resp = get(&shop, "/assets/app.js", &[]).await;
    assert_eq!(header(&resp, "cache-control"), "no-cache");
}

//! Header rewriting: hop-by-hop removal (RFC 9110 §7.6.1), the
//! `X-Forwarded-*` family and W3C trace context (kept only from a trusted
//! front proxy), request ids, and CORS.

use std::net::IpAddr;

use http::header::{
    HeaderName, HeaderValue, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, CONNECTION, CONTENT_LENGTH, EXPECT, HOST, PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE, VARY,
};
use http::HeaderMap;
use ipnet::IpNet;

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// Hop-by-hop headers by name: RFC 9110's list plus the legacy
/// `Keep-Alive` and `Proxy-Connection` that old clients still send.
const HOP_BY_HOP: [HeaderName; 9] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
];

/// Removes every hop-by-hop header, including each header the message
/// names in `Connection` (so `Connection: X-Secret` takes `X-Secret` out)
/// and any `Proxy-*` header, which is meant for a proxy, never a service.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none: one cheap pass over the names (standard
    // names compare as enum tags) instead of nine hashed removals.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    // A message that came chunked has its framing rebuilt on the way out;
    // a Content-Length beside Transfer-Encoding must not survive the
    // stripping, or the next hop would frame the body by it (smuggling).
    // (Transfer-Encoding is hop-by-hop, so the pass above saw it.)
    if headers.contains_key(TRANSFER_ENCODING) {
        headers.remove(CONTENT_LENGTH);
    }
    // Allocates only when there is something extra to remove.
    let mut named: Vec<HeaderName> = Vec::new();
    for value in headers.get_all(CONNECTION) {
        for token in value.as_bytes().split(|b| *b == b',') {
            let token = token.trim_ascii();
            if token.is_empty() {
                continue;
            }
            // HeaderName::from_bytes lowercases; invalid tokens name no header.
            if let Ok(name) = HeaderName::from_bytes(token) {
                named.push(name);
            }
        }
    }
    for name in headers.keys() {
        if name.as_str().starts_with("proxy-") {
            named.push(name.clone());
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    for name in named {
        headers.remove(name);
    }
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    is_hop_by_hop_name(name.as_str())
}

/// [`HOP_BY_HOP`] and any `proxy-*`, by (lowercase) name: a string match,
/// not nine `HeaderName` comparisons.
fn is_hop_by_hop_name(name: &str) -> bool {
    matches!(
        name,
        "connection" | "keep-alive" | "te" | "trailer" | "transfer-encoding" | "upgrade"
    ) || name.starts_with("proxy-")
}

/// What one pass over a request's headers finds: the inputs of the header
/// limits and the few headers the proxy reads. A hashed lookup for each of
/// them cost more than walking the handful of headers a request carries.
#[derive(Debug, Default)]
pub struct Scan {
    /// Header lines, and their size as counted against the limit.
    pub count: usize,
    pub bytes: usize,
    pub request_id: Option<HeaderValue>,
    pub origin: Option<HeaderValue>,
    /// The declared length, when present and a number.
    pub content_length: Option<u64>,
    pub host: Option<HeaderValue>,
    pub expect: bool,
    pub forwarded_for: bool,
    /// Whether any other forwarding header is present (`X-Forwarded-Proto`,
    /// `X-Forwarded-Host`, `Forwarded`, `X-Real-IP`).
    pub forwarding: bool,
    /// Whether any hop-by-hop header is present.
    pub hop_by_hop: bool,
    /// Whether `traceparent` or `tracestate` is present.
    pub trace_context: bool,
}

/// Walks the headers once; the first line of a repeated header counts, as
/// with `HeaderMap::get`.
pub fn scan(headers: &HeaderMap) -> Scan {
    let mut s = Scan::default();
    for (name, value) in headers {
        // One string match per header (compiled to a switch on the length)
        // instead of a comparison with each name of interest.
        let name = name.as_str();
        s.count += 1;
        s.bytes += name.len() + value.len() + 4;
        match name {
            "host" => {
                s.host.get_or_insert_with(|| value.clone());
            }
            "origin" => {
                s.origin.get_or_insert_with(|| value.clone());
            }
            "content-length" if s.content_length.is_none() => {
                s.content_length = value.to_str().ok().and_then(|v| v.parse().ok());
            }
            "expect" => s.expect = true,
            "x-request-id" => {
                s.request_id.get_or_insert_with(|| value.clone());
            }
            "x-forwarded-for" => s.forwarded_for = true,
            "traceparent" | "tracestate" => s.trace_context = true,
            "x-forwarded-proto" | "x-forwarded-host" | "forwarded" | "x-real-ip" => {
                s.forwarding = true
            }
            name if is_hop_by_hop_name(name) => s.hop_by_hop = true,
            _ => {}
        }
    }
    s
}

/// Whether `peer` is one of the front proxies whose forwarding headers
/// are believed. Nothing is trusted by default, and then this is a length
/// check.
pub fn is_trusted(trusted: &[IpNet], peer: IpAddr) -> bool {
    !trusted.is_empty() && {
        let peer = peer.to_canonical();
        trusted.iter().any(|net| net.contains(&peer))
    }
}

/// Prepares the client's headers for an upstream: hop-by-hop out,
/// `Expect` out (the balancer answers `100-continue` itself), the
/// forwarding headers set. The original `Host` is kept, so services see
/// the name the client used; when the client sent none (HTTP/2 or 1.0),
/// the URI's authority stands in. `scan` is what [`scan`] found in these
/// headers. Returns whether a `Host` is set.
///
/// Forwarding headers are claims about the client: from a peer in
/// `trusted` the chain is continued (the peer appended to
/// `X-Forwarded-For`, its `X-Forwarded-Proto` and `-Host` kept), from
/// anyone else they are replaced by what the balancer saw itself, so a
/// client cannot pick the address a service's rate limit counts.
pub fn prepare_request(
    headers: &mut HeaderMap,
    scan: &mut Scan,
    peer: IpAddr,
    trusted: &[IpNet],
    uri_authority: Option<&http::uri::Authority>,
) -> bool {
    if scan.hop_by_hop {
        strip_hop_by_hop(headers);
        // `Connection` may have named any header, even `Host`: look again
        // at what is left.
        *scan = self::scan(headers);
    }
    if scan.expect {
        headers.remove(EXPECT);
    }
    // Taken, not cloned: a header value kept while the upstream answers
    // would pin the client connection's read buffer, and hyper would
    // allocate a new one for its next read.
    let mut host = scan.host.take();
    if host.is_none() {
        host = uri_authority.and_then(|a| HeaderValue::from_str(a.as_str()).ok());
        if let Some(h) = &host {
            headers.insert(HOST, h.clone());
        }
    }
    let trusted = is_trusted(trusted, peer);
    if trusted && scan.forwarded_for {
        append_forwarded_for(headers, peer);
    } else {
        // `insert` replaces every line the client sent.
        headers.insert(X_FORWARDED_FOR, ip_header_value(peer));
    }
    let proto = if trusted && scan.forwarding {
        forwarded_proto(headers)
    } else {
        // The balancer's own scheme: it speaks plain HTTP.
        HeaderValue::from_static("http")
    };
    headers.insert(X_FORWARDED_PROTO, proto);
    if scan.forwarding && !trusted {
        // Nothing of the balancer's own replaces these: they go.
        headers.remove(http::header::FORWARDED);
        headers.remove(X_REAL_IP);
    }
    if scan.trace_context && !trusted {
        // A client may not pick the trace its request joins (nor flood a
        // backend with "sampled" traces): the request starts a new one.
        headers.remove(TRACEPARENT);
        headers.remove(TRACESTATE);
    }
    let keep_forwarded_host = trusted && scan.forwarding && headers.contains_key(X_FORWARDED_HOST);
    let has_host = host.is_some();
    if !keep_forwarded_host {
        match host {
            Some(host) => {
                headers.insert(X_FORWARDED_HOST, host);
            }
            None => {
                headers.remove(X_FORWARDED_HOST);
            }
        }
    }
    has_host
}

/// A trusted front proxy's `X-Forwarded-Proto`: the scheme the client
/// used, the left-most entry of the first line when a chain of proxies
/// wrote several. Anything but `http` or `https` reads as `http`, the
/// balancer's own.
fn forwarded_proto(headers: &HeaderMap) -> HeaderValue {
    let first = headers
        .get(X_FORWARDED_PROTO)
        .and_then(|v| v.as_bytes().split(|b| *b == b',').next())
        .map(<[u8]>::trim_ascii);
    match first {
        Some(p) if p.eq_ignore_ascii_case(b"https") => HeaderValue::from_static("https"),
        _ => HeaderValue::from_static("http"),
    }
}

/// The peer's address as a header value, in one allocation.
fn ip_header_value(peer: IpAddr) -> HeaderValue {
    let value = match peer {
        IpAddr::V4(v4) => {
            let (text, len) = ipv4_text(v4);
            shared_value(Inline { text, len })
        }
        IpAddr::V6(v6) => HeaderValue::from_str(&v6.to_string()),
    };
    value.expect("an address is a valid header value")
}

/// A header value we make and then send twice (to the upstream, and kept
/// for a retry or the response). `HeaderValue::from_bytes` copies into a
/// `Bytes` whose first clone allocates again to become shared; one built
/// on its owner is shared from the start: one allocation, and a clone is
/// a reference count.
fn shared_value<const N: usize>(
    inline: Inline<N>,
) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
    HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(inline))
}

/// A short text in a fixed buffer: the owner of a shared header value.
struct Inline<const N: usize> {
    text: [u8; N],
    len: usize,
}

impl<const N: usize> AsRef<[u8]> for Inline<N> {
    fn as_ref(&self) -> &[u8] {
        &self.text[..self.len]
    }
}

/// `X-Forwarded-For: <what came in>, <peer>`; several incoming header
/// lines are folded into one, in order.
fn append_forwarded_for(headers: &mut HeaderMap, peer: IpAddr) {
    let mut out = String::with_capacity(64);
    for v in headers.get_all(&X_FORWARDED_FOR) {
        if let Ok(s) = v.to_str() {
            let s = s.trim();
            if !s.is_empty() {
                out.push_str(s);
                out.push_str(", ");
            }
        }
    }
    push_ip(&mut out, peer);
    insert_string(headers, X_FORWARDED_FOR, out);
}

/// Sets `name` to `value`, handing the string's buffer to the header value
/// instead of copying it. The text is made of header values and an
/// address, so it is always valid; were it not, the header is dropped
/// rather than the request.
fn insert_string(headers: &mut HeaderMap, name: HeaderName, value: String) {
    match HeaderValue::from_maybe_shared(bytes::Bytes::from(value)) {
        Ok(v) => {
            headers.insert(name, v);
        }
        Err(_) => {
            headers.remove(name);
        }
    }
}

/// Appends `ip` in its usual text form.
fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            let (text, len) = ipv4_text(v4);
            out.push_str(std::str::from_utf8(&text[..len]).expect("digits and dots"));
        }
        IpAddr::V6(v6) => {
            use std::fmt::Write;
            let _ = write!(out, "{v6}");
        }
    }
}

/// An IPv4 address in dotted decimal, written digit by digit into a stack
/// buffer: `Display` for an address goes through the formatting machinery
/// and cost more than the rest of the header work.
fn ipv4_text(ip: std::net::Ipv4Addr) -> ([u8; 15], usize) {
    let mut out = [0u8; 15];
    let mut len = 0;
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            out[len] = b'.';
            len += 1;
        }
        if octet >= 100 {
            out[len] = b'0' + octet / 100;
            len += 1;
        }
        if octet >= 10 {
            out[len] = b'0' + octet / 10 % 10;
            len += 1;
        }
        out[len] = b'0' + octet % 10;
        len += 1;
    }
    (out, len)
}

/// A fresh request id: 32 lowercase hex characters, as `common` makes them.
/// A thread-local RNG instead of a v4 UUID keeps a system call off the
/// per-request path.
pub fn generate_request_id() -> HeaderValue {
    // An id must be unique, not secret: fastrand's per-thread generator
    // (seeded per process from the OS-keyed std hasher) costs a few
    // instructions where `rand::thread_rng` cost about 150 a request.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let raw = fastrand::u128(..).to_le_bytes();
    let mut out = [0u8; 32];
    for (i, b) in raw.iter().enumerate() {
        out[2 * i] = HEX[(b >> 4) as usize];
        out[2 * i + 1] = HEX[(b & 0xf) as usize];
    }
    shared_value(Inline { text: out, len: 32 }).expect("hex digits are a valid header value")
}

/// The incoming id if `common::request_id` would keep it.
pub fn sane_request_id(v: &HeaderValue) -> bool {
    v.to_str().is_ok_and(common::request_id::is_sane)
}

const ALLOW_METHODS: HeaderValue =
    HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
const DEFAULT_ALLOW_HEADERS: HeaderValue =
    HeaderValue::from_static("Authorization, Content-Type, Idempotency-Key, X-Request-Id");
const EXPOSE_HEADERS: HeaderValue =
    HeaderValue::from_static("X-Request-Id, ETag, Retry-After, Location");
const MAX_AGE: HeaderValue = HeaderValue::from_static("600");

/// Headers of an answered preflight for an allowed origin. The requested
/// headers are echoed when they are a plain token list: the services do
/// their own auth, so the balancer does not second-guess header names.
pub fn preflight_headers(
    headers: &mut HeaderMap,
    origin: HeaderValue,
    requested: Option<&HeaderValue>,
) {
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(ACCESS_CONTROL_ALLOW_METHODS, ALLOW_METHODS);
    let allow = requested
        .filter(|v| {
            v.len() <= 1024
                && v.as_bytes()
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_, ".contains(b))
        })
        .cloned()
        .unwrap_or(DEFAULT_ALLOW_HEADERS);
    headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, allow);
    headers.insert(ACCESS_CONTROL_MAX_AGE, MAX_AGE);
    headers.append(
        VARY,
        HeaderValue::from_static(
            "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
        ),
    );
}

/// CORS headers on an ordinary response for an allowed origin.
pub fn cors_response_headers(headers: &mut HeaderMap, origin: HeaderValue) {
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSE_HEADERS);
    headers.append(VARY, HeaderValue::from_static("Origin"));
}

pub const REQUEST_HEADERS: HeaderName = ACCESS_CONTROL_REQUEST_HEADERS;

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::ORIGIN;

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(
            CONNECTION,
            HeaderValue::from_static("keep-alive, X-Secret , Upgrade"),
        );
        h.append(CONNECTION, HeaderValue::from_static("x-other"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("x-other", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(TE, HeaderValue::from_static("trailers"));
        h.insert(UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("proxy-authorization", HeaderValue::from_static("Basic x"));
        h.insert("proxy-foo", HeaderValue::from_static("1"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-kept"]);
    }

    #[test]
    fn content_length_beside_transfer_encoding_goes() {
        let mut h = HeaderMap::new();
        h.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        h.insert(CONTENT_LENGTH, HeaderValue::from_static("5"));
        strip_hop_by_hop(&mut h);
        assert!(h.is_empty(), "{h:?}");
    }

    /// What a client sent claiming to be behind proxies, as seen by the
    /// balancer from `peer` with `trusted` front proxies.
    fn forwarded_from(peer: &str, trusted: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.append(&X_FORWARDED_FOR, HeaderValue::from_static("1.1.1.1"));
        h.append(&X_FORWARDED_FOR, HeaderValue::from_static("2.2.2.2"));
        h.insert(HOST, HeaderValue::from_static("shop.example"));
        h.insert(&X_FORWARDED_PROTO, HeaderValue::from_static("HTTPS, http"));
        h.insert(&X_FORWARDED_HOST, HeaderValue::from_static("front.example"));
        h.insert(
            http::header::FORWARDED,
            HeaderValue::from_static("for=3.3.3.3"),
        );
        h.insert(&X_REAL_IP, HeaderValue::from_static("4.4.4.4"));
        h.insert(
            &TRACEPARENT,
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        h.insert(&TRACESTATE, HeaderValue::from_static("vendor=x"));
        let trusted: Vec<IpNet> = trusted
            .iter()
            .map(|t| common::config::parse_net(t).unwrap())
            .collect();
        let mut found = scan(&h);
        prepare_request(&mut h, &mut found, peer.parse().unwrap(), &trusted, None);
        assert_eq!(h.get_all(&X_FORWARDED_FOR).iter().count(), 1);
        h
    }

    #[test]
    fn forwarding_headers_from_an_untrusted_peer_are_replaced() {
        for trusted in [&[][..], &["10.0.0.2", "192.168.0.0/16"]] {
            let h = forwarded_from("10.0.0.1", trusted);
            assert_eq!(h[&X_FORWARDED_FOR], "10.0.0.1");
            assert_eq!(h[&X_FORWARDED_PROTO], "http");
            assert_eq!(h[&X_FORWARDED_HOST], "shop.example");
            assert!(h.get(http::header::FORWARDED).is_none());
            assert!(h.get(&X_REAL_IP).is_none());
            assert!(
                h.get(&TRACEPARENT).is_none(),
                "a client cannot pick the trace"
            );
            assert!(h.get(&TRACESTATE).is_none());
        }
    }

    #[test]
    fn a_trusted_proxy_continues_the_chain() {
        for trusted in [&["10.0.0.1"][..], &["10.0.0.0/8"]] {
            let h = forwarded_from("10.0.0.1", trusted);
            assert_eq!(h[&X_FORWARDED_FOR], "1.1.1.1, 2.2.2.2, 10.0.0.1");
            assert_eq!(h[&X_FORWARDED_PROTO], "https");
            assert_eq!(h[&X_FORWARDED_HOST], "front.example");
            assert_eq!(h[http::header::FORWARDED], "for=3.3.3.3");
            assert_eq!(h[&X_REAL_IP], "4.4.4.4");
            assert!(h[&TRACEPARENT].to_str().unwrap().contains("4bf92f35"));
            assert_eq!(h[&TRACESTATE], "vendor=x");
        }
        // An IPv4 peer seen on a dual-stack socket is the same peer.
        let h = forwarded_from("::ffff:10.0.0.1", &["10.0.0.0/8"]);
        assert_eq!(h[&X_FORWARDED_PROTO], "https");
        // A scheme the balancer does not know is its own.
        let mut h = HeaderMap::new();
        h.insert(&X_FORWARDED_PROTO, HeaderValue::from_static("gopher"));
        let mut found = scan(&h);
        let trusted = [common::config::parse_net("10.0.0.1").unwrap()];
        prepare_request(
            &mut h,
            &mut found,
            "10.0.0.1".parse().unwrap(),
            &trusted,
            None,
        );
        assert_eq!(h[&X_FORWARDED_PROTO], "http");
        assert_eq!(h[&X_FORWARDED_FOR], "10.0.0.1");
        assert!(h.get(&X_FORWARDED_HOST).is_none());
    }

    #[test]
    fn one_scan_finds_what_the_proxy_reads() {
        let mut h = HeaderMap::new();
        h.insert(HOST, HeaderValue::from_static("shop.example"));
        h.insert(ORIGIN, HeaderValue::from_static("http://localhost:5173"));
        h.insert(CONTENT_LENGTH, HeaderValue::from_static("42"));
        h.append(&X_REQUEST_ID, HeaderValue::from_static("first"));
        h.append(&X_REQUEST_ID, HeaderValue::from_static("second"));
        h.insert("x-other", HeaderValue::from_static("1"));
        let s = scan(&h);
        assert_eq!(s.count, 6);
        let bytes: usize = h.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
        assert_eq!(s.bytes, bytes);
        assert_eq!(s.host.unwrap(), "shop.example");
        assert_eq!(s.origin.unwrap(), "http://localhost:5173");
        assert_eq!(s.content_length, Some(42));
        assert_eq!(s.request_id.unwrap(), "first");
        assert!(!s.expect && !s.forwarded_for && !s.forwarding && !s.hop_by_hop);

        h.insert(EXPECT, HeaderValue::from_static("100-continue"));
        h.insert(&X_FORWARDED_FOR, HeaderValue::from_static("1.1.1.1"));
        h.insert("proxy-foo", HeaderValue::from_static("1"));
        let s = scan(&h);
        assert!(s.expect && s.forwarded_for && s.hop_by_hop);
        assert!(!s.forwarding);
        for name in [
            "x-forwarded-proto",
            "x-forwarded-host",
            "forwarded",
            "x-real-ip",
        ] {
            let mut h = HeaderMap::new();
            h.insert(HeaderName::from_static(name), HeaderValue::from_static("x"));
            assert!(scan(&h).forwarding, "{name}");
        }
        for name in ["connection", "keep-alive", "te", "trailer", "upgrade"] {
            let mut h = HeaderMap::new();
            h.insert(HeaderName::from_static(name), HeaderValue::from_static("x"));
            assert!(scan(&h).hop_by_hop, "{name}");
        }
    }

    #[test]
    fn a_header_named_in_connection_is_gone_before_the_rest_is_prepared() {
        // `Connection: host` takes the client's Host out; the authority of
        // the request line stands in, as for a client that sent none.
        let mut h = HeaderMap::new();
        h.insert(HOST, HeaderValue::from_static("evil.example"));
        h.insert(
            CONNECTION,
            HeaderValue::from_static("host, x-forwarded-for"),
        );
        h.insert(&X_FORWARDED_FOR, HeaderValue::from_static("6.6.6.6"));
        let mut found = scan(&h);
        let authority = http::uri::Authority::from_static("shop.example");
        let has_host = prepare_request(
            &mut h,
            &mut found,
            "10.0.0.1".parse().unwrap(),
            &[],
            Some(&authority),
        );
        assert!(has_host);
        assert_eq!(h[HOST], "shop.example");
        assert_eq!(h[&X_FORWARDED_HOST], "shop.example");
        assert_eq!(h[&X_FORWARDED_FOR], "10.0.0.1");
        assert!(h.get(CONNECTION).is_none());
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.30.40",
            "255.255.255.255",
            "100.9.99.200",
            "::1",
            "2001:db8::8a2e:370:7334",
            "::ffff:10.0.0.1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut out = String::new();
            push_ip(&mut out, ip);
            assert_eq!(out, ip.to_string());
            // The header value (built on its own buffer for IPv4) reads the
            // same, and so does a clone of it.
            let value = ip_header_value(ip);
            assert_eq!(value, ip.to_string().as_str());
            assert_eq!(value.clone(), value);
        }
    }

    #[test]
    fn generated_ids_are_sane_and_distinct() {
        let a = generate_request_id();
        let b = generate_request_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(sane_request_id(&a));
    }
}

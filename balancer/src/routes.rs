//! The route table: ordered rules (prefix, exact path or regex; optional
//! methods) that send a request to a pool of upstreams, deny it, or serve
//! it from the storefront's files, and the pools themselves. Parsed and validated once at start (or by
//! `balancer check-config`); regexes are compiled here, never per request.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use http::Method;
use regex::Regex;
use serde::Deserialize;

/// The table shipped with the balancer: docs/api.md's routes.
pub const DEFAULT_TABLE: &str = include_str!("../routes.toml");

/// A table problem, naming the rule or pool it is about.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("not a valid route table: {0}")]
    Syntax(String),
    #[error("route #{index} ({label}): {message}")]
    Route {
        index: usize,
        label: String,
        message: String,
    },
    #[error("pool `{pool}`: {message}")]
    Pool { pool: String, message: String },
    #[error("the table has no [[route]] entries")]
    Empty,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    #[serde(default)]
    route: Vec<RawRoute>,
    #[serde(default)]
    pools: BTreeMap<String, RawPool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    name: Option<String>,
    prefix: Option<String>,
    path: Option<String>,
    regex: Option<String>,
    methods: Option<Vec<String>>,
    pool: Option<String>,
    public: Option<bool>,
    deny: Option<bool>,
    #[serde(rename = "static")]
    static_files: Option<bool>,
    timeout: Option<String>,
    max_body: Option<toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPool {
    upstreams: Vec<String>,
}

/// How a rule matches the request path.
#[derive(Debug, Clone)]
pub enum Pattern {
    /// The path equals the prefix or continues it at a segment boundary.
    Prefix(String),
    Exact(String),
    Regex(Regex),
}

impl Pattern {
    pub fn matches(&self, path: &str) -> bool {
        match self {
            Pattern::Prefix(prefix) => match path.strip_prefix(prefix.as_str()) {
                // "/user" matches "/user" and "/user/…" but not "/users":
                // a prefix means whole path segments, so a new service
                // named like an old one is never routed by accident.
                Some(rest) => rest.is_empty() || prefix.ends_with('/') || rest.starts_with('/'),
                None => false,
            },
            Pattern::Exact(p) => path == p,
            Pattern::Regex(r) => r.is_match(path),
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Prefix(p) => write!(f, "prefix {p:?}"),
            Pattern::Exact(p) => write!(f, "path {p:?}"),
            Pattern::Regex(r) => write!(f, "regex {:?}", r.as_str()),
        }
    }
}

/// Where a matched request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Index into [`Table::pools`].
    Pool(usize),
    Deny,
    /// Files from the `storefront_dir` setting (see `storefront.rs`).
    Static,
}

#[derive(Debug, Clone)]
pub struct Rule {
    /// Label for logs and metrics.
    pub name: String,
    pub pattern: Pattern,
    pub methods: Option<Vec<Method>>,
    pub target: Target,
    pub timeout: Option<Duration>,
    pub max_body: Option<u64>,
}

impl Rule {
    pub fn matches(&self, method: &Method, path: &str) -> bool {
        if let Some(methods) = &self.methods {
            if !methods.contains(method) {
                return false;
            }
        }
        self.pattern.matches(path)
    }
}

/// One upstream as configured: `http://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUrl {
    pub host: String,
    pub port: u16,
}

impl UpstreamUrl {
    /// Accepts `http://host[:port][/]`; anything else (https, a path, user
    /// info, a query) is refused, since the balancer would silently drop it.
    pub fn parse(text: &str) -> Result<UpstreamUrl, String> {
        let uri: http::Uri = text
            .parse()
            .map_err(|e| format!("`{text}` is not a URL: {e}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => {
                return Err(format!(
                    "`{text}`: scheme {other} is not supported (use http://)"
                ))
            }
            None => return Err(format!("`{text}` must start with http://")),
        }
        let authority = uri
            .authority()
            .ok_or_else(|| format!("`{text}` has no host"))?;
        if authority.as_str().contains('@') {
            return Err(format!("`{text}`: user info is not supported"));
        }
        let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("");
        if !(path.is_empty() || path == "/") {
            return Err(format!(
                "`{text}`: an upstream URL cannot have a path (requests keep theirs)"
            ));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if host.is_empty() {
            return Err(format!("`{text}` has no host"));
        }
        Ok(UpstreamUrl {
            host,
            port: authority.port_u16().unwrap_or(80),
        })
    }
}

impl fmt::Display for UpstreamUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "http://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "http://{}:{}", self.host, self.port)
        }
    }
}

#[derive(Debug, Clone)]
pub struct PoolSpec {
    pub name: String,
    pub upstreams: Vec<UpstreamUrl>,
}

/// A validated route table.
#[derive(Debug, Clone)]
pub struct Table {
    pub rules: Vec<Rule>,
    pub pools: Vec<PoolSpec>,
}

impl Table {
    /// Parses and validates TOML text.
    pub fn parse(text: &str) -> Result<Table, TableError> {
        let raw: RawTable = toml::from_str(text).map_err(|e| TableError::Syntax(e.to_string()))?;
        let mut pools = Vec::new();
        for (name, pool) in &raw.pools {
            if pool.upstreams.is_empty() {
                return Err(TableError::Pool {
                    pool: name.clone(),
                    message: "`upstreams` is empty".into(),
                });
            }
            let upstreams = pool
                .upstreams
                .iter()
                .map(|u| UpstreamUrl::parse(u))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|message| TableError::Pool {
                    pool: name.clone(),
                    message,
                })?;
            pools.push(PoolSpec {
                name: name.clone(),
                upstreams,
            });
        }
        if raw.route.is_empty() {
            return Err(TableError::Empty);
        }
        let mut rules = Vec::new();
        for (i, r) in raw.route.into_iter().enumerate() {
            rules.push(compile_rule(i + 1, r, &pools)?);
        }
        Ok(Table { rules, pools })
    }

    /// The first rule that matches, with its index.
    pub fn find(&self, method: &Method, path: &str) -> Option<(usize, &Rule)> {
        self.rules
            .iter()
            .enumerate()
            .find(|(_, r)| r.matches(method, path))
    }

    pub fn pool_index(&self, name: &str) -> Option<usize> {
        self.pools.iter().position(|p| p.name == name)
    }
}

fn compile_rule(index: usize, r: RawRoute, pools: &[PoolSpec]) -> Result<Rule, TableError> {
    let label = r
        .name
        .clone()
        .or_else(|| r.prefix.as_ref().map(|p| format!("prefix {p:?}")))
        .or_else(|| r.path.as_ref().map(|p| format!("path {p:?}")))
        .or_else(|| r.regex.as_ref().map(|p| format!("regex {p:?}")))
        .unwrap_or_else(|| "no pattern".to_string());
    let err = |message: String| TableError::Route {
        index,
        label: label.clone(),
        message,
    };
    let pattern = match (&r.prefix, &r.path, &r.regex) {
        (Some(p), None, None) => {
            if !p.starts_with('/') {
                return Err(err(format!("prefix {p:?} must start with /")));
            }
            Pattern::Prefix(p.clone())
        }
        (None, Some(p), None) => {
            if !p.starts_with('/') {
                return Err(err(format!("path {p:?} must start with /")));
            }
            Pattern::Exact(p.clone())
        }
        (None, None, Some(re)) => {
            Pattern::Regex(Regex::new(re).map_err(|e| err(format!("regex does not compile: {e}")))?)
        }
        (None, None, None) => {
            return Err(err("needs one of `prefix`, `path` or `regex`".to_string()))
        }
        _ => {
            return Err(err(
                "has more than one of `prefix`, `path` and `regex`".to_string()
            ))
        }
    };
    let methods = match &r.methods {
        None => None,
        Some(list) if list.is_empty() => {
            return Err(err(
                "`methods` is empty (leave it out to match every method)".to_string(),
            ))
        }
        Some(list) => Some(
            list.iter()
                .map(|m| {
                    let upper = m.to_ascii_uppercase();
                    Method::from_bytes(upper.as_bytes())
                        .map_err(|_| err(format!("`{m}` is not an HTTP method")))
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    if r.static_files == Some(true) {
        return compile_static(r, pattern, err);
    }
    let denied = r.deny == Some(true) || r.public == Some(false);
    if r.deny == Some(true) && r.public == Some(true) {
        return Err(err(
            "cannot be both `deny = true` and `public = true`".into()
        ));
    }
    let target = match (&r.pool, denied) {
        (_, true) => Target::Deny,
        (Some(name), false) => Target::Pool(
            pools
                .iter()
                .position(|p| &p.name == name)
                .ok_or_else(|| err(format!("pool `{name}` is not defined under [pools]")))?,
        ),
        (None, false) => {
            return Err(err(
                "needs `pool = \"NAME\"` (or `deny = true` to answer 404)".to_string(),
            ))
        }
    };
    let timeout = match &r.timeout {
        None => None,
        Some(t) => {
            let d = humantime::parse_duration(t).map_err(|e| err(format!("timeout {t:?}: {e}")))?;
            if d.is_zero() {
                return Err(err("timeout must be more than 0".into()));
            }
            Some(d)
        }
    };
    let max_body = match &r.max_body {
        None => None,
        Some(v) => Some(parse_size(v).map_err(|m| err(format!("max_body: {m}")))?),
    };
    Ok(Rule {
        name: r.name.unwrap_or_else(|| pattern.to_string()),
        pattern,
        methods,
        target,
        timeout,
        max_body,
    })
}

/// A `static = true` rule: it answers from files itself, so nothing about
/// upstreams applies, and it decides the methods (GET and HEAD; 405 for
/// others on its files).
fn compile_static(
    r: RawRoute,
    pattern: Pattern,
    err: impl Fn(String) -> TableError,
) -> Result<Rule, TableError> {
    let conflicting = [
        ("pool", r.pool.is_some()),
        ("deny", r.deny.is_some()),
        ("public", r.public.is_some()),
        ("methods", r.methods.is_some()),
        ("timeout", r.timeout.is_some()),
        ("max_body", r.max_body.is_some()),
    ];
    if let Some((key, _)) = conflicting.iter().find(|(_, set)| *set) {
        return Err(err(format!(
            "`static = true` serves files itself and cannot have `{key}`"
        )));
    }
    Ok(Rule {
        name: r.name.unwrap_or_else(|| pattern.to_string()),
        pattern,
        methods: None,
        target: Target::Static,
        timeout: None,
        max_body: None,
    })
}

/// A byte count: an integer, or a string such as `"512KiB"`, `"100 MiB"`.
pub fn parse_size(v: &toml::Value) -> Result<u64, String> {
    match v {
        toml::Value::Integer(n) if *n >= 0 => Ok(*n as u64),
        toml::Value::String(s) => parse_size_str(s),
        other => Err(format!("expected a byte count, got {other}")),
    }
}

pub fn parse_size_str(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a byte count"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("unknown unit {other:?} in {s:?}")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target_of(t: &Table, method: Method, path: &str) -> Option<String> {
        t.find(&method, path).map(|(_, r)| match r.target {
            Target::Pool(i) => t.pools[i].name.clone(),
            Target::Deny => "deny".to_string(),
            Target::Static => "static".to_string(),
        })
    }

    #[test]
    fn the_default_table_is_api_md() {
        let t = Table::parse(DEFAULT_TABLE).unwrap();
        let cases = [
            (Method::POST, "/user/", Some("users")),
            (Method::POST, "/user/login", Some("users")),
            (Method::GET, "/user/42", Some("users")),
            (Method::GET, "/user", Some("users")),
            (Method::GET, "/user/42/cart/", Some("cart")),
            (Method::POST, "/user/42/cart/checkout", Some("cart")),
            (Method::GET, "/user/42/cart", Some("cart")),
            (Method::GET, "/user/42/orders/7", Some("cart")),
            (Method::GET, "/user/42/cartoons", Some("users")),
            (Method::GET, "/users", Some("static")),
            (Method::GET, "/users-foo", Some("static")),
            (Method::GET, "/product/1", Some("products")),
            (Method::GET, "/products/", Some("products")),
            (Method::GET, "/productz", Some("static")),
            (Method::POST, "/invoices/abc/pay", Some("payments-mock")),
            (Method::POST, "/log", Some("stats")),
            (Method::GET, "/log", Some("static")),
            (Method::POST, "/log/summary", Some("static")),
            (Method::GET, "/log/summary", Some("static")),
            (Method::POST, "/send_email/", Some("static")),
            (Method::POST, "/internal/payments/webhook", Some("deny")),
            (Method::GET, "/internal/x", Some("deny")),
            (Method::GET, "/", Some("static")),
            (Method::GET, "/assets/app.js", Some("static")),
            (Method::GET, "/shop/cart", Some("static")),
        ];
        for (m, p, want) in cases {
            assert_eq!(target_of(&t, m.clone(), p).as_deref(), want, "{m} {p}");
        }
    }

    #[test]
    fn bad_tables_name_the_rule() {
        let base = "[pools.a]\nupstreams = [\"http://127.0.0.1:1\"]\n";
        let cases = [
            ("[[route]]\nprefix = \"/x\"\npool = \"b\"\n", "route #1"),
            (
                "[[route]]\nregex = \"(\"\npool = \"a\"\n",
                "regex does not compile",
            ),
            ("[[route]]\npool = \"a\"\n", "needs one of"),
            (
                "[[route]]\nprefix = \"/x\"\npath = \"/y\"\npool = \"a\"\n",
                "more than one",
            ),
            (
                "[[route]]\nprefix = \"/x\"\npool = \"a\"\nmethods = [\"G T\"]\n",
                "not an HTTP method",
            ),
            (
                "[[route]]\nprefix = \"/x\"\npool = \"a\"\ntimeout = \"soon\"\n",
                "timeout",
            ),
            (
                "[[route]]\nprefix = \"/x\"\npool = \"a\"\nmax_body = \"12 parsecs\"\n",
                "max_body",
            ),
            (
                "[[route]]\nprefix = \"/x\"\npool = \"a\"\ncolour = 1\n",
                "unknown field",
            ),
            (
                "[[route]]\nprefix = \"x\"\npool = \"a\"\n",
                "must start with /",
            ),
            (
                "[[route]]\nprefix = \"/\"\nstatic = true\npool = \"a\"\n",
                "cannot have `pool`",
            ),
            (
                "[[route]]\nprefix = \"/\"\nstatic = true\nmethods = [\"GET\"]\n",
                "cannot have `methods`",
            ),
        ];
        for (rules, want) in cases {
            let err = Table::parse(&format!("{rules}{base}"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{rules}: {err}");
        }
        let err = Table::parse(
            "[[route]]\nprefix=\"/\"\npool=\"a\"\n[pools.a]\nupstreams=[\"https://x\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("pool `a`") && err.contains("https"), "{err}");
        assert!(matches!(Table::parse(base), Err(TableError::Empty)));
    }

    #[test]
    fn sizes_and_urls_parse() {
        assert_eq!(parse_size_str("100 MiB").unwrap(), 100 << 20);
        assert_eq!(parse_size_str("512").unwrap(), 512);
        assert!(parse_size_str("-1").is_err());
        let u = UpstreamUrl::parse("http://cart:8003").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("cart", 8003));
        assert_eq!(UpstreamUrl::parse("http://[::1]:9/").unwrap().host, "::1");
        assert!(UpstreamUrl::parse("http://a:1/base").is_err());
        assert!(UpstreamUrl::parse("cart:8003").is_err());
    }
}

//! Method + path-segment routing to named handlers.
//!
//! Patterns are written as in docs/api.md (`/user/{id}`); a trailing slash is not
//! significant. When several patterns match a path, the one with more literal
//! segments wins (`/user/login` over `/user/{id}`), and if it has no handler
//! for the method the answer is `405` with `Allow`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Response};
use http_body_util::Full;

use crate::error::ApiError;
use crate::request::Req;

pub type HandlerResult = Result<Response<Full<Bytes>>, ApiError>;
pub type HandlerFuture = Pin<Box<dyn Future<Output = HandlerResult> + Send>>;
type Handler<S> = Box<dyn Fn(Arc<S>, Req) -> HandlerFuture + Send + Sync>;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(&'static str),
    Param(&'static str),
}

struct Route<S> {
    method: Method,
    pattern: &'static str,
    segments: Vec<Segment>,
    handler: Handler<S>,
}

/// The outcome of matching one request.
pub enum Match<'a, S> {
    Found {
        /// The pattern, used as the metrics label so ids do not explode cardinality.
        pattern: &'static str,
        handler: &'a (dyn Fn(Arc<S>, Req) -> HandlerFuture + Send + Sync),
        params: HashMap<&'static str, String>,
    },
    MethodNotAllowed(Vec<Method>),
    NotFound,
}

pub struct Router<S> {
    routes: Vec<Route<S>>,
}

impl<S> Default for Router<S> {
    fn default() -> Self {
        Router { routes: Vec::new() }
    }
}

fn split(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

impl<S: Send + Sync + 'static> Router<S> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `method pattern → handler`. Panics on a malformed pattern: that
    /// is a programming error caught by the first test that builds the app.
    pub fn route<F, Fut>(mut self, method: Method, pattern: &'static str, handler: F) -> Self
    where
        F: Fn(Arc<S>, Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        let segments = split(pattern)
            .map(
                |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) => Segment::Param(name),
                    None => {
                        assert!(!s.contains(['{', '}']), "bad route pattern {pattern}");
                        Segment::Literal(s)
                    }
                },
            )
            .collect();
        self.routes.push(Route {
            method,
            pattern,
            segments,
            handler: Box::new(move |state, req| Box::pin(handler(state, req))),
        });
        self
    }

    pub fn get<F, Fut>(self, pattern: &'static str, handler: F) -> Self
    where
        F: Fn(Arc<S>, Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.route(Method::GET, pattern, handler)
    }

    pub fn post<F, Fut>(self, pattern: &'static str, handler: F) -> Self
    where
        F: Fn(Arc<S>, Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.route(Method::POST, pattern, handler)
    }

    pub fn put<F, Fut>(self, pattern: &'static str, handler: F) -> Self
    where
        F: Fn(Arc<S>, Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.route(Method::PUT, pattern, handler)
    }

    pub fn delete<F, Fut>(self, pattern: &'static str, handler: F) -> Self
    where
        F: Fn(Arc<S>, Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.route(Method::DELETE, pattern, handler)
    }

    /// Every `(method, pattern)` registered, in order: what the e2e tests
    /// hold against the OpenAPI documents, so no route goes undocumented.
    pub fn routes(&self) -> impl Iterator<Item = (&Method, &'static str)> {
        self.routes.iter().map(|r| (&r.method, r.pattern))
    }

    /// Finds the handler for `method path`.
    pub fn find(&self, method: &Method, path: &str) -> Match<'_, S> {
        let parts: Vec<&str> = split(path).collect();
        let mut best: Option<(usize, Vec<&Route<S>>)> = None;
        for route in &self.routes {
            if !matches(&route.segments, &parts) {
                continue;
            }
            let literals = route
                .segments
                .iter()
                .filter(|s| matches!(s, Segment::Literal(_)))
                .count();
            match &mut best {
                Some((n, group)) if *n == literals => group.push(route),
                Some((n, _)) if *n > literals => {}
                _ => best = Some((literals, vec![route])),
            }
        }
        let Some((_, group)) = best else {
            return Match::NotFound;
        };
        // HEAD is served by the GET handler; hyper drops the body.
        let wanted = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        match group.iter().find(|r| r.method == *wanted) {
            Some(route) => {
                let mut params = HashMap::new();
                for (seg, part) in route.segments.iter().zip(&parts) {
                    if let Segment::Param(name) = seg {
                        let decoded =
                            percent_encoding::percent_decode_str(part).decode_utf8_lossy();
                        params.insert(*name, decoded.into_owned());
                    }
                }
                Match::Found {
                    pattern: route.pattern,
                    handler: route.handler.as_ref(),
                    params,
                }
            }
            None => {
                let mut allowed: Vec<Method> = group.iter().map(|r| r.method.clone()).collect();
                if allowed.contains(&Method::GET) {
                    allowed.push(Method::HEAD);
                }
                allowed.dedup();
                Match::MethodNotAllowed(allowed)
            }
        }
    }
}

fn matches(segments: &[Segment], parts: &[&str]) -> bool {
    segments.len() == parts.len()
        && segments.iter().zip(parts).all(|(seg, part)| match seg {
            Segment::Literal(l) => l == part,
            Segment::Param(_) => true,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::no_content;

    fn router() -> Router<()> {
        async fn ok(_: Arc<()>, _: Req) -> HandlerResult {
            Ok(no_content())
        }
        Router::new()
            .post("/user/", ok)
            .post("/user/login", ok)
            .get("/user/{id}", ok)
            .put("/user/{id}", ok)
            .get("/user/{uid}/cart/{id}", ok)
    }

    fn found(m: Match<'_, ()>) -> (&'static str, HashMap<&'static str, String>) {
        match m {
            Match::Found {
                pattern, params, ..
            } => (pattern, params),
            Match::MethodNotAllowed(a) => panic!("405 {a:?}"),
            Match::NotFound => panic!("404"),
        }
    }

    #[test]
    fn trailing_slash_is_not_significant() {
        let r = router();
        assert_eq!(found(r.find(&Method::POST, "/user/")).0, "/user/");
        assert_eq!(found(r.find(&Method::POST, "/user")).0, "/user/");
    }

    #[test]
    fn literals_beat_params() {
        let r = router();
        assert_eq!(found(r.find(&Method::POST, "/user/login")).0, "/user/login");
        // GET /user/login is a known path with the wrong method.
        assert!(
            matches!(r.find(&Method::GET, "/user/login"), Match::MethodNotAllowed(m) if m == vec![Method::POST])
        );
    }

    #[test]
    fn params_are_extracted_and_decoded() {
        let r = router();
        let (_, p) = found(r.find(&Method::GET, "/user/a%20b/cart/7"));
        assert_eq!(p["uid"], "a b");
        assert_eq!(p["id"], "7");
    }

    #[test]
    fn wrong_method_lists_allowed_ones_and_head_follows_get() {
        let r = router();
        match r.find(&Method::DELETE, "/user/42") {
            Match::MethodNotAllowed(m) => {
                assert_eq!(m, vec![Method::GET, Method::PUT, Method::HEAD])
            }
            _ => panic!("expected 405"),
        }
        assert_eq!(found(r.find(&Method::HEAD, "/user/42")).0, "/user/{id}");
    }

    #[test]
    fn unknown_paths_are_not_found() {
        let r = router();
        assert!(matches!(r.find(&Method::GET, "/nope"), Match::NotFound));
        assert!(matches!(r.find(&Method::GET, "/user/1/2"), Match::NotFound));
    }

    #[test]
    fn routes_lists_every_registration_in_order() {
        let listed: Vec<(Method, &str)> = router().routes().map(|(m, p)| (m.clone(), p)).collect();
        assert_eq!(
            listed,
            vec![
                (Method::POST, "/user/"),
                (Method::POST, "/user/login"),
                (Method::GET, "/user/{id}"),
                (Method::PUT, "/user/{id}"),
                (Method::GET, "/user/{uid}/cart/{id}"),
            ]
        );
    }
}

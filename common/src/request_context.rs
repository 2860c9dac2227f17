//! What the current task knows about the request it serves — id, method,
//! route pattern, user, error kind — in a task-local, so every log line
//! emitted while handling it carries them as fields (see `logging`), and
//! outbound calls and outbox rows can pass the id on.

use std::sync::{Arc, OnceLock};

use http::Method;

pub struct RequestContext {
    pub request_id: Arc<str>,
    pub method: Method,
    route: OnceLock<&'static str>,
    user_id: OnceLock<String>,
    error_kind: OnceLock<String>,
}

tokio::task_local! {
    static CURRENT: Arc<RequestContext>;
}

impl RequestContext {
    pub fn new(request_id: Arc<str>, method: Method) -> Arc<Self> {
        Arc::new(RequestContext {
            request_id,
            method,
            route: OnceLock::new(),
            user_id: OnceLock::new(),
            error_kind: OnceLock::new(),
        })
    }

    /// The route pattern (`/orders/{id}`), once routing found it.
    pub fn route(&self) -> Option<&'static str> {
        self.route.get().copied()
    }

    pub fn user_id(&self) -> Option<&str> {
        self.user_id.get().map(String::as_str)
    }

    /// The problem code of the error the request ended with, if any.
    pub fn error_kind(&self) -> Option<&str> {
        self.error_kind.get().map(String::as_str)
    }

    pub fn set_route(&self, route: &'static str) {
        let _ = self.route.set(route);
    }
}

/// Runs `fut` with `ctx` as the current request. A plain function, not an
/// `async fn`: one future layer fewer to build and move per request.
pub fn scope<F: std::future::Future>(
    ctx: Arc<RequestContext>,
    fut: F,
) -> impl std::future::Future<Output = F::Output> {
    CURRENT.scope(ctx, fut)
}

/// The current request's context, for a task spawned on its behalf.
pub fn current() -> Option<Arc<RequestContext>> {
    CURRENT.try_with(Arc::clone).ok()
}

/// Reads the current request's context without cloning it.
pub fn with<R>(f: impl FnOnce(&RequestContext) -> R) -> Option<R> {
    CURRENT.try_with(|c| f(c)).ok()
}

/// Notes the authenticated user (the first one set wins).
pub fn set_user_id(user_id: &str) {
    with(|c| {
        c.user_id.get_or_init(|| user_id.to_string());
    });
}

/// Notes the error the request answers with (the first one set wins).
pub fn set_error_kind(kind: &str) {
    with(|c| {
        c.error_kind.get_or_init(|| kind.to_string());
    });
}

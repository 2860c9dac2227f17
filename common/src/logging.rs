//! Logging through `log` + `env_logger`: `RUST_LOG` picks levels (default
//! `info`), `LOG_FORMAT=json` prints one JSON object per line for log
//! shippers. Nothing here ever formats a secret: callers log ids, not values.
//!
//! A JSON line carries `ts`, `level`, `target`, `msg`, `service`, the
//! key-values of the `log` call (`log::info!(status = 200; "…")`), and —
//! when emitted while a request is handled — that request's `request_id`,
//! `method`, `route`, `user_id` and `error.kind` (from
//! [`crate::request_context`]) and `trace_id`/`span_id` (when tracing is on).

use std::io::Write;
use std::sync::OnceLock;

use log::kv::{Key, Value, VisitSource};
use serde_json::{Map, Value as Json};

static SERVICE: OnceLock<&'static str> = OnceLock::new();

/// Initializes the global logger once for `service`; later calls (tests)
/// are no-ops.
pub fn init(service: &'static str) {
    let _ = SERVICE.set(service);
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if json {
        builder.format(|buf, record| writeln!(buf, "{}", Json::Object(json_fields(record))));
    } else {
        // The calls that attach fields (the access lines) also say them in
        // their message; env_logger appending them again printed each twice
        // (`… peer=127.0.0.1:5 status=200 duration_ms=0.12906199999999998
        // peer=127.0.0.1:5`). Text is for people; the fields are for JSON.
        builder.format_key_values(|_, _| Ok(()));
    }
    let _ = builder.try_init();
}

/// The fields of one JSON log line.
pub fn json_fields(record: &log::Record) -> Map<String, Json> {
    let mut m = Map::new();
    m.insert(
        "ts".into(),
        crate::time::rfc3339(crate::time::now_ms()).into(),
    );
    m.insert("level".into(), record.level().as_str().into());
    m.insert("target".into(), record.target().into());
    m.insert("msg".into(), record.args().to_string().into());
    if let Some(service) = SERVICE.get() {
        m.insert("service".into(), (*service).into());
    }
    crate::request_context::with(|c| {
        m.insert("request_id".into(), (*c.request_id).into());
        m.insert("method".into(), c.method.as_str().into());
        if let Some(route) = c.route() {
            m.insert("route".into(), route.into());
        }
        if let Some(user) = c.user_id() {
            m.insert("user_id".into(), user.into());
        }
        if let Some(kind) = c.error_kind() {
            m.insert("error.kind".into(), kind.into());
        }
    });
    if let Some((trace_id, span_id)) = crate::telemetry::current_ids() {
        m.insert("trace_id".into(), trace_id.into());
        m.insert("span_id".into(), span_id.into());
    }
    // The call's own key-values come last: they know best.
    let _ = record.key_values().visit(&mut Fields(&mut m));
    m
}

struct Fields<'a>(&'a mut Map<String, Json>);

impl<'kvs> VisitSource<'kvs> for Fields<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        let v = if let Some(n) = value.to_u64() {
            Json::from(n)
        } else if let Some(n) = value.to_i64() {
            Json::from(n)
        } else if let Some(f) = value.to_f64() {
            Json::from(f)
        } else if let Some(b) = value.to_bool() {
            Json::from(b)
        } else {
            let s = value.to_string();
            // An empty value (a trace id with tracing off) is no field.
            if s.is_empty() {
                return Ok(());
            }
            Json::from(s)
        };
        self.0.insert(key.as_str().to_string(), v);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request_context::{self, RequestContext};

    #[tokio::test]
    async fn a_line_in_a_request_carries_its_fields_and_the_call_s_own() {
        let ctx = RequestContext::new("rid-1".into(), http::Method::POST);
        ctx.set_route("/orders/{id}");
        let fields = request_context::scope(ctx, async {
            request_context::set_user_id("u-7");
            request_context::set_error_kind("not_found");
            let kvs: &[(&str, u64)] = &[("status", 404)];
            let args = format_args!("done");
            let record = log::Record::builder()
                .args(args)
                .level(log::Level::Info)
                .target("access")
                .key_values(&kvs)
                .build();
            json_fields(&record)
        })
        .await;
        assert_eq!(fields["request_id"], "rid-1");
        assert_eq!(fields["method"], "POST");
        assert_eq!(fields["route"], "/orders/{id}");
        assert_eq!(fields["user_id"], "u-7");
        assert_eq!(fields["error.kind"], "not_found");
        assert_eq!(fields["status"], 404);
        assert_eq!(fields["msg"], "done");
        assert!(!fields.contains_key("trace_id"), "tracing is off");
    }
}

//! Logging through `log` + `env_logger`: `RUST_LOG` picks levels (default
//! `info`), `LOG_FORMAT=json` prints one JSON object per line for log
//! shippers. Nothing here ever formats a secret: callers log ids, not values.

use std::io::Write;

/// Initializes the global logger once; later calls (tests) are no-ops.
pub fn init() {
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if json {
        builder.format(|buf, record| {
            let line = serde_json::json!({
                "ts": crate::time::rfc3339(crate::time::now_ms()),
                "level": record.level().as_str(),
                "target": record.target(),
                "msg": record.args().to_string(),
            });
            writeln!(buf, "{line}")
        });
    }
    let _ = builder.try_init();
}

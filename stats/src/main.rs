//! `stats`: serve the analytics API, or `stats healthcheck`. All logic
//! lives in the library.

use std::process::ExitCode;

use common::cli::{bind, fail, healthcheck};
use stats::config::{binary, StatsConfig};
use stats::Stats;

#[tokio::main]
async fn main() -> ExitCode {
    let binary = binary();
    let (matches, raw) = match binary.start(binary.command()) {
        Ok(pair) => pair,
        Err(code) => return code,
    };
    let config = match StatsConfig::from_config(&raw) {
        Ok(c) => c,
        Err(e) => return fail(binary.name, "configuration error", e),
    };
    if matches.subcommand_matches("healthcheck").is_some() {
        return healthcheck(config.base.listen).await;
    }
    let service = match Stats::start(config).await {
        Ok(s) => s,
        Err(e) => return fail(binary.name, "cannot start", e),
    };
    let base = &service.state.config.base;
    let listener = match bind(base.listen).await {
        Ok(l) => l,
        Err(e) => return fail(binary.name, "cannot start", e),
    };
    log::info!(
        "stats listening on http://{} (database {}, data in {})",
        listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default(),
        common::db::redact(&base.database_url),
        base.data_dir.display()
    );
    service.serve(listener, common::shutdown::signal()).await;
    log::info!("stats stopped");
    ExitCode::SUCCESS
}

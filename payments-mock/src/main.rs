//! `payments-mock`: serve the mock payment provider, or
//! `payments-mock healthcheck`. All logic lives in the library.

use std::process::ExitCode;

use common::cli::{bind, fail, healthcheck};
use payments_mock::config::{binary, PaymentsConfig};
use payments_mock::Payments;

#[tokio::main]
async fn main() -> ExitCode {
    let binary = binary();
    let (matches, raw) = match binary.start(binary.command()) {
        Ok(pair) => pair,
        Err(code) => return code,
    };
    let config = match PaymentsConfig::from_config(&raw) {
        Ok(c) => c,
        Err(e) => return fail(binary.name, "configuration error", e),
    };
    if matches.subcommand_matches("healthcheck").is_some() {
        return healthcheck(config.base.listen).await;
    }
    let service = match Payments::start(config).await {
        Ok(s) => s,
        Err(e) => return fail(binary.name, "cannot start", e),
    };
    let config = &service.state.config;
    let listener = match bind(config.base.listen).await {
        Ok(l) => l,
        Err(e) => return fail(binary.name, "cannot start", e),
    };
    log::info!(
        "payments-mock listening on http://{} (database {}, data in {}, webhooks to {})",
        listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default(),
        common::db::redact(&config.base.database_url),
        config.base.data_dir.display(),
        config.webhook_url
    );
    if !config.realism.is_off() {
        log::warn!(
            "realism knobs on: {}-{} ms added latency, {} of /invoices requests fail with 503",
            config.realism.latency_ms.0,
            config.realism.latency_ms.1,
            config.realism.failure_rate
        );
    }
    service.serve(listener, common::shutdown::signal()).await;
    log::info!("payments-mock stopped");
    ExitCode::SUCCESS
}

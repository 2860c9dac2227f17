//! `cart`: serve the cart API, or `cart healthcheck`. All logic lives in
//! the library.

use std::process::ExitCode;

use cart::config::{binary, CartConfig};
use cart::Cart;
use common::cli::{bind, fail, healthcheck};

#[tokio::main]
async fn main() -> ExitCode {
    let binary = binary();
    let (matches, raw) = match binary.start(binary.command()) {
        Ok(pair) => pair,
        Err(code) => return code,
    };
    let config = match CartConfig::from_config(&raw) {
        Ok(c) => c,
        Err(e) => return fail(binary.name, "configuration error", e),
    };
    if matches.subcommand_matches("healthcheck").is_some() {
        return healthcheck(config.base.listen).await;
    }
    let service = match Cart::start(config).await {
        Ok(s) => s,
        Err(e) => return fail(binary.name, "cannot start", e),
    };
    let config = &service.state.config;
    let listener = match bind(config.base.listen).await {
        Ok(l) => l,
        Err(e) => return fail(binary.name, "cannot start", e),
    };
    log::info!(
        "cart listening on http://{} (database {}, data in {}; products at {}, payments at {})",
        listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default(),
        common::db::redact(&config.base.database_url),
        config.base.data_dir.display(),
        config.products_url,
        config.payments_url,
    );
    service.serve(listener, common::shutdown::signal()).await;
    log::info!("cart stopped");
    ExitCode::SUCCESS
}

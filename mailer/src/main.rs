//! `mailer`: serve the mail queue, or `mailer healthcheck`. All logic lives
//! in the library.

use std::process::ExitCode;

use common::cli::{bind, fail, healthcheck};
use mailer::config::{binary, MailerConfig, TransportConfig};
use mailer::Mailer;

#[tokio::main]
async fn main() -> ExitCode {
    let binary = binary();
    let (matches, raw) = match binary.start(binary.command()) {
        Ok(pair) => pair,
        Err(code) => return code,
    };
    let config = match MailerConfig::from_config(&raw) {
        Ok(c) => c,
        Err(e) => return fail(binary.name, "configuration error", e),
    };
    if matches.subcommand_matches("healthcheck").is_some() {
        return healthcheck(config.base.listen).await;
    }
    let service = match Mailer::start(config).await {
        Ok(s) => s,
        Err(e) => return fail(binary.name, "cannot start", e),
    };
    let config = &service.state.config;
    let listener = match bind(config.base.listen).await {
        Ok(l) => l,
        Err(e) => return fail(binary.name, "cannot start", e),
    };
    let transport = match &config.transport {
        TransportConfig::Smtp(url) => format!("SMTP {url:?}"),
        TransportConfig::Files(dir) => format!(".eml files in {}", dir.display()),
    };
    log::info!(
        "mailer listening on http://{} (database {}, mail to {transport})",
        listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default(),
        common::db::redact(&config.base.database_url),
    );
    service.serve(listener, common::shutdown::signal()).await;
    log::info!("mailer stopped");
    ExitCode::SUCCESS
}

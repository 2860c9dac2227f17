//! `users`: serve the accounts API, or `users create-admin`, or
//! `users healthcheck`. All logic lives in the library.

use std::io::BufRead;
use std::process::ExitCode;

use clap::{Arg, Command};
use common::cli::{bind, fail, healthcheck};
use users::config::{binary, UsersConfig};
use users::Users;

#[tokio::main]
async fn main() -> ExitCode {
    let binary = binary();
    let cmd = binary.command().subcommand(
        Command::new("create-admin")
            .about("Create an admin account, or make an existing account an admin with a new password. The password is read from SHOP_ADMIN_PASSWORD or the first line of standard input.")
            .arg(Arg::new("email").long("email").required(true).value_name("EMAIL")),
    );
    let (matches, raw) = match binary.start(cmd) {
        Ok(pair) => pair,
        Err(code) => return code,
    };
    let config = match UsersConfig::from_config(&raw) {
        Ok(c) => c,
        Err(e) => return fail(binary.name, "configuration error", e),
    };
    if matches.subcommand_matches("healthcheck").is_some() {
        return healthcheck(config.base.listen).await;
    }
    let create_admin = matches
        .subcommand_matches("create-admin")
        .map(|m| m.get_one::<String>("email").cloned().unwrap_or_default());
    let service = match Users::start(config).await {
        Ok(s) => s,
        Err(e) => return fail(binary.name, "cannot start", e),
    };
    if let Some(email) = create_admin {
        let password = match std::env::var("SHOP_ADMIN_PASSWORD")
            .ok()
            .filter(|p| !p.is_empty())
        {
            Some(p) => p,
            None => {
                eprintln!("password for {email}:");
                let mut line = String::new();
                let _ = std::io::stdin().lock().read_line(&mut line);
                line.trim_end_matches(['\r', '\n']).to_string()
            }
        };
        return match users::ensure_admin(&service.state, &email, &password, true).await {
            Ok(outcome) => {
                println!("admin {email}: {outcome}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(binary.name, "create-admin failed", e),
        };
    }
    let base = &service.state.config.base;
    let listener = match bind(base.listen).await {
        Ok(l) => l,
        Err(e) => return fail(binary.name, "cannot start", e),
    };
    log::info!(
        "users listening on http://{} (database {}, data in {})",
        listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default(),
        common::db::redact(&base.database_url),
        base.data_dir.display()
    );
    service.serve(listener, common::shutdown::signal()).await;
    log::info!("users stopped");
    ExitCode::SUCCESS
}

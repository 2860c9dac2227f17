//! `users`: serve the accounts API, or `users create-admin`, or
//! `users healthcheck`. All logic lives in the library; `common::cli`
//! drives the start-up.

use std::io::BufRead;
use std::process::ExitCode;

use clap::{Arg, Command};
use common::cli::{fail, serve, start, Started};
use users::config::binary;
use users::Users;

#[tokio::main]
async fn main() -> ExitCode {
    let binary = binary();
    let cmd = binary.command().subcommand(
        Command::new("create-admin")
            .about("Create an admin account, or make an existing account an admin with a new password. The password is read from SHOP_ADMIN_PASSWORD or the first line of standard input.")
            .arg(Arg::new("email").long("email").required(true).value_name("EMAIL")),
    );
    let (matches, service) = match start::<Users>(&binary, cmd).await {
        Started::Service(matches, service) => (matches, service),
        Started::Exit(code) => return code,
    };
    let Some(admin) = matches.subcommand_matches("create-admin") else {
        return serve(&binary, service).await;
    };
    let email = admin
        .get_one::<String>("email")
        .cloned()
        .unwrap_or_default();
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
    let outcome = users::ensure_admin(&service.state, &email, &password, true).await;
    // A revocation the change queued is left to the running service unless
    // this process's deliverer has it in hand; then it finishes first.
    service.stop().await;
    match outcome {
        Ok(outcome) => {
            println!("admin {email}: {outcome}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(binary.name, "create-admin failed", e),
    }
}

//! `users`: serve the accounts API, or `users create-admin`, or
//! `users healthcheck`. All logic lives in the library; `common::cli`
//! drives the start-up.

use std::io::BufRead;
use std::process::ExitCode;

use clap::{Arg, ArgGroup, Command};
use common::cli::{fail, serve, start_with, Started};
use users::admin::{self, IfAdmin};
use users::config::binary;
use users::State;

#[tokio::main]
async fn main() -> ExitCode {
    let binary = binary();
    let cmd = binary.command().subcommand(
        Command::new("create-admin")
            .about("Create an admin account, or reset an admin's password (--email EMAIL; the password is read from SHOP_ADMIN_PASSWORD or the first line of standard input); or make an existing account an admin, keeping its password (--promote EMAIL)")
            .arg(Arg::new("email").long("email").value_name("EMAIL").help(
                "Create this admin, or set the password of the admin with this email; refused when a non-admin account has it",
            ))
            .arg(Arg::new("promote").long("promote").value_name("EMAIL").help(
                "Make the existing account with this email an admin (its owner keeps their password)",
            ))
            .group(ArgGroup::new("account").args(["email", "promote"]).required(true)),
    );
    // The operator's create-admin acts on the admin account itself; the
    // bootstrap from admin_email must not act first (with admin_strict,
    // its refusal would stop the very command that resolves it).
    let (matches, host) = match start_with::<State>(&binary, cmd, |m, config| {
        if m.subcommand_matches("create-admin").is_some() {
            config.admin = None;
        }
    })
    .await
    {
        Started::Service(matches, host) => (matches, host),
        Started::Exit(code) => return code,
    };
    let Some(args) = matches.subcommand_matches("create-admin") else {
        return serve(&binary, host).await;
    };
    let (email, result) = match args.get_one::<String>("promote") {
        Some(email) => (email, admin::promote(&host.state, email).await),
        None => {
            let email = args
                .get_one::<String>("email")
                .expect("clap requires --email or --promote");
            let password = password(email);
            let result = admin::create(&host.state, email, &password, IfAdmin::ResetPassword).await;
            (email, result)
        }
    };
    // A revocation the change queued is left to the running service unless
    // this process's deliverer has it in hand; then it finishes first.
    host.stop().await;
    match result {
        Ok(outcome) => {
            println!("admin {email}: {outcome}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(binary.name, "create-admin failed", e),
    }
}

/// SHOP_ADMIN_PASSWORD, or the first line of standard input.
fn password(email: &str) -> String {
    match std::env::var("SHOP_ADMIN_PASSWORD")
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
    }
}

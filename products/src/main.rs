//! `products`: serve the catalog API, or `products seed` to load the demo
//! catalog, or `products healthcheck`. All logic lives in the library;
//! `common::cli` drives the start-up.

use std::process::ExitCode;

use clap::Command;
use common::cli::{fail, serve, start, Started};
use products::config::binary;
use products::State;

#[tokio::main]
async fn main() -> ExitCode {
    let binary = binary();
    let cmd = binary.command().subcommand(Command::new("seed").about(
        "Load the bundled demo catalog; products loaded before are left alone, so running it twice adds nothing",
    ));
    let (matches, host) = match start::<State>(&binary, cmd).await {
        Started::Service(matches, host) => (matches, host),
        Started::Exit(code) => return code,
    };
    if matches.subcommand_matches("seed").is_none() {
        return serve(&binary, host).await;
    }
    let result = products::seed(&host.state.store).await;
    host.stop().await;
    match result {
        Ok(n) => {
            println!("demo catalog: {n} products added");
            ExitCode::SUCCESS
        }
        Err(e) => fail(binary.name, "seed failed", e),
    }
}

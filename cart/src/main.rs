//! `cart`: serve the cart API, or `cart healthcheck`. All logic lives
//! in the library; `common::cli` drives the start-up.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    common::cli::run::<cart::State>(cart::config::binary()).await
}

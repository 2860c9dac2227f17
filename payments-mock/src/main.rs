//! `payments-mock`: serve the mock payment provider, or `payments-mock healthcheck`. All logic lives
//! in the library; `common::cli` drives the start-up.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    common::cli::run::<payments_mock::State>(payments_mock::config::binary()).await
}

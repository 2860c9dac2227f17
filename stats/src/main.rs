//! `stats`: serve the analytics API, or `stats healthcheck`. All logic lives
//! in the library; `common::cli` drives the start-up.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    common::cli::run::<stats::State>(stats::config::binary()).await
}

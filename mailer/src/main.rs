//! `mailer`: serve the mail queue, or `mailer healthcheck`. All logic lives
//! in the library; `common::cli` drives the start-up.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    common::cli::run::<mailer::State>(mailer::config::binary()).await
}

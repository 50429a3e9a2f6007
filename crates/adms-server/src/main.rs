//! `adms-bridge`: the command line, whose commands live in `cli/`. Errors are reported with
//! `anyhow` in the binary and nowhere else, as one line on stderr (`error: what: cause: cause`),
//! never with a backtrace, whatever `RUST_BACKTRACE` says.

mod cli;

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    match cli::run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // `{:#}` is the chain of causes on one line; `{:?}` would add the backtrace.
            let line = format!("{error:#}").replace('\n', " ");
            eprintln!("error: {line}");
            ExitCode::FAILURE
        }
    }
}

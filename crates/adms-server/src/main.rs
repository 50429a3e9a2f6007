//! `adms-bridge`: the command line, whose commands live in `cli/`. Errors are reported with
//! `anyhow` in the binary and nowhere else, as one line on stderr (`error: what: cause: cause`),
//! never with a backtrace, whatever `RUST_BACKTRACE` says.

mod cli;

use std::process::ExitCode;

/// mimalloc instead of glibc's allocator: every device request allocates and frees its
/// buffers, headers and rows on the runtime's threads, where glibc's malloc and free were a
/// fifth of their time with 1,000 devices uploading (BENCHMARKS.md, session 23).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    match cli::run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", one_line(&error));
            ExitCode::FAILURE
        }
    }
}

/// The chain of causes on one line, each said once: many errors print their source in their own
/// message too (`database error: <the sqlx error>`), which `{:#}` would repeat. (`{:?}` would add
/// the backtrace.)
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string().replace('\n', " ");
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("database error: {0}")]
    struct Wrapping(#[source] std::io::Error);

    #[test]
    fn each_cause_is_said_once() {
        let inner = std::io::Error::other("disk full");
        let error = anyhow::Error::new(Wrapping(inner)).context("starting adms-bridge");
        assert_eq!(format!("{error:#}"), "starting adms-bridge: database error: disk full: disk full");
        assert_eq!(super::one_line(&error), "starting adms-bridge: database error: disk full");
    }
}

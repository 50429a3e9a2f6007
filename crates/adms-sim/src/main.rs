//! `adms-sim`: plays ZKTeco terminals against an adms-bridge server.
//!
//! `adms-sim replay PATH… --target URL [--user U --password P]` plays session files (or every
//! `*.session` under a folder) one after another and prints, per session, OK with its step
//! counts or the failure; the exit code is 1 when any session failed or did not parse.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use adms_sim::replay::{Credentials, Player, Report};
use adms_sim::session::parse_script;
use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "adms-sim", version, about = "Plays ZKTeco terminals against an adms-bridge server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Plays session scripts (fixtures/README.md) against a running server and checks every
    /// answer. `rows` and `option` steps read the server's database and are skipped (and
    /// listed); each session expects the server state it was written for (the fixture test
    /// starts a fresh server per session, with the session's `env` settings).
    Replay(ReplayArgs),
}

#[derive(Debug, clap::Args)]
struct ReplayArgs {
    /// Session files, or folders whose `*.session` files (recursively, in name order) are played.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// The server, `http://HOST:PORT`.
    #[arg(long, env = "ADMS_SIM_TARGET")]
    target: String,
    /// API user for the `api …` steps (skipped without one).
    #[arg(long, env = "ADMS_SIM_USER", requires = "password")]
    user: Option<String>,
    /// Password of `--user`.
    #[arg(long, env = "ADMS_SIM_PASSWORD", requires = "user", hide_env_values = true)]
    password: Option<String>,
    /// Folder of the `@FILE` payloads; by default `payloads/` beside each session's folder
    /// (`fixtures/sessions/x.session` reads `fixtures/payloads/`).
    #[arg(long)]
    payloads: Option<PathBuf>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Replay(args) => replay(args).await,
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("adms-sim: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Plays every session; `Ok(false)` when one failed.
async fn replay(args: ReplayArgs) -> anyhow::Result<bool> {
    let mut files = Vec::new();
    for path in &args.paths {
        collect_sessions(path, &mut files).with_context(|| format!("reading {}", path.display()))?;
    }
    if files.is_empty() {
        bail!("no *.session files in {:?}", args.paths);
    }
    let mut player = Player::new(&args.target)?;
    if let (Some(username), Some(password)) = (args.user, args.password) {
        player = player.with_credentials(Credentials { username, password });
    }
    let mut failed = 0;
    for file in &files {
        let name = file.display().to_string();
        let text = std::fs::read_to_string(file).with_context(|| format!("reading {name}"))?;
        let payloads = match &args.payloads {
            Some(dir) => dir.clone(),
            None => file.parent().and_then(Path::parent).unwrap_or(Path::new(".")).join("payloads"),
        };
        let script = match parse_script(&name, &text, &payloads) {
            Ok(script) => script,
            Err(errors) => {
                println!("{name}: INVALID\n{errors}");
                failed += 1;
                continue;
            }
        };
        for (key, value) in &script.env {
            println!("{name}: note: written for a server with {key}={value}");
        }
        let report = player.play(&script).await;
        print_report(&report);
        failed += usize::from(!report.passed());
    }
    println!("{} of {} sessions passed", files.len() - failed, files.len());
    Ok(failed == 0)
}

fn print_report(report: &Report) {
    for skipped in &report.skipped {
        println!("  skipped {skipped}");
    }
    for xfail in &report.expected_failures {
        println!("  xfail {xfail}");
    }
    let counts = format!(
        "{} steps passed, {} failed as marked (xfail), {} skipped",
        report.steps_passed(),
        report.expected_failures.len(),
        report.skipped.len()
    );
    match &report.failure {
        None => println!("{}: OK, {} steps: {counts}", report.name, report.steps),
        Some(failure) => {
            println!("{}: FAILED at step {} of {} ({counts})\n{failure}", report.name, report.run, report.steps)
        }
    }
}

/// `path` itself when a file, else every `*.session` below it in name order.
fn collect_sessions(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if !path.is_dir() {
        std::fs::metadata(path)?;
        out.push(path.to_owned());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
    entries.sort();
    for entry in entries {
        if entry.is_dir() {
            collect_sessions(&entry, out)?;
        } else if entry.extension().is_some_and(|e| e == "session") {
            out.push(entry);
        }
    }
    Ok(())
}

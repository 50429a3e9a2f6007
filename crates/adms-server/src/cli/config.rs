//! `adms-bridge config print|example`.

use std::io::Write as _;

use adms_server::Config;

#[derive(Debug, clap::Subcommand)]
pub enum ConfigAction {
    /// Print the effective configuration (defaults, the file, ADMS_* variables and flags) as
    /// TOML, secrets shown as "[REDACTED]".
    Print,
    /// Print a commented configuration file with every setting, its environment variable and
    /// its default.
    Example,
}

pub fn run(action: ConfigAction, config: &Config) -> anyhow::Result<()> {
    match action {
        ConfigAction::Print => {
            let text = config.to_redacted_toml()?;
            std::io::stdout().write_all(text.as_bytes())?;
            Ok(())
        }
        ConfigAction::Example => example(),
    }
}

pub fn example() -> anyhow::Result<()> {
    std::io::stdout().write_all(adms_server::config::example_toml().as_bytes())?;
    Ok(())
}

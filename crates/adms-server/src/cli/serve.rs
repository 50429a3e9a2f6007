//! `adms-bridge serve`.

use std::io::Write as _;
use std::net::SocketAddr;

use anyhow::Context as _;

use adms_server::{Application, Config};

/// Run the server. Every setting can also be given in the configuration file (`--config`) or
/// as its environment variable, listed below.
#[derive(Debug, clap::Args)]
pub struct Serve {
    /// Address to listen on (`127.0.0.1:0` picks a free port and prints it).
    #[arg(long, env = "ADMS_LISTEN")]
    listen: Option<SocketAddr>,
    /// What this process does: `all`, or `device`, `api`, `worker` comma-separated (the `role`
    /// setting, `ADMS_ROLE`).
    #[arg(long)]
    role: Option<adms_server::roles::Roles>,
    /// Record device traffic as session scripts under this folder (`[capture] dir`; see the
    /// README's *Capture*).
    #[arg(long, env = "ADMS_CAPTURE_DIR")]
    capture_dir: Option<std::path::PathBuf>,
}

impl Serve {
    pub async fn run(self, mut config: Config) -> anyhow::Result<()> {
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(role) = self.role {
            config.role = role;
        }
        if let Some(dir) = self.capture_dir {
            config.capture.dir = Some(std::path::absolute(&dir).context("--capture-dir")?);
        }
        let app = Application::build(config).await.context("starting adms-bridge")?;
        let addr = app.local_addr()?;
        let mut stdout = std::io::stdout();
        writeln!(stdout, "listening on http://{addr}")?;
        stdout.flush()?;
        tracing::info!(%addr, role = %app.state().config.role, "adms-bridge started");
        let signals = adms_server::signals::StopSignals::listen().context("listening for stop signals")?;
        app.run_until_stopped(shutdown_signal(signals)).await?;
        Ok(())
    }
}

async fn shutdown_signal(mut signals: adms_server::signals::StopSignals) {
    signals.recv().await;
    tracing::info!("shutdown requested; finishing in-flight requests");
}

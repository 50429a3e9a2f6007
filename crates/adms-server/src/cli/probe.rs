//! `adms-bridge probe`: a container's `HEALTHCHECK` (no HTTP client needs to be in the image).

use std::time::Duration;

use anyhow::{Context as _, bail};

use adms_server::Config;

/// Asks a server's `/readyz` and exits 0 when it answers 200, 1 otherwise, printing why on
/// stderr.
#[derive(Debug, clap::Args)]
pub struct Probe {
    /// The server, `http://HOST:PORT`. Default: this configuration's `listen` address (on
    /// 127.0.0.1 when it listens on every address).
    #[arg(long)]
    server: Option<String>,
    /// How long to wait for the answer, in seconds.
    #[arg(long, default_value_t = 3)]
    timeout_secs: u64,
}

impl Probe {
    pub async fn run(self, config: &Config) -> anyhow::Result<()> {
        let authority = match &self.server {
            Some(url) => super::local_http::authority(url)
                .with_context(|| format!("--server must be http://HOST:PORT, got `{url}`"))?,
            None => super::local_http::local_authority(config),
        };
        let request = format!("GET /readyz HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
        let timeout = Duration::from_secs(self.timeout_secs.max(1));
        let (status, body) = super::local_http::exchange(&authority, &request, timeout).await?;
        if status != 200 {
            bail!("{authority}/readyz answered {status}: {}", body.trim());
        }
        Ok(())
    }
}

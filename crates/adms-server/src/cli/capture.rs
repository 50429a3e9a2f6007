//! `adms-bridge capture --sn SN --for 10m`: turns capture on for one device of a running server,
//! through its API (`POST /api/v1/capture`; what to capture lives in the server's memory, so
//! the database alone cannot say it).

use std::io::Write as _;
use std::time::Duration;

use anyhow::{Context as _, bail};

use adms_server::Config;

/// Record one device's traffic on a running server for a while (the server needs a capture
/// folder: `--capture-dir`, `[capture] dir`). Talks to the server's API with an integration key
/// of the `admin` scope (`adms-bridge token create --name capture --scope admin`).
#[derive(Debug, clap::Args)]
pub struct Capture {
    /// The device's serial number.
    #[arg(long)]
    sn: String,
    /// How long: `90s`, `10m`, `2h` (at most 24 h).
    #[arg(long = "for", value_parser = parse_duration)]
    duration: Duration,
    /// The server, `http://HOST:PORT`. Default: this configuration's `listen` address (on
    /// 127.0.0.1 when it listens on every address).
    #[arg(long, env = "ADMS_SERVER_URL")]
    server: Option<String>,
    /// An integration key with the `admin` scope.
    #[arg(long, env = "ADMS_API_TOKEN", hide_env_values = true)]
    token: String,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    adms_server::capture::parse_duration(text).ok_or_else(|| format!("`{text}`: a duration such as 90s, 10m or 2h"))
}

impl Capture {
    pub async fn run(self, config: &Config) -> anyhow::Result<()> {
        let authority = match &self.server {
            Some(url) => super::local_http::authority(url)
                .with_context(|| format!("--server must be http://HOST:PORT, got `{url}`"))?,
            None => super::local_http::local_authority(config),
        };
        let body = serde_json::json!({ "sn": self.sn, "for_secs": self.duration.as_secs() }).to_string();
        let request = format!(
            "POST /api/v1/capture HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Token {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.token,
            body.len()
        );
        let (status, body) = super::local_http::exchange(&authority, &request, Duration::from_secs(30)).await?;
        if status != 200 {
            bail!("the server refused: {status} {body}");
        }
        let minutes = self.duration.as_secs().div_ceil(60);
        writeln!(std::io::stdout(), "capturing {} for {minutes} min on {authority}", self.sn)?;
        Ok(())
    }
}

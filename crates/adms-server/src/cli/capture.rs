//! `adms-bridge capture --sn SN --for 10m`: turns capture on for one device of a running server,
//! through its API (`POST /api/v1/capture`; what to capture lives in the server's memory, so
//! the database alone cannot say it).

use std::io::Write as _;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

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
            Some(url) => url
                .strip_prefix("http://")
                .map(|rest| rest.trim_end_matches('/').to_owned())
                .filter(|a| !a.is_empty() && !a.contains('/'))
                .with_context(|| format!("--server must be http://HOST:PORT, got `{url}`"))?,
            None if config.listen.ip().is_unspecified() => format!("127.0.0.1:{}", config.listen.port()),
            None => config.listen.to_string(),
        };
        let body = serde_json::json!({ "sn": self.sn, "for_secs": self.duration.as_secs() }).to_string();
        let request = format!(
            "POST /api/v1/capture HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Token {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.token,
            body.len()
        );
        let exchange = async {
            let mut stream = tokio::net::TcpStream::connect(&authority).await?;
            stream.write_all(request.as_bytes()).await?;
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).await?;
            Ok::<_, std::io::Error>(answer)
        };
        let answer = tokio::time::timeout(Duration::from_secs(30), exchange)
            .await
            .with_context(|| format!("no answer from {authority} within 30 s"))?
            .with_context(|| format!("reaching the server at {authority}"))?;
        let answer = String::from_utf8_lossy(&answer);
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        let status = head.split(' ').nth(1).unwrap_or_default();
        if status != "200" {
            bail!("the server refused: {status} {body}");
        }
        let minutes = self.duration.as_secs().div_ceil(60);
        writeln!(std::io::stdout(), "capturing {} for {minutes} min on {authority}", self.sn)?;
        Ok(())
    }
}

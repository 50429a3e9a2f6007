//! One HTTP/1.1 exchange with a running server, for the commands that talk to it (`capture`,
//! `probe`): plain HTTP on the operator's own network, so raw requests over a TCP stream do,
//! without an HTTP client in the binary.

use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// `http://HOST:PORT` → `HOST:PORT`; `None` for anything else (a path, https).
pub fn authority(url: &str) -> Option<String> {
    url.strip_prefix("http://")
        .map(|rest| rest.trim_end_matches('/').to_owned())
        .filter(|a| !a.is_empty() && !a.contains('/'))
}

/// The server this configuration listens on, as `HOST:PORT` (127.0.0.1 when it listens on
/// every address).
pub fn local_authority(config: &adms_server::Config) -> String {
    match config.listen.ip() {
        ip if ip.is_unspecified() => format!("127.0.0.1:{}", config.listen.port()),
        _ => config.listen.to_string(),
    }
}

/// Sends `request` (the whole request, `Connection: close`) to `authority` and returns the
/// status code and the body, within `timeout`.
pub async fn exchange(authority: &str, request: &str, timeout: Duration) -> anyhow::Result<(u16, String)> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(authority).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    let answer = tokio::time::timeout(timeout, exchange)
        .await
        .with_context(|| format!("no answer from {authority} within {} s", timeout.as_secs()))?
        .with_context(|| format!("reaching the server at {authority}"))?;
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok((status, body.to_owned()))
}

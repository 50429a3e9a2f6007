//! A minimal keep-alive HTTP/1.1 client: requests are written exactly as given, responses are read
//! by `Content-Length`. Small on purpose, so the load generator spends its (shared) CPU on load.

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// Status and body of one response; the body borrows the connection's buffer.
#[derive(Debug)]
pub struct Response<'a> {
    pub status: u16,
    pub body: &'a [u8],
}

impl Connection {
    pub async fn open(addr: &str) -> anyhow::Result<Connection> {
        let stream = TcpStream::connect(addr).await.with_context(|| format!("connect {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Connection { stream, buf: Vec::with_capacity(4096) })
    }

    /// Sends one complete request and reads its response.
    pub async fn send(&mut self, request: &[u8]) -> anyhow::Result<Response<'_>> {
        self.stream.write_all(request).await?;
        self.buf.clear();
        let mut head_end = None;
        loop {
            if let Some(end) = head_end {
                let length = content_length(&self.buf[..end])?;
                if self.buf.len() >= end + length {
                    let status = status(&self.buf[..end])?;
                    return Ok(Response { status, body: &self.buf[end..end + length] });
                }
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                bail!("connection closed mid-response");
            }
            self.buf.extend_from_slice(&chunk[..n]);
            if head_end.is_none() {
                head_end = self.buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4);
            }
        }
    }
}

fn status(head: &[u8]) -> anyhow::Result<u16> {
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let code = line.split(|&b| b == b' ').nth(1).context("no status code")?;
    Ok(std::str::from_utf8(code)?.parse()?)
}

fn content_length(head: &[u8]) -> anyhow::Result<usize> {
    for line in head.split(|&b| b == b'\n') {
        if let Some(colon) = line.iter().position(|&b| b == b':')
            && line[..colon].eq_ignore_ascii_case(b"content-length")
        {
            return Ok(std::str::from_utf8(&line[colon + 1..])?.trim().parse()?);
        }
    }
    bail!("response without Content-Length")
}

/// A GET as firmware writes it.
pub fn get(out: &mut Vec<u8>, addr: &str, path_and_query: &str) {
    out.clear();
    out.extend_from_slice(b"GET ");
    out.extend_from_slice(path_and_query.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(addr.as_bytes());
    out.extend_from_slice(b"\r\nUser-Agent: iClock Proxy/1.09\r\nAccept: */*\r\n\r\n");
}

/// A POST as firmware writes it; `body` is appended after the headers.
pub fn post(out: &mut Vec<u8>, addr: &str, path_and_query: &str, body: &[u8]) {
    out.clear();
    out.extend_from_slice(b"POST ");
    out.extend_from_slice(path_and_query.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(addr.as_bytes());
    out.extend_from_slice(b"\r\nUser-Agent: iClock Proxy/1.09\r\nAccept: */*\r\nContent-Type: text/plain\r\n");
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
}

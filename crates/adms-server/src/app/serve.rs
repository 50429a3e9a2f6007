//! The accept loop.

use std::future::Future;
use std::time::Duration;

use axum::extract::Request;
use tokio::net::TcpListener;

/// The accept loop: one HTTP/1.1 connection per task, with the client's address for the handlers
/// (`ConnectInfo`: the peer, or whom a trusted proxy forwarded for), no Nagle delay, and a limit on how long a connection may take to send a
/// request's headers (idle keep-alive time included). `axum::serve` offers no such limit, and
/// without it a client that sends its headers a byte at a time holds a connection forever (the
/// whole-request `TimeoutLayer` starts only once the headers are in). On `shutdown`: stop
/// accepting, let in-flight requests finish, close idle connections.
pub(super) async fn serve<S>(
    listener: TcpListener,
    service: S,
    header_timeout: Duration,
    proxies: crate::client_addr::TrustedProxies,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    S: tower::Service<Request, Response = axum::response::Response, Error = std::convert::Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let connections = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(header_timeout).keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Replies are small and each device waits for its own: send them at once (no Nagle).
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "TCP_NODELAY not set");
        }
        let service = service.clone();
        let proxies = proxies.clone();
        let handler = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let mut request = request.map(axum::body::Body::new);
            // The client's address: the peer, or whom a trusted proxy forwarded for.
            let client = proxies.client(peer, request.headers());
            request.extensions_mut().insert(axum::extract::ConnectInfo(client));
            tower::ServiceExt::oneshot(service.clone(), request)
        });
        let connection = connections.watch(http.serve_connection(hyper_util::rt::TokioIo::new(tcp), handler));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    connections.shutdown().await;
    Ok(())
}

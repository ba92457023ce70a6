//! The HTTP/1 listener in front of [`Host`].

use crate::host::Host;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::time::Duration;
use tokio::net::TcpListener;

/// How long in-flight requests may finish after shutdown is requested.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `host` on `listener` until `shutdown` resolves, then drains in-flight connections.
///
/// Accept errors (e.g. too many open files) are logged and retried, never fatal: a host that
/// stops serving because of one bad moment is worse than a slow one.
pub async fn serve(
    host: Host,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, client_addr) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Responses are small and written in a few pieces: without TCP_NODELAY every one of them
        // waits for the client's delayed ACK (~40 ms), which caps a keep-alive connection at ~25
        // requests/s (measured by the edge-keys bench).
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(%err, "cannot set TCP_NODELAY");
        }
        let host = host.clone();
        let service = service_fn(move |request| {
            let host = host.clone();
            async move { Ok::<_, Infallible>(host.handle(request, client_addr).await) }
        });
        let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%err, "connection closed with error");
            }
        });
    }
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish before shutdown");
    }
    Ok(())
}

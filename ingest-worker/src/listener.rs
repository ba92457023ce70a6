//! The RTMP accept loop (mini-redis `Listener`): accept with backoff, cap connections with a
//! `Semaphore`, spawn one tracked task per connection with its own child cancellation token.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::connection::handle_connection;
use crate::metrics::RefusalReason;
use crate::server::Shared;

/// Longest pause after repeated accept errors (e.g. out of file descriptors).
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Accepts RTMP connections until `shutdown` fires.
pub struct Listener {
    /// The bound socket.
    pub listener: TcpListener,
    /// Worker state shared by all connections.
    pub shared: Arc<Shared>,
    /// One permit per open connection.
    pub limit: Arc<Semaphore>,
    /// Parent of every connection's token.
    pub shutdown: CancellationToken,
}

impl Listener {
    /// Runs the accept loop. Connections over the cap are closed at once (and counted):
    /// an encoder retries, whereas a connection parked in the backlog just looks hung.
    pub async fn run(self) {
        let mut next_conn_id: u64 = 0;
        loop {
            let (socket, peer) = tokio::select! {
                () = self.shutdown.cancelled() => return,
                accepted = self.accept() => accepted,
            };
            let Ok(permit) = Arc::clone(&self.limit).try_acquire_owned() else {
                self.shared
                    .metrics
                    .handle_refused(RefusalReason::TooManyConnections);
                tracing::warn!(peer = %peer, "connection cap reached; closing new connection");
                continue;
            };
            if let Err(error) = socket.set_nodelay(true) {
                tracing::debug!(%error, "cannot set TCP_NODELAY");
            }
            next_conn_id += 1;
            let shared = Arc::clone(&self.shared);
            let token = self.shutdown.child_token();
            self.shared.tracker.spawn(handle_connection(
                shared,
                socket,
                peer,
                next_conn_id,
                token,
                permit,
            ));
        }
    }

    /// Accepts one connection, backing off (doubling up to [`MAX_ACCEPT_BACKOFF`]) while
    /// accept fails, as mini-redis does; never gives up, since errors like EMFILE pass.
    async fn accept(&self) -> (TcpStream, std::net::SocketAddr) {
        let mut backoff = Duration::from_millis(10);
        loop {
            match self.listener.accept().await {
                Ok(accepted) => return accepted,
                Err(error) => {
                    tracing::error!(%error, retry_in = ?backoff, "accept failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                }
            }
        }
    }
}

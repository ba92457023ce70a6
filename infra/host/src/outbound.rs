//! Outbound HTTP for components: one pooled client shared by every instance of the app.
//!
//! Why pooled: Spin keeps outbound connections in a pool shared across instances (and so
//! across inbound requests) since Spin 3.4; a fresh TCP connection per outbound request, which
//! `wasmtime_wasi_http::default_send_request` makes, doubled the cost of a key request (the
//! signed S3 GET) in the edge-keys bench: connect, accept and shutdown on both ends every time.
//! Plain `http:` origins (the local stack's S3 endpoint, a site's authorize callback on the same
//! network) use the pool; `https:` goes through wasmtime's one-shot client, which carries the
//! TLS setup this host does not duplicate (production runs on Spin, which pools both).

use bytes::Bytes;
use http::uri::Scheme;
use http_body_util::BodyExt as _;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody};

/// wasmtime's default for each of the three request-option timeouts when the guest sets none.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// How long an idle pooled connection is kept (hyper's default is 90 s; a shorter one bounds how
/// long a restarted upstream can hand us a dead connection).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// What the guest gets back: the response and the connection's I/O result (always `Ok` for a
/// pooled connection: its lifetime belongs to the pool, not to one request).
pub(crate) type Sent = (
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
);

/// The app-wide outbound client. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub(crate) struct OutboundClient {
    pooled: Client<HttpConnector, WasiBody>,
}

impl OutboundClient {
    /// A client with an empty pool.
    pub(crate) fn new() -> Self {
        let mut connector = HttpConnector::new();
        // Small requests and responses: don't let Nagle wait for the peer's delayed ACK.
        connector.set_nodelay(true);
        // `http:` only; `https:` never reaches the pooled client (see `send`).
        connector.enforce_http(true);
        let pooled = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(connector);
        Self { pooled }
    }

    /// Sends an (already allowed) outbound request, honouring the guest's request options:
    /// `connect-timeout` + `first-byte-timeout` bound the wait for the response head (the pool
    /// connects lazily, so the two cannot be told apart), `between-bytes-timeout` each body
    /// frame.
    pub(crate) async fn send(
        &self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<Sent, HttpError> {
        if request.uri().scheme() == Some(&Scheme::HTTPS) {
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            return Ok((
                response.map(|body| body.boxed_unsync()),
                Box::new(io) as Box<dyn Future<Output = Result<(), HttpError>> + Send>,
            ));
        }
        let connect = options
            .and_then(|o| o.connect_timeout)
            .unwrap_or(DEFAULT_TIMEOUT);
        let first_byte = options
            .and_then(|o| o.first_byte_timeout)
            .unwrap_or(DEFAULT_TIMEOUT);
        let between_bytes = options
            .and_then(|o| o.between_bytes_timeout)
            .unwrap_or(DEFAULT_TIMEOUT)
            // tokio panics on a zero interval; 1 ns is as good as zero.
            .max(Duration::from_nanos(1));
        let response = match tokio::time::timeout(
            connect.saturating_add(first_byte),
            self.pooled.request(request),
        )
        .await
        {
            Err(_) => return Err(HttpError::ConnectionReadTimeout),
            Ok(Err(error)) => return Err(client_error(&error)),
            Ok(Ok(response)) => response,
        };
        let response = response.map(|incoming| {
            let mut timeout = tokio::time::interval(between_bytes);
            timeout.reset();
            TimedBody { incoming, timeout }.boxed_unsync()
        });
        Ok((
            response,
            Box::new(async { Ok(()) }) as Box<dyn Future<Output = Result<(), HttpError>> + Send>,
        ))
    }
}

/// Maps a pooled-client failure onto the `error-code` a guest sees, as wasmtime's own client
/// does: connection failures are `connection-refused`-like, the rest protocol errors.
fn client_error(error: &hyper_util::client::legacy::Error) -> HttpError {
    if error.is_connect() {
        HttpError::ConnectionRefused
    } else {
        HttpError::HttpProtocolError
    }
}

/// A response body that fails when no frame arrives within the between-bytes timeout.
struct TimedBody {
    incoming: hyper::body::Incoming,
    timeout: tokio::time::Interval,
}

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, HttpError>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(HttpError::from(error)))),
            Poll::Ready(Some(Ok(frame))) => {
                self.timeout.reset();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => match self.timeout.poll_tick(cx) {
                Poll::Ready(_) => Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.incoming.size_hint()
    }
}

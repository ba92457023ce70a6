//! The response body the host serves: its own short texts, or the guest's streamed body.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use hyper::body::Frame;
use std::pin::Pin;
use std::task::{Context, Poll};
use wasmtime_wasi_http::WasiBody;

/// A response body chunk that could not be produced (the guest failed mid-stream).
#[derive(Debug, thiserror::Error)]
#[error("response body failed: {0}")]
pub struct BodyError(String);

/// Response body served by the host: a fixed text or the guest's streamed body.
pub enum HostBody {
    /// A host-generated body (404, 500, …).
    Full(Option<Bytes>),
    /// The guest's body, produced as its instance's event loop runs.
    Guest(WasiBody),
}

impl std::fmt::Debug for HostBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostBody::Full(bytes) => f.debug_tuple("Full").field(bytes).finish(),
            HostBody::Guest(_) => f.write_str("Guest(..)"),
        }
    }
}

impl http_body::Body for HostBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            HostBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            // A guest failing mid-body: the error frame makes hyper abort the connection, so
            // the client sees a broken response rather than a cleanly truncated one.
            HostBody::Guest(body) => Pin::new(body)
                .poll_frame(cx)
                .map_err(|error| BodyError(error.to_string())),
        }
    }
}

/// A host-generated `text/plain` response (404, 400, 500): a fixed text, never a detail.
pub(crate) fn plain(status: StatusCode, text: &'static str) -> Response<HostBody> {
    let mut response = Response::new(HostBody::Full(Some(Bytes::from_static(text.as_bytes()))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain"),
    );
    response
}

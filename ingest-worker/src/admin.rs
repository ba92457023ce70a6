//! Admin HTTP: `GET /metrics` (Prometheus text), `GET /healthz`, and
//! `POST /streams/<name>/cutoff` to end a live stream now.
//!
//! The read-only routes are open, for scrapers and load balancers. The control route acts on
//! live streams, and a browser on the worker's host can reach a loopback port from any web page
//! it visits, so it takes `Authorization: Bearer <--admin-token>` (compared in constant time),
//! and is refused without a configured token. It answers POST only, never sends CORS headers
//! (a cross-site page can send a form POST but cannot add the bearer header without a preflight
//! this server never approves) and refuses any request that carries an `Origin`, which only
//! browsers send. Still, bind it to loopback or a private network.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use gatecast_core::layout::StreamName;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::AdminToken;
use crate::metrics::Metrics;
use crate::registry::Registry;

/// What the admin endpoints read and act on.
pub struct AdminState {
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Live streams, for the cut-off call.
    pub registry: Arc<Registry>,
    /// Fired at shutdown: `/healthz` then answers 503 so load balancers stop sending publishers.
    pub shutdown: CancellationToken,
    /// The control routes' bearer token; `None` turns them off.
    pub token: Option<AdminToken>,
}

/// Serves admin requests until `stop` fires.
pub async fn serve(listener: TcpListener, state: Arc<AdminState>, stop: CancellationToken) {
    loop {
        let (stream, _) = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "admin accept failed");
                    continue;
                }
            },
        };
        let state = Arc::clone(&state);
        let stop = stop.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(route(&state, &request)) }
            });
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                result = connection => {
                    if let Err(error) = result {
                        tracing::debug!(%error, "admin connection error");
                    }
                }
                () = stop.cancelled() => {}
            }
        });
    }
}

fn route(state: &AdminState, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    match (request.method(), path) {
        (&Method::GET, "/metrics") => reply(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            state.metrics.render(),
        ),
        (&Method::GET, "/healthz") if state.shutdown.is_cancelled() => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "shutting down\n".into(),
        ),
        (&Method::GET, "/healthz") => reply(StatusCode::OK, "text/plain", "ok\n".into()),
        _ => match cutoff_target(path) {
            Some(_) if request.method() != Method::POST => {
                let mut response = reply(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "text/plain",
                    "use POST\n".into(),
                );
                response
                    .headers_mut()
                    .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
                response
            }
            Some(_) if !is_authorized(state.token.as_ref(), request) => {
                reply(StatusCode::FORBIDDEN, "text/plain", String::new())
            }
            Some(Ok(name)) if state.registry.cut_off(&name) => {
                tracing::info!(%name, "stream cut off by admin request");
                reply(StatusCode::ACCEPTED, "text/plain", "cut off\n".into())
            }
            Some(Ok(_)) => reply(
                StatusCode::NOT_FOUND,
                "text/plain",
                "stream is not live\n".into(),
            ),
            Some(Err(_)) => reply(
                StatusCode::BAD_REQUEST,
                "text/plain",
                "invalid stream name\n".into(),
            ),
            None => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
        },
    }
}

/// Whether a control request may act: a token is configured, the request carries it as
/// `Authorization: Bearer <token>`, and it comes from no browser (no `Origin`).
fn is_authorized<B>(token: Option<&AdminToken>, request: &Request<B>) -> bool {
    let Some(token) = token else { return false };
    if request.headers().contains_key(header::ORIGIN) {
        return false;
    }
    request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .is_some_and(|presented| token.matches(presented))
}

/// `/streams/<name>/cutoff` → the (validated) name.
fn cutoff_target(path: &str) -> Option<Result<StreamName, gatecast_core::layout::NameError>> {
    let name = path.strip_prefix("/streams/")?.strip_suffix("/cutoff")?;
    Some(StreamName::parse(name))
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoff_paths_are_validated() {
        assert_eq!(
            cutoff_target("/streams/benw/cutoff").map(|r| r.ok()),
            Some(StreamName::parse("benw").ok())
        );
        assert!(matches!(cutoff_target("/streams/../cutoff"), Some(Err(_))));
        assert!(matches!(cutoff_target("/streams/a/b/cutoff"), Some(Err(_))));
        assert!(cutoff_target("/streams/benw").is_none());
        assert!(cutoff_target("/metrics").is_none());
    }

    #[test]
    fn control_requests_need_the_token_and_no_origin() {
        let token = AdminToken::new("0123456789abcdef-admin").expect("long enough");
        let request = |headers: &[(header::HeaderName, &str)]| {
            let mut builder = Request::post("/streams/benw/cutoff");
            for (name, value) in headers {
                builder = builder.header(name, *value);
            }
            builder.body(()).expect("valid request")
        };
        let bearer = "Bearer 0123456789abcdef-admin";
        assert!(is_authorized(
            Some(&token),
            &request(&[(header::AUTHORIZATION, bearer)])
        ));
        assert!(!is_authorized(
            None,
            &request(&[(header::AUTHORIZATION, bearer)])
        ));
        assert!(!is_authorized(Some(&token), &request(&[])));
        assert!(!is_authorized(
            Some(&token),
            &request(&[(header::AUTHORIZATION, "Bearer 0123456789abcdef-admiN")])
        ));
        assert!(!is_authorized(
            Some(&token),
            &request(&[(header::AUTHORIZATION, "0123456789abcdef-admin")])
        ));
        assert!(!is_authorized(
            Some(&token),
            &request(&[
                (header::AUTHORIZATION, bearer),
                (header::ORIGIN, "https://evil.example")
            ])
        ));
        assert!(AdminToken::new("short").is_none());
        assert!(!format!("{token:?}").contains("0123"));
    }
}

//! Routing a request to an instance of its component: the app's router and instance pools, and
//! the rewriting Spin does before a component sees a request (`spin-*` headers, absolute URI,
//! `Host` of a chained request).

use crate::allowed_hosts;
use crate::body::{HostBody, plain};
use crate::chain::ChainTarget;
use crate::reuse::ComponentInstances;
use crate::routing::{RouteMatch, Router};
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use tracing::Instrument as _;
use wasmtime_wasi_http::WasiBody;
use wasmtime_wasi_http::handler::ProxyHandler;

/// `spin-client-addr` of a chained request: Spin passes `0.0.0.0:0` (there is no client).
const CHAINED_CLIENT_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0);

/// Where a request came from: the listener, or another component of the app.
#[derive(Debug, Clone, Copy)]
enum Origin {
    /// A client connection (through the router).
    Outside(SocketAddr),
    /// Local service chaining from another component.
    Chained,
}

/// A loaded app: its router and, per component id, the handler over its pool of instances.
pub(crate) struct App {
    pub(crate) router: Router,
    pub(crate) components: HashMap<String, ProxyHandler<ComponentInstances>>,
}

impl App {
    /// Serves a request from a client: route, then dispatch, inside a span that logs the path
    /// only (query strings carry viewer tokens and must never reach the logs).
    pub(crate) async fn handle(
        &self,
        request: Request<WasiBody>,
        client_addr: SocketAddr,
    ) -> Response<HostBody> {
        let path = request.uri().path().to_owned();
        let Some(route) = self.router.route(&path) else {
            return plain(StatusCode::NOT_FOUND, "Not Found");
        };
        let span = tracing::info_span!(
            "request",
            method = %request.method(),
            path = %path,
            component = %route.component_id,
            status = tracing::field::Empty,
        );
        let response = self
            .dispatch(request, route, Origin::Outside(client_addr))
            .instrument(span.clone())
            .await;
        span.record("status", response.status().as_u16());
        response
    }

    /// Runs `request` in an instance of `route.component_id`.
    ///
    /// Never fails: a malformed request → 400; trap, timeout, limit or guest error → 500 for
    /// this request only.
    async fn dispatch(
        &self,
        request: Request<WasiBody>,
        route: RouteMatch,
        origin: Origin,
    ) -> Response<HostBody> {
        let Some(handler) = self.components.get(&route.component_id) else {
            return plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
        };
        let request = match prepare_request(request, &route, origin) {
            Ok(request) => request,
            Err(err) => {
                tracing::info!(%err, "malformed request");
                return plain(StatusCode::BAD_REQUEST, "Bad Request");
            }
        };

        match handler.handle((), request).await {
            Ok(response) => response.map(HostBody::Guest),
            Err(error) => {
                // Trap, expiry, instantiation failure or a guest `error-code`: this request
                // (and, for a trap, the others in flight on the same instance) gets a 500.
                tracing::warn!("component failed: {error:#}");
                plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
            }
        }
    }
}

impl ChainTarget for App {
    fn serves(&self, component: &str) -> bool {
        self.components.contains_key(component)
    }

    fn dispatch_chained(
        &self,
        request: Request<WasiBody>,
        route: RouteMatch,
    ) -> Pin<Box<dyn Future<Output = Response<HostBody>> + Send + '_>> {
        Box::pin(self.dispatch(request, route, Origin::Chained))
    }
}

/// Adds Spin's headers and makes the URI absolute, as Spin does.
///
/// Client-sent `spin-*` headers are kept and Spin's own values are *appended* after them, as
/// Spin does: `crates/trigger-http/src/headers.rs` `prepare_request_headers` lists the
/// client's headers first and pushes `compute_default_headers` (`spin-full-url`,
/// `spin-path-info`, `spin-matched-route`, `spin-base-path`, `spin-raw-component-route`,
/// `spin-component-route`, `spin-client-addr`, `spin-path-match-*`) after them, and
/// `crates/trigger-http/src/wasi.rs` `prepare_request` clears the request's headers and
/// `extend`s them with that list (`HeaderMap::extend` appends). So a component sees a
/// client's `spin-client-addr: 203.0.113.5:1` *first* and the real one *last*; replacing the
/// client's value here would hide from the tests exactly what real Spin lets through.
///
/// A chained request gets `Host: <component>.spin.internal`; a request from outside can never
/// claim such a host (Spin strips it), so a component may trust it to mean "chained".
fn prepare_request(
    request: Request<WasiBody>,
    route: &RouteMatch,
    origin: Origin,
) -> anyhow::Result<Request<WasiBody>> {
    let (mut parts, body) = request.into_parts();
    let (host, client_addr) = match origin {
        Origin::Chained => {
            let host = format!(
                "{}.{}",
                route.component_id,
                allowed_hosts::SERVICE_CHAINING_DOMAIN
            );
            parts.headers.insert(http::header::HOST, host.parse()?);
            (host, CHAINED_CLIENT_ADDR)
        }
        Origin::Outside(client_addr) => {
            let is_chaining = |host: &str| allowed_hosts::service_chaining_host(host).is_some();
            let header = parts
                .headers
                .get(http::header::HOST)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            if header.as_deref().is_some_and(is_chaining) {
                parts.headers.remove(http::header::HOST);
            }
            let host = header
                .or_else(|| parts.uri.authority().map(|a| a.to_string()))
                .filter(|host| !is_chaining(host))
                .unwrap_or_else(|| "localhost".to_owned());
            (host, client_addr)
        }
    };
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_else(|| "/".to_owned());
    for (name, value) in route.spin_headers(&host, &path_and_query, client_addr) {
        parts
            .headers
            .append(HeaderName::try_from(name)?, HeaderValue::try_from(value)?);
    }
    parts.uri = http::Uri::builder()
        .scheme("http")
        .authority(host.as_str())
        .path_and_query(path_and_query.as_str())
        .build()?;
    Ok(Request::from_parts(parts, body))
}

//! Local service chaining: a component's request to `http://<component>.spin.internal/…` runs in
//! an instance of that component of the same app, in process, as Spin's does.
//!
//! Why a trait: the instances that make chained requests belong to the app that serves them, so
//! naming the app here would make `dispatch` → `reuse` → `instance` → `chain` a loop. Instances
//! hold a [`ServiceChain`] over [`ChainTarget`], which the app implements.

use crate::body::HostBody;
use crate::routing::RouteMatch;
use http::{Request, Response};
use http_body_util::BodyExt as _;
use std::pin::Pin;
use std::sync::Weak;
use tracing::Instrument as _;
use wasmtime_wasi_http::WasiBody;

/// What serves chained requests: the loaded app.
pub(crate) trait ChainTarget: Send + Sync {
    /// Whether `component` is an HTTP component of the app (routed or private).
    fn serves(&self, component: &str) -> bool;

    /// Runs `request` in an instance of `route.component_id` as a chained request (Spin's
    /// `Host` and `spin-client-addr` for chaining), with the limits of any request.
    fn dispatch_chained(
        &self,
        request: Request<WasiBody>,
        route: RouteMatch,
    ) -> Pin<Box<dyn Future<Output = Response<HostBody>> + Send + '_>>;
}

/// In-process dispatch of chained requests, handed to each instance's outbound policy. Weak,
/// so a running instance never keeps an unloaded app alive.
#[derive(Clone)]
pub(crate) struct ServiceChain(Weak<dyn ChainTarget>);

impl ServiceChain {
    /// Chains into `app`, for as long as it is loaded.
    pub(crate) fn new(app: Weak<dyn ChainTarget>) -> Self {
        Self(app)
    }

    /// Runs `request` in an instance of `component`, as if it had matched a `/...` route
    /// ([`RouteMatch::chained`]), with the same time and memory limits as any request. A
    /// callee that traps or times out answers 500 to its caller (SIP 017), it never takes the
    /// caller down; a component that is not an HTTP component of the app is
    /// `destination-not-found`.
    pub(crate) async fn call(
        &self,
        component: &str,
        request: Request<WasiBody>,
    ) -> Result<Response<WasiBody>, wasmtime_wasi_http::Error> {
        let Some(app) = self.0.upgrade() else {
            return Err(wasmtime_wasi_http::Error::InternalError(Some(
                "the app was unloaded".to_owned(),
            )));
        };
        if !app.serves(component) {
            return Err(wasmtime_wasi_http::Error::DestinationNotFound);
        }
        let route = RouteMatch::chained(component, request.uri().path());
        let span = tracing::info_span!(
            "chained",
            component = %component,
            path = %request.uri().path(),
        );
        let response = app.dispatch_chained(request, route).instrument(span).await;
        Ok(response.map(|body| {
            body.map_err(|error| wasmtime_wasi_http::Error::InternalError(Some(error.to_string())))
                .boxed_unsync()
        }))
    }
}

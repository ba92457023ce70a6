//! The per-instance store data: WASI, wasi:http with the outbound policy, Spin interfaces, limits.

use crate::allowed_hosts::{self, AllowedHosts};
use crate::bindings::{self, SpinView};
use crate::chain::ServiceChain;
use crate::context::ComponentContext;
use crate::outbound::{OutboundClient, Sent};
use crate::wasi_keyvalue;
use std::sync::Arc;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Engine, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{
    Error as HttpError, RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks,
    WasiHttpView,
};

/// `wasi:http` hooks that enforce `allowed_outbound_hosts` before any connection is made, and
/// dispatch chained requests (`http://<component>.spin.internal`) to the app's own component
/// in process, as Spin's local service chaining does.
pub(crate) struct OutboundPolicy {
    allowed: Arc<AllowedHosts>,
    chain: ServiceChain,
    client: OutboundClient,
}

type SendFuture = Box<dyn Future<Output = Result<Sent, HttpError>> + Send>;

impl WasiHttpHooks for OutboundPolicy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> SendFuture {
        // The guest's response-processing result is not needed to send the request.
        drop(fut);
        if let Some(component) = allowed_hosts::service_chaining_target(request.uri()) {
            if !self.allowed.allows_chaining(request.uri()) {
                tracing::info!(
                    component,
                    "chained request denied by allowed_outbound_hosts"
                );
                return Box::new(async { Err(HttpError::HttpRequestDenied) });
            }
            let component = component.to_owned();
            let chain = self.chain.clone();
            return Box::new(async move {
                let response = chain.call(&component, request).await?;
                Ok((
                    response,
                    Box::new(async { Ok(()) })
                        as Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                ))
            });
        }
        if !self.allowed.allows_uri(request.uri()) {
            // What Spin returns: `error-code::HTTP-request-denied`, before any network access.
            tracing::info!(
                host = request.uri().host().unwrap_or_default(),
                "outbound request denied by allowed_outbound_hosts"
            );
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        let client = self.client.clone();
        Box::new(async move { client.send(request, options).await })
    }
}

/// The data of one request's `Store`.
pub(crate) struct InstanceState {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    pub(crate) hooks: OutboundPolicy,
    pub(crate) limits: StoreLimits,
    context: Arc<ComponentContext>,
}

impl InstanceState {
    /// Fresh state for one instance of the component described by `context`; `chain` serves
    /// its chained requests, `client` its outbound ones.
    pub(crate) fn new(
        context: Arc<ComponentContext>,
        max_memory_bytes: usize,
        chain: ServiceChain,
        client: OutboundClient,
    ) -> Self {
        let mut wasi = WasiCtx::builder();
        // Spin forwards component stdout/stderr to its own log output.
        wasi.inherit_stdout().inherit_stderr();
        for (key, value) in &context.environment {
            wasi.env(key, value);
        }
        Self {
            table: ResourceTable::new(),
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            hooks: OutboundPolicy {
                allowed: Arc::clone(&context.allowed_hosts),
                chain,
                client,
            },
            limits: StoreLimitsBuilder::new()
                .memory_size(max_memory_bytes)
                .trap_on_grow_failure(false)
                .build(),
            context,
        }
    }

    fn spin_view(&mut self) -> SpinView<'_> {
        SpinView {
            table: &mut self.table,
            context: &self.context,
        }
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for InstanceState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// The linker every component is instantiated with: WASI 0.2 (what Rust's std still imports
/// through the adapter), WASI 0.3, `wasi:http@0.3` and the Spin interfaces.
pub(crate) fn linker(engine: &Engine) -> wasmtime::Result<Linker<InstanceState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi::p3::add_to_linker(&mut linker)?;
    wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
    bindings::add_to_linker(&mut linker, InstanceState::spin_view)?;
    wasi_keyvalue::add_to_linker(&mut linker, InstanceState::spin_view)?;
    Ok(linker)
}

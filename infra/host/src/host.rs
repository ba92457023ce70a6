//! Loading an app (compile once) and serving requests (instances reused as Spin does, see
//! [`crate::reuse`]).

use crate::allowed_hosts::{self, AllowedHosts};
use crate::context::ComponentContext;
use crate::instance::{self, InstanceState};
use crate::kv::KvStores;
use crate::manifest::Manifest;
use crate::outbound::OutboundClient;
use crate::reuse::{ComponentInstances, EPOCH_TICK, ReusePolicy};
use crate::routing::{RouteMatch, Router};
use crate::variables::Variables;
use anyhow::Context as _;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::{Frame, Incoming};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;
use tracing::Instrument as _;
use wasmtime::component::Component;
use wasmtime::{Config, Engine};
use wasmtime_wasi_http::WasiBody;
use wasmtime_wasi_http::handler::ProxyHandler;
use wasmtime_wasi_http::p3::bindings::ServicePre;

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

/// How to run an app.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Path of `spin.toml`.
    pub manifest: PathBuf,
    /// Directory for host state; key-value stores live in `<data_dir>/kv/<label>.db`.
    pub data_dir: PathBuf,
    /// Cargo target directory to resolve component sources that start with `target/`
    /// (so builds with a custom `CARGO_TARGET_DIR` run unchanged). `None`: as written.
    pub target_dir: Option<PathBuf>,
    /// Application variable values that win over `SPIN_VARIABLE_*` and defaults
    /// (like `spin up --variable name=value`).
    pub variables: BTreeMap<String, String>,
    /// Read `SPIN_VARIABLE_<NAME>` from the process environment (Spin's env provider).
    pub env_variables: bool,
    /// Wall-clock and CPU (epoch) limit for one request, including streaming its body.
    pub request_timeout: Duration,
    /// Maximum size of each linear memory of an instance.
    pub max_memory_bytes: usize,
    /// How many requests an instance serves (Spin's WASIp3 defaults unless changed).
    pub reuse: ReusePolicy,
}

impl HostConfig {
    /// Defaults for `manifest`: data in `.gatecast` beside it, 30 s and 256 MiB per request.
    pub fn new(manifest: impl Into<PathBuf>) -> Self {
        let manifest = manifest.into();
        let data_dir = manifest
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join(".gatecast");
        Self {
            manifest,
            data_dir,
            target_dir: None,
            variables: BTreeMap::new(),
            env_variables: true,
            request_timeout: Duration::from_secs(30),
            max_memory_bytes: 256 * 1024 * 1024,
            reuse: ReusePolicy::default(),
        }
    }
}

/// One compiled component with its pool of reusable instances.
struct LoadedComponent {
    handler: ProxyHandler<ComponentInstances>,
}

/// What [`Host::load`] prepares for each component before the instances can be wired to the
/// host (which chained requests need).
struct PreparedComponent {
    pre: ServicePre<InstanceState>,
    context: Arc<ComponentContext>,
}

/// Identifies one version of a `.wasm` file, so a rebuilt component is recompiled.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SourceVersion {
    path: PathBuf,
    modified: Option<std::time::SystemTime>,
    len: u64,
}

/// The process-wide wasmtime engine and its compiled components.
///
/// Why process-wide: compiled code belongs to an engine, and compiling gatecast's components
/// costs seconds. Sharing one engine lets every `Host` in a process (each e2e test, the dev stack
/// reloading) reuse the compilation, and needs only one epoch ticker thread.
struct Runtime {
    engine: Engine,
    compiled: Mutex<HashMap<SourceVersion, Component>>,
}

static RUNTIME: Mutex<Option<Arc<Runtime>>> = Mutex::new(None);

impl Runtime {
    fn shared() -> anyhow::Result<Arc<Self>> {
        let mut slot = RUNTIME
            .lock()
            .map_err(|_| anyhow::anyhow!("wasm runtime initialisation panicked earlier"))?;
        if let Some(runtime) = slot.as_ref() {
            return Ok(Arc::clone(runtime));
        }
        let mut config = Config::new();
        config.wasm_component_model_async(true);
        config.epoch_interruption(true);
        // A fresh instance per request makes instantiation the host's main cost; the pooling
        // allocator reuses pre-reserved memory slots instead of mmap/munmap per request. The
        // request bench measured it at 0.5-1x the time of on-demand allocation (noisy 2-core box).
        // Its default limits (1000 instances/memories) bound concurrent requests per process.
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(
            wasmtime::PoolingAllocationConfig::default(),
        ));
        let engine = Engine::new(&config)?;
        let ticking = engine.clone();
        std::thread::Builder::new()
            .name("gatecast-host-epoch".to_owned())
            .spawn(move || {
                loop {
                    std::thread::sleep(EPOCH_TICK);
                    ticking.increment_epoch();
                }
            })
            .context("cannot start the epoch ticker thread")?;
        let runtime = Arc::new(Self {
            engine,
            compiled: Mutex::new(HashMap::new()),
        });
        *slot = Some(Arc::clone(&runtime));
        Ok(runtime)
    }

    /// Compiles `path`, or returns the compilation of the same file version done earlier.
    fn component(&self, path: &Path) -> anyhow::Result<Component> {
        let metadata = std::fs::metadata(path)?;
        let version = SourceVersion {
            path: path.canonicalize()?,
            modified: metadata.modified().ok(),
            len: metadata.len(),
        };
        if let Some(component) = self
            .compiled
            .lock()
            .ok()
            .and_then(|c| c.get(&version).cloned())
        {
            return Ok(component);
        }
        let started = std::time::Instant::now();
        let component = Component::from_file(&self.engine, path)?;
        tracing::info!(path = %path.display(), elapsed = ?started.elapsed(), "compiled");
        if let Ok(mut compiled) = self.compiled.lock() {
            compiled.retain(|known, _| known.path != version.path);
            compiled.insert(version, component.clone());
        }
        Ok(component)
    }
}

/// A loaded application: router plus compiled components. Cheap to clone.
#[derive(Clone)]
pub struct Host {
    inner: Arc<HostInner>,
}

struct HostInner {
    router: Router,
    components: HashMap<String, LoadedComponent>,
}

/// Key-value labels become file names; keep them to a safe alphabet.
fn check_store_label(label: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        !label.is_empty()
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "key-value store label {label:?} must be non-empty ASCII letters, digits, '-' or '_'"
    );
    Ok(())
}

/// `target/…` sources are rebased onto `target_dir` when one is configured.
fn resolve_source(base_dir: &Path, source: &Path, target_dir: Option<&Path>) -> PathBuf {
    match (target_dir, source.strip_prefix("target")) {
        (Some(target_dir), Ok(rest)) => target_dir.join(rest),
        _ => base_dir.join(source),
    }
}

impl Host {
    /// Parses the manifest, resolves variables and compiles every routed component.
    ///
    /// Fails on anything Spin would refuse at startup: bad manifest, required variable without
    /// value, bad template, bad allowed host, unloadable component.
    pub fn load(config: &HostConfig) -> anyhow::Result<Self> {
        let manifest = Manifest::load(&config.manifest)?;
        let variables = Variables::resolve(&manifest, &config.variables, |key| {
            config
                .env_variables
                .then(|| std::env::var(key).ok())
                .flatten()
        })?;
        let variables = Arc::new(variables);
        let router = Router::build(&manifest.http_triggers)?;
        let kv = Arc::new(KvStores::new(config.data_dir.join("kv"))?);

        let runtime = Runtime::shared()?;
        let linker = instance::linker(&runtime.engine)?;

        let mut prepared = HashMap::new();
        for trigger in &manifest.http_triggers {
            let id = &trigger.component;
            if prepared.contains_key(id) {
                continue;
            }
            let decl = &manifest.components[id];
            for label in &decl.key_value_stores {
                check_store_label(label)?;
            }
            let hosts = decl
                .allowed_outbound_hosts
                .iter()
                .map(|entry| variables.expand_str(entry))
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("component {id:?}: allowed_outbound_hosts"))?;
            let allowed_hosts = AllowedHosts::parse(&hosts)
                .with_context(|| format!("component {id:?}: allowed_outbound_hosts"))?;
            let path = resolve_source(
                &manifest.base_dir,
                &decl.source,
                config.target_dir.as_deref(),
            );
            let component = runtime
                .component(&path)
                .with_context(|| format!("component {id:?}: cannot load {}", path.display()))?;
            let pre = linker
                .instantiate_pre(&component)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("component {id:?}: unsatisfied imports"))?;
            let pre = ServicePre::new(pre)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("component {id:?}: not a wasi:http@0.3 service"))?;
            let context = ComponentContext {
                id: id.clone(),
                key_value_stores: decl.key_value_stores.iter().cloned().collect(),
                kv: Arc::clone(&kv),
                variables: Arc::clone(&variables),
                allowed_hosts: Arc::new(allowed_hosts),
                environment: decl
                    .environment
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            };
            prepared.insert(
                id.clone(),
                PreparedComponent {
                    pre,
                    context: Arc::new(context),
                },
            );
        }
        // One pool of outbound connections for the whole app, as Spin keeps.
        let outbound = OutboundClient::new();
        // Cyclic: each component's instances chain back into the host, weakly.
        let inner = Arc::new_cyclic(|host: &Weak<HostInner>| {
            let components = prepared
                .into_iter()
                .map(|(id, PreparedComponent { pre, context })| {
                    let instances = ComponentInstances {
                        engine: runtime.engine.clone(),
                        pre,
                        context,
                        chain: ServiceChain(host.clone()),
                        outbound: outbound.clone(),
                        max_memory_bytes: config.max_memory_bytes,
                        request_timeout: config.request_timeout,
                        reuse: config.reuse,
                    };
                    let handler = ProxyHandler::new(instances);
                    (id, LoadedComponent { handler })
                })
                .collect();
            HostInner { router, components }
        });
        Ok(Self { inner })
    }

    /// Routable `(route, component id)` pairs.
    pub fn routes(&self) -> Vec<(String, String)> {
        self.inner
            .router
            .routes()
            .map(|(r, c)| (r.to_owned(), c.to_owned()))
            .collect()
    }

    /// Handles one HTTP request: route, instantiate, call `wasi:http/handler.handle`.
    ///
    /// Never fails: no route → 404; trap, timeout, limit or guest error → 500 for this
    /// request only.
    pub async fn handle(
        &self,
        request: Request<Incoming>,
        client_addr: SocketAddr,
    ) -> Response<HostBody> {
        let request = request.map(|body| body.map_err(Into::into).boxed_unsync());
        self.handle_wasi(request, client_addr).await
    }

    /// [`Host::handle`] for any request body (embedders and tests may not have `Incoming`).
    /// Body errors reach the guest as `error-code::internal-error`.
    pub async fn handle_body<B>(
        &self,
        request: Request<B>,
        client_addr: SocketAddr,
    ) -> Response<HostBody>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let request = request.map(|body| {
            body.map_err(|err| {
                wasmtime_wasi_http::Error::InternalError(Some(err.into().to_string()))
            })
            .boxed_unsync()
        });
        self.handle_wasi(request, client_addr).await
    }

    async fn handle_wasi(
        &self,
        request: Request<WasiBody>,
        client_addr: SocketAddr,
    ) -> Response<HostBody> {
        let path = request.uri().path().to_owned();
        let Some(route) = self.inner.router.route(&path) else {
            return plain(StatusCode::NOT_FOUND, "Not Found");
        };
        // Path only: query strings carry viewer tokens and must never reach the logs.
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

    async fn dispatch(
        &self,
        request: Request<WasiBody>,
        route: RouteMatch,
        origin: Origin,
    ) -> Response<HostBody> {
        let Some(component) = self.inner.components.get(&route.component_id) else {
            return plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
        };
        let request = match prepare_request(request, &route, origin) {
            Ok(request) => request,
            Err(err) => {
                tracing::info!(%err, "malformed request");
                return plain(StatusCode::BAD_REQUEST, "Bad Request");
            }
        };

        match component.handler.handle((), request).await {
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

/// In-process dispatch of chained requests, handed to each instance's outbound policy. Weak,
/// so a running instance never keeps an unloaded app alive.
#[derive(Clone)]
pub(crate) struct ServiceChain(Weak<HostInner>);

impl ServiceChain {
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
        let Some(inner) = self.0.upgrade() else {
            return Err(wasmtime_wasi_http::Error::InternalError(Some(
                "the app was unloaded".to_owned(),
            )));
        };
        if !inner.components.contains_key(component) {
            return Err(wasmtime_wasi_http::Error::DestinationNotFound);
        }
        let host = Host { inner };
        let route = RouteMatch::chained(component, request.uri().path());
        let span = tracing::info_span!(
            "chained",
            component = %component,
            path = %request.uri().path(),
        );
        let response = host
            .dispatch(request, route, Origin::Chained)
            .instrument(span)
            .await;
        Ok(response.map(|body| {
            body.map_err(|error| wasmtime_wasi_http::Error::InternalError(Some(error.to_string())))
                .boxed_unsync()
        }))
    }
}

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

fn plain(status: StatusCode, text: &'static str) -> Response<HostBody> {
    let mut response = Response::new(HostBody::Full(Some(Bytes::from_static(text.as_bytes()))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain"),
    );
    response
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn target_sources_follow_the_configured_target_dir() {
        let base = Path::new("/app");
        let source = Path::new("target/wasm32-wasip2/wasm/key.wasm");
        assert_eq!(
            resolve_source(base, source, None),
            Path::new("/app/target/wasm32-wasip2/wasm/key.wasm")
        );
        assert_eq!(
            resolve_source(base, source, Some(Path::new("/t/host"))),
            Path::new("/t/host/wasm32-wasip2/wasm/key.wasm")
        );
        assert_eq!(
            resolve_source(base, Path::new("other/x.wasm"), Some(Path::new("/t"))),
            Path::new("/app/other/x.wasm")
        );
    }

    #[test]
    fn store_labels_must_be_file_name_safe() {
        assert!(check_store_label("default").is_ok());
        assert!(check_store_label("pay-per_view2").is_ok());
        for bad in ["", "../x", "a/b", "a.b", "ä"] {
            assert!(check_store_label(bad).is_err(), "{bad}");
        }
    }
}

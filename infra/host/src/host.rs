//! Loading an app (every component compiled and checked once, as Spin does at startup) and the
//! [`Host`] handle that serves its requests through [`crate::dispatch`].

use crate::allowed_hosts::AllowedHosts;
use crate::body::HostBody;
use crate::chain::ServiceChain;
use crate::config::HostConfig;
use crate::context::ComponentContext;
use crate::dispatch::App;
use crate::engine::Runtime;
use crate::instance::{self, InstanceState};
use crate::kv::KvStores;
use crate::manifest::Manifest;
use crate::outbound::OutboundClient;
use crate::reuse::ComponentInstances;
use crate::routing::Router;
use crate::variables::Variables;
use anyhow::Context as _;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use wasmtime::component::Linker;
use wasmtime_wasi_http::handler::ProxyHandler;
use wasmtime_wasi_http::p3::bindings::ServicePre;

/// A loaded application: router plus compiled components. Cheap to clone.
#[derive(Clone)]
pub struct Host {
    app: Arc<App>,
}

/// What [`Host::load`] prepares for each component before the instances can be wired to the
/// app (which chained requests need).
struct PreparedComponent {
    pre: ServicePre<InstanceState>,
    context: Arc<ComponentContext>,
}

/// What every component of one app is prepared with.
struct Loading<'a> {
    config: &'a HostConfig,
    manifest: &'a Manifest,
    variables: Arc<Variables>,
    kv: Arc<KvStores>,
    runtime: &'a Runtime,
    linker: Linker<InstanceState>,
}

impl Loading<'_> {
    /// Checks component `id` as Spin does at startup (store labels, allowed hosts) and
    /// compiles and links it.
    fn prepare(&self, id: &str) -> anyhow::Result<PreparedComponent> {
        let decl = &self.manifest.components[id];
        for label in &decl.key_value_stores {
            check_store_label(label)?;
        }
        let hosts = decl
            .allowed_outbound_hosts
            .iter()
            .map(|entry| self.variables.expand_str(entry))
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("component {id:?}: allowed_outbound_hosts"))?;
        let allowed_hosts = AllowedHosts::parse(&hosts)
            .with_context(|| format!("component {id:?}: allowed_outbound_hosts"))?;
        let path = resolve_source(
            &self.manifest.base_dir,
            &decl.source,
            self.config.target_dir.as_deref(),
        );
        let component = self
            .runtime
            .component(&path)
            .with_context(|| format!("component {id:?}: cannot load {}", path.display()))?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("component {id:?}: unsatisfied imports"))?;
        let pre = ServicePre::new(pre)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("component {id:?}: not a wasi:http@0.3 service"))?;
        let context = ComponentContext {
            id: id.to_owned(),
            key_value_stores: decl.key_value_stores.iter().cloned().collect(),
            kv: Arc::clone(&self.kv),
            variables: Arc::clone(&self.variables),
            allowed_hosts: Arc::new(allowed_hosts),
            environment: decl
                .environment
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        Ok(PreparedComponent {
            pre,
            context: Arc::new(context),
        })
    }
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
            config.env_variables.get(key).cloned()
        })?;
        let router = Router::build(&manifest.http_triggers)?;
        let kv = Arc::new(KvStores::new(config.data_dir.join("kv"))?);
        let runtime = Runtime::shared()?;
        let loading = Loading {
            config,
            manifest: &manifest,
            variables: Arc::new(variables),
            kv,
            runtime: &runtime,
            linker: instance::linker(&runtime.engine)?,
        };
        let mut prepared = HashMap::new();
        for trigger in &manifest.http_triggers {
            let id = &trigger.component;
            if !prepared.contains_key(id) {
                prepared.insert(id.clone(), loading.prepare(id)?);
            }
        }
        // One pool of outbound connections for the whole app, as Spin keeps.
        let outbound = OutboundClient::new();
        // Cyclic: each component's instances chain back into the app, weakly.
        let app = Arc::new_cyclic(|app: &Weak<App>| {
            let chain = ServiceChain::new(app.clone());
            let components = prepared
                .into_iter()
                .map(|(id, PreparedComponent { pre, context })| {
                    let instances = ComponentInstances {
                        engine: runtime.engine.clone(),
                        pre,
                        context,
                        chain: chain.clone(),
                        outbound: outbound.clone(),
                        max_memory_bytes: config.max_memory_bytes,
                        request_timeout: config.request_timeout,
                        reuse: config.reuse,
                    };
                    (id, ProxyHandler::new(instances))
                })
                .collect();
            App { router, components }
        });
        Ok(Self { app })
    }

    /// Routable `(route, component id)` pairs.
    pub fn routes(&self) -> Vec<(String, String)> {
        self.app
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
        self.app.handle(request, client_addr).await
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
        self.app.handle(request, client_addr).await
    }
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

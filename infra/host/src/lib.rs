//! gatecast-host: runs gatecast's Spin app (`spin.toml`, manifest v2) on wasmtime.
//!
//! Production runs on Spin 4.1+; this host exists because the Spin CLI cannot be installed on
//! the development and CI machines. It implements what gatecast's components import, with
//! Spin's semantics: `wasi:http@0.3` service components (instances reused across requests with
//! Spin's limits), Spin's routing and `spin-*` headers, `spin:key-value@3.0.0` on SQLite,
//! `spin:variables@3.0.0` with Spin's template and provider rules, and `allowed_outbound_hosts`
//! enforcement on outbound HTTP.
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! let config = gatecast_host::HostConfig::new("spin.toml");
//! let host = gatecast_host::Host::load(&config)?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! gatecast_host::serve(host, listener, std::future::pending()).await
//! # }
//! ```
//!
//! Layout, from the listener inwards (no module imports one that imports it back):
//!
//! - [`serve`] (`server.rs`): the HTTP/1 listener; [`Host`] (`host.rs`): loads an app from a
//!   [`HostConfig`] (`config.rs`; the binary, `main.rs`, is the only reader of the environment).
//! - `dispatch.rs`: routes a request to its component and rewrites it as Spin does (`spin-*`
//!   headers); `chain.rs`: local service chaining back into the app; `body.rs`: [`HostBody`].
//! - `engine.rs`: the process-wide wasmtime engine, epoch ticker and compile cache;
//!   `reuse.rs`: instance pools with Spin's limits; `instance.rs`: one instance's store and
//!   linker; `outbound.rs`: outbound HTTP, policed by [`allowed_hosts`].
//! - The Spin interfaces: `bindings.rs`, [`kv`], `wasi_keyvalue.rs`, [`variables`], with
//!   `context.rs` (a component's permissions), [`manifest`] and [`routing`].

pub mod allowed_hosts;
mod bindings;
mod body;
mod chain;
mod config;
mod context;
mod dispatch;
mod engine;
mod host;
mod instance;
pub mod kv;
pub mod manifest;
mod outbound;
mod reuse;
pub mod routing;
mod server;
pub mod variables;
mod wasi_keyvalue;

pub use body::{BodyError, HostBody};
pub use config::HostConfig;
pub use host::Host;
pub use reuse::ReusePolicy;
pub use server::serve;

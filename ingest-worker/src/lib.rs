//! gatecast's ingest worker: RTMP publish in, AES-128 encrypted HLS out.
//!
//! Layout:
//! - [`media`]: the pure stages, fed bytes and time, no I/O: FLV tags → H.264/AAC elementary
//!   streams → MPEG-TS → segmenter → AES-128 encryptor, and the live playlist state.
//! - The I/O shell around it (tokio), mini-redis style:
//!   - [`server`]: [`Worker`] binds, runs and shuts down everything; [`run`] in one call.
//!   - `listener`: accept loop, connection caps (per client address, then worker-wide with a
//!     `Semaphore`), one task per connection.
//!   - `connection`: handshake and `rml_rtmp` session, publish accept/reject, media into the
//!     pipeline. A bad connection ends only itself.
//!   - `auth`: keys file (reloaded on change/SIGHUP), nginx-rtmp `on_publish` hooks, per-client
//!     rate limit of failed keys.
//!   - `registry`: one publisher per public name, cut-off handles.
//!   - `uploader`: per-stream, key → segment → playlist writes with retries, drop-oldest buffer.
//!   - `admin`: `/metrics`, `/healthz`, `POST /streams/<name>/cutoff`.
//!   - [`storage`]: `file://` / `s3://` URLs to `Arc<dyn ObjectStore>`.
//!   - [`config`]: typed configuration (the binary maps flags onto it).
//!   - [`metrics`]: counters and their Prometheus rendering.
//!
//! Secrets: the publisher's stream key only ever travels in a `StreamKey` whose formatting
//! prints a SHA-256 fingerprint; object paths, playlists, metric labels and logs carry the public
//! name only.
#![warn(missing_docs)]

pub mod media;

mod admin;
mod auth;
pub mod config;
mod connection;
mod listener;
pub mod metrics;
mod registry;
pub mod server;
pub mod storage;
mod uploader;

pub use config::Config;
pub use server::{Worker, run};
pub use storage::Stores;

//! The whole gatecast stack in one process tree: embedded S3, the ingest worker and the wasm host
//! serving `spin.toml`, wired together the way a deployment wires them (the worker takes its
//! stream keys from the edge through the nginx-rtmp `on_publish` hook, and renews the channel's
//! publish lease through `on_update`, so more workers ([`Stack::worker_config`]) pointed at the
//! same edge never publish one channel twice).
//!
//! Used by `gatecast-dev` and by the end-to-end tests, which need free ports (bind to port 0 and
//! read the bound addresses back) and the ability to take storage down mid-stream.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use base64::Engine as _;
// Re-exported for tools that run a worker against the same embedded S3 (gatecast-bench).
pub use gatecast_s3::{S3Config, S3Reader, S3Server};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Bucket of playlists and segments.
pub const MEDIA_BUCKET: &str = "gatecast-media";
/// Private bucket of AES keys.
pub const KEY_BUCKET: &str = "gatecast-keys";
/// Region the embedded S3 endpoint signs for.
const REGION: &str = "us-east-1";

/// How to start the stack.
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// State that survives restarts: secrets, S3 objects, KV stores.
    pub data_dir: PathBuf,
    /// `spin.toml` of the app to serve.
    pub manifest: PathBuf,
    /// Cargo target directory holding the built components (`None`: `target/` beside the manifest).
    pub target_dir: Option<PathBuf>,
    /// RTMP listen address.
    pub rtmp: SocketAddr,
    /// HTTP (edge functions) listen address.
    pub http: SocketAddr,
    /// S3 listen address.
    pub s3: SocketAddr,
    /// Segmenting and key rotation of the ingest worker.
    pub segment_seconds: u64,
    /// A fresh key every this many segments.
    pub segments_per_key: u32,
    /// Seconds between the worker's `on_update` calls; the edge's publish lease lasts three.
    pub notify_update_seconds: u64,
    /// Keep everything and write a replay playlist.
    pub record: bool,
    /// Extra app variables (override `spin.toml` defaults), e.g. `sign_segments = "true"`.
    pub variables: BTreeMap<String, String>,
}

impl StackConfig {
    /// Ports 0 everywhere (the OS picks), 2 s segments and 3 segments per key: a layout for tests
    /// that need several key periods within seconds.
    pub fn ephemeral(data_dir: impl Into<PathBuf>, manifest: impl Into<PathBuf>) -> Self {
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        Self {
            data_dir: data_dir.into(),
            manifest: manifest.into(),
            target_dir: None,
            rtmp: any_port,
            http: any_port,
            s3: any_port,
            segment_seconds: 2,
            segments_per_key: 3,
            notify_update_seconds: 30,
            record: false,
            variables: BTreeMap::new(),
        }
    }
}

/// Secrets generated on first start and kept in `<data>/secrets.json`, so a restart keeps
/// signed URLs, stream keys and stored objects valid.
#[derive(Clone, Serialize, Deserialize)]
pub struct Secrets {
    /// Bearer token of the management API.
    pub api_token: String,
    /// Shared secret of the publish hooks.
    pub hook_secret: String,
    /// `signing_keys` variable (`kid:<base64>`).
    pub signing_keys: String,
    /// Seed 000 `SECRET_KEY`.
    pub session_secret: String,
    /// WMSAuth password.
    pub wmsauth_key: String,
    /// S3 access key id.
    pub s3_access_key: String,
    /// S3 secret access key.
    pub s3_secret_key: String,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets { <redacted> }")
    }
}

impl Secrets {
    fn generate() -> anyhow::Result<Self> {
        Ok(Self {
            api_token: random_text(24)?,
            hook_secret: random_text(24)?,
            signing_keys: format!(
                "k1:{}",
                base64::engine::general_purpose::STANDARD.encode(random_bytes(32)?)
            ),
            session_secret: random_text(24)?,
            wmsauth_key: random_text(16)?,
            s3_access_key: format!("gatecast-{}", random_text(6)?),
            s3_secret_key: random_text(24)?,
        })
    }

    /// Reads `<data>/secrets.json`, creating it (mode 0600) on first start.
    pub fn load_or_create(data_dir: &Path) -> anyhow::Result<Self> {
        let path = data_dir.join("secrets.json");
        match std::fs::read(&path) {
            Ok(bytes) => {
                // Created 0644 by older versions.
                restrict(&path, 0o600)?;
                serde_json::from_slice(&bytes)
                    .with_context(|| format!("{} is not valid", path.display()))
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let secrets = Self::generate()?;
                write_private(&path, &serde_json::to_vec_pretty(&secrets)?)?;
                Ok(secrets)
            }
            Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
        }
    }
}

/// A running stack.
pub struct Stack {
    /// Where RTMP publishers connect.
    pub rtmp_addr: SocketAddr,
    /// Base URL of the edge functions, e.g. `http://127.0.0.1:3000`.
    pub http_base: String,
    /// Where the S3 endpoint listens.
    pub s3_addr: SocketAddr,
    /// Admin port of the ingest worker (`/metrics`; no admin token is set, so its cut-off
    /// route is off).
    pub ingest_admin_addr: SocketAddr,
    /// The secrets the stack runs with.
    pub secrets: Secrets,
    /// The edge components' read-only storage credentials.
    pub readers: EdgeReaders,
    /// The ingest worker's configuration, the template of [`Stack::worker_config`].
    worker_config: gatecast_ingest::Config,
    /// Root folder of the S3 buckets.
    pub s3_root: PathBuf,
    shutdown: CancellationToken,
    storage: S3Server,
    services: Vec<(&'static str, JoinHandle<anyhow::Result<()>>)>,
}

impl Stack {
    /// Starts S3, then the host, then the ingest worker, each on its listener, and returns once
    /// all three accept connections.
    pub async fn start(config: StackConfig) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
        // It holds the secrets, dev.json (a stream key) and the key bucket: owner only.
        restrict(&config.data_dir, 0o700)?;
        let secrets = Secrets::load_or_create(&config.data_dir)?;
        let shutdown = CancellationToken::new();
        let s3_root = config.data_dir.join("s3");

        // Storage has its own lifetime, not the stack's shutdown token: on shutdown the worker
        // still writes the final playlists, so storage stops last (see `Stack::shutdown`).
        let readers = EdgeReaders::generate()?;
        let storage =
            S3Server::start(storage_config(&s3_root, &secrets, &readers), config.s3).await?;
        let s3_addr = storage.addr();
        let http_listener = bind(config.http, "HTTP").await?;
        let http_addr = http_listener.local_addr()?;
        let http_base = format!("http://{http_addr}");
        let mut host_config = gatecast_host::HostConfig::new(&config.manifest);
        host_config.data_dir = config.data_dir.join("host");
        host_config.target_dir = config.target_dir.clone();
        host_config.variables = app_variables(&config, &secrets, &readers, s3_addr);
        let host = gatecast_host::Host::load(&host_config).context("cannot load the Spin app")?;
        let host_task = tokio::spawn(gatecast_host::serve(
            host,
            http_listener,
            shutdown.clone().cancelled_owned(),
        ));

        let worker_config = ingest_config(&config, &secrets, s3_addr, &http_base);
        let stores = gatecast_ingest::Stores::open(&worker_config.storage)
            .context("cannot open the worker's storage")?;
        let worker = gatecast_ingest::Worker::bind(worker_config.clone(), stores).await?;
        let (rtmp_addr, ingest_admin_addr) = (worker.rtmp_addr(), worker.admin_addr());
        let worker_task = tokio::spawn(worker.run(shutdown.clone().cancelled_owned()));

        Ok(Self {
            rtmp_addr,
            http_base,
            s3_addr,
            ingest_admin_addr,
            secrets,
            readers,
            worker_config,
            s3_root,
            shutdown,
            storage,
            services: vec![("edge host", host_task), ("ingest worker", worker_task)],
        })
    }

    /// The configuration of one more ingest worker for this stack (same storage, same edge
    /// hooks), on fresh loopback ports: what scaling out with several workers looks like.
    pub fn worker_config(&self) -> gatecast_ingest::Config {
        let mut config = self.worker_config.clone();
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        config.rtmp.listen = any_port;
        config.admin_listen = any_port;
        config
    }

    /// Starts one more ingest worker ([`Stack::worker_config`], `on_update` every
    /// `notify_update`) on a runtime of its own, so that it can also be crashed.
    pub async fn start_worker(&self, notify_update: Duration) -> anyhow::Result<ExtraWorker> {
        let mut config = self.worker_config();
        config.auth.notify_update_interval = notify_update;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .context("cannot build the extra worker's runtime")?;
        let (started, bound) = tokio::sync::oneshot::channel();
        let stop = CancellationToken::new();
        let task = runtime.spawn({
            let stop = stop.clone();
            async move {
                let stores = gatecast_ingest::Stores::open(&config.storage)
                    .context("cannot open the worker's storage")?;
                let worker = gatecast_ingest::Worker::bind(config, stores).await?;
                let _ = started.send(worker.rtmp_addr());
                worker.run(stop.cancelled_owned()).await
            }
        });
        let mut worker = ExtraWorker {
            rtmp_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            runtime: Some(runtime),
            stop,
            task,
        };
        match bound.await {
            Ok(addr) => worker.rtmp_addr = addr,
            Err(_) => {
                let failure = (&mut worker.task).await;
                anyhow::bail!("extra worker did not start: {failure:?}");
            }
        }
        Ok(worker)
    }

    /// `rtmp://…/live/<stream key>`
    pub fn publish_url(&self, stream_key: &str) -> String {
        format!("rtmp://{}/live/{stream_key}", self.rtmp_addr)
    }

    /// Takes the S3 endpoint down (connections refused) until [`Stack::start_storage`].
    pub async fn stop_storage(&mut self) -> anyhow::Result<()> {
        self.storage.stop().await
    }

    /// Brings the S3 endpoint back on the same address and folder.
    pub async fn start_storage(&mut self) -> anyhow::Result<()> {
        self.storage.restart().await
    }

    /// Stops everything: the worker finalizes live playlists (while storage is still up), then
    /// the host and storage stop.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        for (name, task) in self.services.drain(..) {
            task.await
                .with_context(|| format!("{name} panicked"))?
                .with_context(|| format!("{name} failed"))?;
        }
        self.stop_storage().await
    }
}

/// One more ingest worker of a [`Stack`] ([`Stack::start_worker`]), on its own tokio runtime.
pub struct ExtraWorker {
    /// Where its RTMP publishers connect.
    pub rtmp_addr: SocketAddr,
    /// `Some` until crashed or stopped (dropping a runtime inside async code would panic).
    runtime: Option<tokio::runtime::Runtime>,
    stop: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl ExtraWorker {
    /// `rtmp://…/live/<stream key>` on this worker.
    pub fn publish_url(&self, stream_key: &str) -> String {
        format!("rtmp://{}/live/{stream_key}", self.rtmp_addr)
    }

    /// Graceful stop: live playlists finalized, `on_publish_done` sent.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        self.stop.cancel();
        (&mut self.task)
            .await
            .context("extra worker panicked")?
            .context("extra worker failed")
    }

    /// Kills the worker as a crash would: its runtime and every task on it stop at once, so
    /// no final playlist, no `on_publish_done` and no further `on_update` is sent; its
    /// publishers' connections are reset.
    pub fn crash(mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for ExtraWorker {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The read-only storage credentials of the edge components: the media one (playlist,
/// segment) reads only the media bucket, the key one (key component) only the key bucket, as a
/// deployment's bucket policies would have it; the worker keeps the credential that writes.
/// Fresh on every start and never written down: only this process's S3 endpoint and host use
/// them.
#[derive(Debug, Clone)]
pub struct EdgeReaders {
    /// `media_access_key`/`media_secret_key`.
    pub media: S3Reader,
    /// `key_store_access_key`/`key_store_secret_key`.
    pub keys: S3Reader,
}

impl EdgeReaders {
    fn generate() -> anyhow::Result<Self> {
        let reader = |name: &str, bucket: &str| -> anyhow::Result<S3Reader> {
            Ok(S3Reader {
                access_key: format!("{name}-{}", random_text(6)?),
                secret_key: random_text(24)?,
                buckets: vec![bucket.to_owned()],
            })
        };
        Ok(Self {
            media: reader("media", MEDIA_BUCKET)?,
            keys: reader("keys", KEY_BUCKET)?,
        })
    }
}

fn storage_config(root: &Path, secrets: &Secrets, readers: &EdgeReaders) -> S3Config {
    S3Config {
        root: root.to_path_buf(),
        buckets: vec![MEDIA_BUCKET.to_owned(), KEY_BUCKET.to_owned()],
        access_key: secrets.s3_access_key.clone(),
        secret_key: secrets.s3_secret_key.clone(),
        readers: vec![readers.media.clone(), readers.keys.clone()],
    }
}

/// The app variables the host gets: secrets, and storage pointed at the embedded endpoint with
/// the edge's read-only credentials.
fn app_variables(
    config: &StackConfig,
    secrets: &Secrets,
    readers: &EdgeReaders,
    s3_addr: SocketAddr,
) -> BTreeMap<String, String> {
    let key_period = config.segment_seconds * u64::from(config.segments_per_key);
    let mut variables = BTreeMap::from([
        ("api_token".to_owned(), secrets.api_token.clone()),
        ("hook_secret".to_owned(), secrets.hook_secret.clone()),
        ("signing_keys".to_owned(), secrets.signing_keys.clone()),
        ("session_secret".to_owned(), secrets.session_secret.clone()),
        ("wmsauth_key".to_owned(), secrets.wmsauth_key.clone()),
        ("storage_endpoint".to_owned(), format!("http://{s3_addr}")),
        ("storage_region".to_owned(), REGION.to_owned()),
        (
            "media_access_key".to_owned(),
            readers.media.access_key.clone(),
        ),
        (
            "media_secret_key".to_owned(),
            readers.media.secret_key.clone(),
        ),
        (
            "key_store_access_key".to_owned(),
            readers.keys.access_key.clone(),
        ),
        (
            "key_store_secret_key".to_owned(),
            readers.keys.secret_key.clone(),
        ),
        ("media_bucket".to_owned(), MEDIA_BUCKET.to_owned()),
        ("key_bucket".to_owned(), KEY_BUCKET.to_owned()),
        ("key_period_seconds".to_owned(), key_period.to_string()),
        // The local stack has no public bucket in front of `live/`: segments are served by the
        // segment function, which only passes signed requests.
        ("sign_segments".to_owned(), "true".to_owned()),
    ]);
    variables.extend(config.variables.clone());
    variables
}

/// The worker writes to the embedded S3 (keys in their own bucket) and asks the edge's api
/// component whether a stream key may publish, exactly as it would ask nginx-rtmp's hook.
fn ingest_config(
    config: &StackConfig,
    secrets: &Secrets,
    s3_addr: SocketAddr,
    http_base: &str,
) -> gatecast_ingest::Config {
    let mut worker = gatecast_ingest::Config::local(format!("s3://{MEDIA_BUCKET}"));
    worker.rtmp.listen = config.rtmp;
    worker.storage.keys_url = Some(format!("s3://{KEY_BUCKET}"));
    worker.storage.s3.endpoint = Some(format!("http://{s3_addr}"));
    worker.storage.s3.region = REGION.to_owned();
    worker.storage.s3.access_key_id = Some(secrets.s3_access_key.clone());
    worker.storage.s3.secret_access_key = Some(secrets.s3_secret_key.clone());
    worker.auth.on_publish = Some(format!(
        "{http_base}/hooks/on-publish?secret={}",
        secrets.hook_secret
    ));
    worker.auth.on_publish_done = Some(format!(
        "{http_base}/hooks/on-publish-done?secret={}",
        secrets.hook_secret
    ));
    // The api tells the heartbeat from a publish by its `call=update_publish` field.
    worker.auth.on_update = worker.auth.on_publish.clone();
    worker.auth.notify_update_interval = Duration::from_secs(config.notify_update_seconds.max(1));
    worker.media.segment_duration = Duration::from_secs(config.segment_seconds);
    worker.media.segments_per_key = config.segments_per_key;
    worker.media.record = config.record;
    worker
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot bind the {what} listener on {addr}"))
}

fn random_bytes(count: usize) -> anyhow::Result<Vec<u8>> {
    let mut bytes = vec![0; count];
    getrandom::fill(&mut bytes).map_err(|error| anyhow::anyhow!("OS random source: {error}"))?;
    Ok(bytes)
}

/// URL-safe random text: fits in URLs, headers and RTMP stream names without escaping.
fn random_text(bytes: usize) -> anyhow::Result<String> {
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes(bytes)?))
}

/// Writes (or overwrites) a file only its owner can read: it holds secrets.
pub(crate) fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    // `mode` applies to a new file only.
    restrict(path, 0o600)?;
    file.write_all(contents)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Sets `mode` on `path` (owner-only modes for secrets).
fn restrict(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot restrict {} to {mode:o}", path.display()))
}

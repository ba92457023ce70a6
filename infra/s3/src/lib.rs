//! An embedded S3 endpoint: `s3s` speaking the S3 protocol (with SigV4 authentication) over a
//! folder through `s3s-fs`. Buckets are sub-folders of the root. One writer credential may do
//! anything; reader credentials may only read objects of their own buckets ([`S3Reader`]), so
//! the local stack enforces the least privilege a deployment's bucket policies would.
//!
//! [`serve`] runs it on a listener until a shutdown future completes; [`S3Server`] wraps that in a
//! handle that can take the endpoint down and bring it back on the same port and folder.
//!
//! Why embedded rather than a separate server: `cargo run -p gatecast-dev` must bring the whole
//! stack up on a fresh machine, and the tests need to stop and restart storage mid-stream on the
//! same port and folder to prove that nothing referenced is ever lost.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnectionBuilder;
use hyper_util::server::graceful::GracefulShutdown;
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::SimpleAuth;
use s3s::path::S3Path;
use s3s::service::S3ServiceBuilder;
use s3s::{S3Result, s3_error};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How the embedded endpoint is set up.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// Folder holding one sub-folder per bucket.
    pub root: PathBuf,
    /// Buckets created (as folders) before serving, if missing.
    pub buckets: Vec<String>,
    /// The writer's access key id: every operation on every bucket (the ingest worker).
    pub access_key: String,
    /// Its secret; requests must be SigV4-signed with it.
    pub secret_key: String,
    /// Read-only credentials, each limited to its buckets (the edge components).
    pub readers: Vec<S3Reader>,
}

/// A credential that may only read objects (`GetObject`, `HeadObject`) of some buckets.
#[derive(Clone)]
pub struct S3Reader {
    /// Access key id.
    pub access_key: String,
    /// Its secret.
    pub secret_key: String,
    /// The buckets it may read; every other request with it is denied (403 `AccessDenied`).
    pub buckets: Vec<String>,
}

impl std::fmt::Debug for S3Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Reader")
            .field("access_key", &self.access_key)
            .field("buckets", &self.buckets)
            .finish_non_exhaustive()
    }
}

/// Who may do what: the writer everything, a reader only object reads in its buckets, an
/// unsigned request nothing. s3s calls it for every request once authentication is on.
struct Policy {
    writer: String,
    readers: Vec<S3Reader>,
}

#[async_trait::async_trait]
impl S3Access for Policy {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let Some(credentials) = cx.credentials() else {
            return Err(s3_error!(AccessDenied, "Signature is required"));
        };
        if credentials.access_key == self.writer {
            return Ok(());
        }
        let reads = matches!(cx.s3_op().name(), "GetObject" | "HeadObject");
        let allowed = match cx.s3_path() {
            S3Path::Object { bucket, .. } if reads => self.readers.iter().any(|reader| {
                reader.access_key == credentials.access_key
                    && reader.buckets.iter().any(|name| **name == **bucket)
            }),
            _ => false,
        };
        if allowed {
            Ok(())
        } else {
            Err(s3_error!(AccessDenied))
        }
    }
}

/// Serves S3 on `listener` until `shutdown` completes, then lets open requests finish.
pub async fn serve(
    config: S3Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    for bucket in &config.buckets {
        create_bucket_folder(&config.root, bucket)?;
    }
    let file_system = s3s_fs::FileSystem::new(&config.root).map_err(|error| {
        anyhow::anyhow!("cannot open S3 root {}: {error:?}", config.root.display())
    })?;
    let service = {
        let mut builder = S3ServiceBuilder::new(file_system);
        let mut auth =
            SimpleAuth::from_single(config.access_key.as_str(), config.secret_key.as_str());
        for reader in &config.readers {
            auth.register(reader.access_key.clone(), reader.secret_key.as_str().into());
        }
        builder.set_auth(auth);
        builder.set_access(Policy {
            writer: config.access_key.clone(),
            readers: config.readers.clone(),
        });
        builder.build()
    };
    let local_addr = listener.local_addr().context("S3 listener address")?;
    tracing::info!(%local_addr, root = %config.root.display(), "S3 endpoint serving");

    let connections = ConnectionBuilder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, _peer)) => {
                    // Keep-alive clients (the host pools its connections) would otherwise see
                    // every small response's body wait for their delayed ACK of its head.
                    if let Err(error) = socket.set_nodelay(true) {
                        tracing::debug!(%error, "cannot set TCP_NODELAY");
                    }
                    let connection = connections.serve_connection(TokioIo::new(socket), service.clone());
                    let connection = graceful.watch(connection.into_owned());
                    tokio::spawn(async move {
                        if let Err(error) = connection.await {
                            tracing::debug!(%error, "S3 connection ended with an error");
                        }
                    });
                }
                // Accept errors (e.g. too many open files) are transient: log and keep serving.
                Err(error) => tracing::warn!(%error, "S3 accept failed"),
            },
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    graceful.shutdown().await;
    tracing::info!(%local_addr, "S3 endpoint stopped");
    Ok(())
}

fn create_bucket_folder(root: &Path, bucket: &str) -> anyhow::Result<()> {
    let valid = !bucket.is_empty()
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !bucket.contains("..");
    anyhow::ensure!(valid, "invalid bucket name {bucket:?}");
    let folder = root.join(bucket);
    std::fs::create_dir_all(&folder)
        .with_context(|| format!("cannot create bucket folder {}", folder.display()))
}

/// A running endpoint that can be stopped and restarted on the same address and folder.
#[derive(Debug)]
pub struct S3Server {
    addr: SocketAddr,
    config: S3Config,
    running: Option<(CancellationToken, JoinHandle<anyhow::Result<()>>)>,
}

impl S3Server {
    /// Binds `addr` (port 0 picks a free port) and starts serving.
    pub async fn start(config: S3Config, addr: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot bind the S3 endpoint on {addr}"))?;
        let addr = listener.local_addr().context("S3 listener address")?;
        let mut server = Self {
            addr,
            config,
            running: None,
        };
        server.spawn(listener);
        Ok(server)
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`, the endpoint URL S3 clients are given.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The configuration it serves (root folder, buckets, credentials).
    pub fn config(&self) -> &S3Config {
        &self.config
    }

    /// Stops accepting (the port refuses connections) and waits for open requests to end.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some((stop, task)) = self.running.take() {
            stop.cancel();
            task.await.context("S3 task panicked")??;
        }
        Ok(())
    }

    /// Serves again on the same address and folder; a no-op while running.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        if self.running.is_none() {
            let listener = TcpListener::bind(self.addr)
                .await
                .with_context(|| format!("cannot rebind the S3 endpoint on {}", self.addr))?;
            self.spawn(listener);
        }
        Ok(())
    }

    fn spawn(&mut self, listener: TcpListener) {
        let stop = CancellationToken::new();
        let task = tokio::spawn(serve(
            self.config.clone(),
            listener,
            stop.clone().cancelled_owned(),
        ));
        self.running = Some((stop, task));
    }
}

impl Drop for S3Server {
    /// A dropped handle must not leave a server behind (tests drop theirs on failure paths).
    fn drop(&mut self) {
        if let Some((stop, _task)) = self.running.take() {
            stop.cancel();
        }
    }
}

//! An embedded S3 endpoint: `s3s` speaking the S3 protocol (with SigV4 authentication) over a
//! folder through `s3s-fs`. Buckets are sub-folders of the root.
//!
//! Why embedded rather than a separate server: `cargo run -p gatecast-dev` must bring the whole
//! stack up on a fresh machine, and the tests need to stop and restart storage mid-stream on the
//! same port and folder to prove that nothing referenced is ever lost.

use std::future::Future;
use std::path::{Path, PathBuf};

use anyhow::Context;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnectionBuilder;
use hyper_util::server::graceful::GracefulShutdown;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;

/// How the embedded endpoint is set up.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// Folder holding one sub-folder per bucket.
    pub root: PathBuf,
    /// Buckets created (as folders) before serving, if missing.
    pub buckets: Vec<String>,
    /// The only accepted access key id.
    pub access_key: String,
    /// Its secret; requests must be SigV4-signed with it.
    pub secret_key: String,
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
        builder.set_auth(SimpleAuth::from_single(
            config.access_key.as_str(),
            config.secret_key.as_str(),
        ));
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

//! Wiring: bind the sockets, start the listener, the admin endpoint and the keys-file
//! watcher, and shut all of it down in order.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::{self, AdminState};
use crate::auth::Authorizer;
use crate::auth::hook::HookClient;
use crate::auth::keys_file::{self, KeysTable, SharedKeys};
use crate::auth::rate_limit::FailedAttemptLimiter;
use crate::config::{Config, MediaSettings, RtmpConfig};
use crate::listener::{AddressSlots, Listener};
use crate::media::SegmentBuffers;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::storage::Stores;
use crate::uploader::UploadBudget;

/// How often the keys file's modification time is checked.
const KEYS_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// After the shutdown deadline, how long aborted uploaders get to notice and return.
const ABORT_GRACE: Duration = Duration::from_secs(1);

/// State shared by every connection and uploader of one worker.
pub struct Shared {
    /// RTMP limits and app name.
    pub rtmp: RtmpConfig,
    /// Segmenting and playlist settings.
    pub media: MediaSettings,
    /// Upload buffer caps, per stream and worker-wide.
    pub upload_budget: Arc<UploadBudget>,
    /// Segment memory, reused from one segment to the next across streams.
    pub segment_buffers: SegmentBuffers,
    /// Publish decisions.
    pub authorizer: Arc<Authorizer>,
    /// Live streams.
    pub registry: Arc<Registry>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Where objects go.
    pub stores: Stores,
    /// Every connection, uploader and hook call; shutdown waits on it.
    pub tracker: TaskTracker,
    /// Fired when shutdown's deadline passes: uploaders stop retrying.
    pub abort: CancellationToken,
}

/// A worker with its sockets bound, ready to [`Worker::run`]. Binding first lets callers (tests,
/// the dev launcher) configure port 0 and learn the real ports before anything connects.
pub struct Worker {
    rtmp_listener: TcpListener,
    admin_listener: TcpListener,
    shared: Arc<Shared>,
    keys: Option<(std::path::PathBuf, SharedKeys, Option<keys_file::FileStamp>)>,
    max_connections: usize,
    shutdown_timeout: Duration,
    admin_token: Option<crate::config::AdminToken>,
}

impl Worker {
    /// Loads the keys file, checks the hook URLs and binds both listeners.
    pub async fn bind(config: Config, stores: Stores) -> anyhow::Result<Self> {
        let keys = match &config.auth.keys_file {
            Some(path) => {
                let stamp = keys_file::file_stamp(path);
                let table = KeysTable::load(path).context("loading the keys file")?;
                tracing::info!(channels = table.len(), path = %path.display(), "keys file loaded");
                Some((path.clone(), Arc::new(RwLock::new(Arc::new(table))), stamp))
            }
            None => None,
        };
        let auth = &config.auth;
        let hook = match (&auth.on_publish, &auth.on_publish_done, &auth.on_update) {
            (None, None, None) => None,
            (on_publish, on_publish_done, on_update) => {
                let client = HookClient::new(
                    on_publish.as_deref(),
                    on_publish_done.as_deref(),
                    auth.hook_timeout,
                )
                .context("checking the hook URLs")?
                .with_public_names(auth.on_publish_names_are_public);
                Some(match on_update {
                    Some(url) => client
                        .with_update(url, auth.notify_update_interval, auth.notify_update_strict)
                        .context("checking the on_update URL")?,
                    None => client,
                })
            }
        };
        if keys.is_none() && hook.as_ref().is_none_or(|hook| !hook.has_on_publish()) {
            tracing::warn!(
                "neither a keys file nor an on_publish hook is configured: every publish will be refused"
            );
        }
        let limiter = FailedAttemptLimiter::new(
            config.auth.failed_attempts_burst,
            config.auth.failed_attempt_interval,
        );
        let authorizer = Arc::new(Authorizer::new(
            keys.as_ref().map(|(_, k, _)| Arc::clone(k)),
            hook,
            limiter,
        ));

        let rtmp_listener = TcpListener::bind(config.rtmp.listen)
            .await
            .with_context(|| format!("binding RTMP on {}", config.rtmp.listen))?;
        let admin_listener = TcpListener::bind(config.admin_listen)
            .await
            .with_context(|| format!("binding admin HTTP on {}", config.admin_listen))?;

        let metrics = Arc::new(Metrics::default());
        let shared = Arc::new(Shared {
            registry: Registry::new(Arc::clone(&metrics)),
            metrics,
            upload_budget: UploadBudget::new(
                config.max_buffer_bytes,
                config.max_total_buffer_bytes,
            ),
            segment_buffers: SegmentBuffers::default(),
            media: config.media,
            authorizer,
            stores,
            tracker: TaskTracker::new(),
            abort: CancellationToken::new(),
            rtmp: config.rtmp.clone(),
        });
        Ok(Self {
            rtmp_listener,
            admin_listener,
            shared,
            keys,
            max_connections: config.rtmp.max_connections,
            shutdown_timeout: config.shutdown_timeout,
            admin_token: config.admin_token,
        })
    }

    /// The bound RTMP address (with the real port when configured with port 0).
    pub fn rtmp_addr(&self) -> SocketAddr {
        // A bound listener always has a local address; 0.0.0.0:0 only if the OS lost it.
        self.rtmp_listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The bound admin HTTP address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Serves until `shutdown` resolves, then: stops accepting, ends every live publish (open
    /// segment flushed, playlist finalized with `#EXT-X-ENDLIST`) and waits for all of it up to
    /// the configured shutdown timeout. Past the deadline uploads are abandoned.
    pub async fn run(self, shutdown: impl Future) -> anyhow::Result<()> {
        let Self {
            rtmp_listener,
            admin_listener,
            shared,
            keys,
            max_connections,
            shutdown_timeout,
            admin_token,
        } = self;
        let stop = CancellationToken::new();
        tracing::info!(rtmp = %rtmp_listener.local_addr()?, admin = %admin_listener.local_addr()?, "ingest worker listening");

        let admin_state = Arc::new(AdminState {
            metrics: Arc::clone(&shared.metrics),
            registry: Arc::clone(&shared.registry),
            shutdown: stop.clone(),
            token: admin_token,
        });
        let admin_stop = CancellationToken::new();
        let admin_task = tokio::spawn(admin::serve(
            admin_listener,
            admin_state,
            admin_stop.clone(),
        ));

        let watcher = keys.map(|(path, table, stamp)| {
            let registry = Arc::clone(&shared.registry);
            tokio::spawn(keys_file::watch(
                path,
                table,
                stamp,
                KEYS_POLL_INTERVAL,
                move |table| {
                    for name in registry.cut_off_revoked(table) {
                        tracing::info!(%name, "stream key revoked in the keys file: cutting off");
                    }
                },
                stop.clone(),
            ))
        });

        let listener = Listener {
            listener: rtmp_listener,
            shared: Arc::clone(&shared),
            limit: Arc::new(Semaphore::new(max_connections.max(1))),
            per_address: AddressSlots::new(shared.rtmp.max_connections_per_address),
            shutdown: stop.clone(),
        };
        shared.tracker.spawn(listener.run());

        shutdown.await;
        tracing::info!(
            live = ?shared.registry.live_names(),
            "shutting down: finalizing live streams"
        );
        stop.cancel();
        shared.tracker.close();
        if tokio::time::timeout(shutdown_timeout, shared.tracker.wait())
            .await
            .is_err()
        {
            tracing::error!(timeout = ?shutdown_timeout, "shutdown deadline passed; abandoning unfinished uploads");
            shared.abort.cancel();
            let _ = tokio::time::timeout(ABORT_GRACE, shared.tracker.wait()).await;
        }
        admin_stop.cancel();
        let _ = admin_task.await;
        if let Some(watcher) = watcher {
            let _ = watcher.await;
        }
        tracing::info!("ingest worker stopped");
        Ok(())
    }
}

/// Opens the configured stores, binds, and serves until `shutdown` resolves.
///
/// To learn the bound ports when configured with port 0, use [`Worker::bind`] and
/// [`Worker::rtmp_addr`] / [`Worker::admin_addr`] before [`Worker::run`].
pub async fn run(config: Config, shutdown: impl Future) -> anyhow::Result<()> {
    let stores = Stores::open(&config.storage).context("opening storage")?;
    Worker::bind(config, stores).await?.run(shutdown).await
}

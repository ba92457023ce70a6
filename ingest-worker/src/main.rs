//! `gatecast-ingest`: parse flags into a [`Config`], set up tracing, run until SIGTERM/ctrl-c.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use clap::Parser;
use gatecast_ingest::Config;
use gatecast_ingest::config::{AdminToken, S3Options};

/// jemalloc rather than glibc's malloc. Segment buffers are reused through the worker's pool
/// (`media::SegmentBuffers`), but a backlog (storage slow, CPU short) frees far more of them
/// than the pool keeps, from whichever thread uploaded them. Under that churn glibc's
/// per-thread arenas fragmented: RSS stayed at ~6 MB per stream after the backlog drained and
/// malloc itself grew costly, so the worker stayed slow after the cause was gone. jemalloc
/// reuses freed extents across threads and returns idle ones to the OS. See
/// docs/BENCHMARKS.md.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Media storage when --storage is not given.
const DEFAULT_STORAGE: &str = "file://./.gatecast/media";
/// Key storage when neither --storage nor --key-storage is given: beside the default media
/// folder, not inside it.
const DEFAULT_KEY_STORAGE: &str = "file://./.gatecast/keys";

/// RTMP publish in (rtmp://HOST:PORT/<app>/<stream key>), AES-128 encrypted HLS out to
/// S3-compatible storage.
#[derive(Debug, Parser)]
#[command(name = "gatecast-ingest", version)]
struct Cli {
    /// RTMP listen address.
    #[arg(long, env = "GATECAST_LISTEN", default_value = "0.0.0.0:1935")]
    listen: SocketAddr,
    /// The RTMP application publishers must use.
    #[arg(long, env = "GATECAST_APP", default_value = "live")]
    app: String,
    /// Admin HTTP listen address (/metrics, /healthz, POST /streams/<name>/cutoff).
    #[arg(long, env = "GATECAST_ADMIN", default_value = "127.0.0.1:9935")]
    admin: SocketAddr,
    /// Bearer token (at least 16 characters) of the admin control routes (POST
    /// /streams/<name>/cutoff). Without it those routes are refused; /metrics and /healthz
    /// stay open.
    #[arg(long, env = "GATECAST_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Keys file: TOML `[[channel]] key = "…" name = "…" active = true`; reloaded on change and SIGHUP.
    #[arg(long, env = "GATECAST_KEYS")]
    keys: Option<PathBuf>,
    /// nginx-rtmp compatible on_publish URL (http://), asked for keys the keys file does not list.
    #[arg(long, env = "GATECAST_ON_PUBLISH")]
    on_publish: Option<String>,
    /// nginx-rtmp compatible on_publish_done URL (http://).
    #[arg(long, env = "GATECAST_ON_PUBLISH_DONE")]
    on_publish_done: Option<String>,
    /// nginx-rtmp compatible on_update URL (http://), called every --notify-update-seconds while
    /// a stream is live; a non-2xx/3xx answer cuts the publisher off. Point it at the edge api's
    /// on_publish hook to keep each channel to one publisher across workers.
    #[arg(long, env = "GATECAST_ON_UPDATE")]
    on_update: Option<String>,
    /// Seconds between on_update calls (nginx-rtmp's notify_update_timeout).
    #[arg(long, env = "GATECAST_NOTIFY_UPDATE_SECONDS", default_value_t = 30)]
    notify_update_seconds: u64,
    /// Also cut the publisher off when on_update is unreachable, times out or answers 3xx
    /// (nginx-rtmp's notify_update_strict).
    #[arg(long, env = "GATECAST_NOTIFY_UPDATE_STRICT")]
    notify_update_strict: bool,
    /// Publish under the presented name when on_publish answers 2xx without a rename (3xx
    /// Location). Off: such a publish is refused, since that name is usually the secret stream
    /// key. Only for hooks whose stream names are public (the secret in a query argument).
    #[arg(long, env = "GATECAST_ON_PUBLISH_NAMES_ARE_PUBLIC")]
    on_publish_names_are_public: bool,
    /// Seconds a hook may take before the publish is refused.
    #[arg(long, env = "GATECAST_HOOK_TIMEOUT_SECS", default_value_t = 5)]
    hook_timeout_secs: u64,
    /// Failed key attempts allowed per client address in a burst.
    #[arg(long, env = "GATECAST_AUTH_FAILURE_BURST", default_value_t = 5)]
    auth_failure_burst: u32,
    /// Seconds per further failed key attempt after the burst.
    #[arg(
        long,
        env = "GATECAST_AUTH_FAILURE_INTERVAL_SECS",
        default_value_t = 10
    )]
    auth_failure_interval_secs: u64,
    /// Media storage: file:///path (or file://relative/path) or s3://BUCKET[/PREFIX].
    #[arg(long, env = "GATECAST_STORAGE", default_value = DEFAULT_STORAGE)]
    storage: String,
    /// Private storage for key objects (same URL forms), apart from the media. Required
    /// unless --storage is the default (keys then go to file://./.gatecast/keys) or
    /// --insecure-keys-in-media-storage is given.
    #[arg(long, env = "GATECAST_KEY_STORAGE")]
    key_storage: Option<String>,
    /// Allow keys in the media storage (no --key-storage, or one inside --storage), where
    /// whoever reads the media (a public or CDN-fronted bucket) reads the keys too.
    #[arg(long, env = "GATECAST_INSECURE_KEYS_IN_MEDIA_STORAGE")]
    insecure_keys_in_media_storage: bool,
    /// S3 endpoint, e.g. http://127.0.0.1:9000 (path-style; plain HTTP allowed).
    #[arg(long, env = "GATECAST_S3_ENDPOINT")]
    s3_endpoint: Option<String>,
    /// S3 region.
    #[arg(long, env = "GATECAST_S3_REGION", default_value = "us-east-1")]
    s3_region: String,
    /// S3 access key id.
    #[arg(long, env = "AWS_ACCESS_KEY_ID")]
    s3_access_key_id: Option<String>,
    /// S3 secret access key.
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    s3_secret_access_key: Option<String>,
    /// S3 session token.
    #[arg(long, env = "AWS_SESSION_TOKEN", hide_env_values = true)]
    s3_session_token: Option<String>,
    /// Target segment duration in seconds (segments are cut at the next keyframe).
    #[arg(long, env = "GATECAST_SEGMENT_SECONDS", default_value_t = 4.0)]
    segment_seconds: f64,
    /// A fresh AES-128 key every N segments.
    #[arg(long, env = "GATECAST_SEGMENTS_PER_KEY", default_value_t = 6)]
    segments_per_key: u32,
    /// Segments in the live playlist.
    #[arg(long, env = "GATECAST_PLAYLIST_SEGMENTS", default_value_t = 6)]
    playlist_segments: usize,
    /// Prefix of key URIs in playlists.
    #[arg(long, env = "GATECAST_KEY_URI_PREFIX", default_value = "/keys")]
    key_uri_prefix: String,
    /// Keep every segment and write live/<name>/vod.m3u8 too.
    #[arg(long, env = "GATECAST_RECORD")]
    record: bool,
    /// Maximum simultaneous RTMP connections.
    #[arg(long, env = "GATECAST_MAX_CONNECTIONS", default_value_t = 256)]
    max_connections: usize,
    /// Maximum simultaneous RTMP connections from one client address (an IPv6 /64 counts as
    /// one); further ones are closed at accept, before the handshake. Raise it for encoders
    /// behind one NAT address.
    #[arg(
        long,
        env = "GATECAST_MAX_CONNECTIONS_PER_ADDRESS",
        default_value_t = 8
    )]
    max_connections_per_address: usize,
    /// Seconds from connecting (handshake included) to an accepted publish; a connection that
    /// has not published by then is closed.
    #[arg(long, env = "GATECAST_PUBLISH_DEADLINE_SECS", default_value_t = 10)]
    publish_deadline_secs: u64,
    /// KiB a connection may send after the handshake before its publish is accepted (the
    /// commands before a publish take well under 1 KiB); media messages get --max-message-mb
    /// only once the key is verified.
    #[arg(long, env = "GATECAST_MAX_PREAUTH_KIB", default_value_t = 64)]
    max_preauth_kib: usize,
    /// Upload buffer cap per stream, in MiB; past it the oldest unsent segments are dropped.
    #[arg(long, env = "GATECAST_MAX_BUFFER_MB", default_value_t = 64)]
    max_buffer_mb: usize,
    /// Upload buffer cap across all streams, in MiB; past it, the stream pushing a segment
    /// drops its own oldest unsent ones (each stream keeps its newest). Shedding is also how a
    /// worker that fell behind on CPU catches up: a larger cap holds a longer backlog that a
    /// loaded worker may never drain. Set it to what the worker may use beyond ~2 MB per live
    /// stream.
    #[arg(long, env = "GATECAST_MAX_TOTAL_BUFFER_MB", default_value_t = 1024)]
    max_total_buffer_mb: usize,
    /// Seconds for the RTMP handshake.
    #[arg(long, env = "GATECAST_HANDSHAKE_TIMEOUT_SECS", default_value_t = 10)]
    handshake_timeout_secs: u64,
    /// Seconds without input before a connection is closed.
    #[arg(long, env = "GATECAST_IDLE_TIMEOUT_SECS", default_value_t = 30)]
    idle_timeout_secs: u64,
    /// Largest RTMP chunk size a client may set.
    #[arg(long, env = "GATECAST_MAX_CHUNK_SIZE", default_value_t = 1 << 20)]
    max_chunk_size: u32,
    /// Largest RTMP media message, in MiB.
    #[arg(long, env = "GATECAST_MAX_MESSAGE_MB", default_value_t = 8)]
    max_message_mb: usize,
    /// Seconds shutdown may take to finalize live playlists.
    #[arg(long, env = "GATECAST_SHUTDOWN_TIMEOUT_SECS", default_value_t = 15)]
    shutdown_timeout_secs: u64,
}

impl Cli {
    fn into_config(self) -> anyhow::Result<Config> {
        ensure!(
            self.segment_seconds.is_finite() && self.segment_seconds > 0.0,
            "--segment-seconds must be positive"
        );
        ensure!(
            self.segments_per_key > 0,
            "--segments-per-key must be at least 1"
        );
        ensure!(
            self.notify_update_seconds > 0,
            "--notify-update-seconds must be at least 1"
        );
        ensure!(
            self.playlist_segments > 0,
            "--playlist-segments must be at least 1"
        );
        ensure!(
            self.publish_deadline_secs > 0,
            "--publish-deadline-secs must be at least 1"
        );
        let admin_token = match self.admin_token {
            Some(token) => Some(AdminToken::new(token).with_context(|| {
                format!(
                    "--admin-token must be at least {} characters",
                    AdminToken::MIN_LEN
                )
            })?),
            None => None,
        };
        let mut config = Config::local(self.storage);
        config.rtmp.listen = self.listen;
        config.rtmp.app = self.app;
        config.rtmp.max_connections = self.max_connections;
        config.rtmp.max_connections_per_address = self.max_connections_per_address;
        config.rtmp.publish_deadline = Duration::from_secs(self.publish_deadline_secs);
        config.rtmp.max_preauth_bytes = self.max_preauth_kib << 10;
        config.rtmp.handshake_timeout = Duration::from_secs(self.handshake_timeout_secs);
        config.rtmp.idle_timeout = Duration::from_secs(self.idle_timeout_secs);
        config.rtmp.max_chunk_size = self.max_chunk_size;
        config.rtmp.max_message_size = self.max_message_mb << 20;
        config.admin_listen = self.admin;
        config.admin_token = admin_token;
        config.auth.keys_file = self.keys;
        config.auth.on_publish = self.on_publish;
        config.auth.on_publish_done = self.on_publish_done;
        config.auth.on_update = self.on_update;
        config.auth.notify_update_interval = Duration::from_secs(self.notify_update_seconds);
        config.auth.notify_update_strict = self.notify_update_strict;
        config.auth.hook_timeout = Duration::from_secs(self.hook_timeout_secs);
        config.auth.on_publish_names_are_public = self.on_publish_names_are_public;
        config.auth.failed_attempts_burst = self.auth_failure_burst;
        config.auth.failed_attempt_interval = Duration::from_secs(self.auth_failure_interval_secs);
        config.storage.keys_url = match self.key_storage {
            Some(url) => Some(url),
            None if config.storage.media_url == DEFAULT_STORAGE => {
                Some(DEFAULT_KEY_STORAGE.to_owned())
            }
            None => None,
        };
        config.storage.insecure_keys_in_media_store = self.insecure_keys_in_media_storage;
        let mut s3 = S3Options::default();
        s3.endpoint = self.s3_endpoint;
        s3.region = self.s3_region;
        s3.access_key_id = self.s3_access_key_id;
        s3.secret_access_key = self.s3_secret_access_key;
        s3.session_token = self.s3_session_token;
        config.storage.s3 = s3;
        config.media.segment_duration = Duration::from_secs_f64(self.segment_seconds);
        config.media.segments_per_key = self.segments_per_key;
        config.media.playlist_segments = self.playlist_segments;
        config.media.key_uri_prefix = self.key_uri_prefix;
        config.media.record = self.record;
        config.max_buffer_bytes = self.max_buffer_mb << 20;
        config.max_total_buffer_bytes = self.max_total_buffer_mb << 20;
        config.shutdown_timeout = Duration::from_secs(self.shutdown_timeout_secs);
        Ok(config)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Cli::parse().into_config()?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GATECAST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    gatecast_ingest::run(config, shutdown_signal())
        .await
        .context("ingest worker failed")
}

/// Resolves on ctrl-c or (Unix) SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; ctrl-c only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

//! The worker's typed configuration.
//!
//! Only the binary parses flags and environment; everything here is plain data so
//! tests and the dev launcher can build a [`Config`] directly, usually from [`Config::local`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::auth::hook::redacted_url;

/// Everything the worker needs to run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// The RTMP side: where to listen and how much to tolerate.
    pub rtmp: RtmpConfig,
    /// Admin HTTP listen address (`/metrics`, `/healthz`, cut-off). Port 0 picks a free port.
    pub admin_listen: SocketAddr,
    /// Bearer token of the admin control routes (`POST /streams/<name>/cutoff`). Without one
    /// those routes are refused; `/metrics` and `/healthz` need none.
    pub admin_token: Option<AdminToken>,
    /// How stream keys are checked.
    pub auth: AuthConfig,
    /// Where segments, playlists and keys go.
    pub storage: StorageConfig,
    /// Segmenting, key rotation and playlist shape.
    pub media: MediaSettings,
    /// Memory cap, in bytes, of encrypted segments waiting for upload, **per stream**. Past it the
    /// oldest not-yet-uploaded segments are dropped so a slow or down store never stalls the
    /// RTMP reader (the publisher would otherwise see its own connection freeze).
    pub max_buffer_bytes: usize,
    /// Memory cap, in bytes, of encrypted segments waiting for upload across **all** streams.
    /// Past it, the stream that pushes a segment sheds its own oldest unsent ones (each stream
    /// keeps its newest), so a worker that falls behind everywhere at once sheds instead of
    /// running out of memory.
    pub max_total_buffer_bytes: usize,
    /// How long shutdown may take to finalize live playlists before the worker gives up.
    pub shutdown_timeout: Duration,
}

/// The admin control routes' bearer token. `Debug` never prints it.
#[derive(Clone)]
pub struct AdminToken(String);

impl AdminToken {
    /// Shortest accepted token: guessing 16 random characters over the network is hopeless.
    pub const MIN_LEN: usize = 16;

    /// The token, or `None` when it is shorter than [`AdminToken::MIN_LEN`].
    pub fn new(token: impl Into<String>) -> Option<Self> {
        let token = token.into();
        (token.len() >= Self::MIN_LEN).then_some(Self(token))
    }

    /// Whether `presented` is the token, compared in constant time (through SHA-256, so the
    /// comparison does not reveal the token's length either).
    pub fn matches(&self, presented: &str) -> bool {
        use sha2::{Digest as _, Sha256};
        use subtle::ConstantTimeEq as _;
        let (expected, presented) = (Sha256::digest(&self.0), Sha256::digest(presented));
        expected.ct_eq(&presented).into()
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

/// RTMP listener settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RtmpConfig {
    /// Listen address; port 0 picks a free port (see `Worker::rtmp_addr`).
    pub listen: SocketAddr,
    /// The only RTMP application accepted (`rtmp://host/<app>/<stream key>`).
    pub app: String,
    /// Cap on simultaneous connections; the excess is closed right after accept.
    pub max_connections: usize,
    /// Cap on simultaneous connections from one client address (an IPv6 /64 counts as one),
    /// checked first at accept, before the handshake: one client cannot hold every slot.
    pub max_connections_per_address: usize,
    /// A connection must have its publish accepted within this time of connecting (and of its
    /// previous publish ending), or it is closed: an unauthenticated connection holds its slot
    /// for no longer.
    pub publish_deadline: Duration,
    /// Bytes a connection may send after the handshake before its publish is accepted. The
    /// commands before a publish take a few hundred bytes; without this cap each
    /// unauthenticated connection could make the RTMP session buffer a message up to
    /// `max_message_size`. Media messages get `max_message_size` once the key is verified.
    pub max_preauth_bytes: usize,
    /// The RTMP handshake must complete within this time.
    pub handshake_timeout: Duration,
    /// A connection that sends nothing for this long is closed.
    pub idle_timeout: Duration,
    /// Largest chunk size a client may announce with `SetChunkSize`.
    pub max_chunk_size: u32,
    /// Largest single audio/video/command message accepted, in bytes.
    pub max_message_size: usize,
}

/// Stream key checks. At least one of `keys_file` and `on_publish` should be set, otherwise
/// every publish is refused.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct AuthConfig {
    /// TOML file of `[[channel]] key = "…" name = "…" active = true`, reloaded on change.
    pub keys_file: Option<PathBuf>,
    /// nginx-rtmp compatible `on_publish` URL (plain `http://`), asked when the keys file does
    /// not know the key.
    pub on_publish: Option<String>,
    /// nginx-rtmp compatible `on_publish_done` URL (plain `http://`).
    pub on_publish_done: Option<String>,
    /// nginx-rtmp compatible `on_update` URL (plain `http://`): called every
    /// `notify_update_interval` while a stream is live (`call=update_publish`); an answer other
    /// than 2xx/3xx cuts the publisher off. Pointed at the edge api's hook, it renews the
    /// channel's publish lease, which is what keeps a channel to one publisher across workers.
    pub on_update: Option<String>,
    /// Period of `on_update` calls (nginx-rtmp's `notify_update_timeout`, default 30 s). Also
    /// sent to every hook as `update_interval`, so the edge sizes the lease to it.
    pub notify_update_interval: Duration,
    /// nginx-rtmp's `notify_update_strict`: also cut the publisher off when `on_update` cannot
    /// be reached, times out or answers 3xx.
    pub notify_update_strict: bool,
    /// How long a hook may take before the publish is refused.
    pub hook_timeout: Duration,
    /// Whether a 2xx from `on_publish` without a rename (3xx `Location`) publishes under the
    /// name the publisher presented. Off by default: in nginx-rtmp setups that name is the
    /// secret stream key, so publishing it would hand the key to every viewer. Turn it on
    /// only when the hook's names are public (the secret travels in a query argument).
    pub on_publish_names_are_public: bool,
    /// Failed key attempts a client address may make in a burst.
    pub failed_attempts_burst: u32,
    /// After the burst, one more failed attempt is allowed per this interval.
    pub failed_attempt_interval: Duration,
}

impl std::fmt::Debug for AuthConfig {
    /// Hand-written so the hook URLs show without their query or userinfo, where the hook's
    /// secret travels.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = |url: &Option<String>| url.as_deref().map(redacted_url);
        f.debug_struct("AuthConfig")
            .field("keys_file", &self.keys_file)
            .field("on_publish", &url(&self.on_publish))
            .field("on_publish_done", &url(&self.on_publish_done))
            .field("on_update", &url(&self.on_update))
            .field("notify_update_interval", &self.notify_update_interval)
            .field("notify_update_strict", &self.notify_update_strict)
            .field("hook_timeout", &self.hook_timeout)
            .field(
                "on_publish_names_are_public",
                &self.on_publish_names_are_public,
            )
            .field("failed_attempts_burst", &self.failed_attempts_burst)
            .field("failed_attempt_interval", &self.failed_attempt_interval)
            .finish()
    }
}

/// Object storage locations.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StorageConfig {
    /// `file:///path` or `s3://bucket[/prefix]` for playlists and segments.
    pub media_url: String,
    /// Location of key objects (same URL forms), apart from the media (neither the media
    /// location nor inside it): required unless `insecure_keys_in_media_store`.
    pub keys_url: Option<String>,
    /// Allow keys in the media store: without `keys_url`, or with a `keys_url` inside
    /// `media_url`. Anyone who can read the media store (a public or CDN-fronted bucket, a web
    /// server's folder) then reads the keys too.
    pub insecure_keys_in_media_store: bool,
    /// S3 options, used by `s3://` URLs.
    pub s3: S3Options,
}

/// Connection details for S3-compatible stores.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct S3Options {
    /// Endpoint URL (e.g. `http://127.0.0.1:9000`); AWS when unset.
    pub endpoint: Option<String>,
    /// Region; signing needs one even for non-AWS servers.
    pub region: String,
    /// Access key id; when unset `object_store`'s default credential chain applies.
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
    /// Session token for temporary credentials.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for S3Options {
    /// Hand-written so the secret never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Options")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Segmenting, key rotation and playlist shape.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MediaSettings {
    /// Target segment duration; segments are cut at the first keyframe past it.
    pub segment_duration: Duration,
    /// A fresh AES key every this many segments.
    pub segments_per_key: u32,
    /// Segments in the live playlist window.
    pub playlist_segments: usize,
    /// Prefix of key URIs written into playlists (`<prefix>/<name>/<id>.key`).
    pub key_uri_prefix: String,
    /// Also keep a growing `vod.m3u8` and never delete segments or keys.
    pub record: bool,
}

impl Config {
    /// A config for local runs and tests: RTMP and admin on `127.0.0.1:0`, files under
    /// `storage_url`, no keys file or hook (set `auth` afterwards), short timeouts.
    pub fn local(storage_url: impl Into<String>) -> Self {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        Self {
            rtmp: RtmpConfig {
                listen: loopback,
                app: "live".to_owned(),
                max_connections: 64,
                max_connections_per_address: 8,
                publish_deadline: Duration::from_secs(10),
                max_preauth_bytes: 64 << 10,
                handshake_timeout: Duration::from_secs(10),
                idle_timeout: Duration::from_secs(30),
                max_chunk_size: 1 << 20,
                max_message_size: 8 << 20,
            },
            admin_listen: loopback,
            admin_token: None,
            auth: AuthConfig {
                notify_update_interval: Duration::from_secs(30),
                hook_timeout: Duration::from_secs(5),
                failed_attempts_burst: 5,
                failed_attempt_interval: Duration::from_secs(10),
                ..AuthConfig::default()
            },
            storage: StorageConfig {
                media_url: storage_url.into(),
                keys_url: None,
                insecure_keys_in_media_store: false,
                s3: S3Options {
                    region: "us-east-1".to_owned(),
                    ..S3Options::default()
                },
            },
            media: MediaSettings {
                segment_duration: Duration::from_secs(4),
                segments_per_key: 6,
                playlist_segments: 6,
                key_uri_prefix: gatecast_core::layout::DEFAULT_KEY_URI_PREFIX.to_owned(),
                record: false,
            },
            max_buffer_bytes: 64 << 20,
            max_total_buffer_bytes: 1 << 30,
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

//! Publish authorization: is this stream key allowed, and under which public name?
//!
//! Sources, in order: the keys file (if configured), then the nginx-rtmp `on_publish` hook (if
//! configured) for keys the file does not list. Failed attempts are rate-limited per client
//! address before any source is asked.
//!
//! The secret key only ever lives in a [`StreamKey`], whose `Debug`/`Display` print a short
//! SHA-256 fingerprint, so it cannot reach a log line, a path or a metric by accident.

pub mod hook;
pub mod keys_file;
pub mod rate_limit;

use std::fmt;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use gatecast_core::hook::KeyDigest;
use gatecast_core::layout::StreamName;
use http::StatusCode;

use self::hook::{HookClient, HookVerdict};
use self::keys_file::{KeyLookup, SharedKeys};
use self::rate_limit::FailedAttemptLimiter;
use crate::metrics::RefusalReason;

/// A publisher's secret stream key. Formatting shows only [`StreamKey::fingerprint`].
#[derive(Clone)]
pub struct StreamKey(String);

impl StreamKey {
    /// Wraps a key as received.
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key itself; only for comparing and for the `on_publish` hook body.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// SHA-256 of the key, for lookups and for remembering which key a live stream used.
    pub fn digest(&self) -> KeyDigest {
        KeyDigest::of(&self.0)
    }

    /// The first 8 hex digits of the key's SHA-256: enough to tell keys apart in logs,
    /// useless for publishing.
    pub fn fingerprint(&self) -> String {
        self.digest().fingerprint()
    }
}

impl fmt::Debug for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StreamKey(sha256:{}…)", self.fingerprint())
    }
}

impl fmt::Display for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}…", self.fingerprint())
    }
}

/// Fields of the RTMP `connect` command that nginx-rtmp forwards to its hooks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectInfo {
    /// `tcUrl`: the URL the client connected to, e.g. `rtmp://host:1935/live`.
    pub tcurl: String,
    /// `flashVer`: client software, e.g. `FMLE/3.0 (compatible; Lavf61.7.100)`.
    pub flashver: String,
    /// `swfUrl`, usually empty for encoders.
    pub swfurl: String,
    /// `pageUrl`, usually empty for encoders.
    pub pageurl: String,
}

/// Everything known about a publish attempt.
#[derive(Debug, Clone)]
pub struct PublishRequest {
    /// The stream name the publisher used, without its query string: the secret key.
    pub key: StreamKey,
    /// Query arguments from the publisher's RTMP URL, decoded, in order.
    pub args: Vec<(String, String)>,
    /// The RTMP application.
    pub app: String,
    /// The client's IP address.
    pub addr: IpAddr,
    /// The worker's id for the connection (nginx-rtmp's `clientid`).
    pub client_id: u64,
    /// Random id of this publish attempt (32 hex digits), sent to every hook as `lease`: the
    /// edge's publish lease names its holder by it.
    pub lease_id: String,
    /// What the client said in `connect`.
    pub connect: ConnectInfo,
}

impl PublishRequest {
    /// Splits a publish name `key?arg=value&…` into the key and its decoded arguments.
    pub fn split_name(name: &str) -> (StreamKey, Vec<(String, String)>) {
        match name.split_once('?') {
            Some((key, query)) => {
                let args = url::form_urlencoded::parse(query.as_bytes())
                    .into_owned()
                    .collect();
                (StreamKey::new(key), args)
            }
            None => (StreamKey::new(name), Vec::new()),
        }
    }
}

/// Which source allowed a publish; decides whether a keys-file edit can cut the stream off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthSource {
    /// The keys file listed the key as active.
    KeysFile,
    /// The `on_publish` hook allowed it.
    Hook,
}

/// The outcome of [`Authorizer::authorize`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Publish under `name`.
    Allowed {
        /// The validated public name.
        name: StreamName,
        /// Who allowed it.
        source: AuthSource,
    },
    /// Refuse the publish.
    Refused(RefusalReason),
}

/// Checks publish requests against the keys file and hook, with per-client rate limiting.
pub struct Authorizer {
    keys: Option<SharedKeys>,
    hook: Option<HookClient>,
    /// A std `Mutex`: held for a map lookup only, never across an await.
    limiter: Mutex<FailedAttemptLimiter>,
}

impl Authorizer {
    /// Builds an authorizer; `keys` and `hook` are both optional (with neither, all refuse).
    pub fn new(
        keys: Option<SharedKeys>,
        hook: Option<HookClient>,
        limiter: FailedAttemptLimiter,
    ) -> Self {
        Self {
            keys,
            hook,
            limiter: Mutex::new(limiter),
        }
    }

    /// Decides on a publish request. Failed key attempts (unknown, inactive, hook refusal)
    /// count against the client's rate limit; an unreachable hook does not, since the
    /// publisher is not at fault.
    pub async fn authorize(&self, request: &PublishRequest) -> Decision {
        if !self.with_limiter(|limiter| limiter.is_allowed(request.addr, Instant::now())) {
            return Decision::Refused(RefusalReason::RateLimited);
        }
        let decision = self.decide(request).await;
        if let Decision::Refused(RefusalReason::UnknownKey | RefusalReason::InactiveKey) = decision
        {
            self.with_limiter(|limiter| limiter.handle_failure(request.addr, Instant::now()));
        }
        decision
    }

    async fn decide(&self, request: &PublishRequest) -> Decision {
        if let Some(keys) = &self.keys {
            match keys_file::current(keys).lookup(&request.key.digest()) {
                KeyLookup::Active(name) => {
                    return Decision::Allowed {
                        name,
                        source: AuthSource::KeysFile,
                    };
                }
                KeyLookup::Inactive => return Decision::Refused(RefusalReason::InactiveKey),
                KeyLookup::Unknown => {}
            }
        }
        let Some(hook) = self.hook.as_ref().filter(|hook| hook.has_on_publish()) else {
            return Decision::Refused(RefusalReason::UnknownKey);
        };
        // With a 3xx the hook names the public stream. A 2xx keeps the presented name, which in
        // nginx-rtmp setups is usually the secret key itself: published, it would reach object
        // paths, key URIs and every viewer. So a 2xx only publishes when the operator declared
        // the hook's names public (the secret then travels in a query argument).
        let public = match hook.on_publish(request).await {
            HookVerdict::Allowed if hook.names_are_public() => request.key.expose().to_owned(),
            HookVerdict::Allowed => {
                tracing::warn!(
                    "on_publish hook allowed without a rename (3xx Location): refused, since the \
                     presented name is the secret stream key (--on-publish-names-are-public \
                     allows it)"
                );
                return Decision::Refused(RefusalReason::HookNoRename);
            }
            HookVerdict::Renamed(name) => name,
            // 409: the key is fine but its channel is live elsewhere (the edge api's answer
            // while another worker holds the channel's lease). Not a failed key attempt, so a
            // streamer retrying while an old session lapses is not rate-limited for it.
            HookVerdict::Refused(StatusCode::CONFLICT) => {
                tracing::info!("on_publish hook: the channel is live elsewhere");
                return Decision::Refused(RefusalReason::NameBusy);
            }
            HookVerdict::Refused(status) => {
                tracing::info!(%status, "on_publish hook refused");
                return Decision::Refused(RefusalReason::UnknownKey);
            }
            HookVerdict::Unavailable => return Decision::Refused(RefusalReason::HookUnavailable),
        };
        match StreamName::parse(&public) {
            Ok(name) => Decision::Allowed {
                name,
                source: AuthSource::Hook,
            },
            Err(error) => {
                tracing::warn!(%error, "on_publish hook allowed a name that is not a valid stream name");
                Decision::Refused(RefusalReason::InvalidName)
            }
        }
    }

    /// Whether a stream allowed by `source` with key `digest` under `name` is still allowed by
    /// the keys file in `table`. Hook-allowed streams are not the keys file's to revoke.
    pub fn is_revoked(
        table: &keys_file::KeysTable,
        source: AuthSource,
        digest: &KeyDigest,
        name: &StreamName,
    ) -> bool {
        source == AuthSource::KeysFile
            && !matches!(table.lookup(digest), KeyLookup::Active(current) if current == *name)
    }

    /// The `on_update` period, when that hook is configured.
    pub fn update_interval(&self) -> Option<Duration> {
        self.hook.as_ref().and_then(HookClient::update_interval)
    }

    /// Runs the `on_update` hook for a live publish; whether it may go on.
    pub async fn handle_update(
        &self,
        request: &PublishRequest,
        elapsed: Duration,
        timestamp_ms: u32,
    ) -> bool {
        match &self.hook {
            Some(hook) => hook.on_update(request, elapsed, timestamp_ms).await,
            None => true,
        }
    }

    /// Runs the `on_publish_done` hook, if any.
    pub async fn handle_publish_done(&self, request: &PublishRequest) {
        if let Some(hook) = &self.hook {
            hook.on_publish_done(request).await;
        }
    }

    fn with_limiter<T>(&self, f: impl FnOnce(&mut FailedAttemptLimiter) -> T) -> T {
        match self.limiter.lock() {
            Ok(mut limiter) => f(&mut limiter),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, RwLock};

    fn request(key: &str, addr: &str) -> PublishRequest {
        PublishRequest {
            key: StreamKey::new(key),
            args: Vec::new(),
            app: "live".into(),
            addr: addr.parse().expect("ip"),
            client_id: 1,
            lease_id: "0".repeat(32),
            connect: ConnectInfo::default(),
        }
    }

    fn authorizer(file: &str, burst: u32) -> Authorizer {
        let table = keys_file::KeysTable::parse(file).expect("valid");
        Authorizer::new(
            Some(Arc::new(RwLock::new(Arc::new(table)))),
            None,
            FailedAttemptLimiter::new(burst, Duration::from_secs(3600)),
        )
    }

    #[test]
    fn keys_never_print() {
        let key = StreamKey::new("J42ninLbjl2E2V8ePqy7");
        // sha256("J42ninLbjl2E2V8ePqy7") from python3 hashlib starts with these 8 hex digits.
        assert_eq!(key.fingerprint(), "ccaec3f7");
        assert_eq!(format!("{key}"), "sha256:ccaec3f7…");
        assert!(!format!("{key:?}").contains("J42nin"));
    }

    #[test]
    fn publish_names_split_off_their_query() {
        let (key, args) = PublishRequest::split_name("abc?token=x%20y&b=");
        assert_eq!(key.expose(), "abc");
        assert_eq!(
            args,
            vec![("token".into(), "x y".into()), ("b".into(), String::new())]
        );
        let (key, args) = PublishRequest::split_name("plain");
        assert_eq!((key.expose(), args.len()), ("plain", 0));
    }

    #[tokio::test]
    async fn file_decides_and_failures_are_limited() {
        let auth = authorizer("[[channel]]\nkey = \"good\"\nname = \"benw\"\n", 2);
        let benw = StreamName::parse("benw").expect("valid");
        let allowed = Decision::Allowed {
            name: benw,
            source: AuthSource::KeysFile,
        };
        assert_eq!(auth.authorize(&request("good", "192.0.2.1")).await, allowed);
        for _ in 0..2 {
            assert_eq!(
                auth.authorize(&request("bad", "192.0.2.1")).await,
                Decision::Refused(RefusalReason::UnknownKey)
            );
        }
        // Now even the right key is refused from this address, but not from another one.
        assert_eq!(
            auth.authorize(&request("good", "192.0.2.1")).await,
            Decision::Refused(RefusalReason::RateLimited)
        );
        assert_eq!(auth.authorize(&request("good", "192.0.2.2")).await, allowed);
    }

    #[test]
    fn revocation_follows_the_file() {
        let benw = StreamName::parse("benw").expect("valid");
        let digest = KeyDigest::of("good");
        let active = keys_file::KeysTable::parse("[[channel]]\nkey = \"good\"\nname = \"benw\"\n")
            .expect("valid");
        let inactive = keys_file::KeysTable::parse(
            "[[channel]]\nkey = \"good\"\nname = \"benw\"\nactive = false\n",
        )
        .expect("valid");
        let renamed =
            keys_file::KeysTable::parse("[[channel]]\nkey = \"good\"\nname = \"other\"\n")
                .expect("valid");
        let empty = keys_file::KeysTable::default();
        assert!(!Authorizer::is_revoked(
            &active,
            AuthSource::KeysFile,
            &digest,
            &benw
        ));
        assert!(Authorizer::is_revoked(
            &inactive,
            AuthSource::KeysFile,
            &digest,
            &benw
        ));
        assert!(Authorizer::is_revoked(
            &renamed,
            AuthSource::KeysFile,
            &digest,
            &benw
        ));
        assert!(Authorizer::is_revoked(
            &empty,
            AuthSource::KeysFile,
            &digest,
            &benw
        ));
        assert!(!Authorizer::is_revoked(
            &empty,
            AuthSource::Hook,
            &digest,
            &benw
        ));
    }
}

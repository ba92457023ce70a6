//! The channel registry and viewer sanctions: what the edge keeps in its two key-value stores,
//! under which keys, in which format, and the publish decision of the nginx-rtmp hook.
//!
//! ```text
//! store "channels" (api only)
//!   channel:<name>             JSON ChannelRecord {"name","active","key_sha256"} (admin routes only)
//!   stream-key:<sha256 hex>    UTF-8 public name the stream key belongs to
//!   live-since:<name>          decimal Unix time the current broadcast started (hooks only)
//! store "viewers" (api writes; key reads)
//!   revoked-session:<session>  decimal Unix time of the revocation
//!   blocked-viewer:<viewer>    decimal Unix time of the block
//!   banned-stream:<name>       decimal Unix time of the ban (channel disabled)
//!   authorization:<period>:<sha256 hex>  "allow" (playlist and key: the site's seed 000 yes
//!                              for "<session cookie> <stream>" during one period; see
//!                              [`authorization_key`]; ppv-sync's round deletes past periods)
//!   publish-lease:<name>       8-byte counter: PublishLease (api only; see below)
//! ```
//!
//! **Publisher exclusivity across ingest workers.** Each worker keeps one publisher per name to
//! itself; across workers the api's hooks keep a [`PublishLease`] per channel: `on_publish`
//! takes it, nginx-rtmp's periodic `on_update` (`call=update_publish`, sent to the on_publish
//! URL) renews it, `on_publish_done` releases it, and a publish or update for a name whose
//! lease another publisher holds unexpired is refused. A worker that crashes sends neither
//! updates nor `publish_done`, so its lease lapses [`LEASE_INTERVALS`](crate::hook::LEASE_INTERVALS) update intervals after
//! its last renewal and the channel is free again.
//!
//! The lease lives in the `viewers` store because that is the store the components reach
//! through `wasi:keyvalue`'s atomics, and every change is a compare-and-swap on its exact bytes.
//! Spin's swap on an ABSENT key is a plain write (two first publishers could both win), so the
//! api first creates the key with an atomic `increment` by 0 (0 = free) and only then swaps:
//! the lease is therefore encoded as an 8-byte counter, and every decision is atomic.
//!
//! Stream keys are stored only as SHA-256 digests: the store never holds a publishable secret,
//! and the hook finds a channel by looking up the digest of the presented key, so no secret is
//! ever compared (a 32-character random key has 192 bits of entropy; a fast hash is enough).
//! Session cookies are hashed for the same reason before they become part of a KV key.

use crate::crypto::sha256_hex;
use crate::hook::stream_key_digest;
use crate::layout::StreamName;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// Label of the store holding channels and stream-key digests.
pub const CHANNELS_STORE: &str = "channels";
/// Label of the store holding revocations, blocks, bans and cached site authorizations.
pub const VIEWERS_STORE: &str = "viewers";

/// Random bytes behind one stream key: 24 bytes are 32 URL-safe base64 characters.
pub const STREAM_KEY_RANDOM_BYTES: usize = 24;

/// Longest accepted viewer or session id.
pub const MAX_ID_LEN: usize = 128;

/// Why an id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// A viewer or session id is empty, longer than [`MAX_ID_LEN`] or holds a byte outside
    /// `[A-Za-z0-9._~@+=-]`, so it could not be a KV key suffix or a path segment safely.
    #[error("invalid viewer or session id")]
    InvalidId,
    /// A stored channel record is not the JSON [`ChannelRecord`] (written by something else).
    #[error("stored channel record is corrupt")]
    CorruptRecord,
}

/// A registered channel, as stored under [`channel_key`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelRecord {
    /// Public stream name (the only name that ever appears in a path).
    pub name: String,
    /// `false` once an operator disabled (banned) the streamer.
    pub active: bool,
    /// SHA-256 hex of the current stream key; kept to delete its index entry on rotation.
    pub key_sha256: String,
}

impl ChannelRecord {
    /// The stored form (JSON).
    pub fn to_json(&self) -> Vec<u8> {
        // Invariant: a struct of strings and a bool always serialises.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses the stored form.
    pub fn from_json(stored: &[u8]) -> Result<Self, RegistryError> {
        serde_json::from_slice(stored).map_err(|_| RegistryError::CorruptRecord)
    }

    /// Whether `stream_key` is this channel's current key. The hooks find a channel through
    /// the key's [`stream_key_index`] entry, which a rotation deletes only after saving the
    /// new digest here: checking the record too means a rotated-away key names no channel
    /// even while (or if, after a failed delete) its index entry is still there.
    pub fn is_keyed_by(&self, stream_key: &str) -> bool {
        self.key_sha256 == stream_key_digest(stream_key)
    }
}

/// `GET /api/streams/<name>` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamStatus {
    /// Public stream name.
    pub name: String,
    /// Whether a publisher is on air.
    pub live: bool,
    /// Unix time the broadcast started, `null` while offline.
    pub since: Option<u64>,
}

impl StreamStatus {
    /// The status of `name` at `now`, from [`live_since_key`] (`live_since`) and the channel's
    /// publish lease. Live means a broadcast started *and* its lease is unexpired: a worker that
    /// crashed sends no `on_publish_done`, so its `live-since` stays behind; once its lease lapses
    /// (no `on_update` for [`LEASE_INTERVALS`](crate::hook::LEASE_INTERVALS) intervals) any other publisher may take the
    /// channel, so it is offline.
    pub fn at(name: &StreamName, live_since: Option<u64>, lease: PublishLease, now: u64) -> Self {
        let since = live_since.filter(|_| now < u64::from(lease.until));
        Self {
            name: name.to_string(),
            live: since.is_some(),
            since,
        }
    }
}

/// How long the site's seed 000 `authorize_key` yes is reused, in seconds: the site is asked at
/// most once per period per session and stream, and a session the site ends loses access
/// within one period. A fixed period (rather than a variable) lets the cache rows name their
/// period, so stale rows are found by their key alone.
pub const AUTHORIZATION_PERIOD_SECONDS: u64 = 60;

/// Value of an [`authorization_key`] row: only the site's yes is cached.
pub const AUTHORIZATION_ALLOWED: &str = "allow";

/// What the on_publish hook answers for a presented stream key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishDecision {
    /// Publish under this public name (302 `Location: <name>`, seed 001).
    Rename(StreamName),
    /// Unknown key, disabled channel or a corrupt record: 403, the publisher is disconnected.
    Refuse,
}

/// The on_publish decision for the channel the key's digest led to (`None`: unknown key).
pub fn decide_publish(channel: Option<&ChannelRecord>) -> PublishDecision {
    match channel {
        Some(channel) if channel.active => match StreamName::parse(&channel.name) {
            Ok(name) => PublishDecision::Rename(name),
            Err(_) => PublishDecision::Refuse,
        },
        _ => PublishDecision::Refuse,
    }
}

/// What a hook does to a channel's [`PublishLease`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseAction {
    /// `on_publish` or `on_update`: take or renew the lease.
    Acquire,
    /// `on_publish_done`: give it back.
    Release,
}

/// Who may publish a channel, until when: stored under [`publish_lease_key`] as one 8-byte
/// little-endian counter, `until << 32 | holder`, so that an atomic increment by 0 can create it
/// (as 0: free) before the first compare-and-swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishLease {
    /// [`lease_holder`](crate::hook::lease_holder) of the publish holding the lease.
    pub holder: u32,
    /// Unix second from which the lease no longer holds (0: free).
    pub until: u32,
}

impl PublishLease {
    /// The stored form.
    pub fn encode(&self) -> [u8; 8] {
        (u64::from(self.until) << 32 | u64::from(self.holder)).to_le_bytes()
    }

    /// Parses the stored form; anything that is not 8 bytes (absent included) is a free lease.
    pub fn decode(stored: Option<&[u8]>) -> Self {
        let value = stored
            .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
            .map_or(0, u64::from_le_bytes);
        Self {
            holder: value as u32,
            until: (value >> 32) as u32,
        }
    }

    /// Whether a publish other than `holder` has this lease at `now`.
    pub fn is_held_against(&self, holder: u32, now: u64) -> bool {
        self.holder != holder && now < u64::from(self.until)
    }
}

/// The lease to store after `holder`'s `action` at `now`, or `None` when another publisher's
/// unexpired lease stands (the publish or update is refused; a release changes nothing).
/// `lease_seconds` is how long an acquired lease lasts ([`lease_seconds`](crate::hook::lease_seconds)).
pub fn next_lease(
    current: Option<&[u8]>,
    holder: u32,
    action: LeaseAction,
    now: u64,
    lease_seconds: u64,
) -> Option<[u8; 8]> {
    if PublishLease::decode(current).is_held_against(holder, now) {
        return None;
    }
    let lease = match action {
        LeaseAction::Acquire => PublishLease {
            holder,
            until: u32::try_from(now.saturating_add(lease_seconds)).unwrap_or(u32::MAX),
        },
        LeaseAction::Release => PublishLease {
            holder: 0,
            until: 0,
        },
    };
    Some(lease.encode())
}

/// A fresh stream key from `random` bytes (the caller's CSPRNG): 32 URL-safe characters, so it
/// fits an RTMP URL path without escaping.
pub fn new_stream_key(random: &[u8; STREAM_KEY_RANDOM_BYTES]) -> String {
    URL_SAFE_NO_PAD.encode(random)
}

/// `channel:<name>` in [`CHANNELS_STORE`].
pub fn channel_key(name: &StreamName) -> String {
    format!("channel:{name}")
}

/// `live-since:<name>` in [`CHANNELS_STORE`]: when the current broadcast started. Kept apart from
/// the [`ChannelRecord`] so that the hooks never rewrite the record: an operator's disable that
/// lands between a hook's read of the record and its write could otherwise be undone by it.
pub fn live_since_key(name: &StreamName) -> String {
    format!("live-since:{name}")
}

/// `stream-key:<sha256 hex>` in [`CHANNELS_STORE`]; `digest` comes from [`stream_key_digest`].
pub fn stream_key_index(digest: &str) -> String {
    format!("stream-key:{digest}")
}

/// `publish-lease:<name>` in [`VIEWERS_STORE`]: the channel's [`PublishLease`].
pub fn publish_lease_key(name: &StreamName) -> String {
    format!("publish-lease:{name}")
}

/// `revoked-session:<session>` in [`VIEWERS_STORE`].
pub fn revoked_session_key(session: &str) -> String {
    format!("revoked-session:{session}")
}

/// `blocked-viewer:<viewer>` in [`VIEWERS_STORE`].
pub fn blocked_viewer_key(viewer: &str) -> String {
    format!("blocked-viewer:{viewer}")
}

/// `banned-stream:<name>` in [`VIEWERS_STORE`].
pub fn banned_stream_key(name: &StreamName) -> String {
    format!("banned-stream:{name}")
}

/// `authorization:<period>:<sha256 hex of "<session cookie> <stream>">` in [`VIEWERS_STORE`],
/// period = `now / AUTHORIZATION_PERIOD_SECONDS`: the row that caches the site's yes for this
/// session and stream during `now`'s period.
///
/// Why it stays bounded: a denial is never cached (a made-up cookie writes nothing), the
/// cookie is hashed (the store never holds a session id), and the period in the key lets the
/// `ppv-sync` round delete every past period's rows ([`is_stale_authorization_key`]) without
/// reading them. Rows therefore exist only for sessions the site accepted in the last period.
pub fn authorization_key(session_cookie: &str, stream: &StreamName, now: u64) -> String {
    let digest = sha256_hex(&[session_cookie.as_bytes(), b" ", stream.as_str().as_bytes()]);
    let period = now / AUTHORIZATION_PERIOD_SECONDS;
    format!("{AUTHORIZATION_PREFIX}{period}:{digest}")
}

/// Whether `key` is an [`authorization_key`] row of a period before `now`'s.
pub fn is_stale_authorization_key(key: &str, now: u64) -> bool {
    key.strip_prefix(AUTHORIZATION_PREFIX)
        .and_then(|rest| rest.split_once(':'))
        .and_then(|(period, _)| period.parse::<u64>().ok())
        .is_some_and(|period| period < now / AUTHORIZATION_PERIOD_SECONDS)
}

const AUTHORIZATION_PREFIX: &str = "authorization:";

/// Validates a viewer or session id taken from an API path.
pub fn validate_id(id: &str) -> Result<&str, RegistryError> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"._~@+=-".contains(&b);
    if id.is_empty() || id.len() > MAX_ID_LEN || !id.bytes().all(allowed) {
        return Err(RegistryError::InvalidId);
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> StreamName {
        StreamName::parse(text).expect("valid test name")
    }

    fn channel(active: bool) -> ChannelRecord {
        ChannelRecord {
            name: "benw".into(),
            active,
            key_sha256: stream_key_digest("J42ninLbjl2E2V8ePqy7"),
        }
    }

    /// Expected digests from python3:
    /// `hashlib.sha256(b"J42ninLbjl2E2V8ePqy7").hexdigest()`,
    /// `hashlib.sha256(b"hx9k2 benw").hexdigest()`.
    #[test]
    fn digests_match_python_hashlib() {
        assert_eq!(
            stream_key_digest("J42ninLbjl2E2V8ePqy7"),
            "ccaec3f7cfd0a42ef47a1b64fc9d801c64ed763443712b1de5d794f66e26822e"
        );
        assert_eq!(
            authorization_key("hx9k2", &name("benw"), 1_700_000_000),
            "authorization:28333333:0ef3617a0686857f9ce10cbf3d4327d4ed4810e0dee52bf285a6ad9effaa4295"
        );
    }

    #[test]
    fn stream_keys_are_32_url_safe_characters() {
        // python3: base64.urlsafe_b64encode(bytes(range(24))).rstrip(b"=")
        let mut random = [0u8; STREAM_KEY_RANDOM_BYTES];
        for (i, byte) in random.iter_mut().enumerate() {
            *byte = u8::try_from(i).expect("small index");
        }
        assert_eq!(new_stream_key(&random), "AAECAwQFBgcICQoLDA0ODxAREhMUFRYX");
        let key = new_stream_key(&[0xff; STREAM_KEY_RANDOM_BYTES]);
        assert_eq!(key.len(), 32);
        assert!(
            key.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
    }

    #[test]
    fn kv_keys_follow_the_schema() {
        let benw = name("benw");
        assert_eq!(channel_key(&benw), "channel:benw");
        assert_eq!(stream_key_index("ab12"), "stream-key:ab12");
        assert_eq!(revoked_session_key("s-1"), "revoked-session:s-1");
        assert_eq!(blocked_viewer_key("ID_1"), "blocked-viewer:ID_1");
        assert_eq!(banned_stream_key(&benw), "banned-stream:benw");
        assert_eq!(publish_lease_key(&benw), "publish-lease:benw");
    }

    #[test]
    fn channel_records_round_trip_as_json() {
        let record = channel(true);
        let json = String::from_utf8(record.to_json()).expect("JSON is UTF-8");
        assert!(json.contains(r#""active":true"#), "{json}");
        assert_eq!(
            ChannelRecord::from_json(json.as_bytes()),
            Ok(record.clone())
        );
        // Records written while they still carried `live_since` read the same.
        let older = json.replacen('}', r#","live_since":1700000000}"#, 1);
        assert_eq!(ChannelRecord::from_json(older.as_bytes()), Ok(record));
        assert_eq!(
            ChannelRecord::from_json(b"{}"),
            Err(RegistryError::CorruptRecord)
        );
    }

    #[test]
    fn a_stream_is_live_while_its_lease_holds() {
        let lease = PublishLease {
            holder: 7,
            until: 1_700_000_090,
        };
        let status = StreamStatus::at(&name("benw"), Some(1_700_000_000), lease, 1_700_000_089);
        assert_eq!(
            serde_json::to_string(&status).expect("serialisable"),
            r#"{"name":"benw","live":true,"since":1700000000}"#
        );
        // The lease lapsed (its worker stopped renewing it): offline, whatever live-since says.
        let status = StreamStatus::at(&name("benw"), Some(1_700_000_000), lease, 1_700_000_090);
        assert_eq!(
            serde_json::to_string(&status).expect("serialisable"),
            r#"{"name":"benw","live":false,"since":null}"#
        );
        // Never started (or publish_done came): offline even under a lease.
        let status = StreamStatus::at(&name("benw"), None, lease, 1_700_000_000);
        assert!(!status.live);
    }

    #[test]
    fn publish_is_decided_by_the_channel() {
        assert_eq!(
            decide_publish(Some(&channel(true))),
            PublishDecision::Rename(name("benw"))
        );
        assert_eq!(
            decide_publish(Some(&channel(false))),
            PublishDecision::Refuse
        );
        assert_eq!(decide_publish(None), PublishDecision::Refuse);
        let mut corrupt = channel(true);
        corrupt.name = "../x".into();
        assert_eq!(decide_publish(Some(&corrupt)), PublishDecision::Refuse);
    }

    /// Issue 13 item 7: after a rotation the old key no longer names the channel, even if its
    /// index entry were still there.
    #[test]
    fn only_the_current_key_names_a_channel() {
        let channel = channel(true);
        assert!(channel.is_keyed_by("J42ninLbjl2E2V8ePqy7"));
        assert!(!channel.is_keyed_by("J42ninLbjl2E2V8ePqy8"));
        assert!(!channel.is_keyed_by(""));
    }

    /// Byte layout by hand: until = 0x6553F100 (1700000000), holder = 0x0A0B0C0D →
    /// 0x6553F1000A0B0C0D little-endian.
    #[test]
    fn leases_are_stored_as_one_counter() {
        let lease = PublishLease {
            holder: 0x0A0B_0C0D,
            until: 1_700_000_000,
        };
        assert_eq!(
            lease.encode(),
            [0x0D, 0x0C, 0x0B, 0x0A, 0x00, 0xF1, 0x53, 0x65]
        );
        assert_eq!(PublishLease::decode(Some(&lease.encode())), lease);
        let free = PublishLease {
            holder: 0,
            until: 0,
        };
        // What Spin's increment by 0 creates for an absent key: i64 0 in 8 bytes.
        assert_eq!(PublishLease::decode(Some(&0i64.to_le_bytes())), free);
        assert_eq!(PublishLease::decode(None), free);
        assert_eq!(PublishLease::decode(Some(b"junk")), free);
    }

    #[test]
    fn one_publisher_holds_a_lease_until_it_lapses_or_is_released() {
        let (first, second) = (11, 22);
        let now = 1_000;
        let taken = next_lease(None, first, LeaseAction::Acquire, now, 90).expect("free");
        assert_eq!(
            PublishLease::decode(Some(&taken)),
            PublishLease {
                holder: first,
                until: 1_090
            }
        );
        // Someone else: refused while it holds, for publish, update and release alike.
        for action in [LeaseAction::Acquire, LeaseAction::Release] {
            assert_eq!(next_lease(Some(&taken), second, action, 1_089, 90), None);
        }
        // The holder renews from the renewal time on.
        let renewed =
            next_lease(Some(&taken), first, LeaseAction::Acquire, 1_060, 90).expect("holder");
        assert_eq!(PublishLease::decode(Some(&renewed)).until, 1_150);
        // A lapsed lease (crashed worker) goes to the next publisher.
        let lapsed =
            next_lease(Some(&renewed), second, LeaseAction::Acquire, 1_150, 90).expect("lapsed");
        assert_eq!(PublishLease::decode(Some(&lapsed)).holder, second);
        // The holder's release frees it at once.
        let released =
            next_lease(Some(&lapsed), second, LeaseAction::Release, 1_151, 90).expect("holder");
        assert_eq!(released, [0; 8]);
        assert!(next_lease(Some(&released), first, LeaseAction::Acquire, 1_152, 90).is_some());
    }

    /// By hand: 1_700_000_000 / 60 = 28_333_333, the period 1_699_999_980..=1_700_000_039.
    #[test]
    fn authorization_rows_go_stale_with_their_period() {
        let row = authorization_key("hx9k2", &name("benw"), 1_700_000_000);
        assert_eq!(
            row,
            authorization_key("hx9k2", &name("benw"), 1_699_999_980)
        );
        assert_ne!(
            row,
            authorization_key("hx9k2", &name("benw"), 1_699_999_979)
        );
        assert!(!is_stale_authorization_key(&row, 1_700_000_039));
        assert!(is_stale_authorization_key(&row, 1_700_000_040));
        for other in [
            "authorization:x:abc",
            "authorization:5",
            "revoked-session:1",
            "ppv-charged:benw:1:v",
        ] {
            assert!(!is_stale_authorization_key(other, u64::MAX), "{other}");
        }
    }

    #[test]
    fn ids_are_validated() {
        assert_eq!(validate_id("ID_1"), Ok("ID_1"));
        assert_eq!(validate_id("user@example.com"), Ok("user@example.com"));
        assert!(validate_id(&"a".repeat(MAX_ID_LEN)).is_ok());
        for bad in ["", "a b", "a/b", "a:b", "é", &"a".repeat(MAX_ID_LEN + 1)] {
            assert_eq!(validate_id(bad), Err(RegistryError::InvalidId), "{bad:?}");
        }
    }
}

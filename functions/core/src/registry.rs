//! The channel registry and viewer sanctions: what the edge keeps in its two key-value stores,
//! under which keys, in which format, and the publish decision of the nginx-rtmp hook.
//!
//! ```text
//! store "channels" (api only)
//!   channel:<name>             JSON ChannelRecord {"name","active","key_sha256","live_since"}
//!   stream-key:<sha256 hex>    UTF-8 public name the stream key belongs to
//! store "viewers" (api writes; key reads)
//!   revoked-session:<session>  decimal Unix time of the revocation
//!   blocked-viewer:<viewer>    decimal Unix time of the block
//!   banned-stream:<name>       decimal Unix time of the ban (channel disabled)
//!   authorization:<sha256 hex> "allow <until>" | "deny <until>" (key only: the site's seed 000
//!                              answer for "<session cookie> <stream>", cached until <until>)
//! ```
//!
//! Stream keys are stored only as SHA-256 digests: the store never holds a publishable secret,
//! and the hook finds a channel by looking up the digest of the presented key, so no secret is
//! ever compared (a 32-character random key has 192 bits of entropy; a fast hash is enough).
//! Session cookies are hashed for the same reason before they become part of a KV key.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::layout::StreamName;

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
#[non_exhaustive]
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
    /// Unix time the current broadcast started, `None` while offline.
    pub live_since: Option<u64>,
}

impl ChannelRecord {
    /// The stored form (JSON).
    pub fn to_json(&self) -> Vec<u8> {
        // Invariant: a struct of strings, a bool and an option always serialises.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses the stored form.
    pub fn from_json(stored: &[u8]) -> Result<Self, RegistryError> {
        serde_json::from_slice(stored).map_err(|_| RegistryError::CorruptRecord)
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

impl From<&ChannelRecord> for StreamStatus {
    fn from(channel: &ChannelRecord) -> Self {
        Self {
            name: channel.name.clone(),
            live: channel.live_since.is_some(),
            since: channel.live_since,
        }
    }
}

/// The site's seed 000 `authorize_key` answer, cached so the site is asked once per key period
/// rather than once per key request.
///
/// Stored as plain text (`allow <until>` / `deny <until>`) rather than JSON: the key component
/// reads nothing else as JSON, and a JSON parser would cost it ~20 KB of its 400 KB budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthorizationDecision {
    /// Whether the site answered 2xx.
    pub allowed: bool,
    /// Unix time after which the site must be asked again.
    pub until: u64,
}

impl AuthorizationDecision {
    /// Whether the cached answer may still be used at `now`.
    pub fn is_fresh(&self, now: u64) -> bool {
        now < self.until
    }

    /// The stored form.
    pub fn encode(&self) -> String {
        let verdict = if self.allowed { "allow" } else { "deny" };
        format!("{verdict} {}", self.until)
    }

    /// Parses the stored form; `None` for anything else (treated as not cached).
    pub fn decode(stored: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(stored).ok()?;
        let (verdict, until) = text.split_once(' ')?;
        let allowed = match verdict {
            "allow" => true,
            "deny" => false,
            _ => return None,
        };
        let until = until.parse().ok()?;
        Some(Self { allowed, until })
    }
}

/// What the on_publish hook answers for a presented stream key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
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

/// A fresh stream key from `random` bytes (the caller's CSPRNG): 32 URL-safe characters, so it
/// fits an RTMP URL path without escaping.
pub fn new_stream_key(random: &[u8; STREAM_KEY_RANDOM_BYTES]) -> String {
    URL_SAFE_NO_PAD.encode(random)
}

/// SHA-256 hex of a stream key: the only form in which a key is stored.
pub fn stream_key_digest(stream_key: &str) -> String {
    hex_sha256(&[stream_key.as_bytes()])
}

/// `channel:<name>` in [`CHANNELS_STORE`].
pub fn channel_key(name: &StreamName) -> String {
    format!("channel:{name}")
}

/// `stream-key:<sha256 hex>` in [`CHANNELS_STORE`]; `digest` comes from [`stream_key_digest`].
pub fn stream_key_index(digest: &str) -> String {
    format!("stream-key:{digest}")
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

/// `authorization:<sha256 hex of "<session cookie> <stream>">` in [`VIEWERS_STORE`].
pub fn authorization_key(session_cookie: &str, stream: &StreamName) -> String {
    let digest = hex_sha256(&[session_cookie.as_bytes(), b" ", stream.as_str().as_bytes()]);
    format!("authorization:{digest}")
}

/// Validates a viewer or session id taken from an API path.
pub fn validate_id(id: &str) -> Result<&str, RegistryError> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"._~@+=-".contains(&b);
    if id.is_empty() || id.len() > MAX_ID_LEN || !id.bytes().all(allowed) {
        return Err(RegistryError::InvalidId);
    }
    Ok(id)
}

fn hex_sha256(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
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
            live_since: None,
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
            authorization_key("hx9k2", &name("benw")),
            "authorization:0ef3617a0686857f9ce10cbf3d4327d4ed4810e0dee52bf285a6ad9effaa4295"
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
    }

    #[test]
    fn channel_records_round_trip_as_json() {
        let mut record = channel(true);
        record.live_since = Some(1_700_000_000);
        let json = String::from_utf8(record.to_json()).expect("JSON is UTF-8");
        assert!(json.contains(r#""live_since":1700000000"#), "{json}");
        assert_eq!(
            ChannelRecord::from_json(json.as_bytes()),
            Ok(record.clone())
        );
        assert_eq!(
            ChannelRecord::from_json(b"{}"),
            Err(RegistryError::CorruptRecord)
        );
        let status = StreamStatus::from(&record);
        assert_eq!(
            serde_json::to_string(&status).expect("serialisable"),
            r#"{"name":"benw","live":true,"since":1700000000}"#
        );
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

    #[test]
    fn cached_authorizations_expire() {
        let decision = AuthorizationDecision {
            allowed: true,
            until: 100,
        };
        assert!(decision.is_fresh(99));
        assert!(!decision.is_fresh(100));
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

//! The object layout shared by the ingest worker (which writes it) and the edge functions
//! (which serve it).
//!
//! ```text
//! live/<name>/index.m3u8      live playlist (sliding window)
//! live/<name>/vod.m3u8        replay playlist, only when recording
//! live/<name>/<sequence>.ts   AES-128 encrypted MPEG-TS segment
//! keys/<name>/<key id>.key    16 raw key bytes, under a separate prefix so a bucket policy can
//!                             keep keys private while `live/` is public or CDN-fronted
//! ```
//!
//! Only the *public* stream name ever appears in a path; the streamer's secret key never does.
//! Sequence numbers and key ids are plain decimal `u64`s: the ingest worker starts them from the
//! publish time so a restarted broadcast never reuses a URI for different bytes (players such as
//! ExoPlayer cache keys by URI).

use std::fmt;

/// Longest accepted public stream name.
pub const MAX_NAME_LEN: usize = 64;

/// Prefix of every playlist and segment object.
pub const LIVE_PREFIX: &str = "live";
/// Prefix of every key object.
pub const KEYS_PREFIX: &str = "keys";
/// Default URI prefix written into `#EXT-X-KEY` tags; the key function serves this route.
pub const DEFAULT_KEY_URI_PREFIX: &str = "/keys";
/// File name of the live playlist inside `live/<name>/`.
pub const LIVE_PLAYLIST: &str = "index.m3u8";
/// File name of the replay playlist inside `live/<name>/`.
pub const VOD_PLAYLIST: &str = "vod.m3u8";

/// Why a stream name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty.
    #[error("stream name is empty")]
    Empty,
    /// The name is longer than [`MAX_NAME_LEN`] bytes.
    #[error("stream name is longer than {MAX_NAME_LEN} bytes")]
    TooLong,
    /// The name holds a byte outside `[A-Za-z0-9_-]`, which could escape its folder or a URL.
    #[error("stream name may only hold A-Z, a-z, 0-9, '_' and '-'")]
    InvalidCharacter,
}

/// A validated public stream name: `[A-Za-z0-9_-]{1,64}`.
///
/// Validation is the only way in, so a `StreamName` is always safe to put in an object path,
/// a URL path segment, a metric label or a log line.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamName(String);

impl StreamName {
    /// Validates `name` as a public stream name.
    pub fn parse(name: &str) -> Result<Self, NameError> {
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong);
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(NameError::InvalidCharacter);
        }
        Ok(Self(name.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for StreamName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// `live/<name>/index.m3u8`
pub fn live_playlist_path(name: &StreamName) -> String {
    format!("{LIVE_PREFIX}/{name}/{LIVE_PLAYLIST}")
}

/// `live/<name>/vod.m3u8`
pub fn vod_playlist_path(name: &StreamName) -> String {
    format!("{LIVE_PREFIX}/{name}/{VOD_PLAYLIST}")
}

/// `live/<name>/<sequence>.ts`
pub fn segment_path(name: &StreamName, sequence: u64) -> String {
    format!("{LIVE_PREFIX}/{name}/{}", segment_uri(sequence))
}

/// The segment URI written into playlists: relative to the playlist, so it resolves under
/// `live/<name>/` wherever the playlist is served from.
pub fn segment_uri(sequence: u64) -> String {
    format!("{sequence}.ts")
}

/// `keys/<name>/<key id>.key`
pub fn key_path(name: &StreamName, key_id: u64) -> String {
    format!("{KEYS_PREFIX}/{name}/{key_id}.key")
}

/// The key URI written into `#EXT-X-KEY` tags: `<prefix>/<name>/<key id>.key`.
///
/// `prefix` is usually [`DEFAULT_KEY_URI_PREFIX`] (root-relative, served by the key function
/// on the same host) but may be an absolute URL when keys are served from another origin.
pub fn key_uri(prefix: &str, name: &StreamName, key_id: u64) -> String {
    format!("{}/{name}/{key_id}.key", prefix.trim_end_matches('/'))
}

/// The key id a key URI of `name` names: the inverse of [`key_uri`] for any prefix, reading
/// the last two path segments (`<name>/<key id>.key`) of `uri` without its query and fragment.
/// `None` for a URI that names no key of `name`.
pub fn key_id_in_uri(uri: &str, name: &StreamName) -> Option<u64> {
    let path = uri.split(['?', '#']).next()?;
    let mut segments = path.rsplit('/');
    let file = segments.next()?;
    (segments.next()? == name.as_str())
        .then(|| parse_decimal(file.strip_suffix(".key")?))
        .flatten()
}

/// What an incoming viewer request path names, after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestedObject {
    /// `/live/<name>/index.m3u8`
    LivePlaylist(StreamName),
    /// `/live/<name>/vod.m3u8`
    VodPlaylist(StreamName),
    /// `/live/<name>/<sequence>.ts`
    Segment(StreamName, u64),
    /// `/keys/<name>/<key id>.key`
    Key(StreamName, u64),
}

impl RequestedObject {
    /// Parses a request path (without query string). Anything that is not exactly one of the
    /// layout's shapes, including `..`, empty segments and percent-escapes, yields `None`.
    pub fn parse(path: &str) -> Option<Self> {
        let mut parts = path.strip_prefix('/')?.split('/');
        let (prefix, name, file) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let name = StreamName::parse(name).ok()?;
        match prefix {
            LIVE_PREFIX if file == LIVE_PLAYLIST => Some(Self::LivePlaylist(name)),
            LIVE_PREFIX if file == VOD_PLAYLIST => Some(Self::VodPlaylist(name)),
            LIVE_PREFIX => Some(Self::Segment(
                name,
                parse_decimal(file.strip_suffix(".ts")?)?,
            )),
            KEYS_PREFIX => Some(Self::Key(name, parse_decimal(file.strip_suffix(".key")?)?)),
            _ => None,
        }
    }

    /// The stream this object belongs to.
    pub fn stream(&self) -> &StreamName {
        match self {
            Self::LivePlaylist(name)
            | Self::VodPlaylist(name)
            | Self::Segment(name, _)
            | Self::Key(name, _) => name,
        }
    }

    /// The storage path of this object.
    pub fn storage_path(&self) -> String {
        match self {
            Self::LivePlaylist(name) => live_playlist_path(name),
            Self::VodPlaylist(name) => vod_playlist_path(name),
            Self::Segment(name, sequence) => segment_path(name, *sequence),
            Self::Key(name, key_id) => key_path(name, *key_id),
        }
    }
}

/// Strict decimal: digits only (no sign, no leading `+`, no whitespace), at most 20 of them, so
/// one number has exactly one spelling and one URI.
fn parse_decimal(text: &str) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.len() <= 20
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if canonical { text.parse().ok() } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> StreamName {
        StreamName::parse(text).expect("valid test name")
    }

    #[test]
    fn names_are_validated() {
        assert!(StreamName::parse("benw").is_ok());
        assert!(StreamName::parse("a-B_9").is_ok());
        assert!(StreamName::parse(&"x".repeat(64)).is_ok());
        assert_eq!(StreamName::parse(""), Err(NameError::Empty));
        assert_eq!(StreamName::parse(&"x".repeat(65)), Err(NameError::TooLong));
        for bad in ["..", "a/b", "a b", "a%2Fb", "é", "a.b", "a\0"] {
            assert_eq!(
                StreamName::parse(bad),
                Err(NameError::InvalidCharacter),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn paths_follow_the_layout() {
        let benw = name("benw");
        assert_eq!(live_playlist_path(&benw), "live/benw/index.m3u8");
        assert_eq!(vod_playlist_path(&benw), "live/benw/vod.m3u8");
        assert_eq!(segment_path(&benw, 7614), "live/benw/7614.ts");
        assert_eq!(key_path(&benw, 42), "keys/benw/42.key");
        assert_eq!(key_uri("/keys", &benw, 42), "/keys/benw/42.key");
        assert_eq!(
            key_uri("https://k.example/keys/", &benw, 1),
            "https://k.example/keys/benw/1.key"
        );
    }

    #[test]
    fn key_ids_are_read_back_from_key_uris() {
        let benw = name("benw");
        for (uri, expected) in [
            ("/keys/benw/42.key", Some(42)),
            ("https://k.example/keys/benw/1.key?t=x#f", Some(1)),
            ("benw/18446744073709551615.key", Some(u64::MAX)),
            ("/keys/other/42.key", None),
            ("/keys/benw2/42.key", None),
            ("/keys/benw/042.key", None),
            ("/keys/benw/+42.key", None),
            ("/keys/benw/42.ts", None),
            ("/keys/benw/42.key/", None),
            ("42.key", None),
            ("data:text/plain;base64,AAAA", None),
            ("", None),
        ] {
            assert_eq!(key_id_in_uri(uri, &benw), expected, "{uri:?}");
        }
        assert_eq!(
            key_id_in_uri(&key_uri("https://k.example/keys/", &benw, 7), &benw),
            Some(7)
        );
    }

    #[test]
    fn request_paths_round_trip() {
        let benw = name("benw");
        let cases = [
            (
                "/live/benw/index.m3u8",
                RequestedObject::LivePlaylist(benw.clone()),
            ),
            (
                "/live/benw/vod.m3u8",
                RequestedObject::VodPlaylist(benw.clone()),
            ),
            (
                "/live/benw/7614.ts",
                RequestedObject::Segment(benw.clone(), 7614),
            ),
            ("/keys/benw/0.key", RequestedObject::Key(benw.clone(), 0)),
        ];
        for (path, expected) in cases {
            let parsed = RequestedObject::parse(path);
            assert_eq!(parsed.as_ref(), Some(&expected), "{path}");
            assert_eq!(format!("/{}", expected.storage_path()), path);
            assert_eq!(expected.stream(), &benw);
        }
    }

    #[test]
    fn malformed_request_paths_are_refused() {
        for path in [
            "",
            "/",
            "live/benw/index.m3u8",
            "/live/benw",
            "/live/../index.m3u8",
            "/live/benw/../x.ts",
            "/live/benw/1.ts/x",
            "/live//1.ts",
            "/live/benw/-1.ts",
            "/live/benw/01.ts",
            "/live/benw/+1.ts",
            "/live/benw/1.key",
            "/keys/benw/1.ts",
            "/keys/benw/99999999999999999999999.key",
            "/other/benw/1.ts",
            "/live/be%6Ew/1.ts",
            "/keys/benw/.key",
        ] {
            assert_eq!(RequestedObject::parse(path), None, "{path:?}");
        }
    }
}

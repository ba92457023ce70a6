//! gatecast's own viewer token: what `/api/sign` puts on playlist URLs, and what the playlist
//! function writes into every key (and, when segments are signed, segment) URI for the key and
//! segment functions to check.
//!
//! Unlike seed 000's token it expires, names the viewer (for pay-per-view and the audit of who
//! fetched which key), may pin the client IP, and names the signing secret by a key id (`kid`)
//! so secrets rotate without cutting off viewers mid-stream.
//!
//! Every token also carries a [`Reach`]: the one kind of object it opens, and which ones. A
//! playlist URL lives for hours (a whole viewing session) and ends up in browser histories,
//! referrer logs and shared links; the key tokens minted from it live about one key period.
//! Without a reach a leaked playlist URL's token would open keys directly for its whole
//! lifetime, bypassing the playlist function's fresh short-lived key tokens; with it, each
//! function accepts only its own kind. A playlist token names one playlist (`index.m3u8` or
//! `vod.m3u8`: a URL signed for the live stream does not open the recording, nor the other way
//! round), and a key token names the range of key ids whose URIs were in the playlist it was
//! minted for, so a key token from a recording does not open the live keys that follow it.
//!
//! # Wire format (version 2)
//!
//! ```text
//! v2.<kid>.<payload>.<mac>
//! payload = base64url_nopad( expires_at: u64 BE || reach
//!                            || lp(viewer) || lp(session) || lp(stream) || ip )
//! reach   = 0x01 live playlist | 0x04 VOD playlist | 0x03 segments
//!         | 0x02 || first key id: u64 BE || last key id: u64 BE    (keys first..=last)
//! lp(s)   = one length byte (0..=255) followed by the UTF-8 bytes of s
//! ip      = 0x00 (not bound) | 0x04 + 4 bytes | 0x06 + 16 bytes, nothing after it
//! mac     = base64url_nopad( HMAC-SHA1( secret[kid], "v2.<kid>.<payload>" ) )
//! ```
//!
//! Any other reach byte, or a key range whose first id is above its last, is malformed.
//! Version 1 had one playlist scope for both playlists and key tokens without a range; it is
//! refused outright (not read as "any playlist" or "every key"), so a deployment upgrading to
//! version 2 re-signs its outstanding playlist URLs.
//!
//! Why this shape: every field is length-prefixed so no two claim sets share a payload; the MAC
//! covers the exact ASCII text before it (version and kid included), so the verifier checks it
//! before decoding anything; the kid is in clear text because the verifier needs it to pick the
//! secret; and the alphabet (`A-Za-z0-9-_.`) needs no escaping in a query string.
//!
//! # Signing keys
//!
//! [`SigningKeys::parse`] reads one Spin variable: `kid:base64secret[,kid:base64secret...]`.
//! The first entry signs new tokens; the others still verify, so a rotation is "prepend the new
//! key, wait for the longest token lifetime, drop the old one".

use std::fmt;
use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};

use crate::crypto;
use crate::layout::RequestedObject;

/// The version prefix of tokens this module issues.
pub const VERSION: &str = "v2";
/// The query parameter name the playlist function appends to key URIs.
pub const QUERY_PARAM: &str = "t";
/// Longest key id: kids are short labels, not secrets.
pub const MAX_KID_LEN: usize = 32;
/// Shortest accepted signing secret, in bytes (HMAC-SHA1's output size).
pub const MIN_SECRET_LEN: usize = 20;
/// Longest viewer id, session id or stream name a token can carry (one length byte).
pub const MAX_FIELD_LEN: usize = 255;
/// Longest token text [`verify`] looks at; anything longer is refused before any work.
pub const MAX_TOKEN_LEN: usize = 1024;

const MAC_LEN: usize = 20;

/// Why a token was not issued or not accepted. Map to HTTP with [`crate::status`]; never show
/// the variant to the viewer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token is not `v2.<kid>.<payload>.<mac>` with valid base64url parts and payload.
    #[error("malformed viewer token")]
    Malformed,
    /// The token names a key id the verifier does not hold (retired, or never ours).
    #[error("viewer token signed with an unknown key id")]
    UnknownKid,
    /// The MAC does not match: tampered, or signed with another secret.
    #[error("viewer token signature does not match")]
    BadSignature,
    /// `now` is at or past the token's `expires_at`.
    #[error("viewer token expired")]
    Expired,
    /// The token was issued for another stream.
    #[error("viewer token is for another stream")]
    WrongStream,
    /// The token opens another kind of object (e.g. a playlist token presented for a key, or
    /// a live playlist token presented for the recording).
    #[error("viewer token is for another kind of object")]
    WrongScope,
    /// A key token presented for a key id outside its range.
    #[error("viewer token does not cover this key id")]
    KeyOutOfRange,
    /// The token is pinned to an IP address other than the client's.
    #[error("viewer token is bound to another client address")]
    WrongIp,
    /// Issuing: a claim is longer than [`MAX_FIELD_LEN`] bytes, or the kid is not a valid kid.
    #[error("claim {0} is too long or holds invalid characters")]
    InvalidClaim(&'static str),
    /// Configuration: the signing key list could not be parsed.
    #[error("invalid signing key list: {0}")]
    InvalidSigningKeys(&'static str),
}

/// The kind of object a request asks for, and so the component that serves it (routing); what
/// a token opens is its [`Reach`], which names one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The stream's playlists (`index.m3u8`, `vod.m3u8`).
    Playlist,
    /// The stream's AES keys.
    Key,
    /// The stream's segments.
    Segment,
}

/// Exactly what a token opens within its stream; see the module docs for why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// `index.m3u8`: issued by `/api/sign`, long-lived.
    LivePlaylist,
    /// `vod.m3u8`: issued by `/api/sign` with `"playlist":"vod"`, long-lived.
    VodPlaylist,
    /// The keys whose ids are in this range: minted per playlist response from the key URIs
    /// in it, living about one key period (a recording's length for `vod.m3u8`).
    Keys(KeyIds),
    /// The stream's segments: minted per playlist response when segments are signed.
    Segments,
}

impl Reach {
    /// Whether a token with this reach opens `object` (of its stream): `Err` says why not.
    fn opens(&self, object: &RequestedObject) -> Result<(), TokenError> {
        match (self, object) {
            (Self::LivePlaylist, RequestedObject::LivePlaylist(_))
            | (Self::VodPlaylist, RequestedObject::VodPlaylist(_))
            | (Self::Segments, RequestedObject::Segment(..)) => Ok(()),
            (Self::Keys(ids), RequestedObject::Key(_, id)) if ids.contains(*id) => Ok(()),
            (Self::Keys(_), RequestedObject::Key(..)) => Err(TokenError::KeyOutOfRange),
            _ => Err(TokenError::WrongScope),
        }
    }

    /// The payload bytes; 0 is left unused so an all-zero payload never carries a reach.
    fn encode(&self, payload: &mut Vec<u8>) {
        match self {
            Self::LivePlaylist => payload.push(1),
            Self::Keys(ids) => {
                payload.push(2);
                payload.extend_from_slice(&ids.first.to_be_bytes());
                payload.extend_from_slice(&ids.last.to_be_bytes());
            }
            Self::Segments => payload.push(3),
            Self::VodPlaylist => payload.push(4),
        }
    }

    fn decode(reader: &mut Reader<'_>) -> Result<Self, TokenError> {
        Ok(match reader.array::<1>()?[0] {
            1 => Self::LivePlaylist,
            2 => {
                let first = u64::from_be_bytes(reader.array()?);
                let last = u64::from_be_bytes(reader.array()?);
                Self::Keys(KeyIds::new(first, last).ok_or(TokenError::Malformed)?)
            }
            3 => Self::Segments,
            4 => Self::VodPlaylist,
            _ => return Err(TokenError::Malformed),
        })
    }
}

/// A non-empty inclusive range of key ids, `first..=last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyIds {
    first: u64,
    last: u64,
}

impl KeyIds {
    /// `first..=last`; `None` when `first > last`.
    pub fn new(first: u64, last: u64) -> Option<Self> {
        (first <= last).then_some(Self { first, last })
    }

    /// The smallest range holding every id of `ids`; `None` when there are none.
    pub fn covering(ids: impl IntoIterator<Item = u64>) -> Option<Self> {
        ids.into_iter().fold(None, |range, id| {
            Some(match range {
                None => Self {
                    first: id,
                    last: id,
                },
                Some(Self { first, last }) => Self {
                    first: first.min(id),
                    last: last.max(id),
                },
            })
        })
    }

    /// Whether `id` is in the range.
    pub fn contains(&self, id: u64) -> bool {
        (self.first..=self.last).contains(&id)
    }
}

/// What a viewer token asserts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewerClaims {
    /// Exactly what the token opens within its stream.
    pub reach: Reach,
    /// The site's viewer id: charged for pay-per-view and named in the key audit.
    pub viewer: String,
    /// The site's session id, so logging out (or a revocation list) ends the token early.
    pub session: String,
    /// Public stream name the token opens.
    pub stream: String,
    /// Unix seconds; the token is refused from this second on.
    pub expires_at: u64,
    /// When set, only requests from this address are accepted.
    pub ip: Option<IpAddr>,
    /// Which signing secret signed the token; see [`SigningKeys`].
    pub kid: String,
}

impl ViewerClaims {
    /// The viewer id, `None` when the token names no viewer (an empty field on the wire).
    pub fn viewer_id(&self) -> Option<&str> {
        named(&self.viewer)
    }

    /// The session id, `None` when the token names no session (an empty field on the wire).
    pub fn session_id(&self) -> Option<&str> {
        named(&self.session)
    }
}

/// A claim's wire form has no "absent": an empty id names nobody.
fn named(field: &str) -> Option<&str> {
    (!field.is_empty()).then_some(field)
}

/// One named signing secret.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    kid: String,
    secret: Vec<u8>,
}

impl SigningKey {
    /// Builds a key, checking the kid's alphabet and the secret's length.
    pub fn new(kid: &str, secret: Vec<u8>) -> Result<Self, TokenError> {
        if !is_valid_kid(kid) {
            return Err(TokenError::InvalidSigningKeys(
                "a kid must be 1-32 characters of A-Z a-z 0-9 _ -",
            ));
        }
        if secret.len() < MIN_SECRET_LEN {
            return Err(TokenError::InvalidSigningKeys(
                "a secret must be at least 20 bytes",
            ));
        }
        Ok(Self {
            kid: kid.to_owned(),
            secret,
        })
    }

    /// The key id written into tokens.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The secret bytes.
    pub fn secret(&self) -> &[u8] {
        &self.secret
    }
}

impl fmt::Debug for SigningKey {
    /// Names the kid only: secrets never reach a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// The signing secrets a deployment holds: the first signs, all verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeys {
    keys: Vec<SigningKey>,
}

impl SigningKeys {
    /// Parses `kid:secret[,kid:secret...]` where each secret is standard base64 (padding
    /// optional) of at least [`MIN_SECRET_LEN`] bytes. Whitespace around entries is ignored.
    /// Kids must be unique. The first entry is the current signing key.
    pub fn parse(spec: &str) -> Result<Self, TokenError> {
        let keys = spec
            .split(',')
            .map(|entry| {
                let (kid, secret) = entry
                    .trim()
                    .split_once(':')
                    .ok_or(TokenError::InvalidSigningKeys("an entry is not kid:secret"))?;
                let secret = STANDARD_NO_PAD
                    .decode(secret.trim_end_matches('='))
                    .map_err(|_| TokenError::InvalidSigningKeys("a secret is not base64"))?;
                SigningKey::new(kid, secret)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(keys)
    }

    /// Builds the set from keys already in hand; the first is the current signing key.
    pub fn new(keys: Vec<SigningKey>) -> Result<Self, TokenError> {
        if keys.is_empty() {
            return Err(TokenError::InvalidSigningKeys("no keys"));
        }
        for (index, key) in keys.iter().enumerate() {
            if keys[..index].iter().any(|earlier| earlier.kid == key.kid) {
                return Err(TokenError::InvalidSigningKeys("duplicate kid"));
            }
        }
        Ok(Self { keys })
    }

    /// The key new tokens are signed with.
    pub fn current(&self) -> &SigningKey {
        // Invariant: both constructors refuse an empty list.
        &self.keys[0]
    }

    /// The key named `kid`, if held.
    pub fn find(&self, kid: &str) -> Option<&SigningKey> {
        self.keys.iter().find(|key| key.kid == kid)
    }

    /// Issues a token for `claims` with the current key, overwriting `claims.kid` to match.
    pub fn issue(&self, claims: &ViewerClaims) -> Result<String, TokenError> {
        let key = self.current();
        let claims = ViewerClaims {
            kid: key.kid.clone(),
            ..claims.clone()
        };
        issue(&claims, &key.secret)
    }
}

/// Signs `claims` with `secret`, which must be the secret the deployment knows as
/// `claims.kid`. Most callers want [`SigningKeys::issue`], which cannot mix them up.
pub fn issue(claims: &ViewerClaims, secret: &[u8]) -> Result<String, TokenError> {
    if !is_valid_kid(&claims.kid) {
        return Err(TokenError::InvalidClaim("kid"));
    }
    let mut payload = Vec::with_capacity(
        8 + 17 + 3 + claims.viewer.len() + claims.session.len() + claims.stream.len() + 17,
    );
    payload.extend_from_slice(&claims.expires_at.to_be_bytes());
    claims.reach.encode(&mut payload);
    for (name, field) in [
        ("viewer", &claims.viewer),
        ("session", &claims.session),
        ("stream", &claims.stream),
    ] {
        let len = u8::try_from(field.len()).map_err(|_| TokenError::InvalidClaim(name))?;
        payload.push(len);
        payload.extend_from_slice(field.as_bytes());
    }
    match claims.ip {
        None => payload.push(0),
        Some(IpAddr::V4(v4)) => {
            payload.push(4);
            payload.extend_from_slice(&v4.octets());
        }
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => {
                payload.push(4);
                payload.extend_from_slice(&v4.octets());
            }
            None => {
                payload.push(6);
                payload.extend_from_slice(&v6.octets());
            }
        },
    }
    let mut token = String::with_capacity(8 + claims.kid.len() + payload.len() * 4 / 3 + 30);
    token.push_str(VERSION);
    token.push('.');
    token.push_str(&claims.kid);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
    let mac = crypto::hmac_sha1(secret, &[token.as_bytes()]);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(mac, &mut token);
    Ok(token)
}

/// Checks `token` and returns its claims if it is well formed, signed by a key in `keys`,
/// unexpired at `now` (unix seconds), reaches `object` (its kind, its stream and, for a key,
/// its id), and — when it pins an IP — is presented from `client_ip`.
///
/// Checks run in this order: shape, kid, MAC (constant time), payload, reach (kind, key id),
/// expiry, stream, IP; so nothing from an unauthenticated payload is trusted, and an attacker learns
/// nothing from the error kind beyond "refused" (which is all [`crate::status`] reveals).
pub fn verify(
    token: &str,
    keys: &SigningKeys,
    now: u64,
    object: &RequestedObject,
    client_ip: Option<IpAddr>,
) -> Result<ViewerClaims, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let (signed, mac_text) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
    let mut parts = signed.splitn(3, '.');
    let (version, kid, payload_text) = match (parts.next(), parts.next(), parts.next()) {
        (Some(version), Some(kid), Some(payload)) => (version, kid, payload),
        _ => return Err(TokenError::Malformed),
    };
    if version != VERSION || payload_text.contains('.') {
        return Err(TokenError::Malformed);
    }
    let key = keys.find(kid).ok_or(TokenError::UnknownKid)?;
    let mut presented_mac = [0u8; MAC_LEN];
    match URL_SAFE_NO_PAD.decode_slice(mac_text, &mut presented_mac) {
        Ok(MAC_LEN) => {}
        _ => return Err(TokenError::Malformed),
    }
    let expected_mac = crypto::hmac_sha1(&key.secret, &[signed.as_bytes()]);
    if !crypto::constant_time_eq(&expected_mac, &presented_mac) {
        return Err(TokenError::BadSignature);
    }
    let payload = URL_SAFE_NO_PAD
        .decode(payload_text)
        .map_err(|_| TokenError::Malformed)?;
    let claims = decode_payload(&payload, kid)?;
    claims.reach.opens(object)?;
    if now >= claims.expires_at {
        return Err(TokenError::Expired);
    }
    if claims.stream != object.stream().as_str() {
        return Err(TokenError::WrongStream);
    }
    if let Some(bound) = claims.ip {
        let client = client_ip.map(|ip| ip.to_canonical());
        if client != Some(bound) {
            return Err(TokenError::WrongIp);
        }
    }
    Ok(claims)
}

fn decode_payload(payload: &[u8], kid: &str) -> Result<ViewerClaims, TokenError> {
    let mut reader = Reader(payload);
    let expires_at = u64::from_be_bytes(reader.array()?);
    let reach = Reach::decode(&mut reader)?;
    let viewer = reader.string()?;
    let session = reader.string()?;
    let stream = reader.string()?;
    let ip = match reader.array::<1>()?[0] {
        0 => None,
        4 => Some(IpAddr::from(reader.array::<4>()?)),
        6 => Some(IpAddr::from(reader.array::<16>()?)),
        _ => return Err(TokenError::Malformed),
    };
    if !reader.0.is_empty() {
        return Err(TokenError::Malformed);
    }
    Ok(ViewerClaims {
        reach,
        viewer,
        session,
        stream,
        expires_at,
        ip,
        kid: kid.to_owned(),
    })
}

/// A cursor over an authenticated payload; every read is bounds-checked.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, len: usize) -> Result<&[u8], TokenError> {
        if self.0.len() < len {
            return Err(TokenError::Malformed);
        }
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], TokenError> {
        self.take(N)?.try_into().map_err(|_| TokenError::Malformed)
    }

    fn string(&mut self) -> Result<String, TokenError> {
        let [len] = self.array::<1>()?;
        let bytes = self.take(usize::from(len))?;
        String::from_utf8(bytes.to_vec()).map_err(|_| TokenError::Malformed)
    }
}

fn is_valid_kid(kid: &str) -> bool {
    !kid.is_empty()
        && kid.len() <= MAX_KID_LEN
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::StreamName;

    /// Two 20+ byte secrets; base64 computed with `printf '%s' <text> | base64`.
    /// `k2`: "current-secret-0123456789" → Y3VycmVudC1zZWNyZXQtMDEyMzQ1Njc4OQ==
    /// `k1`: "previous-secret-abcdefghij" → cHJldmlvdXMtc2VjcmV0LWFiY2RlZmdoaWo=
    const KEYS: &str =
        "k2:Y3VycmVudC1zZWNyZXQtMDEyMzQ1Njc4OQ==, k1:cHJldmlvdXMtc2VjcmV0LWFiY2RlZmdoaWo";

    fn keys() -> SigningKeys {
        SigningKeys::parse(KEYS).expect("test keys parse")
    }

    const NOW: u64 = 1_700_000_000;

    fn benw() -> StreamName {
        StreamName::parse("benw").expect("valid name")
    }

    /// Key 8 of `benw`, inside [`claims`]'s range 7..=9.
    fn key_8() -> RequestedObject {
        RequestedObject::Key(benw(), 8)
    }

    fn ids(first: u64, last: u64) -> KeyIds {
        KeyIds::new(first, last).expect("first <= last")
    }

    fn claims() -> ViewerClaims {
        ViewerClaims {
            reach: Reach::Keys(ids(7, 9)),
            viewer: "viewer-7".into(),
            session: "abc".into(),
            stream: "benw".into(),
            expires_at: 1_700_000_600,
            ip: None,
            kid: "k2".into(),
        }
    }

    #[test]
    fn parses_key_lists() {
        let keys = keys();
        assert_eq!(keys.current().kid(), "k2");
        assert_eq!(keys.current().secret(), b"current-secret-0123456789");
        assert_eq!(
            keys.find("k1").map(SigningKey::secret),
            Some(&b"previous-secret-abcdefghij"[..])
        );
        assert!(keys.find("k3").is_none());
        assert!(!format!("{keys:?}").contains("secret-0123"));
        for bad in [
            "",
            "k2",
            "k2:!!!",
            "k2:c2hvcnQ=",
            "k 2:Y3VycmVudC1zZWNyZXQtMDEyMzQ1Njc4OQ==",
            "k2:Y3VycmVudC1zZWNyZXQtMDEyMzQ1Njc4OQ==,k2:cHJldmlvdXMtc2VjcmV0LWFiY2RlZmdoaWo=",
        ] {
            assert!(
                matches!(
                    SigningKeys::parse(bad),
                    Err(TokenError::InvalidSigningKeys(_))
                ),
                "{bad:?}"
            );
        }
    }

    /// The expected tokens are assembled by hand in python3 from the format above, one per
    /// reach (1 live playlist, 4 VOD playlist, 3 segments, 2 keys 7..=9):
    /// ```text
    /// import hmac, hashlib, base64, struct
    /// b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b'=').decode()
    /// for reach in (b'\x01', b'\x04', b'\x03', b'\x02' + struct.pack('>QQ', 7, 9)):
    ///     p = (struct.pack('>Q', 1700000600) + reach
    ///          + b'\x08viewer-7' + b'\x03abc' + b'\x04benw' + b'\x00')
    ///     s = 'v2.k2.' + b64(p)
    ///     print(s + '.' + b64(hmac.new(b'current-secret-0123456789', s.encode(), hashlib.sha1).digest()))
    /// ```
    #[test]
    fn issue_matches_an_independent_encoding() {
        for (reach, expected) in [
            (
                Reach::LivePlaylist,
                "v2.k2.AAAAAGVT81gBCHZpZXdlci03A2FiYwRiZW53AA.sFLNtvWPvayBpos4wyQH6ObDNOo",
            ),
            (
                Reach::VodPlaylist,
                "v2.k2.AAAAAGVT81gECHZpZXdlci03A2FiYwRiZW53AA.i0pp8ATDqC5M6_HQ7cv7A5vuQTk",
            ),
            (
                Reach::Segments,
                "v2.k2.AAAAAGVT81gDCHZpZXdlci03A2FiYwRiZW53AA.0jMo4bG6Va54aQX6HemT1QCo4mU",
            ),
            (
                Reach::Keys(ids(7, 9)),
                "v2.k2.AAAAAGVT81gCAAAAAAAAAAcAAAAAAAAACQh2aWV3ZXItNwNhYmMEYmVudwA.G7pTVFCEjLYnmRr-qtbVp5hVBs8",
            ),
        ] {
            let claims = ViewerClaims { reach, ..claims() };
            assert_eq!(keys().issue(&claims).as_deref(), Ok(expected), "{reach:?}");
        }
    }

    /// Each token opens exactly its own kind of object: a live playlist token not the
    /// recording (nor the other way round), a key token only the ids in its range.
    #[test]
    fn a_token_opens_only_what_it_reaches() {
        let keys = keys();
        let objects = [
            RequestedObject::LivePlaylist(benw()),
            RequestedObject::VodPlaylist(benw()),
            RequestedObject::Segment(benw(), 41),
            RequestedObject::Key(benw(), 8),
        ];
        let reaches = [
            Reach::LivePlaylist,
            Reach::VodPlaylist,
            Reach::Segments,
            Reach::Keys(ids(7, 9)),
        ];
        for (issued_index, reach) in reaches.into_iter().enumerate() {
            let claims = ViewerClaims { reach, ..claims() };
            let token = keys.issue(&claims).expect("issue");
            for (object_index, object) in objects.iter().enumerate() {
                let verified = verify(&token, &keys, NOW, object, None);
                if object_index == issued_index {
                    assert_eq!(verified, Ok(claims.clone()));
                } else {
                    assert_eq!(
                        verified,
                        Err(TokenError::WrongScope),
                        "{reach:?} token presented for {object:?}"
                    );
                }
            }
        }
    }

    /// Range 7..=9: 6 and 10 are outside, 7 and 9 the inclusive ends; a one-key range opens
    /// that key alone.
    #[test]
    fn key_tokens_open_only_their_key_ids() {
        let keys = keys();
        let token = keys.issue(&claims()).expect("issue");
        let key = |id| verify(&token, &keys, NOW, &RequestedObject::Key(benw(), id), None);
        for id in [7, 8, 9] {
            assert_eq!(key(id), Ok(claims()), "key {id}");
        }
        for id in [0, 6, 10, u64::MAX] {
            assert_eq!(key(id), Err(TokenError::KeyOutOfRange), "key {id}");
        }
        let single = ViewerClaims {
            reach: Reach::Keys(ids(u64::MAX, u64::MAX)),
            ..claims()
        };
        let token = keys.issue(&single).expect("issue");
        let open = |id| verify(&token, &keys, NOW, &RequestedObject::Key(benw(), id), None);
        assert_eq!(open(u64::MAX), Ok(single));
        assert_eq!(open(u64::MAX - 1), Err(TokenError::KeyOutOfRange));

        assert_eq!(KeyIds::new(3, 2), None);
        assert_eq!(KeyIds::covering([]), None);
        assert_eq!(KeyIds::covering([12, 10, 11]), Some(ids(10, 12)));
        assert_eq!(KeyIds::covering([5]), Some(ids(5, 5)));
    }

    /// A payload whose reach byte is 0 or unknown, or whose key range runs backwards, is
    /// malformed even with a valid MAC: no default reach exists to fall back on.
    #[test]
    fn an_unknown_reach_is_malformed() {
        let keys = keys();
        let mut backwards = vec![2u8];
        backwards.extend_from_slice(&9u64.to_be_bytes());
        backwards.extend_from_slice(&7u64.to_be_bytes());
        for reach in [vec![0u8], vec![5], vec![255], backwards, vec![2, 0, 0, 0]] {
            let mut payload = 1_700_000_600u64.to_be_bytes().to_vec();
            payload.extend_from_slice(&reach);
            payload.extend_from_slice(b"\x01v\x01s\x04benw\x00");
            let signed = format!("v2.k2.{}", URL_SAFE_NO_PAD.encode(&payload));
            let mac = crypto::hmac_sha1(keys.current().secret(), &[signed.as_bytes()]);
            let token = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(mac));
            assert_eq!(
                verify(&token, &keys, 0, &key_8(), None),
                Err(TokenError::Malformed),
                "reach {reach:?}"
            );
        }
    }

    /// A correctly signed version 1 token (the python3 recipe above with 'v1.k2.' and the
    /// v1 scope byte 2, "key") is refused: version 1 key tokens had no range.
    #[test]
    fn version_1_tokens_are_refused() {
        let v1 = "v1.k2.AAAAAGVT81gCCHZpZXdlci03A2FiYwRiZW53AA.pnpmOXvMh3hDI2jl-3AKKzaxcrA";
        assert_eq!(
            verify(v1, &keys(), NOW, &key_8(), None),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn round_trips_and_checks_every_claim() {
        let keys = keys();
        let token = keys.issue(&claims()).expect("issue");
        assert_eq!(verify(&token, &keys, NOW, &key_8(), None), Ok(claims()));
        assert_eq!(
            verify(&token, &keys, 1_700_000_599, &key_8(), None),
            Ok(claims())
        );
        assert_eq!(
            verify(&token, &keys, 1_700_000_600, &key_8(), None),
            Err(TokenError::Expired)
        );
        let other = RequestedObject::Key(StreamName::parse("other").expect("valid name"), 8);
        assert_eq!(
            verify(&token, &keys, NOW, &other, None),
            Err(TokenError::WrongStream)
        );
    }

    #[test]
    fn ip_binding_is_enforced() {
        let keys = keys();
        let bound = ViewerClaims {
            ip: Some("203.0.113.5".parse().expect("ip")),
            ..claims()
        };
        let token = keys.issue(&bound).expect("issue");
        let from = |client: Option<&str>| {
            let client = client.map(|ip| ip.parse().expect("ip"));
            verify(&token, &keys, NOW, &key_8(), client)
        };
        assert_eq!(from(Some("203.0.113.5")), Ok(bound.clone()));
        // The same client seen through a dual-stack socket.
        assert_eq!(from(Some("::ffff:203.0.113.5")), Ok(bound));
        assert_eq!(from(Some("203.0.113.6")), Err(TokenError::WrongIp));
        assert_eq!(from(None), Err(TokenError::WrongIp));

        let v6 = ViewerClaims {
            ip: Some("2001:db8::1".parse().expect("ip")),
            ..claims()
        };
        let token = keys.issue(&v6).expect("issue");
        assert_eq!(verify(&token, &keys, NOW, &key_8(), v6.ip), Ok(v6));
    }

    #[test]
    fn rotation_keeps_old_tokens_valid_until_the_key_is_dropped() {
        let old_keys = SigningKeys::parse("k1:cHJldmlvdXMtc2VjcmV0LWFiY2RlZmdoaWo=").expect("keys");
        let old_token = old_keys.issue(&claims()).expect("issue");
        assert!(old_token.starts_with("v2.k1."));
        let verified = verify(&old_token, &keys(), NOW, &key_8(), None).expect("k1 held");
        assert_eq!(verified.kid, "k1");
        let only_new = SigningKeys::parse("k2:Y3VycmVudC1zZWNyZXQtMDEyMzQ1Njc4OQ").expect("keys");
        assert_eq!(
            verify(&old_token, &only_new, NOW, &key_8(), None),
            Err(TokenError::UnknownKid)
        );
        // A token claiming kid k2 but signed with k1's secret.
        let forged = old_token.replacen("v2.k1.", "v2.k2.", 1);
        assert_eq!(
            verify(&forged, &keys(), NOW, &key_8(), None),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn tampering_is_refused() {
        let keys = keys();
        let token = keys.issue(&claims()).expect("issue");
        let now = NOW;
        // Extend expiry: flip a payload character.
        let (head, mac) = token.rsplit_once('.').expect("mac");
        let mut payload: Vec<char> = head.chars().collect();
        let index = "v2.k2.AAAAAGV".len();
        payload[index] = if payload[index] == 'U' { 'V' } else { 'U' };
        let tampered = format!("{}.{mac}", payload.into_iter().collect::<String>());
        assert_eq!(
            verify(&tampered, &keys, now, &key_8(), None),
            Err(TokenError::BadSignature)
        );
        // Flip the MAC.
        let first = if mac.starts_with('A') { 'B' } else { 'A' };
        let flipped = format!("{head}.{first}{}", &mac[1..]);
        assert_eq!(
            verify(&flipped, &keys, now, &key_8(), None),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let keys = keys();
        let token = keys.issue(&claims()).expect("issue");
        let long = "a".repeat(MAX_TOKEN_LEN + 1);
        for bad in [
            "",
            "v2",
            "v2.k2",
            "v2.k2.AAAA",
            "v3.k2.AAAAAGVTy2gIdmlld2VyLTcDYWJjBGJlbncA.xxxxxxxxxxxxxxxxxxxxxxxxxxx",
            &format!("{token}="),
            &format!("{token}AA"),
            &token[..token.len() - 1],
            &token.replacen("v2.k2.", "v2.k2.x.", 1),
            &long,
        ] {
            assert_eq!(
                verify(bad, &keys, NOW, &key_8(), None),
                Err(TokenError::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_signed_but_garbled_payload_is_malformed_not_a_panic() {
        let keys = keys();
        let secret = keys.current().secret();
        for payload in [
            &b""[..],
            &[0u8; 8],
            &[0, 0, 0, 0, 0, 0, 0, 9, 200],
            &[0u8; 40],
        ] {
            let signed = format!("v2.k2.{}", URL_SAFE_NO_PAD.encode(payload));
            let mac = URL_SAFE_NO_PAD.encode(crypto::hmac_sha1(secret, &[signed.as_bytes()]));
            assert_eq!(
                verify(&format!("{signed}.{mac}"), &keys, 0, &key_8(), None),
                Err(TokenError::Malformed)
            );
        }
    }

    #[test]
    fn oversized_claims_are_refused_at_issue() {
        let keys = keys();
        let long = ViewerClaims {
            viewer: "v".repeat(256),
            ..claims()
        };
        assert_eq!(keys.issue(&long), Err(TokenError::InvalidClaim("viewer")));
        let bad_kid = ViewerClaims {
            kid: "k.2".into(),
            ..claims()
        };
        assert_eq!(
            issue(&bad_kid, b"whatever"),
            Err(TokenError::InvalidClaim("kid"))
        );
    }
}

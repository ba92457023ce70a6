//! gatecast's own viewer token: what `/api/sign` puts on playlist URLs, and what the playlist
//! function writes into every key (and, when segments are signed, segment) URI for the key and
//! segment functions to check.
//!
//! Unlike seed 000's token it expires, names the viewer (for pay-per-view and the audit of who
//! fetched which key), may pin the client IP, and names the signing secret by a key id (`kid`)
//! so secrets rotate without cutting off viewers mid-stream.
//!
//! Every token also carries a [`Scope`]: the one kind of object it opens. A playlist URL lives
//! for hours (a whole viewing session) and ends up in browser histories, referrer logs and
//! shared links; the key tokens minted from it live about one key period. Without a scope a
//! leaked playlist URL's token would open keys directly for its whole lifetime, bypassing the
//! playlist function's fresh short-lived key tokens; with it, each function accepts only its
//! own scope.
//!
//! # Wire format (version 1)
//!
//! ```text
//! v1.<kid>.<payload>.<mac>
//! payload = base64url_nopad( expires_at: u64 BE || scope: u8
//!                            || lp(viewer) || lp(session) || lp(stream) || ip )
//! scope   = 0x01 playlist | 0x02 key | 0x03 segment (any other value is malformed)
//! lp(s)   = one length byte (0..=255) followed by the UTF-8 bytes of s
//! ip      = 0x00 (not bound) | 0x04 + 4 bytes | 0x06 + 16 bytes, nothing after it
//! mac     = base64url_nopad( HMAC-SHA1( secret[kid], "v1.<kid>.<payload>" ) )
//! ```
//!
//! The scope byte was added before v1 was first deployed, so it did not bump the version.
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

/// The version prefix of tokens this module issues.
pub const VERSION: &str = "v1";
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
#[non_exhaustive]
pub enum TokenError {
    /// The token is not `v1.<kid>.<payload>.<mac>` with valid base64url parts and payload.
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
    /// The token opens another kind of object (e.g. a playlist token presented for a key).
    #[error("viewer token is for another kind of object")]
    WrongScope,
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

/// The one kind of object a token opens; see the module docs for why tokens are scoped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Scope {
    /// The stream's playlists (`index.m3u8`, `vod.m3u8`): issued by `/api/sign`, long-lived.
    Playlist,
    /// The stream's AES keys: minted per playlist response, living about one key period.
    Key,
    /// The stream's segments: minted per playlist response when segments are signed.
    Segment,
}

impl Scope {
    /// The payload byte; 0 is left unused so an all-zero payload never carries a scope.
    fn to_byte(self) -> u8 {
        match self {
            Self::Playlist => 1,
            Self::Key => 2,
            Self::Segment => 3,
        }
    }

    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(Self::Playlist),
            2 => Some(Self::Key),
            3 => Some(Self::Segment),
            _ => None,
        }
    }
}

/// What a viewer token asserts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewerClaims {
    /// The kind of object the token opens.
    pub scope: Scope,
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
        8 + 1 + 3 + claims.viewer.len() + claims.session.len() + claims.stream.len() + 17,
    );
    payload.extend_from_slice(&claims.expires_at.to_be_bytes());
    payload.push(claims.scope.to_byte());
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
/// unexpired at `now` (unix seconds), of `scope`, for `stream`, and — when it pins an IP —
/// presented from `client_ip`.
///
/// Checks run in this order: shape, kid, MAC (constant time), payload, scope, expiry, stream,
/// IP; so nothing from an unauthenticated payload is trusted, and an attacker learns nothing
/// from the error kind beyond "refused" (which is all [`crate::status`] reveals anyway).
pub fn verify(
    token: &str,
    keys: &SigningKeys,
    now: u64,
    scope: Scope,
    stream: &str,
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
    if claims.scope != scope {
        return Err(TokenError::WrongScope);
    }
    if now >= claims.expires_at {
        return Err(TokenError::Expired);
    }
    if claims.stream != stream {
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
    let [scope] = reader.array::<1>()?;
    let scope = Scope::from_byte(scope).ok_or(TokenError::Malformed)?;
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
        scope,
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

    /// Two 20+ byte secrets; base64 computed with `printf '%s' <text> | base64`.
    /// `k2`: "current-secret-0123456789" → Y3VycmVudC1zZWNyZXQtMDEyMzQ1Njc4OQ==
    /// `k1`: "previous-secret-abcdefghij" → cHJldmlvdXMtc2VjcmV0LWFiY2RlZmdoaWo=
    const KEYS: &str =
        "k2:Y3VycmVudC1zZWNyZXQtMDEyMzQ1Njc4OQ==, k1:cHJldmlvdXMtc2VjcmV0LWFiY2RlZmdoaWo";

    fn keys() -> SigningKeys {
        SigningKeys::parse(KEYS).expect("test keys parse")
    }

    fn claims() -> ViewerClaims {
        ViewerClaims {
            scope: Scope::Key,
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
    /// scope byte (1 playlist, 2 key, 3 segment):
    /// ```text
    /// import hmac, hashlib, base64, struct
    /// b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b'=').decode()
    /// for scope in (1, 2, 3):
    ///     p = (struct.pack('>Q', 1700000600) + bytes([scope])
    ///          + b'\x08viewer-7' + b'\x03abc' + b'\x04benw' + b'\x00')
    ///     s = 'v1.k2.' + b64(p)
    ///     print(s + '.' + b64(hmac.new(b'current-secret-0123456789', s.encode(), hashlib.sha1).digest()))
    /// ```
    #[test]
    fn issue_matches_an_independent_encoding() {
        for (scope, expected) in [
            (
                Scope::Playlist,
                "v1.k2.AAAAAGVT81gBCHZpZXdlci03A2FiYwRiZW53AA.d4MAXjxvja5LJJnZcSx8Io_TfO0",
            ),
            (
                Scope::Key,
                "v1.k2.AAAAAGVT81gCCHZpZXdlci03A2FiYwRiZW53AA.pnpmOXvMh3hDI2jl-3AKKzaxcrA",
            ),
            (
                Scope::Segment,
                "v1.k2.AAAAAGVT81gDCHZpZXdlci03A2FiYwRiZW53AA.oOVEnqY1718OLteEcZfphuqBCtA",
            ),
        ] {
            let claims = ViewerClaims { scope, ..claims() };
            assert_eq!(keys().issue(&claims).as_deref(), Ok(expected), "{scope:?}");
        }
    }

    #[test]
    fn a_token_opens_only_its_own_scope() {
        let keys = keys();
        let now = 1_700_000_000;
        for issued in [Scope::Playlist, Scope::Key, Scope::Segment] {
            let claims = ViewerClaims {
                scope: issued,
                ..claims()
            };
            let token = keys.issue(&claims).expect("issue");
            for presented_for in [Scope::Playlist, Scope::Key, Scope::Segment] {
                let verified = verify(&token, &keys, now, presented_for, "benw", None);
                if presented_for == issued {
                    assert_eq!(verified, Ok(claims.clone()));
                } else {
                    assert_eq!(
                        verified,
                        Err(TokenError::WrongScope),
                        "{issued:?} token presented for {presented_for:?}"
                    );
                }
            }
        }
    }

    /// A payload whose scope byte is 0 or unknown is malformed even with a valid MAC: no
    /// default scope exists to fall back on.
    #[test]
    fn an_unknown_scope_byte_is_malformed() {
        let keys = keys();
        for scope in [0u8, 4, 255] {
            let mut payload = 1_700_000_600u64.to_be_bytes().to_vec();
            payload.push(scope);
            payload.extend_from_slice(b"\x01v\x01s\x04benw\x00");
            let signed = format!("v1.k2.{}", URL_SAFE_NO_PAD.encode(&payload));
            let mac = crypto::hmac_sha1(keys.current().secret(), &[signed.as_bytes()]);
            let token = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(mac));
            assert_eq!(
                verify(&token, &keys, 0, Scope::Key, "benw", None),
                Err(TokenError::Malformed),
                "scope byte {scope}"
            );
        }
    }

    #[test]
    fn round_trips_and_checks_every_claim() {
        let keys = keys();
        let token = keys.issue(&claims()).expect("issue");
        assert_eq!(
            verify(&token, &keys, 1_700_000_000, Scope::Key, "benw", None),
            Ok(claims())
        );
        assert_eq!(
            verify(&token, &keys, 1_700_000_599, Scope::Key, "benw", None),
            Ok(claims())
        );
        assert_eq!(
            verify(&token, &keys, 1_700_000_600, Scope::Key, "benw", None),
            Err(TokenError::Expired)
        );
        assert_eq!(
            verify(&token, &keys, 1_700_000_000, Scope::Key, "other", None),
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
            verify(&token, &keys, 1_700_000_000, Scope::Key, "benw", client)
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
        assert_eq!(
            verify(&token, &keys, 1_700_000_000, Scope::Key, "benw", v6.ip),
            Ok(v6)
        );
    }

    #[test]
    fn rotation_keeps_old_tokens_valid_until_the_key_is_dropped() {
        let old_keys = SigningKeys::parse("k1:cHJldmlvdXMtc2VjcmV0LWFiY2RlZmdoaWo=").expect("keys");
        let old_token = old_keys.issue(&claims()).expect("issue");
        assert!(old_token.starts_with("v1.k1."));
        let verified =
            verify(&old_token, &keys(), 1_700_000_000, Scope::Key, "benw", None).expect("k1 held");
        assert_eq!(verified.kid, "k1");
        let only_new = SigningKeys::parse("k2:Y3VycmVudC1zZWNyZXQtMDEyMzQ1Njc4OQ").expect("keys");
        assert_eq!(
            verify(
                &old_token,
                &only_new,
                1_700_000_000,
                Scope::Key,
                "benw",
                None
            ),
            Err(TokenError::UnknownKid)
        );
        // A token claiming kid k2 but signed with k1's secret.
        let forged = old_token.replacen("v1.k1.", "v1.k2.", 1);
        assert_eq!(
            verify(&forged, &keys(), 1_700_000_000, Scope::Key, "benw", None),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn tampering_is_refused() {
        let keys = keys();
        let token = keys.issue(&claims()).expect("issue");
        let now = 1_700_000_000;
        // Extend expiry: flip a payload character.
        let (head, mac) = token.rsplit_once('.').expect("mac");
        let mut payload: Vec<char> = head.chars().collect();
        let index = "v1.k2.AAAAAGV".len();
        payload[index] = if payload[index] == 'U' { 'V' } else { 'U' };
        let tampered = format!("{}.{mac}", payload.into_iter().collect::<String>());
        assert_eq!(
            verify(&tampered, &keys, now, Scope::Key, "benw", None),
            Err(TokenError::BadSignature)
        );
        // Flip the MAC.
        let first = if mac.starts_with('A') { 'B' } else { 'A' };
        let flipped = format!("{head}.{first}{}", &mac[1..]);
        assert_eq!(
            verify(&flipped, &keys, now, Scope::Key, "benw", None),
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
            "v1",
            "v1.k2",
            "v1.k2.AAAA",
            "v2.k2.AAAAAGVTy2gIdmlld2VyLTcDYWJjBGJlbncA.xxxxxxxxxxxxxxxxxxxxxxxxxxx",
            &format!("{token}="),
            &format!("{token}AA"),
            &token[..token.len() - 1],
            &token.replacen("v1.k2.", "v1.k2.x.", 1),
            &long,
        ] {
            assert_eq!(
                verify(bad, &keys, 1_700_000_000, Scope::Key, "benw", None),
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
            let signed = format!("v1.k2.{}", URL_SAFE_NO_PAD.encode(payload));
            let mac = URL_SAFE_NO_PAD.encode(crypto::hmac_sha1(secret, &[signed.as_bytes()]));
            assert_eq!(
                verify(
                    &format!("{signed}.{mac}"),
                    &keys,
                    0,
                    Scope::Key,
                    "benw",
                    None
                ),
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

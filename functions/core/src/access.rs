//! Who may fetch a key or segment: the credential a rewritten playlist wrote into the object's
//! URI, checked the same way by the `key` and `segment` components.
//!
//! Two credentials are accepted, tried in this order:
//! 1. `?t=<viewer token>` ([`crate::viewer_token`]): expiring, bound to one stream, one kind
//!    of object ([`Reach`]: a key token opens only the key ids of the playlist it was minted
//!    for, a segment token segments only), one viewer and session, and optionally one client
//!    address.
//! 2. `?s=<seed 000 token>` plus the `sessionid` cookie ([`crate::session_token`]), only when a
//!    session secret is configured.
//!
//! A verified credential becomes a [`Grant`], which names the sanctions (KV marks) that can
//! still refuse it: a revoked session, a blocked viewer, a pay-per-view deny-list entry, a
//! banned stream.
//!
//! The playlist is where those credentials are minted: [`admit_playlist`] accepts a
//! playlist-scope viewer token, a WMSAuth signature or a seed 000 session, and
//! [`object_token_queries`] turns the admission into the short-lived queries written into the
//! key (and segment) URIs of that one response. A playlist-scope token is never accepted for a
//! key or segment, so a leaked playlist URL opens nothing but the playlist, which only hands
//! out credentials that die within `key_token_ttl_seconds`.
//!
//! What a minted credential may do never exceeds what admitted the viewer: a key or segment
//! token expires no later than the playlist token or WMSAuth signature that admitted the
//! viewer, and a key token opens only the key ids named in the playlist it was written into.
//! The refresh-on-refetch model is unchanged (every playlist fetch mints fresh tokens), so a
//! viewer keeps playing exactly as long as the playlist URL admits them.

use std::net::IpAddr;

use crate::form;
use crate::layout::{RequestedObject, StreamName};
use crate::ppv;
use crate::registry;
use crate::rewrite::{self, RewriteOptions};
use crate::session_token;
use crate::viewer_token::{self, KeyIds, Reach, Scope, SigningKeys, TokenError, ViewerClaims};
use crate::wmsauth::{self, WmsAuthError};

/// Cookie that carries the site's session in seed 000 (Django's default name).
pub const SESSION_COOKIE: &str = "sessionid";
/// Longest recording [`object_token_ttl`] extends VOD tokens by: a bound on what a garbled
/// `#EXTINF` can do to a token lifetime.
pub const MAX_RECORDING_SECONDS: u64 = 7 * 24 * 3600;

/// Why an object request was refused. The edge answers every variant with the same 403.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// The request carries no credential this deployment accepts.
    #[error("no credential")]
    NoCredential,
    /// The viewer token was refused.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The seed 000 `s` token does not match the session cookie and stream.
    #[error("session signature does not match")]
    BadSessionSignature,
    /// The WMSAuth signature was refused.
    #[error(transparent)]
    WmsAuth(#[from] WmsAuthError),
}

/// A verified object request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// A gatecast viewer token, with its claims.
    Viewer(ViewerClaims),
    /// A seed 000 session: the site still has to say the session is an active user
    /// (`authorize_key`, see [`session_token::SessionCheck`]).
    Session {
        /// The `sessionid` cookie as sent.
        cookie: String,
    },
}

impl Grant {
    /// The `viewers`-store keys whose presence refuses this grant for `stream`.
    pub fn sanction_keys(&self, stream: &StreamName) -> Vec<String> {
        let mut keys = vec![registry::banned_stream_key(stream)];
        match self {
            Self::Viewer(claims) => {
                if let Some(session) = claims.session_id() {
                    keys.push(registry::revoked_session_key(session));
                }
                if let Some(viewer) = claims.viewer_id() {
                    keys.push(registry::blocked_viewer_key(viewer));
                    keys.push(ppv::denied_key(viewer));
                }
            }
            // `/api/sessions/<sessionid>/revoke` ends a seed 000 session too.
            Self::Session { cookie } => keys.push(registry::revoked_session_key(cookie)),
        }
        keys
    }
}

/// The token scope that opens `object`. Taken from the requested path, never from the caller,
/// so a component cannot check a key request against the wrong scope.
pub fn required_scope(object: &RequestedObject) -> Scope {
    match object {
        RequestedObject::LivePlaylist(_) | RequestedObject::VodPlaylist(_) => Scope::Playlist,
        RequestedObject::Segment(..) => Scope::Segment,
        RequestedObject::Key(..) => Scope::Key,
    }
}

/// Checks the credential of a key or segment request for `object`: a viewer token must reach
/// the object (its kind, its stream and, for a key, its id).
///
/// `query` is the raw query string, `cookie_header` the `Cookie` header, `client_ip` the
/// address the edge saw, `session_secret` empty when seed 000 is off.
pub fn verify_object_request(
    query: &str,
    cookie_header: Option<&str>,
    object: &RequestedObject,
    client_ip: Option<IpAddr>,
    now: u64,
    signing_keys: &SigningKeys,
    session_secret: &[u8],
) -> Result<Grant, AccessError> {
    let stream = object.stream();
    if let Some(token) = form::field(query, viewer_token::QUERY_PARAM) {
        let claims = viewer_token::verify(&token, signing_keys, now, object, client_ip)?;
        return Ok(Grant::Viewer(claims));
    }
    let cookie = cookie_header.and_then(|header| form::cookie(header, SESSION_COOKIE));
    let presented = form::field(query, session_token::QUERY_PARAM);
    match (cookie, presented) {
        (Some(cookie), Some(presented)) if !session_secret.is_empty() => {
            if session_token::verify(session_secret, cookie, stream.as_str(), &presented) {
                Ok(Grant::Session {
                    cookie: cookie.to_owned(),
                })
            } else {
                Err(AccessError::BadSessionSignature)
            }
        }
        _ => Err(AccessError::NoCredential),
    }
}

/// How the playlist component admits viewers and mints key credentials (from spin variables).
#[derive(Debug, Clone, Copy)]
pub struct PlaylistPolicy<'a> {
    /// Viewer-token keys: verify `?t=` and sign the key and segment tokens.
    pub signing_keys: &'a SigningKeys,
    /// Seed 000 secret; empty turns the scheme off.
    pub session_secret: &'a [u8],
    /// WMSAuth password; empty turns the scheme off.
    pub wmsauth_key: &'a str,
    /// Allowed clock skew for WMSAuth `server_time`.
    pub wmsauth_tolerance_seconds: u64,
    /// The weaker WMSAuth forms this deployment opted into (`wmsauth_allow_*`).
    pub wmsauth_compat: wmsauth::Compat,
    /// Lifetime of each key (and segment) token, a little over one key period.
    pub key_token_ttl_seconds: u64,
    /// Also mint segment credentials (deployments whose `live/` is private).
    pub sign_segments: bool,
}

/// A viewer admitted to a playlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Admitted by a viewer token or WMSAuth: key URIs get fresh viewer tokens for these ids.
    Viewer {
        /// Viewer id (WMSAuth `id`; `None` when the credential names none).
        viewer: Option<String>,
        /// Session id (`None` for WMSAuth, which has no sessions).
        session: Option<String>,
        /// Client address, when the admitting credential was bound to it.
        ip: Option<IpAddr>,
        /// Unix second from which the admitting credential no longer admits: the cap of every
        /// credential minted from this admission.
        until: u64,
    },
    /// Seed 000: key URIs get `s=` for this cookie, exactly like the nginx recipe.
    Session {
        /// The `sessionid` cookie as sent.
        cookie: String,
    },
}

/// Admits a viewer to `playlist` (a live or VOD playlist), trying `?t=` (a token that reaches
/// this very playlist), then `?wmsAuthSign=` (when a WMSAuth key is set), then the `sessionid`
/// cookie (when a session secret is set).
pub fn admit_playlist(
    query: &str,
    cookie_header: Option<&str>,
    playlist: &RequestedObject,
    client_ip: Option<IpAddr>,
    now: u64,
    policy: &PlaylistPolicy<'_>,
) -> Result<Admission, AccessError> {
    let stream = playlist.stream();
    if let Some(token) = form::field(query, viewer_token::QUERY_PARAM) {
        let claims = viewer_token::verify(&token, policy.signing_keys, now, playlist, client_ip)?;
        return Ok(Admission::Viewer {
            viewer: claims.viewer_id().map(str::to_owned),
            session: claims.session_id().map(str::to_owned),
            ip: claims.ip,
            until: claims.expires_at,
        });
    }
    if let Some(signature) = form::field(query, wmsauth::QUERY_PARAM)
        && !policy.wmsauth_key.is_empty()
    {
        let client = client_ip.map(|ip| ip.to_string()).unwrap_or_default();
        let stream_path = format!("{}/{stream}", crate::layout::LIVE_PREFIX);
        let verified = wmsauth::verify(
            &signature,
            &wmsauth::VerifyRequest {
                key: policy.wmsauth_key,
                client_ip: &client,
                stream_path: &stream_path,
                now,
                tolerance_seconds: policy.wmsauth_tolerance_seconds,
                compat: policy.wmsauth_compat,
            },
        )?;
        return Ok(Admission::Viewer {
            viewer: verified.id,
            session: None,
            ip: if verified.ip_bound { client_ip } else { None },
            // `valid_until` is the last second the signature admits.
            until: verified.valid_until.saturating_add(1),
        });
    }
    match cookie_header.and_then(|header| form::cookie(header, SESSION_COOKIE)) {
        Some(cookie) if !policy.session_secret.is_empty() && !cookie.is_empty() => {
            Ok(Admission::Session {
                cookie: cookie.to_owned(),
            })
        }
        _ => Err(AccessError::NoCredential),
    }
}

/// The credentials one playlist response writes into its URIs: queries (`t=…` or `s=…`,
/// percent-encoded, no `?`) for key URIs and, when segments are signed, segment URIs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectQueries {
    /// Appended to every key URI; `None` when the playlist names no key of its stream (then
    /// nothing is minted that could open one).
    pub key: Option<String>,
    /// Appended to every segment URI; `None` when segments are not signed.
    pub segment: Option<String>,
}

impl ObjectQueries {
    /// The playlist rewrite that writes these queries.
    pub fn rewrite_options(&self) -> RewriteOptions<'_> {
        RewriteOptions {
            key_query: self.key.as_deref(),
            segment_query: self.segment.as_deref(),
        }
    }
}

/// Lifetime of the key and segment tokens minted into `playlist` (the stored text) when it is
/// served as `object`, before the admitting credential caps it.
///
/// A live playlist is refetched every target duration, each time with fresh tokens, so they
/// need to outlive one key period only: `key_token_ttl_seconds`. A recorded broadcast's
/// `vod.m3u8` is fetched once and then played to its end, so its tokens must also cover the
/// whole recording: its duration (the sum of its `#EXTINF` durations, at most
/// [`MAX_RECORDING_SECONDS`]) is added. A leaked VOD key URL thus lives as long as the
/// recording plus one key-token lifetime, no longer (and never past the signed VOD URL).
fn object_token_ttl(object: &RequestedObject, playlist: &str, key_token_ttl_seconds: u64) -> u64 {
    if !matches!(object, RequestedObject::VodPlaylist(_)) {
        return key_token_ttl_seconds;
    }
    let recording = playlist
        .lines()
        .filter_map(|line| line.trim().strip_prefix("#EXTINF:"))
        .filter_map(|info| whole_seconds_up(info.split(',').next()?.trim()))
        .fold(0u64, u64::saturating_add)
        .min(MAX_RECORDING_SECONDS);
    key_token_ttl_seconds.saturating_add(recording)
}

/// An `#EXTINF` duration (`decimal-integer` or `decimal-floating-point`, RFC 8216 §4.3.2.1)
/// rounded up to whole seconds; `None` for anything else. Parsed by hand: `f64::from_str`
/// costs the playlist component ~19 KB of its 400 KB budget.
fn whole_seconds_up(duration: &str) -> Option<u64> {
    let (whole, fraction) = duration.split_once('.').unwrap_or((duration, ""));
    let digits = |text: &str| text.bytes().all(|b| b.is_ascii_digit());
    // `u64::from_str` would also take a sign; the grammar has none.
    if whole.is_empty() || !digits(whole) || !digits(fraction) {
        return None;
    }
    let whole = whole.parse::<u64>().unwrap_or(u64::MAX); // all digits: only overflow fails
    Some(whole.saturating_add(u64::from(fraction.bytes().any(|b| b != b'0'))))
}

/// Mints the key (and, with [`PlaylistPolicy::sign_segments`], segment) credentials of one
/// response of `object` (a playlist) whose stored text is `playlist`, for this admission.
///
/// Viewer tokens get [`Reach::Keys`] (the key ids whose URIs are in `playlist`, see
/// [`key_ids_in`]) and [`Reach::Segments`] respectively, and expire at
/// `now + object_token_ttl`, but never after the admitting credential (`until`): a VOD URL
/// signed for 60 s does not mint key tokens for the recording's length. A seed 000 session
/// gets its `s=` token for both, as the nginx recipe does (that token has no scope or
/// expiry). A playlist without a key URI of its stream gets no key credential at all.
pub fn object_token_queries(
    admission: &Admission,
    object: &RequestedObject,
    playlist: &str,
    now: u64,
    policy: &PlaylistPolicy<'_>,
) -> Result<ObjectQueries, AccessError> {
    let ttl = object_token_ttl(object, playlist, policy.key_token_ttl_seconds);
    let expires_at = now.saturating_add(ttl);
    let mint = |reach| object_token_query(admission, reach, object.stream(), expires_at, policy);
    Ok(ObjectQueries {
        key: key_ids_in(playlist, object.stream())
            .map(|ids| mint(Reach::Keys(ids)))
            .transpose()?,
        segment: policy
            .sign_segments
            .then(|| mint(Reach::Segments))
            .transpose()?,
    })
}

/// The key ids of `stream` whose URIs the rewrite of `playlist` signs (`#EXT-X-KEY` and
/// `#EXT-X-SESSION-KEY`): the range a key token minted for this playlist opens. Key URIs that
/// do not name a key of `stream` are skipped (a token for `stream` cannot open them anyway).
pub fn key_ids_in(playlist: &str, stream: &StreamName) -> Option<KeyIds> {
    KeyIds::covering(
        rewrite::key_uris(playlist).filter_map(|uri| crate::layout::key_id_in_uri(uri, stream)),
    )
}

fn object_token_query(
    admission: &Admission,
    reach: Reach,
    stream: &StreamName,
    expires_at: u64,
    policy: &PlaylistPolicy<'_>,
) -> Result<String, AccessError> {
    match admission {
        Admission::Viewer {
            viewer,
            session,
            ip,
            until,
        } => {
            let claims = ViewerClaims {
                reach,
                viewer: viewer.clone().unwrap_or_default(),
                session: session.clone().unwrap_or_default(),
                stream: stream.to_string(),
                expires_at: expires_at.min(*until),
                ip: *ip,
                kid: String::new(),
            };
            let token = policy.signing_keys.issue(&claims)?;
            Ok(format!(
                "{}={}",
                viewer_token::QUERY_PARAM,
                form::encode(&token)
            ))
        }
        Admission::Session { cookie } => Ok(session_token::query_pair(
            policy.session_secret,
            cookie,
            stream.as_str(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    fn benw() -> StreamName {
        StreamName::parse("benw").expect("valid name")
    }

    /// Key 7 of `benw`, the object most tests request.
    fn benw_key() -> RequestedObject {
        RequestedObject::Key(benw(), 7)
    }

    fn keys() -> SigningKeys {
        // base64 of "0123456789abcdefghijklmn" (python3 base64.b64encode).
        SigningKeys::parse("k1:MDEyMzQ1Njc4OWFiY2RlZmdoaWprbG1u").expect("valid keys")
    }

    fn live() -> RequestedObject {
        RequestedObject::LivePlaylist(benw())
    }

    fn vod() -> RequestedObject {
        RequestedObject::VodPlaylist(benw())
    }

    /// Keys 6..=8 of `benw`, around [`benw_key`].
    fn keys_6_to_8() -> Reach {
        Reach::Keys(KeyIds::new(6, 8).expect("6 <= 8"))
    }

    /// A token valid until `NOW + 600`.
    fn token(reach: Reach, viewer: &str, session: &str, ip: Option<IpAddr>) -> String {
        token_until(reach, viewer, session, ip, NOW + 600)
    }

    fn token_until(
        reach: Reach,
        viewer: &str,
        session: &str,
        ip: Option<IpAddr>,
        expires_at: u64,
    ) -> String {
        let claims = ViewerClaims {
            reach,
            viewer: viewer.into(),
            session: session.into(),
            stream: "benw".into(),
            expires_at,
            ip,
            kid: String::new(),
        };
        keys().issue(&claims).expect("issuable")
    }

    /// A live window naming keys 7 and 8 of `benw`, and a key of another stream (skipped).
    const LIVE_WINDOW: &str = "#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-MEDIA-SEQUENCE:40\n\
#EXT-X-KEY:METHOD=AES-128,URI=\"/keys/benw/7.key\",IV=0x0000000000000000000000000000002a\n\
#EXTINF:6.000,\n40.ts\n\
#EXT-X-KEY:METHOD=AES-128,URI=\"/keys/benw/8.key\",IV=0x0000000000000000000000000000002b\n\
#EXTINF:6.000,\n41.ts\n\
#EXT-X-KEY:METHOD=AES-128,URI=\"/keys/other/99.key\"\n\
#EXTINF:6.000,\n42.ts\n";

    #[test]
    fn viewer_tokens_grant_and_name_their_sanctions() {
        let query = format!(
            "t={}",
            form::encode(&token(keys_6_to_8(), "ID_1", "s-42", None))
        );
        let grant = verify_object_request(&query, None, &benw_key(), None, NOW, &keys(), b"")
            .expect("valid token");
        assert_eq!(
            grant.sanction_keys(&benw()),
            [
                "banned-stream:benw",
                "revoked-session:s-42",
                "blocked-viewer:ID_1",
                "ppv-denied:ID_1"
            ]
        );
        assert!(matches!(
            verify_object_request(&query, None, &benw_key(), None, NOW + 600, &keys(), b""),
            Err(AccessError::Token(TokenError::Expired))
        ));
        let other = RequestedObject::Key(StreamName::parse("other").expect("valid name"), 7);
        assert!(matches!(
            verify_object_request(&query, None, &other, None, NOW, &keys(), b""),
            Err(AccessError::Token(TokenError::WrongStream))
        ));
    }

    #[test]
    fn ip_bound_tokens_need_the_same_client() {
        let bound = IpAddr::from([203, 0, 113, 5]);
        let query = format!(
            "t={}",
            form::encode(&token(keys_6_to_8(), "v", "s", Some(bound)))
        );
        let check = |ip| verify_object_request(&query, None, &benw_key(), ip, NOW, &keys(), b"");
        assert!(check(Some(bound)).is_ok());
        assert!(
            check(crate::client_addr::parse_address(
                "[::ffff:203.0.113.5]:4321"
            ))
            .is_ok()
        );
        assert!(check(Some(IpAddr::from([203, 0, 113, 6]))).is_err());
        assert!(check(None).is_err());
    }

    /// The seed 000 token for cookie `abc` and stream `benw` under `SECRET_KEY`, from openssl:
    /// `printf 'abc benw' | openssl dgst -sha1 -hmac SECRET_KEY -binary | base64`.
    #[test]
    fn seed_000_sessions_need_cookie_signature_and_secret() {
        let query = "s=rMmR8hX3guMv3deDqoLkC9nm1Y8%3D";
        let cookie = Some("csrftoken=x; sessionid=abc");
        let grant = verify_object_request(
            query,
            cookie,
            &benw_key(),
            None,
            NOW,
            &keys(),
            b"SECRET_KEY",
        );
        assert_eq!(
            grant,
            Ok(Grant::Session {
                cookie: "abc".into()
            })
        );
        assert_eq!(
            grant.expect("granted").sanction_keys(&benw()),
            ["banned-stream:benw", "revoked-session:abc"]
        );
        let other_cookie = Some("sessionid=abd");
        assert_eq!(
            verify_object_request(
                query,
                other_cookie,
                &benw_key(),
                None,
                NOW,
                &keys(),
                b"SECRET_KEY"
            ),
            Err(AccessError::BadSessionSignature)
        );
        // Scheme off, or no cookie: no credential at all.
        assert_eq!(
            verify_object_request(query, cookie, &benw_key(), None, NOW, &keys(), b""),
            Err(AccessError::NoCredential)
        );
        assert_eq!(
            verify_object_request(query, None, &benw_key(), None, NOW, &keys(), b"SECRET_KEY"),
            Err(AccessError::NoCredential)
        );
        assert_eq!(
            verify_object_request("", cookie, &benw_key(), None, NOW, &keys(), b"SECRET_KEY"),
            Err(AccessError::NoCredential)
        );
    }

    fn policy<'a>(
        keys: &'a SigningKeys,
        session_secret: &'a [u8],
        wms: &'a str,
    ) -> PlaylistPolicy<'a> {
        PlaylistPolicy {
            signing_keys: keys,
            session_secret,
            wmsauth_key: wms,
            wmsauth_tolerance_seconds: 30,
            wmsauth_compat: wmsauth::Compat::default(),
            key_token_ttl_seconds: 90,
            sign_segments: false,
        }
    }

    #[test]
    fn playlist_viewer_tokens_mint_key_tokens_that_the_key_check_accepts() {
        let keys = keys();
        let policy = policy(&keys, b"", "");
        let bound = IpAddr::from([203, 0, 113, 5]);
        let query = format!(
            "t={}",
            form::encode(&token(Reach::LivePlaylist, "ID_1", "s-42", Some(bound)))
        );
        let admission =
            admit_playlist(&query, None, &live(), Some(bound), NOW, &policy).expect("admitted");
        assert_eq!(
            admission,
            Admission::Viewer {
                viewer: Some("ID_1".into()),
                session: Some("s-42".into()),
                ip: Some(bound),
                until: NOW + 600,
            }
        );
        let queries = object_token_queries(&admission, &live(), LIVE_WINDOW, NOW + 30, &policy)
            .expect("minted");
        assert_eq!(queries.segment, None, "segments are not signed");
        let key_query = queries.key.expect("the window names keys");
        assert!(key_query.starts_with("t=v2.k1."), "{key_query}");
        let grant = verify_object_request(
            &key_query,
            None,
            &benw_key(),
            Some(bound),
            NOW + 119,
            &keys,
            b"",
        )
        .expect("key token valid until now + 30 + 90");
        let Grant::Viewer(claims) = grant else {
            panic!("viewer grant expected")
        };
        assert_eq!(
            (claims.viewer.as_str(), claims.expires_at),
            ("ID_1", NOW + 120)
        );
        assert!(
            verify_object_request(
                &key_query,
                None,
                &benw_key(),
                Some(bound),
                NOW + 120,
                &keys,
                b""
            )
            .is_err()
        );
        // The IP binding carries over to the key token.
        assert!(
            verify_object_request(&key_query, None, &benw_key(), None, NOW, &keys, b"").is_err()
        );
        // No credential at all.
        assert_eq!(
            admit_playlist("", None, &live(), None, NOW, &policy),
            Err(AccessError::NoCredential)
        );
    }

    /// Issue 13 item 5: the key token minted for [`LIVE_WINDOW`] opens keys 7 and 8 (the ids
    /// of `benw` in it), not 6, 9 or the next live key; a playlist without a key URI of its
    /// stream mints nothing that opens a key.
    #[test]
    fn key_tokens_open_only_the_keys_their_playlist_names() {
        let keys = keys();
        let policy = policy(&keys, b"", "");
        let admission = Admission::Viewer {
            viewer: Some("v".into()),
            session: Some("s".into()),
            ip: None,
            until: NOW + 600,
        };
        assert_eq!(key_ids_in(LIVE_WINDOW, &benw()), KeyIds::new(7, 8));
        let queries =
            object_token_queries(&admission, &live(), LIVE_WINDOW, NOW, &policy).expect("minted");
        let key_query = queries.key.expect("the window names keys");
        let key = |id| {
            let object = RequestedObject::Key(benw(), id);
            verify_object_request(&key_query, None, &object, None, NOW, &keys, b"")
        };
        assert!(key(7).is_ok());
        assert!(key(8).is_ok());
        let out_of_range = Err(AccessError::Token(TokenError::KeyOutOfRange));
        assert_eq!(key(6), out_of_range);
        assert_eq!(key(9), out_of_range);
        let other = RequestedObject::Key(StreamName::parse("other").expect("valid name"), 7);
        assert_eq!(
            verify_object_request(&key_query, None, &other, None, NOW, &keys, b""),
            Err(AccessError::Token(TokenError::WrongStream))
        );

        let keyless = "#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI=\"/keys/other/99.key\"\n\
#EXTINF:6.000,\n40.ts\n";
        let queries =
            object_token_queries(&admission, &live(), keyless, NOW, &policy).expect("minted");
        assert_eq!(queries.key, None);
        assert_eq!(queries.rewrite_options().key_query, None);
    }

    /// Issue 13 item 5: a minted credential expires no later than what admitted the viewer.
    /// By hand: a live token valid until NOW + 100 fetched at NOW + 30 with a 90 s key TTL
    /// caps at NOW + 100 (not NOW + 120); a VOD URL valid until NOW + 60 over a 27 s recording
    /// caps at NOW + 60 (not NOW + 90 + 27); WMSAuth signed at T for 20 min with 30 s
    /// tolerance admits through T + 1230, so tokens minted at T + 1200 end at T + 1231, not
    /// T + 1290.
    #[test]
    fn minted_tokens_expire_with_the_admitting_credential() {
        let keys = keys();
        let policy = PlaylistPolicy {
            sign_segments: true,
            ..policy(&keys, b"", "defaultpassword")
        };
        let expiry = |query: Option<String>, object: RequestedObject| {
            let query = query.expect("minted");
            let token = form::field(&query, viewer_token::QUERY_PARAM).expect("a token");
            let claims = viewer_token::verify(&token, &keys, 0, &object, None).expect("valid");
            claims.expires_at
        };
        let mint = |query: String, object: RequestedObject, playlist: &str, now| {
            let admission =
                admit_playlist(&query, None, &object, None, now, &policy).expect("admitted");
            object_token_queries(&admission, &object, playlist, now, &policy).expect("minted")
        };

        let live_query = format!(
            "t={}",
            form::encode(&token_until(Reach::LivePlaylist, "v", "s", None, NOW + 100))
        );
        let minted = mint(live_query, live(), LIVE_WINDOW, NOW + 30);
        assert_eq!(expiry(minted.key, benw_key()), NOW + 100);
        let segment = RequestedObject::Segment(benw(), 40);
        assert_eq!(expiry(minted.segment, segment), NOW + 100);

        let recording = "#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI=\"/keys/benw/7.key\"\n\
#EXTINF:20.000,\n0.ts\n#EXTINF:7.000,\n1.ts\n#EXT-X-ENDLIST\n";
        let vod_query = format!(
            "t={}",
            form::encode(&token_until(Reach::VodPlaylist, "v", "s", None, NOW + 60))
        );
        let minted = mint(vod_query.clone(), vod(), recording, NOW);
        assert_eq!(expiry(minted.key, benw_key()), NOW + 60);
        let long_url = format!(
            "t={}",
            form::encode(&token_until(Reach::VodPlaylist, "v", "s", None, NOW + 3600))
        );
        let minted = mint(long_url, vod(), recording, NOW);
        assert_eq!(expiry(minted.key, benw_key()), NOW + 90 + 27);

        let signed_at = 1_551_425_504;
        let wms_query = format!("wmsAuthSign={}", form::encode(WMSAUTH_SIGNATURE));
        let client = Some(IpAddr::from([203, 0, 113, 5]));
        let admission =
            admit_playlist(&wms_query, None, &live(), client, signed_at + 1200, &policy)
                .expect("admitted");
        let minted =
            object_token_queries(&admission, &live(), LIVE_WINDOW, signed_at + 1200, &policy)
                .expect("minted");
        let token =
            form::field(&minted.key.expect("minted"), viewer_token::QUERY_PARAM).expect("a token");
        let claims = viewer_token::verify(&token, &keys, 0, &benw_key(), client).expect("valid");
        assert_eq!(claims.expires_at, signed_at + 1231);
    }

    /// Issue 13 item 5: a URL signed for `index.m3u8` does not open `vod.m3u8`, nor the other
    /// way round.
    #[test]
    fn playlist_tokens_open_only_their_playlist() {
        let keys = keys();
        let policy = policy(&keys, b"", "");
        let wrong_scope = Err(AccessError::Token(TokenError::WrongScope));
        for (reach, opens, refuses) in [
            (Reach::LivePlaylist, live(), vod()),
            (Reach::VodPlaylist, vod(), live()),
        ] {
            let query = format!("t={}", form::encode(&token(reach, "v", "s", None)));
            assert!(admit_playlist(&query, None, &opens, None, NOW, &policy).is_ok());
            assert_eq!(
                admit_playlist(&query, None, &refuses, None, NOW, &policy),
                wrong_scope
            );
        }
    }

    /// A leaked playlist URL must not open keys or segments for its (hours-long) lifetime, and
    /// each minted credential opens only its own kind of object.
    #[test]
    fn tokens_are_refused_outside_their_scope() {
        let keys = keys();
        let segment = RequestedObject::Segment(benw(), 41);
        let check = |reach, object: &RequestedObject| {
            let query = format!("t={}", form::encode(&token(reach, "v", "s", None)));
            verify_object_request(&query, None, object, None, NOW, &keys, b"")
        };
        let wrong_scope = Err(AccessError::Token(TokenError::WrongScope));
        for playlist in [Reach::LivePlaylist, Reach::VodPlaylist] {
            assert_eq!(check(playlist, &benw_key()), wrong_scope);
            assert_eq!(check(playlist, &segment), wrong_scope);
        }
        assert_eq!(check(Reach::Segments, &benw_key()), wrong_scope);
        assert_eq!(check(keys_6_to_8(), &segment), wrong_scope);
        assert!(check(keys_6_to_8(), &benw_key()).is_ok());
        assert!(check(Reach::Segments, &segment).is_ok());

        let policy = PlaylistPolicy {
            sign_segments: true,
            ..policy(&keys, b"", "")
        };
        for reach in [keys_6_to_8(), Reach::Segments] {
            let query = format!("t={}", form::encode(&token(reach, "v", "s", None)));
            assert_eq!(
                admit_playlist(&query, None, &live(), None, NOW, &policy).err(),
                wrong_scope.clone().err(),
                "{reach:?} token on a playlist"
            );
        }

        // What a playlist mints: the key query opens keys only, the segment query segments only.
        let admission = Admission::Viewer {
            viewer: Some("v".into()),
            session: Some("s".into()),
            ip: None,
            until: NOW + 600,
        };
        let queries =
            object_token_queries(&admission, &live(), LIVE_WINDOW, NOW, &policy).expect("minted");
        let key_query = queries.key.clone().expect("keys named");
        let segment_query = queries.segment.clone().expect("segments signed");
        let open = |query: &str, object: &RequestedObject| {
            verify_object_request(query, None, object, None, NOW, &keys, b"")
        };
        assert!(open(&key_query, &benw_key()).is_ok());
        assert_eq!(open(&key_query, &segment), wrong_scope);
        assert!(open(&segment_query, &segment).is_ok());
        assert_eq!(open(&segment_query, &benw_key()), wrong_scope);
        assert_eq!(
            admit_playlist(&key_query, None, &live(), None, NOW, &policy).err(),
            wrong_scope.clone().err(),
            "a key token cannot be turned back into playlist access"
        );
        let options = queries.rewrite_options();
        assert_eq!(options.key_query, Some(key_query.as_str()));
        assert_eq!(options.segment_query, Some(segment_query.as_str()));
    }

    /// Expected values by hand: 5.950, 5.950 and 5.234 s each round up to 6, 18 in all; 7 and
    /// 2.000 add 9; the malformed durations add nothing.
    #[test]
    fn vod_tokens_cover_the_recording_and_live_ones_one_key_period() {
        let playlist = "#EXTM3U\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-TARGETDURATION:6\n\
#EXTINF:5.950,\n0.ts\n#EXTINF:5.950,title\n1.ts\r\n#EXTINF:5.234\n2.ts\n\
#EXTINF:7,\n3.ts\n#EXTINF:2.000,\n4.ts\n\
#EXTINF:bogus,\n5.ts\n#EXTINF:-4,\n6.ts\n#EXTINF:inf,\n7.ts\n#EXTINF:1e3,\n8.ts\n\
#EXTINF:.5,\n9.ts\n#EXTINF:+3,\n10.ts\n#EXT-X-ENDLIST\n";
        let (vod, live) = (vod(), live());
        assert_eq!(object_token_ttl(&vod, playlist, 90), 90 + 18 + 9);
        assert_eq!(object_token_ttl(&live, playlist, 90), 90);
        assert_eq!(object_token_ttl(&vod, "#EXTM3U\n", 90), 90);
        let endless = "#EXTINF:18446744073709551615.5,\n0.ts\n".repeat(2);
        assert_eq!(
            object_token_ttl(&vod, &endless, 90),
            90 + MAX_RECORDING_SECONDS
        );
    }

    #[test]
    fn required_scopes_follow_the_object() {
        assert_eq!(required_scope(&benw_key()), Scope::Key);
        assert_eq!(
            required_scope(&RequestedObject::Segment(benw(), 1)),
            Scope::Segment
        );
        assert_eq!(
            required_scope(&RequestedObject::LivePlaylist(benw())),
            Scope::Playlist
        );
        assert_eq!(
            required_scope(&RequestedObject::VodPlaylist(benw())),
            Scope::Playlist
        );
    }

    /// The WMSAuth signature below was produced with python3 following Nimble's PHP sample
    /// (docs/PROTOCOLS.md §4: md5 of ip . key . server_time . validminutes . signed_stream,
    /// base64 twice) for key `defaultpassword`, IP 203.0.113.5, `3/1/2019 7:31:44 AM`,
    /// 20 minutes, `live/benw`.
    #[test]
    fn wmsauth_admits_with_ip_binding_and_seed_000_admits_by_cookie() {
        let keys = keys();
        let signed_at = 1_551_425_504; // 2019-03-01 07:31:44 UTC (python3 calendar.timegm)
        let policy = policy(&keys, b"SECRET_KEY", "defaultpassword");
        let client = IpAddr::from([203, 0, 113, 5]);
        let query = format!("wmsAuthSign={}", form::encode(WMSAUTH_SIGNATURE));
        let admission =
            admit_playlist(&query, None, &live(), Some(client), signed_at + 60, &policy)
                .expect("admitted");
        assert_eq!(
            admission,
            Admission::Viewer {
                viewer: None,
                session: None,
                ip: Some(client),
                until: signed_at + 20 * 60 + 30 + 1,
            }
        );
        let other_client = IpAddr::from([203, 0, 113, 6]);
        assert!(matches!(
            admit_playlist(
                &query,
                None,
                &live(),
                Some(other_client),
                signed_at + 60,
                &policy
            ),
            Err(AccessError::WmsAuth(WmsAuthError::BadHash))
        ));
        let other = RequestedObject::LivePlaylist(StreamName::parse("other").expect("valid name"));
        assert!(
            admit_playlist(&query, None, &other, Some(client), signed_at + 60, &policy).is_err()
        );
        // WMSAuth off: the signature is no credential.
        let off = PlaylistPolicy {
            wmsauth_key: "",
            ..policy
        };
        assert_eq!(
            admit_playlist(&query, None, &live(), Some(client), signed_at + 60, &off),
            Err(AccessError::NoCredential)
        );

        let cookie = Some("sessionid=abc");
        let admission = admit_playlist("", cookie, &live(), None, NOW, &policy).expect("admitted");
        assert_eq!(
            admission,
            Admission::Session {
                cookie: "abc".into()
            }
        );
        // openssl: printf 'abc benw' | openssl dgst -sha1 -hmac SECRET_KEY -binary | base64
        let seed_000_token = "s=rMmR8hX3guMv3deDqoLkC9nm1Y8%3D";
        let signing_segments = PlaylistPolicy {
            sign_segments: true,
            ..policy
        };
        assert_eq!(
            object_token_queries(&admission, &live(), LIVE_WINDOW, NOW, &signing_segments),
            Ok(ObjectQueries {
                key: Some(seed_000_token.into()),
                segment: Some(seed_000_token.into())
            })
        );
        let no_secret = PlaylistPolicy {
            session_secret: b"",
            ..policy
        };
        assert_eq!(
            admit_playlist("", cookie, &live(), None, NOW, &no_secret),
            Err(AccessError::NoCredential)
        );
    }

    const WMSAUTH_SIGNATURE: &str = "c2VydmVyX3RpbWU9My8xLzIwMTkgNzozMTo0NCBBTSZoYXNoX3ZhbHVlPWRXaWw2RTNWZkV6bnUwVHZGcGhWalE9PSZ2YWxpZG1pbnV0ZXM9MjAmc3RybV9sZW49OQ==";
}

//! Who may fetch a key or segment: the credential a rewritten playlist wrote into the object's
//! URI, checked the same way by the `key` and `segment` components.
//!
//! Two credentials are accepted, tried in this order:
//! 1. `?t=<viewer token>` ([`crate::viewer_token`]): expiring, bound to one stream, one kind
//!    of object ([`Scope`]: a key token opens keys only, a segment token segments only), one
//!    viewer and session, and optionally one client address.
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

use std::net::{IpAddr, SocketAddr};

use crate::form;
use crate::layout::{RequestedObject, StreamName};
use crate::ppv;
use crate::registry;
use crate::rewrite::RewriteOptions;
use crate::session_token;
use crate::viewer_token::{self, Scope, SigningKeys, TokenError, ViewerClaims};
use crate::wmsauth::{self, WmsAuthError};

/// Cookie that carries the site's session in seed 000 (Django's default name).
pub const SESSION_COOKIE: &str = "sessionid";
/// Longest recording [`object_token_ttl`] extends VOD tokens by: a bound on what a garbled
/// `#EXTINF` can do to a token lifetime.
pub const MAX_RECORDING_SECONDS: u64 = 7 * 24 * 3600;

/// Why an object request was refused. The edge answers every variant with the same 403.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
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
#[non_exhaustive]
pub enum Grant {
    /// A gatecast viewer token, with its claims.
    Viewer(ViewerClaims),
    /// A seed 000 session: the site still has to say the session is an active user
    /// (`authorize_key`), unless that callback is off.
    Session {
        /// The `sessionid` cookie as sent.
        cookie: String,
    },
}

impl Grant {
    /// The `viewers`-store keys whose presence refuses this grant for `stream`.
    pub fn sanction_keys(&self, stream: &StreamName) -> Vec<String> {
        let mut keys = vec![registry::banned_stream_key(stream)];
        if let Self::Viewer(claims) = self {
            if !claims.session.is_empty() {
                keys.push(registry::revoked_session_key(&claims.session));
            }
            if !claims.viewer.is_empty() {
                keys.push(registry::blocked_viewer_key(&claims.viewer));
                keys.push(ppv::denied_key(&claims.viewer));
            }
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

/// Checks the credential of a key or segment request for `object`: a viewer token must have
/// the object's [`required_scope`] and stream.
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
        let claims = viewer_token::verify(
            &token,
            signing_keys,
            now,
            required_scope(object),
            stream.as_str(),
            client_ip,
        )?;
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
    /// Lifetime of each key (and segment) token, a little over one key period.
    pub key_token_ttl_seconds: u64,
    /// Also mint segment credentials (deployments whose `live/` is private).
    pub sign_segments: bool,
}

/// A viewer admitted to a playlist.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Admission {
    /// Admitted by a viewer token or WMSAuth: key URIs get fresh viewer tokens for these ids.
    Viewer {
        /// Viewer id (WMSAuth `id`, empty when the signature had none).
        viewer: String,
        /// Session id (empty for WMSAuth).
        session: String,
        /// Client address, when the admitting credential was bound to it.
        ip: Option<IpAddr>,
    },
    /// Seed 000: key URIs get `s=` for this cookie, exactly like the nginx recipe.
    Session {
        /// The `sessionid` cookie as sent.
        cookie: String,
    },
}

/// Admits a viewer to the playlist of `stream`, trying `?t=` (a [`Scope::Playlist`] token),
/// then `?wmsAuthSign=` (when a WMSAuth key is set), then the `sessionid` cookie (when a session
/// secret is set).
pub fn admit_playlist(
    query: &str,
    cookie_header: Option<&str>,
    stream: &StreamName,
    client_ip: Option<IpAddr>,
    now: u64,
    policy: &PlaylistPolicy<'_>,
) -> Result<Admission, AccessError> {
    if let Some(token) = form::field(query, viewer_token::QUERY_PARAM) {
        let claims = viewer_token::verify(
            &token,
            policy.signing_keys,
            now,
            Scope::Playlist,
            stream.as_str(),
            client_ip,
        )?;
        return Ok(Admission::Viewer {
            viewer: claims.viewer,
            session: claims.session,
            ip: claims.ip,
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
            },
        )?;
        // Invariant of `verify`'s success: the signature parsed.
        let ip_bound = wmsauth::parse(&signature).is_ok_and(|s| s.id.is_none() || s.check_ip);
        return Ok(Admission::Viewer {
            viewer: verified.id.unwrap_or_default(),
            session: String::new(),
            ip: if ip_bound { client_ip } else { None },
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
    /// Appended to every key URI.
    pub key: String,
    /// Appended to every segment URI; `None` when segments are not signed.
    pub segment: Option<String>,
}

impl ObjectQueries {
    /// The playlist rewrite that writes these queries.
    pub fn rewrite_options(&self) -> RewriteOptions<'_> {
        RewriteOptions {
            key_query: &self.key,
            segment_query: self.segment.as_deref(),
        }
    }
}

/// Lifetime of the key and segment tokens minted into `playlist` (the stored text) when it is
/// served as `object`.
///
/// A live playlist is refetched every target duration, each time with fresh tokens, so they
/// need to outlive one key period only: `key_token_ttl_seconds`. A recorded broadcast's
/// `vod.m3u8` is fetched once and then played to its end, so its tokens must also cover the
/// whole recording: its duration (the sum of its `#EXTINF` durations, at most
/// [`MAX_RECORDING_SECONDS`]) is added. A leaked VOD key URL thus lives as long as the
/// recording plus one key-token lifetime, no longer.
pub fn object_token_ttl(
    object: &RequestedObject,
    playlist: &str,
    key_token_ttl_seconds: u64,
) -> u64 {
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
/// playlist response for this admission. Viewer tokens get [`Scope::Key`] and
/// [`Scope::Segment`] respectively and live `key_token_ttl_seconds`; a seed 000 session gets
/// its `s=` token for both, as the nginx recipe does (that token has no scope or expiry).
pub fn object_token_queries(
    admission: &Admission,
    stream: &StreamName,
    now: u64,
    policy: &PlaylistPolicy<'_>,
) -> Result<ObjectQueries, AccessError> {
    let mint = |scope| object_token_query(admission, scope, stream, now, policy);
    Ok(ObjectQueries {
        key: mint(Scope::Key)?,
        segment: policy
            .sign_segments
            .then(|| mint(Scope::Segment))
            .transpose()?,
    })
}

fn object_token_query(
    admission: &Admission,
    scope: Scope,
    stream: &StreamName,
    now: u64,
    policy: &PlaylistPolicy<'_>,
) -> Result<String, AccessError> {
    match admission {
        Admission::Viewer {
            viewer,
            session,
            ip,
        } => {
            let claims = ViewerClaims {
                scope,
                viewer: viewer.clone(),
                session: session.clone(),
                stream: stream.to_string(),
                expires_at: now.saturating_add(policy.key_token_ttl_seconds),
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

/// The client address from Spin's `spin-client-addr` header (`ip:port`, IPv6 in brackets).
pub fn client_ip(spin_client_addr: &str) -> Option<IpAddr> {
    let text = spin_client_addr.trim();
    text.parse::<SocketAddr>()
        .map(|addr| addr.ip())
        .or_else(|_| text.parse::<IpAddr>())
        .ok()
        .map(|ip| ip.to_canonical())
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

    fn token(scope: Scope, viewer: &str, session: &str, ip: Option<IpAddr>) -> String {
        let claims = ViewerClaims {
            scope,
            viewer: viewer.into(),
            session: session.into(),
            stream: "benw".into(),
            expires_at: NOW + 60,
            ip,
            kid: String::new(),
        };
        keys().issue(&claims).expect("issuable")
    }

    #[test]
    fn viewer_tokens_grant_and_name_their_sanctions() {
        let query = format!(
            "t={}",
            form::encode(&token(Scope::Key, "ID_1", "s-42", None))
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
            verify_object_request(&query, None, &benw_key(), None, NOW + 60, &keys(), b""),
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
            form::encode(&token(Scope::Key, "v", "s", Some(bound)))
        );
        let check = |ip| verify_object_request(&query, None, &benw_key(), ip, NOW, &keys(), b"");
        assert!(check(Some(bound)).is_ok());
        assert!(check(client_ip("[::ffff:203.0.113.5]:4321")).is_ok());
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
            ["banned-stream:benw"]
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
            form::encode(&token(Scope::Playlist, "ID_1", "s-42", Some(bound)))
        );
        let admission =
            admit_playlist(&query, None, &benw(), Some(bound), NOW, &policy).expect("admitted");
        assert_eq!(
            admission,
            Admission::Viewer {
                viewer: "ID_1".into(),
                session: "s-42".into(),
                ip: Some(bound)
            }
        );
        let queries = object_token_queries(&admission, &benw(), NOW + 30, &policy).expect("minted");
        assert_eq!(queries.segment, None, "segments are not signed");
        let key_query = queries.key;
        assert!(key_query.starts_with("t=v1.k1."), "{key_query}");
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
            admit_playlist("", None, &benw(), None, NOW, &policy),
            Err(AccessError::NoCredential)
        );
    }

    /// A leaked playlist URL must not open keys or segments for its (hours-long) lifetime, and
    /// each minted credential opens only its own kind of object.
    #[test]
    fn tokens_are_refused_outside_their_scope() {
        let keys = keys();
        let segment = RequestedObject::Segment(benw(), 41);
        let check = |scope, object: &RequestedObject| {
            let query = format!("t={}", form::encode(&token(scope, "v", "s", None)));
            verify_object_request(&query, None, object, None, NOW, &keys, b"")
        };
        let wrong_scope = Err(AccessError::Token(TokenError::WrongScope));
        assert_eq!(check(Scope::Playlist, &benw_key()), wrong_scope);
        assert_eq!(check(Scope::Playlist, &segment), wrong_scope);
        assert_eq!(check(Scope::Segment, &benw_key()), wrong_scope);
        assert_eq!(check(Scope::Key, &segment), wrong_scope);
        assert!(check(Scope::Key, &benw_key()).is_ok());
        assert!(check(Scope::Segment, &segment).is_ok());

        let policy = PlaylistPolicy {
            sign_segments: true,
            ..policy(&keys, b"", "")
        };
        for scope in [Scope::Key, Scope::Segment] {
            let query = format!("t={}", form::encode(&token(scope, "v", "s", None)));
            assert_eq!(
                admit_playlist(&query, None, &benw(), None, NOW, &policy).err(),
                wrong_scope.clone().err(),
                "{scope:?} token on a playlist"
            );
        }

        // What a playlist mints: the key query opens keys only, the segment query segments only.
        let admission = Admission::Viewer {
            viewer: "v".into(),
            session: "s".into(),
            ip: None,
        };
        let queries = object_token_queries(&admission, &benw(), NOW, &policy).expect("minted");
        let segment_query = queries.segment.clone().expect("segments signed");
        let open = |query: &str, object: &RequestedObject| {
            verify_object_request(query, None, object, None, NOW, &keys, b"")
        };
        assert!(open(&queries.key, &benw_key()).is_ok());
        assert_eq!(open(&queries.key, &segment), wrong_scope);
        assert!(open(&segment_query, &segment).is_ok());
        assert_eq!(open(&segment_query, &benw_key()), wrong_scope);
        assert_eq!(
            admit_playlist(&queries.key, None, &benw(), None, NOW, &policy).err(),
            wrong_scope.clone().err(),
            "a key token cannot be turned back into playlist access"
        );
        let options = queries.rewrite_options();
        assert_eq!(options.key_query, queries.key);
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
        let vod = RequestedObject::VodPlaylist(benw());
        let live = RequestedObject::LivePlaylist(benw());
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

    /// The WMSAuth signature below was produced with python3 following seed 003's PHP
    /// (md5 of ip . key . server_time . validminutes . signed_stream, base64 twice) for key
    /// `defaultpassword`, IP 203.0.113.5, `3/1/2019 7:31:44 AM`, 20 minutes, `live/benw`.
    #[test]
    fn wmsauth_admits_with_ip_binding_and_seed_000_admits_by_cookie() {
        let keys = keys();
        let signed_at = 1_551_425_504; // 2019-03-01 07:31:44 UTC (python3 calendar.timegm)
        let policy = policy(&keys, b"SECRET_KEY", "defaultpassword");
        let client = IpAddr::from([203, 0, 113, 5]);
        let query = format!("wmsAuthSign={}", form::encode(WMSAUTH_SIGNATURE));
        let admission =
            admit_playlist(&query, None, &benw(), Some(client), signed_at + 60, &policy)
                .expect("admitted");
        assert_eq!(
            admission,
            Admission::Viewer {
                viewer: String::new(),
                session: String::new(),
                ip: Some(client)
            }
        );
        let other_client = IpAddr::from([203, 0, 113, 6]);
        assert!(matches!(
            admit_playlist(
                &query,
                None,
                &benw(),
                Some(other_client),
                signed_at + 60,
                &policy
            ),
            Err(AccessError::WmsAuth(WmsAuthError::BadHash))
        ));
        let other = StreamName::parse("other").expect("valid name");
        assert!(
            admit_playlist(&query, None, &other, Some(client), signed_at + 60, &policy).is_err()
        );
        // WMSAuth off: the signature is no credential.
        let off = PlaylistPolicy {
            wmsauth_key: "",
            ..policy
        };
        assert_eq!(
            admit_playlist(&query, None, &benw(), Some(client), signed_at + 60, &off),
            Err(AccessError::NoCredential)
        );

        let cookie = Some("sessionid=abc");
        let admission = admit_playlist("", cookie, &benw(), None, NOW, &policy).expect("admitted");
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
            object_token_queries(&admission, &benw(), NOW, &signing_segments),
            Ok(ObjectQueries {
                key: seed_000_token.into(),
                segment: Some(seed_000_token.into())
            })
        );
        let no_secret = PlaylistPolicy {
            session_secret: b"",
            ..policy
        };
        assert_eq!(
            admit_playlist("", cookie, &benw(), None, NOW, &no_secret),
            Err(AccessError::NoCredential)
        );
    }

    const WMSAUTH_SIGNATURE: &str = "c2VydmVyX3RpbWU9My8xLzIwMTkgNzozMTo0NCBBTSZoYXNoX3ZhbHVlPWRXaWw2RTNWZkV6bnUwVHZGcGhWalE9PSZ2YWxpZG1pbnV0ZXM9MjAmc3RybV9sZW49OQ==";

    #[test]
    fn client_addresses_are_parsed() {
        assert_eq!(
            client_ip("203.0.113.5:51234"),
            Some(IpAddr::from([203, 0, 113, 5]))
        );
        assert_eq!(
            client_ip("203.0.113.5"),
            Some(IpAddr::from([203, 0, 113, 5]))
        );
        assert_eq!(client_ip("[2001:db8::1]:443"), "2001:db8::1".parse().ok());
        assert_eq!(
            client_ip("[::ffff:10.0.0.1]:1"),
            Some(IpAddr::from([10, 0, 0, 1]))
        );
        assert_eq!(client_ip("garbage"), None);
    }
}

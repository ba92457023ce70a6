//! The management surface served by the `api` component: its routes, its authentication
//! (bearer token for the API, `?secret=` for the nginx-rtmp hooks) and the `/api/sign` rule.
//!
//! ```text
//! POST /api/sign                        {"stream","viewer","session","ttl","ip","scheme","playlist"} -> {"url","expires"}
//! POST /api/channels                    {"name"} -> {"name","stream_key"}
//! POST /api/channels/<name>/rotate      -> {"name","stream_key"}
//! POST /api/channels/<name>/disable     -> 204
//! POST /api/channels/<name>/enable      -> 204
//! GET  /api/streams/<name>              -> {"name","live","since"} (live: holds its publish lease)
//! POST /api/sessions/<session>/revoke   -> 204
//! POST /api/viewers/<viewer>/block      -> 204
//! POST /api/viewers/<viewer>/unblock    -> 204
//! POST /api/ppv/prices/<name>          {"price":"free"|"key:<n>"|"minute:<n>"} -> 204
//! POST /api/ppv/viewers/<viewer>/credit {"credits":n} -> {"viewer","balance"}
//! POST /api/ppv/viewers/<viewer>/debit  {"credits":n} -> {"viewer","balance"} | 409
//! GET  /api/ppv/viewers/<viewer>/balance -> {"viewer","balance"}
//! GET  /api/ppv/usage?stream=<name>     -> {"stream","unique_viewers","viewer_seconds"}
//! GET  /api/audit/keys/<name>/<key id>  -> [{"viewer","session","ip","at"}]
//! POST /hooks/on-publish?secret=..      form body (nginx-rtmp) -> 302 Location: <name> | 403
//! POST /hooks/on-publish-done?secret=.. form body -> 200
//! ```
//!
//! `POST /api/ppv/sync` has the same bearer token but its own component (`ppv-sync`, the only
//! one that talks to the WMSPanel handler), so it is not routed here.
//!
//! Both secrets are compared as SHA-256 digests in constant time, so neither their content nor
//! their length leaks through timing.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::form;
use crate::layout::{LIVE_PREFIX, StreamName, live_playlist_path, vod_playlist_path};
use crate::registry::{self, RegistryError};
use crate::viewer_token::{self, Reach, SigningKeys, TokenError, ViewerClaims};
use crate::wmsauth;

/// Playlist URL lifetime when `/api/sign` gets no `ttl`. The player refetches the playlist with
/// the same URL for the whole session, so this must cover a long viewing session.
pub const DEFAULT_SIGN_TTL_SECONDS: u64 = 4 * 3600;
/// Longest playlist URL lifetime `/api/sign` grants.
pub const MAX_SIGN_TTL_SECONDS: u64 = 7 * 24 * 3600;
/// Query parameter carrying the hook secret on nginx-rtmp callback URLs.
pub const HOOK_SECRET_PARAM: &str = "secret";

/// Why an API request was refused. Each variant maps to one status in [`ApiError::status`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// No route has this path.
    #[error("no such endpoint")]
    NotFound,
    /// The route exists but not for this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A path segment is not a valid stream name, viewer id or session id.
    #[error("invalid name or id in path")]
    InvalidPath,
    /// The JSON body does not match the endpoint's request type.
    #[error("malformed request body")]
    MalformedBody,
    /// A claim of `/api/sign` was refused by the token rules.
    #[error("cannot sign: {0}")]
    Unsignable(#[from] TokenError),
    /// The requested signing scheme is not configured on this deployment.
    #[error("signing scheme is not configured")]
    SchemeUnavailable,
}

impl ApiError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> http::StatusCode {
        match self {
            Self::NotFound => http::StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => http::StatusCode::METHOD_NOT_ALLOWED,
            Self::InvalidPath | Self::MalformedBody | Self::Unsignable(_) => {
                http::StatusCode::BAD_REQUEST
            }
            Self::SchemeUnavailable => http::StatusCode::UNPROCESSABLE_ENTITY,
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(_: RegistryError) -> Self {
        Self::InvalidPath
    }
}

/// One management endpoint, with its validated path parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiRoute {
    /// `POST /api/sign`
    Sign,
    /// `POST /api/channels`
    CreateChannel,
    /// `POST /api/channels/<name>/rotate`
    RotateKey(StreamName),
    /// `POST /api/channels/<name>/disable`
    DisableChannel(StreamName),
    /// `POST /api/channels/<name>/enable`
    EnableChannel(StreamName),
    /// `GET /api/streams/<name>`
    StreamStatus(StreamName),
    /// `POST /api/sessions/<session>/revoke`
    RevokeSession(String),
    /// `POST /api/viewers/<viewer>/block`
    BlockViewer(String),
    /// `POST /api/viewers/<viewer>/unblock`
    UnblockViewer(String),
    /// `POST /api/ppv/prices/<name>`
    SetPrice(StreamName),
    /// `POST /api/ppv/viewers/<viewer>/credit`
    Credit(String),
    /// `POST /api/ppv/viewers/<viewer>/debit`
    Debit(String),
    /// `GET /api/ppv/viewers/<viewer>/balance`
    Balance(String),
    /// `GET /api/ppv/usage?stream=<name>` (the stream comes from the query)
    Usage,
    /// `GET /api/audit/keys/<name>/<key id>`
    KeyAudit(StreamName, u64),
    /// `POST /hooks/on-publish`
    OnPublish,
    /// `POST /hooks/on-publish-done`
    OnPublishDone,
}

impl ApiRoute {
    /// Routes a request by method and path (without query string).
    pub fn parse(method: &str, path: &str) -> Result<Self, ApiError> {
        let segments: Vec<&str> = path
            .strip_prefix('/')
            .ok_or(ApiError::NotFound)?
            .split('/')
            .collect();
        let name = |text: &str| StreamName::parse(text).map_err(|_| ApiError::InvalidPath);
        let id = |text: &str| Ok::<_, ApiError>(registry::validate_id(text)?.to_owned());
        let (expected_method, route) = match segments.as_slice() {
            ["api", "sign"] => ("POST", Self::Sign),
            ["api", "channels"] => ("POST", Self::CreateChannel),
            ["api", "channels", channel, "rotate"] => ("POST", Self::RotateKey(name(channel)?)),
            ["api", "channels", channel, "disable"] => {
                ("POST", Self::DisableChannel(name(channel)?))
            }
            ["api", "channels", channel, "enable"] => ("POST", Self::EnableChannel(name(channel)?)),
            ["api", "streams", stream] => ("GET", Self::StreamStatus(name(stream)?)),
            ["api", "sessions", session, "revoke"] => ("POST", Self::RevokeSession(id(session)?)),
            ["api", "viewers", viewer, "block"] => ("POST", Self::BlockViewer(id(viewer)?)),
            ["api", "viewers", viewer, "unblock"] => ("POST", Self::UnblockViewer(id(viewer)?)),
            ["api", "ppv", "prices", stream] => ("POST", Self::SetPrice(name(stream)?)),
            ["api", "ppv", "viewers", viewer, "credit"] => ("POST", Self::Credit(id(viewer)?)),
            ["api", "ppv", "viewers", viewer, "debit"] => ("POST", Self::Debit(id(viewer)?)),
            ["api", "ppv", "viewers", viewer, "balance"] => ("GET", Self::Balance(id(viewer)?)),
            ["api", "ppv", "usage"] => ("GET", Self::Usage),
            ["api", "audit", "keys", stream, key_id] => {
                let key_id = key_id.parse().map_err(|_| ApiError::InvalidPath)?;
                ("GET", Self::KeyAudit(name(stream)?, key_id))
            }
            ["hooks", "on-publish"] => ("POST", Self::OnPublish),
            ["hooks", "on-publish-done"] => ("POST", Self::OnPublishDone),
            _ => return Err(ApiError::NotFound),
        };
        if method != expected_method {
            return Err(ApiError::MethodNotAllowed);
        }
        Ok(route)
    }

    /// Whether the route is an nginx-rtmp hook (authenticated by `?secret=`), not an API call
    /// (authenticated by the bearer token).
    pub fn is_hook(&self) -> bool {
        matches!(self, Self::OnPublish | Self::OnPublishDone)
    }
}

/// Whether an `Authorization` header carries `Bearer <api_token>`. An empty configured token
/// never matches, so a forgotten variable locks the API rather than opening it.
pub fn bearer_matches(authorization: Option<&str>, api_token: &str) -> bool {
    let presented = authorization
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim);
    secret_matches(presented, api_token)
}

/// Whether a hook URL's query string carries `secret=<hook_secret>`.
pub fn hook_secret_matches(query: &str, hook_secret: &str) -> bool {
    secret_matches(
        form::field(query, HOOK_SECRET_PARAM).as_deref(),
        hook_secret,
    )
}

fn secret_matches(presented: Option<&str>, configured: &str) -> bool {
    match presented {
        Some(presented) if !configured.is_empty() => {
            let presented = Sha256::digest(presented.as_bytes());
            let configured = Sha256::digest(configured.as_bytes());
            presented.ct_eq(&configured).into()
        }
        _ => false,
    }
}

/// How `/api/sign` protects the playlist URL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignScheme {
    /// A gatecast viewer token (`?t=`).
    #[default]
    Gatecast,
    /// A WMSAuth signature (`?wmsAuthSign=`), for players and pages already built for it.
    Wmsauth,
}

/// Which playlist of a stream `/api/sign` names in the URL. A gatecast token opens that
/// playlist only; a WMSAuth signature names a stream, not a file, so it opens both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlaylistKind {
    /// `index.m3u8`: the live playlist.
    #[default]
    Index,
    /// `vod.m3u8`: the whole recorded broadcast.
    Vod,
}

/// `POST /api/sign` body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    /// Public stream name.
    pub stream: String,
    /// The site's viewer id (pay-per-view and blocking act on it); empty or a valid
    /// [`registry::validate_id`] id.
    #[serde(default)]
    pub viewer: String,
    /// The site's session id (revocation acts on it); empty or a valid
    /// [`registry::validate_id`] id.
    #[serde(default)]
    pub session: String,
    /// URL lifetime in seconds; [`DEFAULT_SIGN_TTL_SECONDS`] when absent, at most
    /// [`MAX_SIGN_TTL_SECONDS`].
    #[serde(default)]
    pub ttl: Option<u64>,
    /// Bind the URL (and every key token issued from it) to this client address.
    #[serde(default)]
    pub ip: Option<IpAddr>,
    /// Signing scheme, `gatecast` by default.
    #[serde(default)]
    pub scheme: SignScheme,
    /// Playlist to sign, `index` (live) by default; `vod` for a recorded broadcast.
    #[serde(default)]
    pub playlist: PlaylistKind,
}

/// `POST /api/sign` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignResponse {
    /// Path and query of the playlist, relative to the edge base URL.
    pub url: String,
    /// Unix time the URL stops admitting new playlist fetches.
    pub expires: u64,
}

/// `POST /api/channels` body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateChannelRequest {
    /// Public stream name of the new channel.
    pub name: String,
}

/// Answer of channel creation and key rotation: the only time the stream key is ever shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelKeyResponse {
    /// Public stream name.
    pub name: String,
    /// The new secret stream key.
    pub stream_key: String,
}

/// `POST /api/ppv/prices/<name>` body.
#[derive(Debug, Clone, Deserialize)]
pub struct SetPriceRequest {
    /// `free`, `key:<n>` or `minute:<n>` ([`crate::ppv::Price`]).
    pub price: String,
}

/// `POST /api/ppv/viewers/<viewer>/credit|debit` body.
#[derive(Debug, Clone, Deserialize)]
pub struct CreditsRequest {
    /// Credits to add or take; must be positive.
    pub credits: u32,
}

/// A viewer's balance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BalanceResponse {
    /// Viewer id.
    pub viewer: String,
    /// Credits left.
    pub balance: i64,
}

/// Parses a JSON request body.
pub fn parse_body<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|_| ApiError::MalformedBody)
}

/// Serialises a response body.
pub fn to_body<T: Serialize>(value: &T) -> Vec<u8> {
    // Invariant: our response types are plain structs of strings, numbers and options, which
    // serde_json always serialises.
    serde_json::to_vec(value).unwrap_or_default()
}

/// The `/api/sign` rule: a playlist URL signed with the requested scheme.
///
/// `wmsauth_key` is the configured WMSAuth password (empty: scheme off). A WMSAuth URL is
/// checked on every playlist refetch, like a viewer token, so its `validminutes` is the whole
/// `ttl` rounded up to a minute, not just the time to start playback. It is always the form the
/// playlist accepts by default: bound to the client `ip` (required; a `viewer` adds
/// `checkip=true`) and to exactly `live/<stream>` (`strm_len` is its whole length).
pub fn sign(
    request: &SignRequest,
    signing_keys: &SigningKeys,
    wmsauth_key: &str,
    now: u64,
) -> Result<SignResponse, ApiError> {
    let stream = StreamName::parse(&request.stream)
        .map_err(|_| ApiError::Unsignable(TokenError::InvalidClaim("stream")))?;
    // An id that revoke and block could never address (their path segment is checked by the
    // same rule) would make a URL nobody can take back. Empty means "none".
    for (claim, id) in [("viewer", &request.viewer), ("session", &request.session)] {
        if !id.is_empty() && registry::validate_id(id).is_err() {
            return Err(ApiError::Unsignable(TokenError::InvalidClaim(claim)));
        }
    }
    let ttl = request
        .ttl
        .unwrap_or(DEFAULT_SIGN_TTL_SECONDS)
        .clamp(1, MAX_SIGN_TTL_SECONDS);
    let (param, signature, expires) = match request.scheme {
        SignScheme::Gatecast => {
            let expires = now.saturating_add(ttl);
            let claims = ViewerClaims {
                reach: match request.playlist {
                    PlaylistKind::Index => Reach::LivePlaylist,
                    PlaylistKind::Vod => Reach::VodPlaylist,
                },
                viewer: request.viewer.clone(),
                session: request.session.clone(),
                stream: stream.to_string(),
                expires_at: expires,
                ip: request.ip,
                kid: String::new(),
            };
            (
                viewer_token::QUERY_PARAM,
                signing_keys.issue(&claims)?,
                expires,
            )
        }
        SignScheme::Wmsauth => {
            if wmsauth_key.is_empty() {
                return Err(ApiError::SchemeUnavailable);
            }
            let ip = request.ip.map(|ip| ip.to_canonical().to_string());
            // Always IP-bound (an id-only URL plays from any address, see
            // `wmsauth::Compat::id_only`) and bound to exactly this stream.
            let subject = match (request.viewer.as_str(), ip.as_deref()) {
                (_, None) => return Err(ApiError::Unsignable(TokenError::InvalidClaim("ip"))),
                ("", Some(ip)) => wmsauth::Subject::Ip(ip),
                (id, Some(ip)) => wmsauth::Subject::IdAndIp { id, ip },
            };
            let minutes = ttl.div_ceil(60);
            let signed_stream = format!("{LIVE_PREFIX}/{stream}");
            let signature = wmsauth::sign(&wmsauth::SignRequest {
                key: wmsauth_key,
                subject,
                now,
                valid_minutes: u32::try_from(minutes).unwrap_or(u32::MAX),
                signed_stream: Some(&signed_stream),
            })
            .map_err(|_| ApiError::Unsignable(TokenError::InvalidClaim("viewer")))?;
            (
                wmsauth::QUERY_PARAM,
                signature,
                now.saturating_add(minutes * 60),
            )
        }
    };
    let path = match request.playlist {
        PlaylistKind::Index => live_playlist_path(&stream),
        PlaylistKind::Vod => vod_playlist_path(&stream),
    };
    Ok(SignResponse {
        url: format!("/{path}?{param}={}", form::encode(&signature)),
        expires,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn routes_pay_per_view_endpoints() {
        let benw = StreamName::parse("benw").expect("valid name");
        for (method, path, route) in [
            (
                "POST",
                "/api/ppv/prices/benw",
                ApiRoute::SetPrice(benw.clone()),
            ),
            (
                "POST",
                "/api/ppv/viewers/ID_1/credit",
                ApiRoute::Credit("ID_1".into()),
            ),
            (
                "POST",
                "/api/ppv/viewers/ID_1/debit",
                ApiRoute::Debit("ID_1".into()),
            ),
            (
                "GET",
                "/api/ppv/viewers/ID_1/balance",
                ApiRoute::Balance("ID_1".into()),
            ),
            ("GET", "/api/ppv/usage", ApiRoute::Usage),
            (
                "GET",
                "/api/audit/keys/benw/42",
                ApiRoute::KeyAudit(benw.clone(), 42),
            ),
        ] {
            assert_eq!(ApiRoute::parse(method, path), Ok(route), "{path}");
        }
        assert_eq!(
            ApiRoute::parse("GET", "/api/audit/keys/benw/x"),
            Err(ApiError::InvalidPath)
        );
        assert_eq!(
            ApiRoute::parse("POST", "/api/ppv/sync"),
            Err(ApiError::NotFound)
        );
    }

    use super::*;
    use crate::layout::RequestedObject;

    fn name(text: &str) -> StreamName {
        StreamName::parse(text).expect("valid test name")
    }

    #[test]
    fn routes_are_parsed_with_their_parameters() {
        let cases = [
            ("POST", "/api/sign", ApiRoute::Sign),
            ("POST", "/api/channels", ApiRoute::CreateChannel),
            (
                "POST",
                "/api/channels/benw/rotate",
                ApiRoute::RotateKey(name("benw")),
            ),
            (
                "POST",
                "/api/channels/benw/disable",
                ApiRoute::DisableChannel(name("benw")),
            ),
            (
                "POST",
                "/api/channels/benw/enable",
                ApiRoute::EnableChannel(name("benw")),
            ),
            (
                "GET",
                "/api/streams/benw",
                ApiRoute::StreamStatus(name("benw")),
            ),
            (
                "POST",
                "/api/sessions/s-42/revoke",
                ApiRoute::RevokeSession("s-42".into()),
            ),
            (
                "POST",
                "/api/viewers/ID_1/block",
                ApiRoute::BlockViewer("ID_1".into()),
            ),
            (
                "POST",
                "/api/viewers/ID_1/unblock",
                ApiRoute::UnblockViewer("ID_1".into()),
            ),
            ("POST", "/hooks/on-publish", ApiRoute::OnPublish),
            ("POST", "/hooks/on-publish-done", ApiRoute::OnPublishDone),
        ];
        for (method, path, expected) in cases {
            assert_eq!(
                ApiRoute::parse(method, path),
                Ok(expected.clone()),
                "{path}"
            );
            assert_eq!(expected.is_hook(), path.starts_with("/hooks/"));
        }
    }

    #[test]
    fn bad_routes_are_refused() {
        assert_eq!(
            ApiRoute::parse("GET", "/api/sign"),
            Err(ApiError::MethodNotAllowed)
        );
        assert_eq!(
            ApiRoute::parse("POST", "/api/streams/benw"),
            Err(ApiError::MethodNotAllowed)
        );
        assert_eq!(
            ApiRoute::parse("POST", "/api/other"),
            Err(ApiError::NotFound)
        );
        assert_eq!(
            ApiRoute::parse("POST", "/api/sign/"),
            Err(ApiError::NotFound)
        );
        assert_eq!(ApiRoute::parse("POST", "api/sign"), Err(ApiError::NotFound));
        assert_eq!(
            ApiRoute::parse("POST", "/api/channels/../rotate"),
            Err(ApiError::InvalidPath)
        );
        assert_eq!(
            ApiRoute::parse("POST", "/api/sessions/a%2Fb/revoke"),
            Err(ApiError::InvalidPath)
        );
        assert_eq!(ApiError::InvalidPath.status(), 400);
        assert_eq!(ApiError::MethodNotAllowed.status(), 405);
    }

    #[test]
    fn bearer_tokens_must_match_exactly() {
        assert!(bearer_matches(Some("Bearer s3cret-token"), "s3cret-token"));
        assert!(!bearer_matches(Some("Bearer s3cret-tokeN"), "s3cret-token"));
        assert!(!bearer_matches(Some("Bearer s3cret"), "s3cret-token"));
        assert!(!bearer_matches(Some("Basic s3cret-token"), "s3cret-token"));
        assert!(!bearer_matches(None, "s3cret-token"));
        // An unset token never opens the API, not even to an empty bearer.
        assert!(!bearer_matches(Some("Bearer "), ""));
        assert!(!bearer_matches(Some("Bearer x"), ""));
    }

    #[test]
    fn hook_secret_comes_from_the_callback_url() {
        assert!(hook_secret_matches("secret=h%2Bk", "h+k"));
        assert!(!hook_secret_matches("secret=h+k", "h+k"));
        assert!(!hook_secret_matches("other=h", "h"));
        assert!(!hook_secret_matches("secret=", ""));
    }

    #[test]
    fn sign_requests_parse_with_defaults() {
        let request: SignRequest =
            parse_body(br#"{"stream":"benw","viewer":"ID_1"}"#).expect("valid body");
        assert_eq!(request.scheme, SignScheme::Gatecast);
        assert_eq!(request.ttl, None);
        assert_eq!(request.session, "");
        assert_eq!(request.playlist, PlaylistKind::Index);
        let request: SignRequest = parse_body(
            br#"{"stream":"benw","viewer":"v","session":"s","ttl":60,"ip":"203.0.113.5","scheme":"wmsauth","playlist":"vod"}"#,
        )
        .expect("valid body");
        assert_eq!(request.scheme, SignScheme::Wmsauth);
        assert_eq!(request.playlist, PlaylistKind::Vod);
        assert_eq!(
            parse_body::<SignRequest>(br#"{"stream":"benw","playlist":"master"}"#),
            Err(ApiError::MalformedBody)
        );
        assert_eq!(request.ip, Some(IpAddr::from([203, 0, 113, 5])));
        assert_eq!(
            parse_body::<SignRequest>(br#"{"stream":"benw","scheme":"rot13"}"#),
            Err(ApiError::MalformedBody)
        );
        assert_eq!(
            parse_body::<SignRequest>(b"{"),
            Err(ApiError::MalformedBody)
        );
    }

    /// A gatecast sign request for `benw`, viewer `ID_1`, session `s-42`, 600 s.
    fn benw_request(ip: Option<IpAddr>) -> SignRequest {
        SignRequest {
            stream: "benw".into(),
            viewer: "ID_1".into(),
            session: "s-42".into(),
            ttl: Some(600),
            ip,
            scheme: SignScheme::Gatecast,
            playlist: PlaylistKind::Index,
        }
    }

    #[test]
    fn signed_urls_verify_for_their_stream_and_expire() {
        let keys = SigningKeys::parse("k1:MDEyMzQ1Njc4OWFiY2RlZmdoaWprbG1u").expect("valid keys");
        let request = benw_request(None);
        let signed = sign(&request, &keys, "", 1_000).expect("signable");
        assert_eq!(signed.expires, 1_600);
        let query = signed
            .url
            .strip_prefix("/live/benw/index.m3u8?")
            .expect("playlist path");
        let token = form::field(query, viewer_token::QUERY_PARAM).expect("token in query");
        let benw = StreamName::parse("benw").expect("valid name");
        let live = RequestedObject::LivePlaylist(benw.clone());
        let claims = viewer_token::verify(&token, &keys, 1_599, &live, None).expect("valid");
        assert_eq!(
            (claims.viewer.as_str(), claims.session.as_str()),
            ("ID_1", "s-42")
        );
        assert_eq!(
            viewer_token::verify(&token, &keys, 1_600, &live, None),
            Err(TokenError::Expired)
        );
        // A signed live playlist URL's token opens that playlist only: never the recording,
        // a key or a segment.
        for object in [
            RequestedObject::VodPlaylist(benw.clone()),
            RequestedObject::Key(benw.clone(), 1),
            RequestedObject::Segment(benw, 1),
        ] {
            assert_eq!(
                viewer_token::verify(&token, &keys, 1_599, &object, None),
                Err(TokenError::WrongScope),
                "{object:?}"
            );
        }

        let unbounded = SignRequest {
            ttl: Some(u64::MAX),
            ..request.clone()
        };
        assert_eq!(
            sign(&unbounded, &keys, "", 1_000)
                .expect("signable")
                .expires,
            1_000 + MAX_SIGN_TTL_SECONDS
        );
        let bad_stream = SignRequest {
            stream: "../x".into(),
            ..request.clone()
        };
        assert!(matches!(
            sign(&bad_stream, &keys, "", 1_000),
            Err(ApiError::Unsignable(_))
        ));
    }

    /// Issue 13 item 12: ids that `/api/sessions/<id>/revoke` or `/api/viewers/<id>/block`
    /// could never address are refused at signing (400), with either scheme; the longest and
    /// the widest-alphabet ids those routes take are signed.
    #[test]
    fn sign_refuses_ids_that_revoke_and_block_cannot_address() {
        let keys = SigningKeys::parse("k1:MDEyMzQ1Njc4OWFiY2RlZmdoaWprbG1u").expect("valid keys");
        let request = benw_request(Some(IpAddr::from([203, 0, 113, 5])));
        let longest = "a".repeat(128);
        for good in ["", "x", longest.as_str(), "aZ09._~@+=-"] {
            let ok = SignRequest {
                viewer: good.into(),
                session: good.into(),
                ..request.clone()
            };
            assert!(sign(&ok, &keys, "pw", 1_000).is_ok(), "{good:?}");
            // The revoke and block routes take the same ids.
            if !good.is_empty() {
                let revoke = format!("/api/sessions/{good}/revoke");
                assert!(ApiRoute::parse("POST", &revoke).is_ok(), "{good:?}");
            }
        }
        let too_long = "a".repeat(129);
        for bad in [
            "a b",
            "a/b",
            too_long.as_str(),
            "caf\u{e9}",
            "a%2Fb",
            "a\nb",
        ] {
            for scheme in [SignScheme::Gatecast, SignScheme::Wmsauth] {
                let as_viewer = SignRequest {
                    viewer: bad.into(),
                    scheme,
                    ..request.clone()
                };
                let as_session = SignRequest {
                    session: bad.into(),
                    scheme,
                    ..request.clone()
                };
                for (claim, signed) in [
                    ("viewer", sign(&as_viewer, &keys, "pw", 1_000)),
                    ("session", sign(&as_session, &keys, "pw", 1_000)),
                ] {
                    let refused = Err(ApiError::Unsignable(TokenError::InvalidClaim(claim)));
                    assert_eq!(signed, refused, "{bad:?} as {claim} ({scheme:?})");
                    assert_eq!(
                        refused.err().map(|error| error.status()),
                        Some(http::StatusCode::BAD_REQUEST)
                    );
                }
            }
        }
    }

    /// A recorded broadcast is signed like the live playlist, under `vod.m3u8`, with either
    /// scheme; the URL routes to the VOD playlist and its credential admits the viewer there.
    #[test]
    fn vod_playlists_can_be_signed() {
        let keys = SigningKeys::parse("k1:MDEyMzQ1Njc4OWFiY2RlZmdoaWprbG1u").expect("valid keys");
        let request: SignRequest =
            parse_body(br#"{"stream":"benw","viewer":"ID_1","ip":"203.0.113.5","playlist":"vod"}"#)
                .expect("valid body");
        let client = Some(IpAddr::from([203, 0, 113, 5]));
        let policy = crate::access::PlaylistPolicy {
            signing_keys: &keys,
            session_secret: b"",
            wmsauth_key: "defaultpassword",
            wmsauth_tolerance_seconds: 0,
            wmsauth_compat: wmsauth::Compat::default(),
            key_token_ttl_seconds: 90,
            sign_segments: false,
        };
        for scheme in [SignScheme::Gatecast, SignScheme::Wmsauth] {
            let request = SignRequest {
                scheme,
                ..request.clone()
            };
            let signed = sign(&request, &keys, "defaultpassword", 1_551_425_504).expect("signable");
            let (path, query) = signed.url.split_once('?').expect("query");
            assert_eq!(path, "/live/benw/vod.m3u8", "{scheme:?}");
            let object = crate::layout::RequestedObject::parse(path).expect("layout path");
            assert!(matches!(
                object,
                crate::layout::RequestedObject::VodPlaylist(_)
            ));
            let admitted = crate::access::admit_playlist(
                query,
                None,
                &object,
                client,
                1_551_425_504 + 60,
                &policy,
            );
            assert!(admitted.is_ok(), "{scheme:?}: {admitted:?}");
        }
    }

    /// The signed URL must verify with gatecast-core's WMSAuth verifier (whose own tests pin it
    /// to the PHP recipe) for the same IP and stream, and for no other.
    #[test]
    fn wmsauth_urls_verify_for_their_ip_and_stream() {
        let keys = SigningKeys::parse("k1:MDEyMzQ1Njc4OWFiY2RlZmdoaWprbG1u").expect("valid keys");
        let request = SignRequest {
            stream: "benw".into(),
            viewer: String::new(),
            session: String::new(),
            ttl: Some(90),
            ip: Some(IpAddr::from([203, 0, 113, 5])),
            scheme: SignScheme::Wmsauth,
            playlist: PlaylistKind::Index,
        };
        let now = 1_551_425_504;
        assert_eq!(
            sign(&request, &keys, "", now),
            Err(ApiError::SchemeUnavailable)
        );
        let signed = sign(&request, &keys, "defaultpassword", now).expect("signable");
        assert_eq!(signed.expires, now + 120);
        let query = signed
            .url
            .strip_prefix("/live/benw/index.m3u8?")
            .expect("playlist path");
        let signature = form::field(query, wmsauth::QUERY_PARAM).expect("signature in query");
        let check = |ip: &str, stream: &str| {
            wmsauth::verify(
                &signature,
                &wmsauth::VerifyRequest {
                    key: "defaultpassword",
                    client_ip: ip,
                    stream_path: stream,
                    now: now + 60,
                    tolerance_seconds: 0,
                    compat: wmsauth::Compat::default(),
                },
            )
        };
        assert!(check("203.0.113.5", "live/benw").is_ok());
        assert!(check("203.0.113.6", "live/benw").is_err());
        assert!(check("203.0.113.5", "live/other").is_err());
        let anonymous = SignRequest {
            ip: None,
            ..request
        };
        assert!(matches!(
            sign(&anonymous, &keys, "defaultpassword", now),
            Err(ApiError::Unsignable(_))
        ));
    }
}

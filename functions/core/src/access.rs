//! Who may fetch a key or segment: the credential a rewritten playlist wrote into the object's
//! URI, checked the same way by the `key` and `segment` components.
//!
//! Two credentials are accepted, tried in this order:
//! 1. `?t=<viewer token>` ([`crate::viewer_token`]): expiring, bound to one stream, one viewer
//!    and session, and optionally one client address.
//! 2. `?s=<seed 000 token>` plus the `sessionid` cookie ([`crate::session_token`]), only when a
//!    session secret is configured.
//!
//! A verified credential becomes a [`Grant`], which names the sanctions (KV marks) that can
//! still refuse it: a revoked session, a blocked viewer, a banned stream.

use std::net::{IpAddr, SocketAddr};

use crate::form;
use crate::layout::StreamName;
use crate::registry;
use crate::session_token;
use crate::viewer_token::{self, SigningKeys, TokenError, ViewerClaims};

/// Cookie that carries the site's session in seed 000 (Django's default name).
pub const SESSION_COOKIE: &str = "sessionid";

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
            }
        }
        keys
    }
}

/// Checks the credential of a key or segment request.
///
/// `query` is the raw query string, `cookie_header` the `Cookie` header, `client_ip` the
/// address the edge saw, `session_secret` empty when seed 000 is off.
pub fn verify_object_request(
    query: &str,
    cookie_header: Option<&str>,
    stream: &StreamName,
    client_ip: Option<IpAddr>,
    now: u64,
    signing_keys: &SigningKeys,
    session_secret: &[u8],
) -> Result<Grant, AccessError> {
    if let Some(token) = form::field(query, viewer_token::QUERY_PARAM) {
        let claims = viewer_token::verify(&token, signing_keys, now, stream.as_str(), client_ip)?;
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

    fn keys() -> SigningKeys {
        // base64 of "0123456789abcdefghijklmn" (python3 base64.b64encode).
        SigningKeys::parse("k1:MDEyMzQ1Njc4OWFiY2RlZmdoaWprbG1u").expect("valid keys")
    }

    fn token(viewer: &str, session: &str, ip: Option<IpAddr>) -> String {
        let claims = ViewerClaims {
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
        let query = format!("t={}", form::encode(&token("ID_1", "s-42", None)));
        let grant = verify_object_request(&query, None, &benw(), None, NOW, &keys(), b"")
            .expect("valid token");
        assert_eq!(
            grant.sanction_keys(&benw()),
            ["banned-stream:benw", "revoked-session:s-42", "blocked-viewer:ID_1"]
        );
        assert!(matches!(
            verify_object_request(&query, None, &benw(), None, NOW + 60, &keys(), b""),
            Err(AccessError::Token(TokenError::Expired))
        ));
        let other = StreamName::parse("other").expect("valid name");
        assert!(matches!(
            verify_object_request(&query, None, &other, None, NOW, &keys(), b""),
            Err(AccessError::Token(TokenError::WrongStream))
        ));
    }

    #[test]
    fn ip_bound_tokens_need_the_same_client() {
        let bound = IpAddr::from([203, 0, 113, 5]);
        let query = format!("t={}", form::encode(&token("v", "s", Some(bound))));
        let check = |ip| verify_object_request(&query, None, &benw(), ip, NOW, &keys(), b"");
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
        let grant = verify_object_request(query, cookie, &benw(), None, NOW, &keys(), b"SECRET_KEY");
        assert_eq!(grant, Ok(Grant::Session { cookie: "abc".into() }));
        assert_eq!(
            grant.expect("granted").sanction_keys(&benw()),
            ["banned-stream:benw"]
        );
        let other_cookie = Some("sessionid=abd");
        assert_eq!(
            verify_object_request(query, other_cookie, &benw(), None, NOW, &keys(), b"SECRET_KEY"),
            Err(AccessError::BadSessionSignature)
        );
        // Scheme off, or no cookie: no credential at all.
        assert_eq!(
            verify_object_request(query, cookie, &benw(), None, NOW, &keys(), b""),
            Err(AccessError::NoCredential)
        );
        assert_eq!(
            verify_object_request(query, None, &benw(), None, NOW, &keys(), b"SECRET_KEY"),
            Err(AccessError::NoCredential)
        );
        assert_eq!(
            verify_object_request("", cookie, &benw(), None, NOW, &keys(), b"SECRET_KEY"),
            Err(AccessError::NoCredential)
        );
    }

    #[test]
    fn client_addresses_are_parsed() {
        assert_eq!(client_ip("203.0.113.5:51234"), Some(IpAddr::from([203, 0, 113, 5])));
        assert_eq!(client_ip("203.0.113.5"), Some(IpAddr::from([203, 0, 113, 5])));
        assert_eq!(
            client_ip("[2001:db8::1]:443"),
            "2001:db8::1".parse().ok()
        );
        assert_eq!(client_ip("[::ffff:10.0.0.1]:1"), Some(IpAddr::from([10, 0, 0, 1])));
        assert_eq!(client_ip("garbage"), None);
    }
}

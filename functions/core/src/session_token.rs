//! The key-request token of seed 000 (nginx `set_hmac_sha1` + `set_encode_base64`), kept
//! byte-compatible so a site that already signs with nginx-rtmp's recipe can move to gatecast
//! without touching its web application:
//!
//! ```text
//! s = base64_std_padded( HMAC-SHA1( secret, "<session id> <stream>" ) )
//! ```
//!
//! There is exactly one ASCII space between session id and stream. The token binds a logged-in
//! session to one stream and never expires on its own: the site revokes it by ending the
//! session. New deployments should prefer [`crate::viewer_token`], which adds expiry, viewer id,
//! client IP and key rotation.
//!
//! Standard base64 holds `+`, `/` and `=`. A form decoder turns a raw `+` in a query string
//! into a space, so [`query_pair`] percent-encodes the value, and [`verify`] reads a space as
//! the `+` it must have been (a space is never valid base64, so this widens nothing).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::crypto;

/// The query parameter name seed 000 appends to key URIs (`?s=`).
pub const QUERY_PARAM: &str = "s";

/// Length of a well-formed token: base64 of a 20-byte SHA-1 MAC.
const TOKEN_LEN: usize = 28;

/// Computes the token for `session_id` watching `stream`.
pub fn sign(secret: &[u8], session_id: &str, stream: &str) -> String {
    STANDARD.encode(mac(secret, session_id, stream))
}

/// `s=<token, percent-encoded>`: ready to hand to [`crate::rewrite`] as the token query.
pub fn query_pair(secret: &[u8], session_id: &str, stream: &str) -> String {
    let token = sign(secret, session_id, stream);
    let mut pair = String::with_capacity(QUERY_PARAM.len() + 1 + token.len() + 12);
    pair.push_str(QUERY_PARAM);
    pair.push('=');
    for c in token.chars() {
        match c {
            '+' => pair.push_str("%2B"),
            '/' => pair.push_str("%2F"),
            '=' => pair.push_str("%3D"),
            other => pair.push(other),
        }
    }
    pair
}

/// Whether `presented` (the percent-decoded `s` value) is the token for this session and
/// stream. The comparison runs in constant time.
pub fn verify(secret: &[u8], session_id: &str, stream: &str, presented: &str) -> bool {
    if presented.len() != TOKEN_LEN {
        return false;
    }
    let expected = sign(secret, session_id, stream);
    let normalised: Vec<u8> = presented
        .bytes()
        .map(|b| if b == b' ' { b'+' } else { b })
        .collect();
    crypto::constant_time_eq(expected.as_bytes(), &normalised)
}

/// Who vouches that a seed 000 session is a logged-in viewer.
///
/// The token only binds a session id to a stream: anyone can make up a `sessionid` cookie and
/// the edge computes the matching `s=` for it. In the nginx recipe the site's `authorize_key`
/// view is what checks the session, so without that callback the scheme admits everybody.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionCheck {
    /// Ask the site's `authorize_key` view (`authorize_path` is set).
    AskSite,
    /// Trust the signature alone: the explicit, weaker opt-in
    /// (`session_trust_signature_only = "true"`, no `authorize_path`).
    SignatureOnly,
    /// Refuse every seed 000 session: the safe default when no callback is configured.
    Refuse,
}

/// The [`SessionCheck`] for the configured `authorize_path` and `session_trust_signature_only`
/// variables. A configured callback always wins; without one only the literal `"true"` opts
/// in to the signature alone, so a typo or an empty value fails closed.
pub fn session_check(authorize_path: &str, trust_signature_only: &str) -> SessionCheck {
    if !authorize_path.is_empty() {
        SessionCheck::AskSite
    } else if trust_signature_only == "true" {
        SessionCheck::SignatureOnly
    } else {
        SessionCheck::Refuse
    }
}

fn mac(secret: &[u8], session_id: &str, stream: &str) -> [u8; 20] {
    crypto::hmac_sha1(secret, &[session_id.as_bytes(), b" ", stream.as_bytes()])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// RFC 2202 §3 test cases 1, 2 and 6 (HMAC-SHA1), through the shared primitive.
    #[test]
    fn hmac_sha1_matches_rfc_2202() {
        assert_eq!(
            hex(&crypto::hmac_sha1(&[0x0b; 20], &[b"Hi There"])),
            "b617318655057264e28bc0b6fb378c8ef146be00"
        );
        assert_eq!(
            hex(&crypto::hmac_sha1(
                b"Jefe",
                &[b"what do ya ", b"want for nothing?"]
            )),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
        assert_eq!(
            hex(&crypto::hmac_sha1(
                &[0xaa; 80],
                &[b"Test Using Larger Than Block-Size Key - Hash Key First"]
            )),
            "aa4ae5e15272d00e95705637ce8a3b55ed402112"
        );
    }

    /// Expected values from the openssl CLI:
    /// `printf 'abc benw' | openssl dgst -sha1 -hmac SECRET_KEY -binary | base64`
    /// `printf 'sess-42 live1' | openssl dgst -sha1 -hmac 'correct horse' -binary | base64`
    #[test]
    fn sign_matches_openssl() {
        assert_eq!(
            sign(b"SECRET_KEY", "abc", "benw"),
            "rMmR8hX3guMv3deDqoLkC9nm1Y8="
        );
        assert_eq!(
            sign(b"correct horse", "sess-42", "live1"),
            "+qKkQJf9m6kfGzu6y49ij3H9oXk="
        );
    }

    #[test]
    fn query_pair_percent_encodes_the_token() {
        assert_eq!(
            query_pair(b"correct horse", "sess-42", "live1"),
            "s=%2BqKkQJf9m6kfGzu6y49ij3H9oXk%3D"
        );
    }

    #[test]
    fn verify_accepts_only_the_matching_token() {
        let secret = b"SECRET_KEY";
        assert!(verify(
            secret,
            "abc",
            "benw",
            "rMmR8hX3guMv3deDqoLkC9nm1Y8="
        ));
        // A form decoder turned '+' into ' '.
        assert!(verify(
            b"correct horse",
            "sess-42",
            "live1",
            " qKkQJf9m6kfGzu6y49ij3H9oXk="
        ));
        assert!(!verify(
            secret,
            "abc",
            "other",
            "rMmR8hX3guMv3deDqoLkC9nm1Y8="
        ));
        assert!(!verify(
            secret,
            "abd",
            "benw",
            "rMmR8hX3guMv3deDqoLkC9nm1Y8="
        ));
        assert!(!verify(
            b"SECRET_KEX",
            "abc",
            "benw",
            "rMmR8hX3guMv3deDqoLkC9nm1Y8="
        ));
        assert!(!verify(
            secret,
            "abc",
            "benw",
            "rMmR8hX3guMv3deDqoLkC9nm1Y9="
        ));
        assert!(!verify(
            secret,
            "abc",
            "benw",
            "rMmR8hX3guMv3deDqoLkC9nm1Y8"
        ));
        assert!(!verify(secret, "abc", "benw", ""));
        // The space separator is part of the message: "ab cbenw" must not collide.
        assert!(!verify(
            secret,
            "ab",
            "c benw",
            "rMmR8hX3guMv3deDqoLkC9nm1Y8="
        ));
    }

    /// Issue 13 item 1: without the site callback seed 000 fails closed; only an exact
    /// `"true"` opts in to the signature alone, and a configured callback always asks.
    #[test]
    fn sessions_fail_closed_without_the_site() {
        assert_eq!(session_check("", ""), SessionCheck::Refuse);
        assert_eq!(session_check("", "false"), SessionCheck::Refuse);
        assert_eq!(session_check("", "TRUE"), SessionCheck::Refuse);
        assert_eq!(session_check("", " true"), SessionCheck::Refuse);
        assert_eq!(session_check("", "true"), SessionCheck::SignatureOnly);
        assert_eq!(session_check("/authorize", ""), SessionCheck::AskSite);
        assert_eq!(session_check("/authorize", "true"), SessionCheck::AskSite);
    }
}

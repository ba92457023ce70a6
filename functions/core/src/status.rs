//! The one place where gatecast-core's errors become HTTP statuses, so every component refuses
//! the same fault the same way (as rustls maps every error to its TLS alert in one place).
//!
//! Viewer-facing refusals carry no detail: a bad signature, an expired token, a wrong stream and
//! an unknown key id all become the same bodiless 403, so a prober learns nothing about which
//! check failed ([`crate::reply`] builds that response). Faults of our own making (a playlist
//! the ingest worker wrote that does not parse, a broken signing-key variable) are 500s: the
//! viewer did nothing wrong and must not be told they did.

use crate::layout::NameError;
use crate::ppv::PpvError;
use crate::rewrite::RewriteError;
use crate::viewer_token::TokenError;
use crate::wmsauth::WmsAuthError;

/// How a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// 400: a management request (API, hook) is malformed.
    BadRequest,
    /// 401: no credential was presented where one is required (e.g. no token on a key URI,
    /// no API bearer token).
    Unauthorized,
    /// 403: a credential was presented and refused, or policy (ban, pay-per-view, session cap)
    /// says no. Never says which.
    Forbidden,
    /// 404: the path names no object of the layout, or the object does not exist.
    NotFound,
    /// 500: our own data or configuration is broken.
    Internal,
    /// 503: storage or KV is unreachable; retrying may help.
    Unavailable,
}

impl Refusal {
    /// The HTTP status code.
    pub fn status(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::Internal => 500,
            Self::Unavailable => 503,
        }
    }
}

impl From<TokenError> for Refusal {
    fn from(error: TokenError) -> Self {
        match error {
            TokenError::InvalidClaim(_) => Self::BadRequest,
            TokenError::InvalidSigningKeys(_) => Self::Internal,
            // Malformed, UnknownKid, BadSignature, Expired, WrongStream, WrongScope, WrongIp and any
            // verification failure added later.
            _ => Self::Forbidden,
        }
    }
}

impl From<WmsAuthError> for Refusal {
    fn from(error: WmsAuthError) -> Self {
        match error {
            WmsAuthError::InvalidField(_) => Self::BadRequest,
            _ => Self::Forbidden,
        }
    }
}

impl From<RewriteError> for Refusal {
    /// The playlist comes from our own storage and the token from our own signer.
    fn from(_: RewriteError) -> Self {
        Self::Internal
    }
}

impl From<PpvError> for Refusal {
    fn from(error: PpvError) -> Self {
        match error {
            PpvError::MissingSignature | PpvError::BadSignature => Self::Forbidden,
            // Malformed push bodies and prices are request faults of the API caller; the api
            // component validates a price before it stores one.
            _ => Self::BadRequest,
        }
    }
}

impl From<NameError> for Refusal {
    /// A viewer path with an invalid stream name names no object.
    fn from(_: NameError) -> Self {
        Self::NotFound
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_and_signature_failures_are_one_bodiless_403() {
        for error in [
            TokenError::Malformed,
            TokenError::UnknownKid,
            TokenError::BadSignature,
            TokenError::Expired,
            TokenError::WrongStream,
            TokenError::WrongScope,
            TokenError::WrongIp,
        ] {
            assert_eq!(Refusal::from(error).status(), 403);
        }
        for error in [
            WmsAuthError::Malformed,
            WmsAuthError::BadServerTime,
            WmsAuthError::WrongStream,
            WmsAuthError::BadHash,
            WmsAuthError::Expired,
            WmsAuthError::NotYetValid,
        ] {
            assert_eq!(Refusal::from(error).status(), 403);
        }
        assert_eq!(Refusal::from(PpvError::BadSignature).status(), 403);
        assert_eq!(Refusal::from(PpvError::MissingSignature).status(), 403);
    }

    #[test]
    fn other_faults() {
        assert_eq!(Refusal::from(NameError::InvalidCharacter).status(), 404);
        assert_eq!(
            Refusal::from(TokenError::InvalidClaim("viewer")).status(),
            400
        );
        assert_eq!(
            Refusal::from(TokenError::InvalidSigningKeys("no keys")).status(),
            500
        );
        assert_eq!(
            Refusal::from(WmsAuthError::InvalidField("id")).status(),
            400
        );
        assert_eq!(Refusal::from(RewriteError::InvalidTokenQuery).status(), 500);
        assert_eq!(Refusal::from(PpvError::Malformed("x".into())).status(), 400);
        assert_eq!(Refusal::Unauthorized.status(), 401);
        assert_eq!(Refusal::Unavailable.status(), 503);
    }
}

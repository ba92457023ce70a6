//! Every HTTP response the edge functions send, built in one place so status codes, CORS and
//! caching headers are one rule each rather than one per component.
//!
//! Viewer-facing replies (playlist, key, segment) all carry `Access-Control-Allow-Origin: *`:
//! hls.js fetches playlists and keys with XHR and must see even a 403 to stop retrying
//! (docs/PROTOCOLS.md §2). Refusals have an empty body so they never tell a prober *why* (bad
//! signature, expired, revoked and banned all look the same). Management replies (API, hooks)
//! are server-to-server and carry no CORS headers.
//!
//! Bodies are `Vec<u8>`; a component wraps it in its SDK's body type when it responds.

use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_MAX_AGE, ALLOW, CACHE_CONTROL, CONTENT_TYPE, LOCATION, RETRY_AFTER,
    WWW_AUTHENTICATE,
};
use http::{HeaderValue, Method, Response, StatusCode};

use crate::storage::RETRY_AFTER_SECONDS;

/// A response as the edge functions build it.
pub type Reply = Response<Vec<u8>>;

/// Methods a viewer-facing route answers.
const VIEWER_METHODS: &str = "GET, HEAD, OPTIONS";

/// What kind of viewer-facing content a successful reply carries; it decides the media type
/// and how long caches may keep it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// An HLS playlist: rewritten per viewer and changing every segment, so never cached.
    Playlist,
    /// A 16-byte AES key: per viewer, never stored by a shared cache or the browser.
    Key,
    /// An MPEG-TS segment: its URI never names other bytes, so it may be cached forever.
    Segment,
}

impl Content {
    fn media_type(self) -> &'static str {
        match self {
            Self::Playlist => "application/vnd.apple.mpegurl",
            Self::Key => "application/octet-stream",
            Self::Segment => "video/mp2t",
        }
    }

    fn cache_control(self) -> &'static str {
        match self {
            Self::Playlist => "no-store",
            Self::Key => "private, no-store",
            Self::Segment => "public, max-age=31536000, immutable",
        }
    }
}

/// 200 with viewer-facing content.
pub fn content(kind: Content, body: Vec<u8>) -> Reply {
    let mut reply = viewer(StatusCode::OK, body);
    let headers = reply.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(kind.media_type()));
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static(kind.cache_control()),
    );
    reply
}

/// 403 with an empty body: the one answer to every refused viewer.
pub fn refused() -> Reply {
    viewer_error(StatusCode::FORBIDDEN)
}

/// 404: the path names no object of the layout, or storage has no such object.
pub fn not_found() -> Reply {
    viewer_error(StatusCode::NOT_FOUND)
}

/// 503 with `Retry-After`: storage or KV failed; the request may succeed shortly.
pub fn unavailable() -> Reply {
    let mut reply = viewer_error(StatusCode::SERVICE_UNAVAILABLE);
    reply
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    reply
}

/// 405 for a method a viewer route does not serve.
pub fn method_not_allowed() -> Reply {
    let mut reply = viewer_error(StatusCode::METHOD_NOT_ALLOWED);
    reply
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(VIEWER_METHODS));
    reply
}

/// 204 answer to a CORS preflight (`OPTIONS`) on a viewer route.
pub fn preflight() -> Reply {
    let mut reply = viewer(StatusCode::NO_CONTENT, Vec::new());
    let headers = reply.headers_mut();
    headers.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(VIEWER_METHODS),
    );
    // hls.js may send `Range` for segments; nothing else is needed.
    headers.insert(
        ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Range"),
    );
    headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    reply
}

/// A management reply with a JSON body.
pub fn json(status: StatusCode, body: Vec<u8>) -> Reply {
    let mut reply = management(status, body);
    reply
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    reply
}

/// A management reply with a status and no body.
pub fn status(status: StatusCode) -> Reply {
    management(status, Vec::new())
}

/// 401 for a missing or wrong API bearer token.
pub fn unauthorized() -> Reply {
    let mut reply = management(StatusCode::UNAUTHORIZED, Vec::new());
    reply
        .headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    reply
}

/// 302 to `location`: nginx-rtmp's on_publish "rename the stream" answer (docs/PROTOCOLS.md §1).
///
/// `location` must be a header-safe value; callers pass a validated stream name.
pub fn redirect(location: &str) -> Reply {
    let mut reply = management(StatusCode::FOUND, Vec::new());
    match HeaderValue::from_str(location) {
        Ok(value) => {
            reply.headers_mut().insert(LOCATION, value);
        }
        // A redirect without a usable target must not let a publish through.
        Err(_) => *reply.status_mut() = StatusCode::FORBIDDEN,
    }
    reply
}

/// `reply` as the answer to a request made with `method`: for `HEAD`, the same status and
/// headers without the body (RFC 9110 §9.3.2). Components build one reply for `GET` and `HEAD`
/// alike and pass it through here, so the two never disagree on anything but the body.
pub fn for_method(mut reply: Reply, method: &Method) -> Reply {
    if method == Method::HEAD {
        reply.body_mut().clear();
    }
    reply
}

fn viewer(status: StatusCode, body: Vec<u8>) -> Reply {
    let mut reply = management(status, body);
    reply
        .headers_mut()
        .insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    reply
}

fn viewer_error(status: StatusCode) -> Reply {
    let mut reply = viewer(status, Vec::new());
    reply
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    reply
}

fn management(status: StatusCode, body: Vec<u8>) -> Reply {
    let mut reply = Response::new(body);
    *reply.status_mut() = status;
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(reply: &Reply, name: http::header::HeaderName) -> Option<&str> {
        reply.headers().get(name).and_then(|v| v.to_str().ok())
    }

    #[test]
    fn content_replies_carry_type_cache_and_cors() {
        let playlist = content(Content::Playlist, b"#EXTM3U\n".to_vec());
        assert_eq!(playlist.status(), 200);
        assert_eq!(
            header(&playlist, CONTENT_TYPE),
            Some("application/vnd.apple.mpegurl")
        );
        assert_eq!(header(&playlist, CACHE_CONTROL), Some("no-store"));
        assert_eq!(header(&playlist, ACCESS_CONTROL_ALLOW_ORIGIN), Some("*"));
        assert_eq!(playlist.body(), b"#EXTM3U\n");

        let key = content(Content::Key, vec![0; 16]);
        assert_eq!(header(&key, CONTENT_TYPE), Some("application/octet-stream"));
        assert_eq!(header(&key, CACHE_CONTROL), Some("private, no-store"));

        let segment = content(Content::Segment, vec![0x47; 188]);
        assert_eq!(header(&segment, CONTENT_TYPE), Some("video/mp2t"));
        assert!(header(&segment, CACHE_CONTROL).is_some_and(|v| v.contains("max-age=31536000")));
    }

    #[test]
    fn refusals_are_bodiless_and_visible_to_cors_players() {
        for (reply, status) in [(refused(), 403), (not_found(), 404), (unavailable(), 503)] {
            assert_eq!(reply.status(), status);
            assert!(reply.body().is_empty());
            assert_eq!(header(&reply, ACCESS_CONTROL_ALLOW_ORIGIN), Some("*"));
            assert_eq!(header(&reply, CACHE_CONTROL), Some("no-store"));
        }
        assert_eq!(header(&unavailable(), RETRY_AFTER), Some("2"));
        assert_eq!(
            header(&method_not_allowed(), ALLOW),
            Some("GET, HEAD, OPTIONS")
        );
    }

    #[test]
    fn preflight_allows_get() {
        let reply = preflight();
        assert_eq!(reply.status(), 204);
        assert_eq!(header(&reply, ACCESS_CONTROL_ALLOW_ORIGIN), Some("*"));
        assert_eq!(
            header(&reply, ACCESS_CONTROL_ALLOW_METHODS),
            Some("GET, HEAD, OPTIONS")
        );
    }

    #[test]
    fn head_answers_headers_only() {
        for kind in [Content::Playlist, Content::Key, Content::Segment] {
            let get = content(kind, b"#EXTM3U\n".to_vec());
            let head = for_method(get.clone(), &Method::HEAD);
            assert_eq!(head.status(), get.status());
            assert_eq!(head.headers(), get.headers());
            assert!(head.body().is_empty(), "{kind:?}");
            assert_eq!(for_method(get.clone(), &Method::GET).body(), b"#EXTM3U\n");
        }
    }

    #[test]
    fn management_replies() {
        let reply = json(StatusCode::CREATED, b"{}".to_vec());
        assert_eq!(reply.status(), 201);
        assert_eq!(header(&reply, CONTENT_TYPE), Some("application/json"));
        assert_eq!(header(&reply, ACCESS_CONTROL_ALLOW_ORIGIN), None);
        assert_eq!(header(&unauthorized(), WWW_AUTHENTICATE), Some("Bearer"));
        assert_eq!(status(StatusCode::NO_CONTENT).status(), 204);

        let rename = redirect("benw");
        assert_eq!(rename.status(), 302);
        assert_eq!(header(&rename, LOCATION), Some("benw"));
        assert_eq!(redirect("bad\nvalue").status(), 403);
    }
}

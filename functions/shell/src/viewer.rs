//! The spin-sdk I/O shared by the viewer-facing components (`playlist`, `key`, `segment`):
//! routing a request to its object, request facts, the key/segment credential check and
//! storage reads.

use bytes::Bytes;
use gatecast_core::access::{self, Grant};
use gatecast_core::client_addr::{self, ProxyPolicy};
use gatecast_core::layout::RequestedObject;
use gatecast_core::reply::{self, Reply};
use gatecast_core::storage::{FetchOutcome, StorageConfig};
use gatecast_core::viewer_token::Scope;
use spin_sdk::http::Method;
use spin_sdk::http::Request;
use spin_sdk::http::body::IncomingBodyExt as _;

use crate::outage::{Context as _, Result, signing_keys, variable};

/// Header in which Spin passes the client's `ip:port`.
const CLIENT_ADDR_HEADER: &str = "spin-client-addr";

/// The object a viewer request asks for, when its method is `GET` or `HEAD` and its path names
/// an object that `scope` opens (the component's route: playlists, keys or segments).
/// Otherwise the early answer: a CORS preflight for `OPTIONS`, 405 for other methods, 404 for
/// any other path.
pub fn requested_object(
    request: &Request,
    scope: Scope,
) -> std::result::Result<RequestedObject, Reply> {
    match *request.method() {
        Method::GET | Method::HEAD => {}
        Method::OPTIONS => return Err(reply::preflight()),
        _ => return Err(reply::method_not_allowed()),
    }
    RequestedObject::parse(request.uri().path())
        .filter(|object| access::required_scope(object) == scope)
        .ok_or_else(reply::not_found)
}

/// Checks the credential of a key or segment request for `object`
/// ([`access::verify_object_request`] with this request's query, cookie and address, and the
/// configured `signing_keys` and `session_secret`). `Ok(None)` is a refusal (answer 403,
/// whatever the reason); `Err` an outage.
pub async fn object_grant(
    request: &Request,
    object: &RequestedObject,
    now: u64,
) -> Result<Option<Grant>> {
    Ok(access::verify_object_request(
        query(request),
        header(request, "cookie"),
        object,
        client_ip(request).await?,
        now,
        &signing_keys().await?,
        variable("session_secret").await?.as_bytes(),
    )
    .ok())
}

/// The request's query string (empty when absent).
pub fn query(request: &Request) -> &str {
    request.uri().query().unwrap_or("")
}

/// A request header as text, if present and visible ASCII.
pub fn header<'r>(request: &'r Request, name: &str) -> Option<&'r str> {
    request
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
}

/// Who the client is, for every check of this request ([`client_addr::client_ip`]): the
/// address Spin accepted the connection from or, when that is a `trusted_proxies` proxy, the
/// client its forwarding header (`client_ip_header`) names. `Ok(None)`: unknown (an
/// IP-bound credential is then refused); `Err` a configuration fault (503).
///
/// Spin's own `spin-client-addr` is the *last* value: Spin appends it after any the client
/// sent (`crates/trigger-http/src/headers.rs` `prepare_request_headers`, then `wasi.rs`
/// `prepare_request` extends the cleared header map, which appends), so the first value is
/// the client's choice and never read.
pub async fn client_ip(request: &Request) -> Result<Option<std::net::IpAddr>> {
    let peer = request
        .headers()
        .get_all(CLIENT_ADDR_HEADER)
        .iter()
        .next_back()
        .and_then(|value| value.to_str().ok())
        .and_then(client_addr::parse_address);
    let policy = ProxyPolicy::parse(
        &variable("trusted_proxies").await?,
        &variable("client_ip_header").await?,
    )
    .context("trusted_proxies / client_ip_header")?;
    // A value that is not visible ASCII is passed as "", which reads as malformed.
    let forwarded: Vec<&str> = policy
        .header()
        .map(|header| {
            request
                .headers()
                .get_all(header.name())
                .iter()
                .map(|value| value.to_str().unwrap_or(""))
                .collect()
        })
        .unwrap_or_default();
    Ok(client_addr::client_ip(peer, &forwarded, &policy))
}

/// What a storage read produced.
pub enum Fetched {
    /// The object's bytes.
    Found(Bytes),
    /// No such object.
    NotFound,
}

/// A bucket the viewer-facing components read, by the names of the variables that hold its
/// name and the credential allowed to read it.
///
/// Why two credentials: least privilege. The playlist and segment components serve media that
/// may be public anyway; only the key component may read keys, so a flaw in the others (or a
/// leak of their variables) cannot reach a key. The storage must enforce it: the media
/// credential gets no access to the key bucket, the key credential none to the media bucket,
/// and neither may write (the ingest worker alone writes both).
pub struct Bucket {
    name: &'static str,
    access_key: &'static str,
    secret_key: &'static str,
}

/// Playlists and segments: `media_bucket`, read with `media_access_key`/`media_secret_key`.
pub const MEDIA: Bucket = Bucket {
    name: "media_bucket",
    access_key: "media_access_key",
    secret_key: "media_secret_key",
};

/// AES keys: `key_bucket`, read with `key_store_access_key`/`key_store_secret_key`, which only
/// the key component holds.
pub const KEYS: Bucket = Bucket {
    name: "key_bucket",
    access_key: "key_store_access_key",
    secret_key: "key_store_secret_key",
};

/// Reads `object` from `bucket` with a presigned `GET` under that bucket's own credential.
/// Unreachable storage or a 5xx is an `Err` (503).
pub async fn fetch(bucket: &Bucket, object: &str, now: u64) -> Result<Fetched> {
    let storage = StorageConfig::new(
        &variable("storage_endpoint").await?,
        &variable("storage_region").await?,
        &variable(bucket.access_key).await?,
        &variable(bucket.secret_key).await?,
    )
    .context("storage configuration")?;
    let url = storage
        .presigned_get(&variable(bucket.name).await?, object, now)
        .context("presigning")?;
    let response = spin_sdk::http::get(url).await.context("storage request")?;
    match FetchOutcome::from_status(response.status().as_u16()) {
        FetchOutcome::Found => Ok(Fetched::Found(
            response.into_body().bytes().await.context("storage body")?,
        )),
        FetchOutcome::NotFound => Ok(Fetched::NotFound),
        _ => Err(response.status()).context("storage answered"),
    }
}

//! The spin-sdk I/O shared by the viewer-facing components (`playlist`, `key`, `segment`):
//! request facts and storage reads.

use bytes::Bytes;
use gatecast_core::access;
use gatecast_core::reply::{self, Reply};
use gatecast_core::storage::{FetchOutcome, StorageConfig};
use spin_sdk::http::Method;
use spin_sdk::http::Request;
use spin_sdk::http::body::IncomingBodyExt as _;

use crate::outage::{Context as _, Result, variable};

/// Header in which Spin passes the client's `ip:port`.
const CLIENT_ADDR_HEADER: &str = "spin-client-addr";

/// The early answer for methods other than `GET`/`HEAD`: a CORS preflight or 405.
pub fn method_reply(request: &Request) -> Option<Reply> {
    match *request.method() {
        Method::GET | Method::HEAD => None,
        Method::OPTIONS => Some(reply::preflight()),
        _ => Some(reply::method_not_allowed()),
    }
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

/// The client address Spin saw.
pub fn client_ip(request: &Request) -> Option<std::net::IpAddr> {
    header(request, CLIENT_ADDR_HEADER).and_then(access::client_ip)
}

/// What a storage read produced.
pub enum Fetched {
    /// The object's bytes.
    Found(Bytes),
    /// No such object.
    NotFound,
}

/// Reads `object` from the bucket named by the `bucket_variable` variable with a presigned
/// `GET`. Unreachable storage or a 5xx is an `Err` (503).
pub async fn fetch(bucket_variable: &str, object: &str, now: u64) -> Result<Fetched> {
    let storage = StorageConfig::new(
        &variable("storage_endpoint").await?,
        &variable("storage_region").await?,
        &variable("storage_access_key").await?,
        &variable("storage_secret_key").await?,
    )
    .context("storage configuration")?;
    let url = storage
        .presigned_get(&variable(bucket_variable).await?, object, now)
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

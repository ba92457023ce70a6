//! The `segment` component: `GET /live/<name>/<sequence>.ts?t=…`, a credential-checked
//! pass-through of segments from the media bucket, for deployments that do not expose `live/`
//! publicly (set `sign_segments = "true"` so playlists carry the credential on segment URIs).
//!
//! The credential is the one key URIs carry ([`gatecast_core::access`]). Sanctions (revoked
//! session, blocked viewer, banned stream) are enforced by the key component at the next key
//! period, so this one needs no store: a segment is useless without its key.

use gatecast_core::access;
use gatecast_core::layout::RequestedObject;
use gatecast_core::reply::{self, Content, Reply};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_service;

mod outage;
mod shell;

use outage::Result;

#[http_service]
async fn handle(request: Request) -> Response<spin_sdk::http::FullBody<bytes::Bytes>> {
    outage::respond("segment", serve(&request).await)
}

async fn serve(request: &Request) -> Result<Reply> {
    if let Some(early) = shell::method_reply(request) {
        return Ok(early);
    }
    let object = match RequestedObject::parse(request.uri().path()) {
        Some(object @ RequestedObject::Segment(..)) => object,
        _ => return Ok(reply::not_found()),
    };
    let now = outage::unix_now();
    let granted = access::verify_object_request(
        shell::query(request),
        shell::header(request, "cookie"),
        object.stream(),
        shell::client_ip(request),
        now,
        &shell::signing_keys().await?,
        outage::variable("session_secret").await?.as_bytes(),
    );
    if granted.is_err() {
        return Ok(reply::refused());
    }
    Ok(
        match shell::fetch("media_bucket", &object.storage_path(), now).await? {
            shell::Fetched::Found(bytes) => reply::content(Content::Segment, bytes.into()),
            shell::Fetched::NotFound => reply::not_found(),
        },
    )
}

//! The `segment` component: `GET /live/<name>/<sequence>.ts?t=…`, a credential-checked
//! pass-through of segments from the media bucket, for deployments that do not expose `live/`
//! publicly (set `sign_segments = "true"` so playlists carry the credential on segment URIs).
//!
//! The credential is a segment-scope viewer token the playlist minted (or seed 000's `s=`
//! token), checked by [`gatecast_core::access`]; key and playlist tokens are refused. Sanctions
//! (revoked session, blocked viewer, banned stream) are enforced by the key component at the
//! next key period, so this one needs no store: a segment is useless without its key.

use gatecast_core::reply::{self, Content, Reply};
use gatecast_core::viewer_token::Scope;
use gatecast_spin_shell::{outage, viewer};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_service;

use outage::Result;

#[http_service]
async fn handle(request: Request) -> Response<spin_sdk::http::FullBody<bytes::Bytes>> {
    outage::respond("segment", request.method(), serve(&request).await)
}

async fn serve(request: &Request) -> Result<Reply> {
    let object = match viewer::requested_object(request, Scope::Segment) {
        Ok(object) => object,
        Err(early) => return Ok(early),
    };
    let now = outage::unix_now();
    if viewer::object_grant(request, &object, now).await?.is_none() {
        return Ok(reply::refused());
    }
    Ok(
        match viewer::fetch(&viewer::MEDIA, &object.storage_path(), now).await? {
            viewer::Fetched::Found(bytes) => reply::content(Content::Segment, bytes.into()),
            viewer::Fetched::NotFound => reply::not_found(),
        },
    )
}

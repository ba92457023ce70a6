//! The `playlist` component: `GET /live/<name>/index.m3u8` (and `vod.m3u8`) admits a viewer and
//! answers the stored playlist with a fresh, short-lived credential written into every key URI
//! (and a segment credential into every segment URI when `sign_segments` is on).
//!
//! Admission ([`gatecast_core::access::admit_playlist`]): `?t=` viewer token for this very
//! playlist (`index.m3u8` or `vod.m3u8`), `?wmsAuthSign=` (when `wmsauth_key` is set), or the
//! seed 000 `sessionid` cookie (when `session_secret` is set, and the site's `authorize_key`
//! says yes: [`gatecast_spin_shell::site`], so a made-up cookie gets no `s=` URIs). Key and
//! segment tokens live `key_token_ttl_seconds`; the player refetches the playlist every target
//! duration and gets new ones, so long sessions never break while a leaked key URL dies fast.
//! A recorded broadcast's `vod.m3u8` is fetched once, so its tokens also cover the recording's
//! duration. Either way they never outlive the credential that admitted the viewer, and a key
//! token opens only the key ids this response names
//! ([`gatecast_core::access::object_token_queries`]). `HEAD` answers the same status and
//! headers, no body.

use gatecast_core::access::{self, Admission, PlaylistPolicy};
use gatecast_core::reply::{self, Content, Reply};
use gatecast_core::rewrite;
use gatecast_core::viewer_token::Scope;
use gatecast_core::wmsauth;
use gatecast_spin_shell::{outage, site, viewer};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_service;

use outage::{Context as _, Result};

#[http_service]
async fn handle(request: Request) -> Response<spin_sdk::http::FullBody<bytes::Bytes>> {
    outage::respond("playlist", request.method(), serve(&request).await)
}

async fn serve(request: &Request) -> Result<Reply> {
    let object = match viewer::requested_object(request, Scope::Playlist) {
        Ok(object) => object,
        Err(early) => return Ok(early),
    };
    let now = outage::unix_now();
    let signing_keys = outage::signing_keys().await?;
    let session_secret = outage::variable("session_secret").await?;
    let wmsauth_key = outage::variable("wmsauth_key").await?;
    let policy = PlaylistPolicy {
        signing_keys: &signing_keys,
        session_secret: session_secret.as_bytes(),
        wmsauth_key: &wmsauth_key,
        wmsauth_tolerance_seconds: parsed("wmsauth_tolerance_seconds").await?,
        wmsauth_compat: wmsauth::Compat {
            id_only: parsed("wmsauth_allow_id_only").await?,
            unscoped: parsed("wmsauth_allow_unscoped").await?,
            prefix: parsed("wmsauth_allow_prefix").await?,
        },
        key_token_ttl_seconds: parsed("key_token_ttl_seconds").await?,
        sign_segments: outage::variable("sign_segments").await? == "true",
    };
    let Ok(admission) = access::admit_playlist(
        viewer::query(request),
        viewer::header(request, "cookie"),
        &object,
        viewer::client_ip(request).await?,
        now,
        &policy,
    ) else {
        return Ok(reply::refused());
    };
    if let Admission::Session { cookie } = &admission
        && !site::session_admitted("playlist", cookie, object.stream(), now).await?
    {
        return Ok(reply::refused());
    }
    let stored = match viewer::fetch(&viewer::MEDIA, &object.storage_path(), now).await? {
        viewer::Fetched::Found(bytes) => bytes,
        viewer::Fetched::NotFound => return Ok(reply::not_found()),
    };
    let stored = std::str::from_utf8(&stored).context("stored playlist is not UTF-8")?;
    let queries = access::object_token_queries(&admission, &object, stored, now, &policy)
        .context("minting key and segment tokens")?;
    let rewritten =
        rewrite::rewrite_playlist(stored, &queries.rewrite_options()).context("rewriting")?;
    Ok(reply::content(Content::Playlist, rewritten.into_bytes()))
}

/// A numeric (`u64`) or `"true"`/`"false"` variable, surrounding blanks ignored. Anything else
/// is a configuration fault (503), never read as a default: a typo must not silently turn a
/// weaker form on or off.
async fn parsed<T>(name: &str) -> Result<T>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    outage::variable(name).await?.trim().parse().context(name)
}

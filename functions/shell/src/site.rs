//! Seed 000's site callback: whether the site's `authorize_key` view says a `sessionid` may
//! watch a stream. Both the playlist (before it writes `s=` into key URIs) and the key
//! component (before it hands out key bytes) ask, so a made-up cookie gets neither.
//!
//! Which check applies is [`session_token::session_check`]'s rule: the site when
//! `authorize_path` is set; the signature alone only with the explicit, weaker
//! `session_trust_signature_only = "true"`; otherwise every seed 000 session is refused, and
//! the component says so once in its log.

use std::sync::atomic::{AtomicBool, Ordering};

use gatecast_core::access;
use gatecast_core::layout::StreamName;
use gatecast_core::registry;
use gatecast_core::session_token::{self, SessionCheck};
use spin_sdk::http::EmptyBody;
use spin_sdk::key_value::Store;

use crate::outage::{Context as _, Result, variable};

/// Header naming the stream to the site's authorize callback, as seed 000's nginx sets it.
const STREAM_HEADER: &str = "x-stream-username";

/// Whether this instance has logged that seed 000 sessions are refused for want of a site.
static REFUSAL_LOGGED: AtomicBool = AtomicBool::new(false);

/// Whether seed 000 session `cookie` may watch `stream` at `now`. `component` names the log
/// line. A site that answers other than 2xx, 401 or 403, or cannot be reached, is an outage
/// (503), never a yes.
pub async fn session_admitted(
    component: &str,
    cookie: &str,
    stream: &StreamName,
    now: u64,
) -> Result<bool> {
    let path = variable("authorize_path").await?;
    let trust = variable("session_trust_signature_only").await?;
    match session_token::session_check(&path, &trust) {
        SessionCheck::AskSite => site_authorizes(&path, cookie, stream, now).await,
        SessionCheck::SignatureOnly => Ok(true),
        SessionCheck::Refuse => {
            if !REFUSAL_LOGGED.swap(true, Ordering::Relaxed) {
                eprintln!(
                    "{component}: refusing seed 000 sessions: session_secret is set but \
                     authorize_path is empty (set authorize_path to the site's authorize_key \
                     view, or session_trust_signature_only = \"true\" to trust the signature alone)"
                );
            }
            Ok(false)
        }
    }
}

/// Asks the site at `authorize_origin` + `path`, with the cookie and the stream name, unless
/// a yes for this session and stream is cached for the current period
/// ([`registry::authorization_key`]). Only a yes is cached: a made-up cookie adds no row.
async fn site_authorizes(path: &str, cookie: &str, stream: &StreamName, now: u64) -> Result<bool> {
    let viewers = Store::open(registry::VIEWERS_STORE)
        .await
        .context("opening the viewers store")?;
    let cache_key = registry::authorization_key(cookie, stream, now);
    if viewers
        .exists(&cache_key)
        .await
        .context("reading the authorization cache")?
    {
        return Ok(true);
    }
    let url = format!("{}{path}", variable("authorize_origin").await?);
    let callback = http::Request::get(url)
        .header(
            http::header::COOKIE,
            format!("{}={cookie}", access::SESSION_COOKIE),
        )
        .header(STREAM_HEADER, stream.as_str())
        .body(EmptyBody::new())
        .context("building the authorize request")?;
    let status = spin_sdk::http::send(callback)
        .await
        .context("calling the site's authorize URL")?
        .status();
    let allowed = match status.as_u16() {
        200..=299 => true,
        401 | 403 => false,
        _ => return Err(status).context("authorize URL answered"),
    };
    // A lost cache write only costs one more callback next time.
    if allowed
        && let Err(error) = viewers
            .set(&cache_key, registry::AUTHORIZATION_ALLOWED.as_bytes())
            .await
    {
        eprintln!("caching an authorization: {error}");
    }
    Ok(allowed)
}

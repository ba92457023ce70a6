//! The `key` component: `GET /keys/<name>/<key id>.key?t=…` (or `?s=…` with the `sessionid`
//! cookie in seed 000 mode) answers the 16 key bytes to an admitted viewer; `HEAD` answers the
//! same status and headers without the bytes and never debits a pay-per-view balance.
//!
//! Order: credential ([`gatecast_core::access`]: a key-scope viewer token the playlist minted,
//! never the playlist URL's own token, or seed 000's `s=` token) → sanctions in the `viewers`
//! store (banned stream, revoked session, blocked viewer, pay-per-view deny list) → for seed 000
//! sessions, the site's `authorize_key` answer ([`gatecast_spin_shell::site`]: a yes cached
//! for one period; refused outright when no callback is configured) → the key object from the
//! private key bucket, which must be exactly 16 bytes (remembered by the instance, see
//! [`FETCHED_KEYS`]); a key id the worker never wrote is 404 with nothing charged or audited →
//! pay-per-view ([`gatecast_spin_shell::ppv::admit_key`]: session cap, exactly-once debit per key
//! id with the KV's atomics, usage and audit). When a WMSPanel sync
//! round is due (one KV read), the request first asks the `ppv-sync` component to run it
//! through Spin local service chaining ([`gatecast_spin_shell::ppv::request_sync`]); with `ppv_fail_open = false` a viewer no
//! accepted sync has reported is refused while the handler is silent. Any refusal is a bodiless
//! 403 (pay-per-view ones name their reason in `X-Gatecast-Reason`); a store, site or storage
//! failure is 503 with `Retry-After`.

use gatecast_core::access::Grant;
use gatecast_core::layout::RequestedObject;
use gatecast_core::ppv::{self as core_ppv, Refusal};
use gatecast_core::registry;
use gatecast_core::reply::{self, Content, Reply};
use gatecast_core::viewer_token::Scope;
use gatecast_spin_shell::{outage, ppv, site, viewer};
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_service;
use spin_sdk::key_value::Store;

use outage::{Context as _, Result};

/// Length of an AES-128 key file (RFC 8216 §5.2); anything else fails in every player.
const KEY_LEN: usize = 16;

#[http_service]
async fn handle(request: Request) -> Response<spin_sdk::http::FullBody<bytes::Bytes>> {
    outage::respond("key", request.method(), serve(&request).await)
}

async fn serve(request: &Request) -> Result<Reply> {
    let object = match viewer::requested_object(request, Scope::Key) {
        Ok(object) => object,
        Err(early) => return Ok(early),
    };
    // Always a key here (the scope check above); the pattern just names its parts.
    let RequestedObject::Key(stream, key_id) = &object else {
        return Ok(reply::not_found());
    };
    let now = outage::unix_now();
    let Some(grant) = viewer::object_grant(request, &object, now).await? else {
        return Ok(reply::refused());
    };
    let viewers = Store::open(registry::VIEWERS_STORE)
        .await
        .context("opening the viewers store")?;
    let ledger = ppv::Ledger::open()?;
    // The stateless WMSPanel trigger: before the sanctions, so a viewer the handler has just
    // denied is refused by this very request. The round's lease is ppv-sync's: however many
    // key requests see it due, one round runs per interval.
    if ppv::sync_round_due(&ledger, now).await? {
        ppv::request_sync().await;
    }
    for sanction in grant.sanction_keys(stream) {
        if viewers
            .exists(&sanction)
            .await
            .context("reading sanctions")?
        {
            return Ok(if sanction.starts_with(core_ppv::DENIED_PREFIX) {
                Refusal::Denied.reply()
            } else {
                reply::refused()
            });
        }
    }
    if let Grant::Session { cookie } = &grant
        && !site::session_admitted("key", cookie, stream, now).await?
    {
        return Ok(reply::refused());
    }
    let (viewer_id, session) = match &grant {
        Grant::Viewer(claims) => (claims.viewer_id(), claims.session_id()),
        // A seed 000 session names no viewer to charge or audit.
        Grant::Session { .. } => (None, None),
    };
    let fetch = ppv::KeyFetch {
        stream,
        key_id: *key_id,
        viewer: viewer_id,
        session,
        ip: viewer::client_ip(request).await?,
        now,
        // HEAD is a safe method (RFC 9110 §9.2.1): it answers what GET would, without debiting.
        debit: request.method() != Method::HEAD,
    };
    if let Some(viewer_id) = viewer_id
        && ppv::refused_while_handler_down(&ledger, viewer_id, now).await?
    {
        return Ok(Refusal::SyncUnavailable.reply());
    }
    // The key object first: only a key id the worker wrote may be charged or audited, and the
    // charge markers' key ids then steer pruning with facts no viewer can forge.
    let Some(key) = key_object(object.storage_path(), now).await? else {
        return Ok(reply::not_found());
    };
    if let Some(refusal) = ppv::admit_key(&ledger, &fetch).await? {
        return Ok(refusal.reply());
    }
    Ok(reply::content(Content::Key, key.to_vec()))
}

/// The key object at `path`: the instance's copy ([`FETCHED_KEYS`]) or a storage read;
/// `None` when the worker never wrote it (or has deleted it).
async fn key_object(path: String, now: u64) -> Result<Option<[u8; KEY_LEN]>> {
    if let Some(key) = recall_key(&path) {
        return Ok(Some(key));
    }
    Ok(match viewer::fetch(&viewer::KEYS, &path, now).await? {
        viewer::Fetched::Found(bytes) => {
            let key = <[u8; KEY_LEN]>::try_from(bytes.as_ref())
                .map_err(|_| bytes.len())
                .context("key object length")?;
            remember_key(path, key);
            Some(key)
        }
        viewer::Fetched::NotFound => None,
    })
}

/// Keys this instance has read from storage, oldest first, by object path.
///
/// Why a cache is safe: a key object never changes once written, and its path is never reused
/// (key ids are sequence numbers that start at the publish time). Why it pays: Spin reuses an
/// instance for many requests (128 by default for WASIp3), and every viewer of a stream asks
/// for the same current key, so one signed storage read serves the rest of the instance's
/// requests for that key period. It caches bytes only: every request is still admitted (token,
/// sanctions, pay-per-view) before it is answered. Only the key component holds it.
static FETCHED_KEYS: std::sync::Mutex<Vec<(String, [u8; KEY_LEN])>> =
    std::sync::Mutex::new(Vec::new());

/// Enough for the current and next key of a few dozen live streams per instance.
const FETCHED_KEYS_CAP: usize = 64;

fn recall_key(path: &str) -> Option<[u8; KEY_LEN]> {
    let keys = FETCHED_KEYS.lock().ok()?;
    keys.iter()
        .find(|(known, _)| known == path)
        .map(|(_, key)| *key)
}

fn remember_key(path: String, key: [u8; KEY_LEN]) {
    if let Ok(mut keys) = FETCHED_KEYS.lock() {
        if keys.len() >= FETCHED_KEYS_CAP {
            keys.remove(0);
        }
        keys.push((path, key));
    }
}

//! The `api` component: the signing API, the channel registry and the nginx-rtmp publish
//! hooks (routes and rules in [`gatecast_core::api`], KV schema in [`gatecast_core::registry`]).
//!
//! It parses the request, authenticates it (bearer token, or `?secret=` for hooks), calls
//! gatecast-core and applies the result to the `channels` and `viewers` stores. A store or
//! variable failure answers 503 with `Retry-After`, never a trap.

use gatecast_core::api::{self, ApiError, ApiRoute, ChannelKeyResponse};
use gatecast_core::hook;
use gatecast_core::layout::StreamName;
use gatecast_core::ppv::{self as core_ppv, Price};
use gatecast_core::registry::{
    self, ChannelRecord, LeaseAction, PublishDecision, PublishLease, StreamStatus,
};
use gatecast_core::reply::{self, Reply};
use gatecast_spin_shell::outage;
use gatecast_spin_shell::ppv::{self, Ledger};
use spin_sdk::http::body::IncomingBodyExt as _;
use spin_sdk::http::{Request, Response, StatusCode};
use spin_sdk::http_service;
use spin_sdk::key_value::Store;

use outage::{Context as _, Result, variable};

/// Largest request body read: sign and channel requests are a few hundred bytes, an nginx-rtmp
/// callback body well under 4 KiB.
const MAX_BODY_BYTES: usize = 64 * 1024;

#[http_service]
async fn handle(request: Request) -> Response<spin_sdk::http::FullBody<bytes::Bytes>> {
    let method = request.method().clone();
    outage::respond("api", &method, serve(request).await)
}

async fn serve(request: Request) -> Result<Reply> {
    let route = match ApiRoute::parse(request.method().as_str(), request.uri().path()) {
        Ok(route) => route,
        Err(error) => return Ok(reply::status(error.status())),
    };
    if route.is_hook() {
        let hook_secret = variable("hook_secret").await?;
        if !api::hook_secret_matches(request.uri().query().unwrap_or(""), &hook_secret) {
            return Ok(reply::status(StatusCode::FORBIDDEN));
        }
    } else {
        let api_token = variable("api_token").await?;
        let authorization = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok());
        if !api::bearer_matches(authorization, &api_token) {
            return Ok(reply::unauthorized());
        }
    }
    let request_query = request.uri().query().map(str::to_owned);
    let body = request
        .into_body()
        .bytes()
        .await
        .context("reading the request body")?;
    if body.len() > MAX_BODY_BYTES {
        return Ok(reply::status(StatusCode::PAYLOAD_TOO_LARGE));
    }
    let query = request_query.unwrap_or_default();
    match dispatch(route, &body, &query).await? {
        Ok(reply) => Ok(reply),
        Err(error) => Ok(reply::status(error.status())),
    }
}

/// Runs one authenticated endpoint. The outer `Result` is an outage (503), the inner one a
/// refused request (4xx).
async fn dispatch(route: ApiRoute, body: &[u8], query: &str) -> Result<Result<Reply, ApiError>> {
    let now = outage::unix_now();
    Ok(match route {
        ApiRoute::Sign => sign(body, now).await?,
        ApiRoute::CreateChannel => match api::parse_body::<api::CreateChannelRequest>(body)
            .and_then(|request| {
                StreamName::parse(&request.name).map_err(|_| ApiError::MalformedBody)
            }) {
            Ok(name) => Ok(create_channel(&name).await?),
            Err(error) => Err(error),
        },
        ApiRoute::RotateKey(name) => Ok(rotate_key(&name).await?),
        ApiRoute::DisableChannel(name) => Ok(set_active(&name, false, now).await?),
        ApiRoute::EnableChannel(name) => Ok(set_active(&name, true, now).await?),
        ApiRoute::StreamStatus(name) => Ok(stream_status(&name, now).await?),
        ApiRoute::RevokeSession(session) => {
            Ok(mark(&registry::revoked_session_key(&session), Some(now)).await?)
        }
        ApiRoute::BlockViewer(viewer) => {
            Ok(mark(&registry::blocked_viewer_key(&viewer), Some(now)).await?)
        }
        ApiRoute::UnblockViewer(viewer) => {
            Ok(mark(&registry::blocked_viewer_key(&viewer), None).await?)
        }
        ApiRoute::SetPrice(name) => {
            match api::parse_body::<api::SetPriceRequest>(body).and_then(|request| {
                request
                    .price
                    .parse::<Price>()
                    .map_err(|_| ApiError::MalformedBody)
            }) {
                Ok(price) => {
                    Ledger::open()?
                        .set(&core_ppv::price_key(&name), price.to_string().as_bytes())?;
                    Ok(reply::status(StatusCode::NO_CONTENT))
                }
                Err(error) => Err(error),
            }
        }
        ApiRoute::Credit(viewer) => match api::parse_body::<api::CreditsRequest>(body) {
            Ok(request) if request.credits > 0 => {
                let balance = Ledger::open()?.credit(&viewer, i64::from(request.credits))?;
                Ok(balance_reply(viewer, balance))
            }
            Ok(_) => Err(ApiError::MalformedBody),
            Err(error) => Err(error),
        },
        ApiRoute::Debit(viewer) => match api::parse_body::<api::CreditsRequest>(body) {
            Ok(request) if request.credits > 0 => {
                let ledger = Ledger::open()?;
                if ledger.debit(&viewer, u64::from(request.credits))? {
                    Ok(balance_reply(viewer.clone(), ledger.balance(&viewer)?))
                } else {
                    Ok(reply::status(StatusCode::CONFLICT))
                }
            }
            Ok(_) => Err(ApiError::MalformedBody),
            Err(error) => Err(error),
        },
        ApiRoute::Balance(viewer) => {
            let balance = Ledger::open()?.balance(&viewer)?;
            Ok(balance_reply(viewer, balance))
        }
        ApiRoute::Usage => match gatecast_core::form::field(query, "stream")
            .and_then(|stream| StreamName::parse(&stream).ok())
        {
            Some(stream) => {
                let ledger = Ledger::open()?;
                let report = core_ppv::StreamUsageReport {
                    stream: stream.to_string(),
                    unique_viewers: ledger
                        .counter(&core_ppv::usage_viewers_key(&stream))?
                        .unwrap_or(0),
                    viewer_seconds: ledger
                        .counter(&core_ppv::usage_seconds_key(&stream))?
                        .unwrap_or(0),
                };
                Ok(reply::json(StatusCode::OK, api::to_body(&report)))
            }
            None => Err(ApiError::InvalidPath),
        },
        ApiRoute::KeyAudit(stream, key_id) => {
            let entries = ppv::audit_log(&Ledger::open()?, &stream, key_id)?;
            Ok(reply::json(StatusCode::OK, api::to_body(&entries)))
        }
        ApiRoute::OnPublish => Ok(on_publish(body, now).await?),
        ApiRoute::OnPublishDone => Ok(on_publish_done(body, now).await?),
    })
}

async fn sign(body: &[u8], now: u64) -> Result<Result<Reply, ApiError>> {
    let request: api::SignRequest = match api::parse_body(body) {
        Ok(request) => request,
        Err(error) => return Ok(Err(error)),
    };
    let keys = outage::signing_keys().await?;
    let wmsauth_key = variable("wmsauth_key").await?;
    let signed = api::sign(&request, &keys, &wmsauth_key, now);
    Ok(signed.map(|signed| reply::json(StatusCode::OK, api::to_body(&signed))))
}

async fn create_channel(name: &StreamName) -> Result<Reply> {
    let store = channels().await?;
    if load_channel(&store, name).await?.is_some() {
        return Ok(reply::status(StatusCode::CONFLICT));
    }
    let stream_key = fresh_stream_key();
    let digest = hook::stream_key_digest(&stream_key);
    store
        .set(registry::stream_key_index(&digest), name.as_str())
        .await
        .context("indexing the stream key")?;
    let channel = ChannelRecord {
        name: name.to_string(),
        active: true,
        key_sha256: digest,
    };
    save_channel(&store, name, &channel).await?;
    Ok(key_reply(StatusCode::CREATED, name, stream_key))
}

/// Issues a new stream key. The old one stops working at once (its index entry is deleted):
/// a new publish with it is refused, and a broadcast already running with it is cut off at its
/// next `on_update` (which [`on_publish`] refuses).
async fn rotate_key(name: &StreamName) -> Result<Reply> {
    let store = channels().await?;
    let Some(mut channel) = load_channel(&store, name).await? else {
        return Ok(reply::status(StatusCode::NOT_FOUND));
    };
    let stream_key = fresh_stream_key();
    let old_digest = std::mem::replace(
        &mut channel.key_sha256,
        hook::stream_key_digest(&stream_key),
    );
    store
        .set(
            registry::stream_key_index(&channel.key_sha256),
            name.as_str(),
        )
        .await
        .context("indexing the stream key")?;
    save_channel(&store, name, &channel).await?;
    store
        .delete(registry::stream_key_index(&old_digest))
        .await
        .context("dropping the old stream key")?;
    Ok(key_reply(StatusCode::OK, name, stream_key))
}

/// Enables or disables (bans) a channel: the hook refuses a disabled channel's key, and the
/// `banned-stream` mark makes the key component refuse its keys, cutting current viewers off
/// at the next key period.
async fn set_active(name: &StreamName, active: bool, now: u64) -> Result<Reply> {
    let store = channels().await?;
    let Some(mut channel) = load_channel(&store, name).await? else {
        return Ok(reply::status(StatusCode::NOT_FOUND));
    };
    channel.active = active;
    save_channel(&store, name, &channel).await?;
    mark(&registry::banned_stream_key(name), (!active).then_some(now)).await
}

/// Sets (`Some(time)`) or clears (`None`) a sanction mark in the `viewers` store.
async fn mark(key: &str, since: Option<u64>) -> Result<Reply> {
    let store = Store::open(registry::VIEWERS_STORE)
        .await
        .context("opening the viewers store")?;
    match since {
        Some(time) => store.set(key, time.to_string()).await,
        None => store.delete(key).await,
    }
    .context("updating the viewers store")?;
    Ok(reply::status(StatusCode::NO_CONTENT))
}

/// `on_publish`, and nginx-rtmp's `on_update` pointed at the same URL (`call=update_publish`):
/// both take or renew the channel's publish lease, refused (409) while another publisher holds
/// it. Both are refused (403) for a key that no longer names an active channel: a disabled
/// channel's, and a rotated-away one's. A refused update cuts the publisher off, so rotating
/// a leaked key ends the broadcast running with it at its next update.
async fn on_publish(body: &[u8], now: u64) -> Result<Reply> {
    let form = std::str::from_utf8(body).unwrap_or_default();
    let update = hook::is_update_call(form);
    let channel = channel_of_hook(body).await?;
    let PublishDecision::Rename(name) = registry::decide_publish(channel.as_ref()) else {
        return Ok(reply::status(StatusCode::FORBIDDEN));
    };
    if !apply_lease(&name, form, LeaseAction::Acquire, now)? {
        return Ok(reply::status(StatusCode::CONFLICT));
    }
    if update {
        return Ok(reply::status(StatusCode::OK));
    }
    channels()
        .await?
        .set(registry::live_since_key(&name), now.to_string())
        .await
        .context("marking the channel live")?;
    Ok(reply::redirect(name.as_str()))
}

/// `GET /api/streams/<name>`: 404 for an unknown channel.
async fn stream_status(name: &StreamName, now: u64) -> Result<Reply> {
    let store = channels().await?;
    if load_channel(&store, name).await?.is_none() {
        return Ok(reply::status(StatusCode::NOT_FOUND));
    }
    let live_since = store
        .get(registry::live_since_key(name))
        .await
        .context("reading when the channel went live")?
        .and_then(|stored| std::str::from_utf8(&stored).ok()?.parse().ok());
    let lease = Ledger::open()?.get(&registry::publish_lease_key(name))?;
    let status = StreamStatus::at(
        name,
        live_since,
        PublishLease::decode(lease.as_deref()),
        now,
    );
    Ok(reply::json(StatusCode::OK, api::to_body(&status)))
}

/// nginx-rtmp ignores this reply, so it is 200 whatever happened. Only the lease holder's
/// `publish_done` releases the lease and marks the channel offline: a late one from a worker
/// whose lease lapsed must not end the broadcast that took over.
async fn on_publish_done(body: &[u8], now: u64) -> Result<Reply> {
    let form = std::str::from_utf8(body).unwrap_or_default();
    if let Some(channel) = channel_of_hook(body).await?
        && let Ok(name) = StreamName::parse(&channel.name)
        && apply_lease(&name, form, LeaseAction::Release, now)?
    {
        channels()
            .await?
            .delete(registry::live_since_key(&name))
            .await
            .context("marking the channel offline")?;
    }
    Ok(reply::status(StatusCode::OK))
}

/// Applies a hook's `action` to `name`'s publish lease in one compare-and-swap; false when
/// another publisher holds it. The increment by 0 first creates an absent lease atomically (as
/// free), because Spin's swap on an absent key is a plain write that two racing first
/// publishers could both win (see [`registry`]).
fn apply_lease(name: &StreamName, form: &str, action: LeaseAction, now: u64) -> Result<bool> {
    let ledger = Ledger::open()?;
    let key = registry::publish_lease_key(name);
    ledger.increment(&key, 0)?;
    let (holder, seconds) = (hook::lease_holder(form), hook::lease_seconds(form));
    ledger.update(&key, &mut |current| {
        registry::next_lease(current, holder, action, now, seconds).map(Vec::from)
    })
}

/// The channel whose current stream key an nginx-rtmp callback presents, found by the key's
/// digest ([`ChannelRecord::is_keyed_by`]: a rotated-away key names none).
async fn channel_of_hook(body: &[u8]) -> Result<Option<ChannelRecord>> {
    let Some(stream_key) = std::str::from_utf8(body).ok().and_then(hook::stream_key) else {
        return Ok(None);
    };
    let store = channels().await?;
    let index = registry::stream_key_index(&hook::stream_key_digest(&stream_key));
    let Some(name) = store
        .get(index)
        .await
        .context("looking up the stream key")?
    else {
        return Ok(None);
    };
    let Some(name) = std::str::from_utf8(&name)
        .ok()
        .and_then(|name| StreamName::parse(name).ok())
    else {
        return Ok(None);
    };
    Ok(load_channel(&store, &name)
        .await?
        .filter(|channel| channel.is_keyed_by(&stream_key)))
}

async fn channels() -> Result<Store> {
    Store::open(registry::CHANNELS_STORE)
        .await
        .context("opening the channels store")
}

async fn load_channel(store: &Store, name: &StreamName) -> Result<Option<ChannelRecord>> {
    match store
        .get(registry::channel_key(name))
        .await
        .context("reading a channel")?
    {
        Some(stored) => ChannelRecord::from_json(&stored)
            .map(Some)
            .context("reading a channel"),
        None => Ok(None),
    }
}

async fn save_channel(store: &Store, name: &StreamName, channel: &ChannelRecord) -> Result<()> {
    store
        .set(registry::channel_key(name), channel.to_json())
        .await
        .context("writing a channel")
}

fn balance_reply(viewer: String, balance: i64) -> Reply {
    let body = api::BalanceResponse { viewer, balance };
    reply::json(StatusCode::OK, api::to_body(&body))
}

fn key_reply(status: StatusCode, name: &StreamName, stream_key: String) -> Reply {
    let body = ChannelKeyResponse {
        name: name.to_string(),
        stream_key,
    };
    reply::json(status, api::to_body(&body))
}

/// A stream key from the host's CSPRNG (`wasi:random`).
fn fresh_stream_key() -> String {
    let mut random = [0u8; registry::STREAM_KEY_RANDOM_BYTES];
    let mut filled = 0;
    while filled < random.len() {
        // wasi:random may return fewer bytes than asked for; keep asking.
        let remaining = (random.len() - filled) as u64;
        let chunk = spin_sdk::wasip3::random::random::get_random_bytes(remaining);
        let take = chunk.len().min(random.len() - filled);
        random[filled..filled + take].copy_from_slice(&chunk[..take]);
        filled += take;
    }
    registry::new_stream_key(&random)
}

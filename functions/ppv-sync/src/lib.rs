//! The `ppv-sync` component: the WMSPanel pay-per-view push sync (docs/PROTOCOLS.md §5) and the
//! housekeeping of the `viewers` store. The only component that talks to the customer's
//! handler, so only it holds `ppv_token` and may reach `ppv_handler_origin`.
//!
//! Two ways in, both `POST`:
//! - `/api/ppv/sync` (public route), bearer `api_token`: a forced sync now, for an external
//!   scheduler (cron, a Kubernetes CronJob). `200 {"denied":n}`; `404` without a configured
//!   handler; `503` (logged, the handler is never called) when a handler is configured without
//!   `ppv_token`; `502` when the handler is down, times out or answers a wrong `Solution`.
//! - `http://ppv-sync.spin.internal/internal/sync-if-due` (Spin local service chaining), from
//!   the key component when its cheap KV read says a round is due. Unauthenticated, so it can
//!   only do what the schedule does anyway: run the round if it is still due *and* this call
//!   wins the round's KV lease, else `204`. However often it is called (by every key request
//!   of a busy edge, or by a component misusing it), at most one round runs per interval.
//!   It is not reachable from outside: the component's only route is the exact public one
//!   above, so no outside request reaches it with this path (chained requests bypass routing).
//!   The `Host` is not checked: whether Spin's chained request carries
//!   `Host: ppv-sync.spin.internal` depends on the guest's HTTP client, and a false "outside"
//!   verdict would silently stop every automatic sync.
//!
//! A round prunes old charge markers (see [`ppv::RETAINED_KEY_IDS`]) and past periods' seed 000
//! authorization cache rows ([`registry::authorization_key`]), and then syncs; without
//! `ppv_token` it still prunes, but never calls the handler (logged once per round). A sync
//! POSTs the pending usage with `Puzzle`/`Signature`, checks the `Solution`, replaces the deny
//! list and only then subtracts the reported seconds, so usage survives a failed sync. The
//! handler call is bounded by [`HANDLER_TIMEOUT`]: a hung handler fails the sync (the previous
//! deny list stays in force, logged) instead of holding the key request that triggered it.
//! A forced sync racing a round may report the same seconds twice (both read the counters
//! before either subtracts): usage reporting is at-least-once, never lost.

use std::future::Future;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use gatecast_core::api;
use gatecast_core::ppv::{self, UsageRecord};
use gatecast_core::registry;
use gatecast_core::reply::{self, Reply};
use gatecast_spin_shell::outage::{self, Outage, Result, variable};
use gatecast_spin_shell::ppv::{Ledger, sync_interval};
use gatecast_spin_shell::viewer;
use spin_sdk::http::body::IncomingBodyExt as _;
use spin_sdk::http::{FullBody, Method, Request, Response, StatusCode};
use spin_sdk::http_service;

/// Longest wait for the handler's whole answer. Well under the host's request limit, and short
/// enough that the key request which triggered the round still answers in time.
const HANDLER_TIMEOUT: Duration = Duration::from_secs(5);

#[http_service]
async fn handle(request: Request) -> Response<FullBody<Bytes>> {
    outage::respond("ppv-sync", request.method(), serve(&request).await)
}

async fn serve(request: &Request) -> Result<Reply> {
    if *request.method() != Method::POST {
        return Ok(reply::method_not_allowed());
    }
    let now = outage::unix_now();
    let path = request.uri().path();
    if path == ppv::SYNC_ROUTE {
        let api_token = variable("api_token").await?;
        if !api::bearer_matches(viewer::header(request, "authorization"), &api_token) {
            return Ok(reply::unauthorized());
        }
        return Ok(sync_reply(sync(&Ledger::open()?, now).await));
    }
    if path != ppv::SYNC_IF_DUE_PATH {
        return Ok(reply::not_found());
    }
    let ledger = Ledger::open()?;
    if !win_round(&ledger, now).await? {
        return Ok(reply::status(StatusCode::NO_CONTENT));
    }
    prune(&ledger, now, now / sync_interval().await?)?;
    Ok(match sync(&ledger, now).await {
        Err(SyncFailure::NotConfigured) => reply::status(StatusCode::NO_CONTENT),
        outcome => sync_reply(outcome),
    })
}

/// The answer to a sync: the number of denied ids, 404 without a handler, 503 (logged) when a
/// handler is configured without `ppv_token`, 502 (logged) when the handler failed.
fn sync_reply(outcome: std::result::Result<usize, SyncFailure>) -> Reply {
    match outcome {
        Ok(denied) => reply::json(
            StatusCode::OK,
            format!("{{\"denied\":{denied}}}").into_bytes(),
        ),
        Err(SyncFailure::NotConfigured) => reply::status(StatusCode::NOT_FOUND),
        Err(SyncFailure::Unprotected(why)) => {
            eprintln!("ppv-sync: refusing to sync: {why}; the previous deny list stays in force");
            reply::unavailable()
        }
        Err(SyncFailure::Handler(why)) => {
            eprintln!("ppv-sync: {why}; the previous deny list stays in force");
            reply::status(StatusCode::BAD_GATEWAY)
        }
    }
}

/// The round's lease: `true` for the one caller per interval that runs it. The round is
/// `now / interval`; the first atomic increment of its key wins, and the start time it writes
/// makes the round "not due" for everyone else until the interval has passed.
async fn win_round(ledger: &Ledger, now: u64) -> Result<bool> {
    let interval = sync_interval().await?;
    if !ppv::sync_due(ledger.counter(ppv::SYNC_LAST_KEY)?, now, interval) {
        return Ok(false);
    }
    if ledger.increment(&ppv::sync_round_key(now / interval), 1)? != 1 {
        return Ok(false);
    }
    let started = i64::try_from(now).unwrap_or(i64::MAX);
    ledger.set(ppv::SYNC_LAST_KEY, &ppv::encode_counter(started))?;
    Ok(true)
}

/// Deletes charge markers and audit-seen keys of old (or never written) key ids, the leases of
/// past rounds, and the seed 000 authorization cache rows of past periods.
fn prune(ledger: &Ledger, now: u64, round: u64) -> Result<()> {
    let keys = ledger.keys()?;
    let stale = ppv::prunable_markers(&keys, ppv::RETAINED_KEY_IDS, now)
        .into_iter()
        .chain(keys.iter().map(String::as_str).filter(|key| {
            ppv::is_past_round_key(key, round) || registry::is_stale_authorization_key(key, now)
        }));
    for key in stale {
        ledger.delete(key)?;
    }
    Ok(())
}

/// Pending seconds read for a sync: the records to report, and the counters (with the value
/// read) to subtract once the handler accepted them.
type PendingUsage = (Vec<UsageRecord>, Vec<(String, i64)>);

/// Why a sync did not replace the deny list.
enum SyncFailure {
    /// `ppv_handler_path` is empty: no handler configured.
    NotConfigured,
    /// A handler is configured without `ppv_token`: the handler is never called, because
    /// anyone could answer it a valid `Solution` ([`ppv::handler_settings`]).
    Unprotected(ppv::PpvError),
    /// The handler could not be reached in time, answered non-2xx, malformed JSON or a wrong
    /// `Solution`, or the store failed: the previous deny list stays in force.
    Handler(String),
}

impl From<Outage> for SyncFailure {
    fn from(outage: Outage) -> Self {
        Self::Handler(outage.to_string())
    }
}

/// One WMSPanel sync. Returns the number of denied ids.
async fn sync(ledger: &Ledger, now: u64) -> std::result::Result<usize, SyncFailure> {
    let (path, token) = (
        variable("ppv_handler_path").await?,
        variable("ppv_token").await?,
    );
    let (path, token) = ppv::handler_settings(&path, &token)
        .map_err(SyncFailure::Unprotected)?
        .ok_or(SyncFailure::NotConfigured)?;
    let url = format!("{}{path}", variable("ppv_handler_origin").await?);
    let server_id = variable("ppv_server_id").await?;
    let (records, pending) = pending_usage(ledger)?;
    let puzzle = fresh_puzzle();
    let body = ppv::build_sync_request(&server_id, Some((&puzzle, token)), &records).to_json();
    let answer = within(HANDLER_TIMEOUT, post(url, body))
        .await
        .ok_or_else(|| SyncFailure::Handler(format!("handler silent for {HANDLER_TIMEOUT:?}")))??;
    let answer = ppv::SyncResponse::from_json(&answer)
        .map_err(|error| SyncFailure::Handler(error.to_string()))?;
    answer
        .verify(&puzzle, token)
        .map_err(|error| SyncFailure::Handler(format!("handler rejected: {error}")))?;
    let denied = answer.deny_list.ids;
    apply_deny_list(ledger, &denied)?;
    for (key, seconds) in pending {
        ledger.increment(&key, -seconds)?;
    }
    for record in &records {
        ledger.set(&ppv::known_key(&record.viewer), b"1")?;
    }
    let accepted = i64::try_from(now).unwrap_or(i64::MAX);
    ledger.set(ppv::SYNC_OK_KEY, &ppv::encode_counter(accepted))?;
    Ok(denied.len())
}

/// POSTs `body` as JSON to the handler and reads its 2xx answer.
async fn post(url: String, body: Vec<u8>) -> std::result::Result<Bytes, SyncFailure> {
    let failed = |what: &str| SyncFailure::Handler(what.to_owned());
    // An explicit length: simple handlers (a PHP script behind some servers) do not read
    // chunked request bodies.
    let request = http::Request::post(url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::CONTENT_LENGTH, body.len())
        .body(FullBody::new(Bytes::from(body)))
        .map_err(|_| failed("handler URL is invalid"))?;
    let response = spin_sdk::http::send(request)
        .await
        .map_err(|_| failed("handler unreachable"))?;
    if !response.status().is_success() {
        return Err(SyncFailure::Handler(format!(
            "handler answered {}",
            response.status()
        )));
    }
    response
        .into_body()
        .bytes()
        .await
        .map_err(|_| failed("handler body unreadable"))
}

/// `work`'s output, or `None` once `limit` has passed (then `work` is dropped, which cancels
/// the outbound request). wasi:http's request options only bound the connect and the gaps
/// between bytes; this bounds the whole exchange.
async fn within<T>(limit: Duration, work: impl Future<Output = T>) -> Option<T> {
    let mut work = pin!(work);
    let nanos = u64::try_from(limit.as_nanos()).unwrap_or(u64::MAX);
    let mut alarm = pin!(spin_sdk::wasip3::clocks::monotonic_clock::wait_for(nanos));
    std::future::poll_fn(|context| {
        if let Poll::Ready(output) = work.as_mut().poll(context) {
            return Poll::Ready(Some(output));
        }
        alarm.as_mut().poll(context).map(|()| None)
    })
    .await
}

/// The pending seconds per (stream, viewer, ip), and the counters they were read from.
fn pending_usage(ledger: &Ledger) -> Result<PendingUsage> {
    let mut records = Vec::new();
    let mut read = Vec::new();
    for key in ledger.keys()? {
        let Some((stream, viewer, ip)) = ppv::parse_pending_key(&key) else {
            continue;
        };
        let seconds = ledger.counter(&key)?.unwrap_or(0);
        if seconds <= 0 {
            continue;
        }
        records.push(UsageRecord {
            stream: stream.to_owned(),
            viewer: viewer.to_owned(),
            ip: ip.to_owned(),
            seconds: u64::try_from(seconds).unwrap_or(0),
        });
        read.push((key, seconds));
    }
    Ok((records, read))
}

/// Replaces the deny list: marks the new ids, lifts the ones no longer listed.
fn apply_deny_list(ledger: &Ledger, denied: &[String]) -> Result<()> {
    let previous = ledger
        .get(ppv::DENY_LIST_KEY)?
        .and_then(|stored| ppv::decode_id_list(&stored))
        .unwrap_or_default();
    let (added, lifted) = ppv::deny_list_changes(&previous, denied);
    for id in added {
        ledger.set(&ppv::denied_key(id), b"1")?;
    }
    for id in lifted {
        ledger.delete(&ppv::denied_key(id))?;
    }
    ledger.set(ppv::DENY_LIST_KEY, &ppv::encode_id_list(denied))
}

/// 16 random bytes from `wasi:random`, hex: the sync's `Puzzle`.
fn fresh_puzzle() -> String {
    let bytes = spin_sdk::wasip3::random::random::get_random_bytes(16);
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

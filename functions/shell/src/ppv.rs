//! Pay-per-view I/O on the `viewers` store through `wasi:keyvalue` (Spin's experimental
//! interface, needed for its atomic `increment` and compare-and-swap), shared by the `key`
//! component (charging, session cap, usage, audit, the stateless sync trigger and the
//! fail-closed rule), `api` (credits, prices, reports) and `ppv-sync` (the WMSPanel sync
//! round, which lists the store). Every rule is in [`gatecast_core::ppv`].
//!
//! Guarantee (documented in [`ppv::Claim`]): one debit per (viewer, stream, key id), because
//! only the caller whose atomic increment of the charge marker returned 1 debits, and the debit
//! itself is a compare-and-swap on the balance's exact bytes (retried on a lost race), so
//! concurrent credits and debits never lose an update. Failure window: if the component dies
//! (or the KV fails) after the debit and before the marker gets [`ppv::PAID_MARK`], the viewer
//! paid but later fetches of that key id see "in flight" and get 503 until the key id rotates
//! (one key period); the reverse order would risk charging twice, which we never do.

use std::net::IpAddr;

use gatecast_core::layout::StreamName;
use gatecast_core::ppv::{self, AuditEntry, Claim, Price, Refusal, SessionSet};
use gatecast_core::registry;
use spin_sdk::experimental::wasi::keyvalue::{atomics, store};

use crate::outage::{Context as _, Outage, Result, variable};

/// How often a compare-and-swap is retried before the request gives up (503).
const CAS_ATTEMPTS: usize = 32;
/// How long a request waits for a concurrent request of the same key to finish charging.
const IN_FLIGHT_POLLS: usize = 40;
const IN_FLIGHT_POLL: std::time::Duration = std::time::Duration::from_millis(25);

/// Maps a compare-and-swap's current value to the value to write (`None`: write nothing).
type Update<'a> = &'a mut dyn FnMut(Option<&[u8]>) -> Option<Vec<u8>>;

/// The `viewers` store as a `wasi:keyvalue` bucket.
pub struct Ledger(store::Bucket);

fn kv<T>(result: std::result::Result<T, store::Error>, what: &str) -> Result<T> {
    result.map_err(|error| kv_outage(error, what))
}

/// Not generic and without `Debug`: this glue is linked into every component within a 400 KB
/// budget, and a formatted `Debug` per call site cost kilobytes.
#[inline(never)]
fn kv_outage(error: store::Error, what: &str) -> Outage {
    let why = match error {
        store::Error::NoSuchStore => "no such store".to_owned(),
        store::Error::AccessDenied => "access denied".to_owned(),
        store::Error::Other(message) => message,
    };
    Outage::new(format!("{what}: {why}"))
}

impl Ledger {
    /// Opens the `viewers` store.
    pub fn open() -> Result<Self> {
        kv(
            store::open(registry::VIEWERS_STORE),
            "opening the viewers bucket",
        )
        .map(Self)
    }

    /// A raw value.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        kv(self.0.get(key), "reading the viewers bucket")
    }

    /// Writes a raw value.
    pub fn set(&self, key: &str, value: &[u8]) -> Result<()> {
        kv(self.0.set(key, value), "writing the viewers bucket")
    }

    /// Deletes a key.
    pub fn delete(&self, key: &str) -> Result<()> {
        kv(self.0.delete(key), "deleting from the viewers bucket")
    }

    /// A counter's value (absent = `None`; not a counter = outage).
    pub fn counter(&self, key: &str) -> Result<Option<i64>> {
        match self.get(key)? {
            None => Ok(None),
            Some(bytes) => ppv::decode_counter(&bytes)
                .map(Some)
                .ok_or_else(|| Outage::new(format!("{key} is not a counter"))),
        }
    }

    /// Atomic add; returns the new value.
    pub fn increment(&self, key: &str, delta: i64) -> Result<i64> {
        kv(
            atomics::increment(&self.0, key, delta),
            "incrementing a counter",
        )
    }

    /// Compare-and-swap loop: `update` maps the current value to the new one, or `None` to
    /// leave it alone (returned as `Ok(false)`). Atomic when the key exists; on an absent key
    /// Spin's swap is a plain write, so callers only create keys this way where a lost race is
    /// harmless (documented at each caller).
    pub fn update(&self, key: &str, update: Update<'_>) -> Result<bool> {
        for _ in 0..CAS_ATTEMPTS {
            let cas = kv(
                atomics::Cas::new(&self.0, key),
                "opening a compare-and-swap",
            )?;
            let current = kv(cas.current(), "reading for a compare-and-swap")?;
            let Some(next) = update(current.as_deref()) else {
                return Ok(false);
            };
            match atomics::swap(cas, &next) {
                Ok(()) => return Ok(true),
                Err(atomics::CasError::CasFailed(_)) => continue,
                Err(atomics::CasError::StoreError(error)) => {
                    return Err(kv_outage(error, "compare-and-swap"));
                }
            }
        }
        Err(Outage::new(format!("{key}: compare-and-swap kept losing")))
    }

    /// Every key of the store, following the listing's cursor to the end.
    pub fn keys(&self) -> Result<Vec<String>> {
        let mut keys = Vec::new();
        let mut cursor = None;
        loop {
            let page = kv(
                self.0.list_keys(cursor.as_deref()),
                "listing the viewers bucket",
            )?;
            keys.extend(page.keys);
            match page.cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(keys),
            }
        }
    }

    /// A viewer's credits (absent = 0).
    pub fn balance(&self, viewer: &str) -> Result<i64> {
        Ok(self.counter(&ppv::balance_key(viewer))?.unwrap_or(0))
    }

    /// Adds credits atomically (a credit never races a debit away: both are atomic).
    pub fn credit(&self, viewer: &str, credits: i64) -> Result<i64> {
        self.increment(&ppv::balance_key(viewer), credits)
    }

    /// Takes `amount` credits if the balance covers it; `Ok(false)` otherwise.
    pub fn debit(&self, viewer: &str, amount: u64) -> Result<bool> {
        self.update(&ppv::balance_key(viewer), &mut |current| {
            let balance = ppv::decode_counter(current?)?;
            ppv::debit(balance, amount).map(|left| ppv::encode_counter(left).to_vec())
        })
    }

    /// The stream's price (none set = free).
    pub fn price(&self, stream: &StreamName) -> Result<Price> {
        match self.get(&ppv::price_key(stream))? {
            None => Ok(Price::Free),
            Some(text) => String::from_utf8_lossy(&text)
                .parse()
                .context("stream price"),
        }
    }
}

/// One key request, as pay-per-view sees it.
pub struct KeyFetch<'a> {
    /// Stream of the key.
    pub stream: &'a StreamName,
    /// Key id, of a key object the caller has read: only key ids the worker wrote may be
    /// charged or audited, because the newest charged key id of a stream decides which charge
    /// markers the `ppv-sync` round prunes ([`ppv::prunable_markers`]).
    pub key_id: u64,
    /// Viewer id from the credential (`None`: it names no viewer, so nobody can be charged).
    pub viewer: Option<&'a str>,
    /// Session id from the credential (`None`: it names no session, so no session cap).
    pub session: Option<&'a str>,
    /// Client address, when known.
    pub ip: Option<IpAddr>,
    /// Request time.
    pub now: u64,
    /// `false` for `HEAD`: decide, write nothing.
    pub debit: bool,
}

/// Pay-per-view, session cap, usage and audit for one key request: `Ok(None)` serves the key.
/// Call it only once the key object is known to exist (see [`KeyFetch::key_id`]).
pub async fn admit_key(ledger: &Ledger, fetch: &KeyFetch<'_>) -> Result<Option<Refusal>> {
    let price = ledger.price(fetch.stream)?;
    let key_period: u64 = variable("key_period_seconds")
        .await?
        .parse()
        .context("key_period_seconds")?;
    let amount = ppv::charge_for_key_period(price, key_period);
    let Some(viewer) = fetch.viewer else {
        // Nobody to charge or account to.
        return Ok((amount > 0).then_some(Refusal::PaymentRequired));
    };
    if fetch.debit && !admit_session(ledger, viewer, fetch, key_period).await? {
        return Ok(Some(Refusal::SessionLimit));
    }
    let marker = ppv::charged_key(viewer, fetch.stream, fetch.key_id);
    let already = ledger.counter(&marker)?.map(ppv::classify_claim);
    if !fetch.debit {
        let covered =
            already == Some(Claim::Paid) || ppv::debit(ledger.balance(viewer)?, amount).is_some();
        return Ok((!covered).then_some(Refusal::PaymentRequired));
    }
    let claim = match already {
        Some(Claim::Paid) => Claim::Paid,
        _ => ppv::classify_claim(ledger.increment(&marker, 1)?),
    };
    match claim {
        Claim::Charge => {
            if amount > 0 && !ledger.debit(viewer, amount)? {
                // Refused: the next claimant starts over (and may succeed after a credit).
                ledger.delete(&marker)?;
                return Ok(Some(Refusal::PaymentRequired));
            }
            ledger.increment(&marker, ppv::PAID_MARK)?;
            record_usage(ledger, viewer, fetch, key_period).await?;
        }
        Claim::Paid => {}
        Claim::InFlight => {
            if !wait_for_charge(ledger, &marker).await? {
                return Ok(Some(Refusal::PaymentRequired));
            }
        }
    }
    record_audit(ledger, viewer, fetch)?;
    Ok(None)
}

/// Waits for the concurrent claimant of `marker`: `true` once paid, `false` if it refused
/// (deleted the marker), an outage if it never finishes (see the module's failure window).
async fn wait_for_charge(ledger: &Ledger, marker: &str) -> Result<bool> {
    for _ in 0..IN_FLIGHT_POLLS {
        spin_sdk::wasip3::clocks::monotonic_clock::wait_for(
            u64::try_from(IN_FLIGHT_POLL.as_nanos()).unwrap_or(u64::MAX),
        )
        .await;
        match ledger.counter(marker)?.map(ppv::classify_claim) {
            None => return Ok(false),
            Some(Claim::Paid) => return Ok(true),
            // The claimant has not finished (or a new one took over): poll again.
            Some(Claim::Charge | Claim::InFlight) => {}
        }
    }
    Err(Outage::new("a concurrent charge did not finish".to_owned()))
}

/// The concurrent-session cap (`ppv_session_cap`, 0 = off). The set is updated with a
/// compare-and-swap; the very first write for a viewer is a plain write (Spin), so two
/// simultaneous first sessions may both be admitted once — never more than that.
async fn admit_session(
    ledger: &Ledger,
    viewer: &str,
    fetch: &KeyFetch<'_>,
    key_period: u64,
) -> Result<bool> {
    let cap: usize = variable("ppv_session_cap")
        .await?
        .parse()
        .context("ppv_session_cap")?;
    let Some(session) = fetch.session.filter(|_| cap != 0) else {
        return Ok(true);
    };
    let mut admitted = true;
    ledger.update(&ppv::sessions_key(viewer), &mut |current| {
        let mut set: SessionSet = current.and_then(SessionSet::decode).unwrap_or_default();
        let before = set.clone();
        admitted = set.admit(session, fetch.now, cap, key_period);
        // Write only what changed, so a known session's refetch costs no write.
        (set != before).then(|| set.encode())
    })?;
    Ok(admitted)
}

/// Usage of a first fetch of a key id: viewer-seconds, unique viewers, and seconds pending for
/// the WMSPanel handler (when one is configured).
async fn record_usage(
    ledger: &Ledger,
    viewer: &str,
    fetch: &KeyFetch<'_>,
    key_period: u64,
) -> Result<()> {
    let seconds = i64::try_from(key_period).unwrap_or(i64::MAX);
    ledger.increment(&ppv::usage_seconds_key(fetch.stream), seconds)?;
    if ledger.increment(&ppv::seen_key(viewer, fetch.stream), 1)? == 1 {
        ledger.increment(&ppv::usage_viewers_key(fetch.stream), 1)?;
    }
    // Pending seconds are only ever read (and subtracted) by a sync with a handler: without
    // one they would be rows nobody reads, one more per viewer and address.
    if variable("ppv_handler_path").await?.is_empty() {
        return Ok(());
    }
    let ip = fetch.ip.map_or_else(|| "-".to_owned(), |ip| ip.to_string());
    ledger.increment(&ppv::pending_key(fetch.stream, viewer, &ip), seconds)?;
    Ok(())
}

/// Appends who fetched this key id, once per (viewer, session).
fn record_audit(ledger: &Ledger, viewer: &str, fetch: &KeyFetch<'_>) -> Result<()> {
    // The audit row's wire form has no "absent": a token without a session names "".
    let session = fetch.session.unwrap_or_default();
    let seen = ppv::audit_seen_key(fetch.stream, fetch.key_id, viewer, session);
    if ledger.get(&seen)?.is_some() || ledger.increment(&seen, 1)? != 1 {
        return Ok(());
    }
    let sequence = ledger.increment(&ppv::audit_count_key(fetch.stream, fetch.key_id), 1)?;
    let entry = AuditEntry {
        viewer: viewer.to_owned(),
        session: session.to_owned(),
        ip: fetch.ip.map(|ip| ip.to_string()).unwrap_or_default(),
        at: fetch.now,
    };
    ledger.set(
        &ppv::audit_entry_key(fetch.stream, fetch.key_id, sequence),
        &entry.encode(),
    )
}

/// The audit log of a key id, oldest first.
pub fn audit_log(ledger: &Ledger, stream: &StreamName, key_id: u64) -> Result<Vec<AuditEntry>> {
    let count = ledger
        .counter(&ppv::audit_count_key(stream, key_id))?
        .unwrap_or(0);
    let mut entries = Vec::new();
    for sequence in 1..=count {
        // A sequence whose entry write was lost stays a gap rather than failing the read.
        if let Some(bytes) = ledger.get(&ppv::audit_entry_key(stream, key_id, sequence))? {
            entries.push(
                AuditEntry::decode(&bytes)
                    .ok_or_else(|| Outage::new(format!("audit entry {sequence} is corrupt")))?,
            );
        }
    }
    Ok(entries)
}

/// Whether a WMSPanel sync round is due at `now`: the last one started an interval or more
/// ago. One KV read, cheap enough for every key request; the round itself (and its lease) is
/// the `ppv-sync` component's, see [`request_sync`].
pub async fn sync_round_due(ledger: &Ledger, now: u64) -> Result<bool> {
    let interval = sync_interval().await?;
    Ok(ppv::sync_due(
        ledger.counter(ppv::SYNC_LAST_KEY)?,
        now,
        interval,
    ))
}

/// `ppv_sync_interval_seconds`, at least 1.
pub async fn sync_interval() -> Result<u64> {
    let interval: u64 = variable("ppv_sync_interval_seconds")
        .await?
        .parse()
        .context("ppv_sync_interval_seconds")?;
    Ok(interval.max(1))
}

/// Asks the `ppv-sync` component, through Spin local service chaining, to run the round if it
/// is still due. Waits for it, so a viewer the handler has just denied is refused by the very
/// request that triggered the round. Never fails the caller: the component holds the lease
/// (one round per interval whoever asks) and bounds the handler call with a timeout, and a
/// failed round only means the previous deny list stays in force, which is logged.
pub async fn request_sync() {
    let url = format!(
        "http://{}{}",
        ppv::SYNC_COMPONENT_HOST,
        ppv::SYNC_IF_DUE_PATH
    );
    let outcome = match http::Request::post(url).body(spin_sdk::http::EmptyBody::new()) {
        Ok(request) => spin_sdk::http::send(request)
            .await
            .map(|response| response.status())
            .map_err(|_| "unreachable"),
        Err(_) => Err("unbuildable"),
    };
    match outcome {
        Ok(status) if status.is_success() => {}
        Ok(status) => eprintln!("ppv sync round answered {status}"),
        Err(why) => eprintln!("ppv sync round: ppv-sync component {why}"),
    }
}

/// Fail-closed (`ppv_fail_open` = `false`): whether `viewer` is refused because the handler
/// has not accepted a sync for two intervals and never had this viewer reported. Viewers it
/// knows keep the last deny list's verdict; fail-open (the default) admits everyone.
pub async fn refused_while_handler_down(ledger: &Ledger, viewer: &str, now: u64) -> Result<bool> {
    if variable("ppv_handler_path").await?.is_empty()
        || variable("ppv_fail_open").await?.trim() != "false"
    {
        return Ok(false);
    }
    if !ppv::handler_is_stale(
        ledger.counter(ppv::SYNC_OK_KEY)?,
        now,
        sync_interval().await?,
    ) {
        return Ok(false);
    }
    Ok(ledger.get(&ppv::known_key(viewer))?.is_none())
}

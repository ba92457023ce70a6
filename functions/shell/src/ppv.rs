//! Pay-per-view I/O on the `viewers` store through `wasi:keyvalue` (Spin's experimental
//! interface, needed for its atomic `increment` and compare-and-swap), shared by the `key`
//! component (charging, session cap, usage, audit, the stateless sync trigger) and `api`
//! (credits, prices, reports, `POST /api/ppv/sync`). Every rule is in [`gatecast_core::ppv`].
//!
//! Guarantee (documented in [`ppv::Claim`]): one debit per (viewer, stream, key id), because
//! only the caller whose atomic increment of the charge marker returned 1 debits, and the debit
//! itself is a compare-and-swap on the balance's exact bytes (retried on a lost race), so
//! concurrent credits and debits never lose an update. Failure window: if the component dies
//! (or the KV fails) after the debit and before the marker gets [`ppv::PAID_MARK`], the viewer
//! paid but later fetches of that key id see "in flight" and get 503 until the key id rotates
//! (one key period); the reverse order would risk charging twice, which we never do.

use bytes::Bytes;
use gatecast_core::layout::StreamName;
use gatecast_core::ppv::{self, AuditEntry, Claim, Price, Refusal, SessionSet, UsageRecord};
use gatecast_core::registry;
use spin_sdk::experimental::wasi::keyvalue::{atomics, store};
use spin_sdk::http::body::IncomingBodyExt as _;

use crate::outage::{Context as _, Outage, Result, variable};

/// How often a compare-and-swap is retried before the request gives up (503).
const CAS_ATTEMPTS: usize = 32;
/// How long a request waits for a concurrent request of the same key to finish charging.
const IN_FLIGHT_POLLS: usize = 40;
const IN_FLIGHT_POLL: std::time::Duration = std::time::Duration::from_millis(25);

/// Maps a compare-and-swap's current value to the value to write (`None`: write nothing).
type Update<'a> = &'a mut dyn FnMut(Option<&[u8]>) -> Option<Vec<u8>>;

/// Pending seconds read for a sync: the records to report and the counters to subtract once the
/// handler accepted them.
type PendingUsage = (Vec<UsageRecord>, Vec<(String, i64)>);

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

    /// Every key with `prefix` (Spin lists the whole store; filtered here).
    pub fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        let listed = kv(self.0.list_keys(None), "listing the viewers bucket")?;
        Ok(listed
            .keys
            .into_iter()
            .filter(|key| key.starts_with(prefix))
            .collect())
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
    /// Key id.
    pub key_id: u64,
    /// Viewer id from the credential (empty: none).
    pub viewer: &'a str,
    /// Session id from the credential (empty: none).
    pub session: &'a str,
    /// Client IP (empty: unknown).
    pub ip: String,
    /// Request time.
    pub now: u64,
    /// `false` for `HEAD`: decide, write nothing.
    pub debit: bool,
}

/// Pay-per-view, session cap, usage and audit for one key request: `Ok(None)` serves the key.
pub async fn admit_key(ledger: &Ledger, fetch: &KeyFetch<'_>) -> Result<Option<Refusal>> {
    let price = ledger.price(fetch.stream)?;
    let key_period: u64 = variable("key_period_seconds")
        .await?
        .parse()
        .context("key_period_seconds")?;
    let amount = ppv::charge_for_key_period(price, key_period);
    if fetch.viewer.is_empty() {
        // Nobody to charge or account to.
        return Ok((amount > 0).then_some(Refusal::PaymentRequired));
    }
    if fetch.debit && !admit_session(ledger, fetch, key_period).await? {
        return Ok(Some(Refusal::SessionLimit));
    }
    let marker = ppv::charged_key(fetch.viewer, fetch.stream, fetch.key_id);
    let already = ledger.counter(&marker)?.map(ppv::classify_claim);
    if !fetch.debit {
        let covered = already == Some(Claim::Paid)
            || ppv::debit(ledger.balance(fetch.viewer)?, amount).is_some();
        return Ok((!covered).then_some(Refusal::PaymentRequired));
    }
    let claim = match already {
        Some(Claim::Paid) => Claim::Paid,
        _ => ppv::classify_claim(ledger.increment(&marker, 1)?),
    };
    match claim {
        Claim::Charge => {
            if amount > 0 && !ledger.debit(fetch.viewer, amount)? {
                // Refused: the next claimant starts over (and may succeed after a credit).
                ledger.delete(&marker)?;
                return Ok(Some(Refusal::PaymentRequired));
            }
            ledger.increment(&marker, ppv::PAID_MARK)?;
            record_usage(ledger, fetch, key_period)?;
        }
        Claim::Paid => {}
        _ => {
            if !wait_for_charge(ledger, &marker).await? {
                return Ok(Some(Refusal::PaymentRequired));
            }
        }
    }
    record_audit(ledger, fetch)?;
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
            Some(_) => {}
        }
    }
    Err(Outage::new("a concurrent charge did not finish".to_owned()))
}

/// The concurrent-session cap (`ppv_session_cap`, 0 = off). The set is updated with a
/// compare-and-swap; the very first write for a viewer is a plain write (Spin), so two
/// simultaneous first sessions may both be admitted once — never more than that.
async fn admit_session(ledger: &Ledger, fetch: &KeyFetch<'_>, key_period: u64) -> Result<bool> {
    let cap: usize = variable("ppv_session_cap")
        .await?
        .parse()
        .context("ppv_session_cap")?;
    if cap == 0 || fetch.session.is_empty() {
        return Ok(true);
    }
    let mut admitted = true;
    ledger.update(&ppv::sessions_key(fetch.viewer), &mut |current| {
        let mut set: SessionSet = current
            .and_then(|bytes| serde_json::from_slice(bytes).ok())
            .unwrap_or_default();
        let before = set.clone();
        admitted = set.admit(fetch.session, fetch.now, cap, key_period);
        // Write only what changed, so a known session's refetch costs no write.
        (set != before).then(|| serde_json::to_vec(&set).unwrap_or_default())
    })?;
    Ok(admitted)
}

/// Usage of a first fetch of a key id: viewer-seconds, unique viewers, and seconds pending for
/// the WMSPanel handler.
fn record_usage(ledger: &Ledger, fetch: &KeyFetch<'_>, key_period: u64) -> Result<()> {
    let seconds = i64::try_from(key_period).unwrap_or(i64::MAX);
    ledger.increment(&ppv::usage_seconds_key(fetch.stream), seconds)?;
    if ledger.increment(&ppv::seen_key(fetch.viewer, fetch.stream), 1)? == 1 {
        ledger.increment(&ppv::usage_viewers_key(fetch.stream), 1)?;
    }
    let ip = if fetch.ip.is_empty() { "-" } else { &fetch.ip };
    ledger.increment(&ppv::pending_key(fetch.stream, fetch.viewer, ip), seconds)?;
    Ok(())
}

/// Appends who fetched this key id, once per (viewer, session).
fn record_audit(ledger: &Ledger, fetch: &KeyFetch<'_>) -> Result<()> {
    let seen = ppv::audit_seen_key(fetch.stream, fetch.key_id, fetch.viewer, fetch.session);
    if ledger.get(&seen)?.is_some() || ledger.increment(&seen, 1)? != 1 {
        return Ok(());
    }
    let sequence = ledger.increment(&ppv::audit_count_key(fetch.stream, fetch.key_id), 1)?;
    let entry = AuditEntry {
        viewer: fetch.viewer.to_owned(),
        session: fetch.session.to_owned(),
        ip: fetch.ip.clone(),
        at: fetch.now,
    };
    ledger.set(
        &ppv::audit_entry_key(fetch.stream, fetch.key_id, sequence),
        &serde_json::to_vec(&entry).context("audit entry")?,
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
            entries.push(serde_json::from_slice(&bytes).context("audit entry")?);
        }
    }
    Ok(entries)
}

/// Why a sync did not replace the deny list.
#[derive(Debug)]
pub enum SyncFailure {
    /// `ppv_handler_path` is empty: no handler configured.
    NotConfigured,
    /// The handler could not be reached, answered non-2xx, malformed JSON or a wrong
    /// `Solution`; the previous deny list stays in force.
    Handler(String),
}

/// Starts a sync from a key request when the last one is older than the interval; the
/// increment of the round's lease key lets exactly one request per interval run it. Failures
/// are logged, never fail the key request.
pub async fn maybe_sync(ledger: &Ledger, now: u64) -> Result<()> {
    if variable("ppv_handler_path").await?.is_empty() {
        return Ok(());
    }
    let interval: u64 = variable("ppv_sync_interval_seconds")
        .await?
        .parse()
        .context("ppv_sync_interval_seconds")?;
    let interval = interval.max(1);
    if !ppv::sync_due(ledger.counter(ppv::SYNC_LAST_KEY)?, now, interval) {
        return Ok(());
    }
    let round = now / interval;
    if ledger.increment(&ppv::sync_round_key(round), 1)? != 1 {
        return Ok(());
    }
    ledger.set(
        ppv::SYNC_LAST_KEY,
        &ppv::encode_counter(i64::try_from(now).unwrap_or(i64::MAX)),
    )?;
    // Rounds before the previous one can no longer be contended.
    ledger.delete(&ppv::sync_round_key(round.saturating_sub(2)))?;
    match sync(ledger).await {
        Ok(_) | Err(SyncFailure::NotConfigured) => {}
        Err(SyncFailure::Handler(why)) => eprintln!("ppv sync: {why}"),
    }
    Ok(())
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
    let interval: u64 = variable("ppv_sync_interval_seconds")
        .await?
        .parse()
        .context("ppv_sync_interval_seconds")?;
    if !ppv::handler_is_stale(ledger.counter(ppv::SYNC_OK_KEY)?, now, interval.max(1)) {
        return Ok(false);
    }
    Ok(ledger.get(&ppv::known_key(viewer))?.is_none())
}

/// One WMSPanel sync: POSTs the pending usage (protocols.md §5) with `Puzzle`/`Signature`,
/// checks the `Solution`, replaces the deny list and only then subtracts the reported seconds
/// (so usage survives a failed sync). Returns the number of denied ids.
pub async fn sync(ledger: &Ledger) -> std::result::Result<usize, SyncFailure> {
    let failed = |what: &str| SyncFailure::Handler(what.to_owned());
    let config = async {
        Ok::<_, Outage>((
            variable("ppv_handler_origin").await?,
            variable("ppv_handler_path").await?,
            variable("ppv_token").await?,
            variable("ppv_server_id").await?,
        ))
    }
    .await
    .map_err(|error| SyncFailure::Handler(error.to_string()))?;
    let (origin, path, token, server_id) = config;
    if path.is_empty() {
        return Err(SyncFailure::NotConfigured);
    }
    let (records, pending) = pending_usage(ledger).map_err(|e| failed(&e.to_string()))?;
    let puzzle = fresh_puzzle();
    let request = ppv::build_sync_request(&server_id, Some((&puzzle, &token)), &records);
    let body = serde_json::to_vec(&request).map_err(|e| failed(&e.to_string()))?;
    // An explicit length: simple handlers (a PHP script behind some servers) do not read
    // chunked request bodies.
    let http_request = http::Request::post(format!("{origin}{path}"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::CONTENT_LENGTH, body.len())
        .body(spin_sdk::http::FullBody::new(Bytes::from(body)))
        .map_err(|e| failed(&e.to_string()))?;
    let response = spin_sdk::http::send(http_request)
        .await
        .map_err(|_| failed("handler unreachable"))?;
    if !response.status().is_success() {
        return Err(SyncFailure::Handler(format!(
            "handler answered {}",
            response.status()
        )));
    }
    let bytes = response
        .into_body()
        .bytes()
        .await
        .map_err(|_| failed("handler body unreadable"))?;
    let answer = ppv::SyncResponse::from_json(&bytes).map_err(|e| failed(&e.to_string()))?;
    answer
        .verify(&puzzle, &token)
        .map_err(|e| SyncFailure::Handler(format!("handler rejected: {e}")))?;
    let denied = answer.deny_list.ids;
    apply_deny_list(ledger, &denied).map_err(|e| failed(&e.to_string()))?;
    for (key, seconds) in pending {
        ledger
            .increment(&key, -seconds)
            .map_err(|e| failed(&e.to_string()))?;
    }
    for record in &records {
        ledger
            .set(&ppv::known_key(&record.viewer), b"1")
            .map_err(|e| failed(&e.to_string()))?;
    }
    let now = i64::try_from(crate::outage::unix_now()).unwrap_or(i64::MAX);
    ledger
        .set(ppv::SYNC_OK_KEY, &ppv::encode_counter(now))
        .map_err(|e| failed(&e.to_string()))?;
    Ok(denied.len())
}

/// The pending seconds per (stream, viewer, ip), and the counters they were read from.
fn pending_usage(ledger: &Ledger) -> Result<PendingUsage> {
    let mut records = Vec::new();
    let mut read = Vec::new();
    for key in ledger.keys_with_prefix(ppv::PENDING_PREFIX)? {
        let seconds = ledger.counter(&key)?.unwrap_or(0);
        let Some((stream, viewer, ip)) = ppv::parse_pending_key(&key) else {
            continue;
        };
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
    let previous: Vec<String> = ledger
        .get(ppv::DENY_LIST_KEY)?
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    let (added, lifted) = ppv::deny_list_changes(&previous, denied);
    for id in added {
        ledger.set(&ppv::denied_key(id), b"1")?;
    }
    for id in lifted {
        ledger.delete(&ppv::denied_key(id))?;
    }
    ledger.set(
        ppv::DENY_LIST_KEY,
        &serde_json::to_vec(denied).context("deny list")?,
    )
}

/// 16 random bytes from `wasi:random`, hex: the sync's `Puzzle`.
fn fresh_puzzle() -> String {
    let bytes = spin_sdk::wasip3::random::random::get_random_bytes(16);
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

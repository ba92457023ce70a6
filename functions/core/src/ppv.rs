//! Pay-per-view: the WMSPanel push protocol (docs/PROTOCOLS.md §5) and gatecast's own
//! charging rules, as pure functions so the key function and the api component agree on every
//! rule and every KV key name (one home for each).
//!
//! Two ways to charge, both enforced at the key endpoint (a viewer who cannot get the next key
//! stops playing within one key period, with no connection to the player to tear down):
//! - per key period: [`charge_for_key_period`] credits are debited the first time a viewer
//!   fetches a given key id of a stream, exactly once (the [`Claim`] protocol on an atomic
//!   counter), so refetches, retries and concurrent requests are free;
//! - WMSPanel-style sync: usage is reported as a [`SyncRequest`] built by
//!   [`build_sync_request`], and the handler's [`SyncResponse`] deny list blocks viewers.
//!
//! KV layout (store [`crate::registry::VIEWERS_STORE`] unless stated otherwise):
//!
//! ```text
//! ppv-price:<stream>                     Price text ("free", "key:<n>", "minute:<n>")
//! ppv-balance:<viewer>                   credits left (counter: i64, 8 bytes little-endian)
//! ppv-charged:<stream>:<key id>:<viewer> claim counter (see Claim; >= PAID_MARK = paid)
//! ppv-denied:<viewer>                    present while the WMSPanel handler denies the viewer
//! ppv-denylist                           JSON list of the ids the last accepted sync denied
//! sessions:<viewer>                      SessionSet::encode (concurrent-session cap)
//! ppv-usage-seconds:<stream>             counter of viewer-seconds (key periods served)
//! ppv-usage-viewers:<stream>             counter of unique viewers
//! ppv-seen:<stream>:<viewer>             counter (first increment = new unique viewer)
//! ppv-pending:<stream> <viewer> <ip>     counter of seconds not yet reported to the handler
//! ppv-audit-count:<stream>:<key id>      audit sequence counter
//! ppv-audit:<stream>:<key id>:<n>        AuditEntry::encode (append-only)
//! ppv-audit-seen:<stream>:<key id>:<session>:<viewer>  counter (log once per session)
//! ppv-sync-last, ppv-sync-round:<n>      last sync start; per-round lease counter
//! ppv-sync-ok, ppv-known:<viewer>        last accepted sync; viewers it reported (fail-closed)
//! ```
//!
//! Charge markers and audit-seen keys of key ids more than [`RETAINED_KEY_IDS`] behind their
//! stream's newest are pruned by the `ppv-sync` component's round ([`prunable_markers`]), as are
//! past round leases ([`is_past_round_key`]); balances, usage, unique-viewer marks and the audit
//! log itself are kept.
//!
//! Counters use Spin's encoding (8-byte little-endian `i64`) because they are written with the
//! KV's atomic `increment` (`wasi:keyvalue/atomics`).
//!
//! The stream and key id come before the viewer in the marker so a viewer id (validated by
//! [`crate::registry::validate_id`], but possibly holding `:` in other deployments) is always
//! the unambiguous tail.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::crypto;
use crate::layout::StreamName;

/// WMSPanel's name of the default virtual host.
pub const DEFAULT_VHOST: &str = "_defaultVHost_";
/// The application gatecast reports its streams under (its public paths are `live/<name>`).
pub const DEFAULT_APPLICATION: &str = "live";
/// WMSPanel's name of the default application instance.
pub const DEFAULT_INSTANCE: &str = "_definst_";

/// Why a pay-per-view message or setting was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PpvError {
    /// The body is not a sync request/response as docs/PROTOCOLS.md §5 describes.
    #[error("malformed pay-per-view message: {0}")]
    Malformed(String),
    /// Mutual authorization is on, but the request carries no `Puzzle`/`Signature`.
    #[error("pay-per-view request is not signed")]
    MissingSignature,
    /// `Signature` (request) or `Solution` (response) does not match the shared token.
    #[error("pay-per-view signature does not match")]
    BadSignature,
    /// A price is not `free`, `key:<n>` or `minute:<n>`.
    #[error("invalid price {0:?}")]
    InvalidPrice(String),
    /// A handler is configured without a mutual-authorization token.
    #[error("ppv_handler_path is set but ppv_token is empty: no sync without mutual authorization")]
    TokenRequired,
}

/// A sync request, POSTed by the media server every sync interval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRequest {
    /// The media server's id.
    #[serde(rename = "ID")]
    pub id: String,
    /// Random challenge, present with mutual authorization.
    #[serde(rename = "Puzzle", default, skip_serializing_if = "Option::is_none")]
    pub puzzle: Option<String>,
    /// [`signature`] of `ID`, `Puzzle` and the shared token, present with mutual authorization.
    #[serde(rename = "Signature", default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// Who watched what since the previous sync.
    #[serde(rename = "PayPerViewInfo")]
    pub info: PayPerViewInfo,
}

/// The usage tree of a [`SyncRequest`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayPerViewInfo {
    /// Virtual hosts.
    #[serde(rename = "VHost", default)]
    pub vhosts: Vec<VHost>,
}

/// One virtual host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VHost {
    /// Name, usually [`DEFAULT_VHOST`].
    pub name: String,
    /// Applications.
    #[serde(rename = "Application", default)]
    pub applications: Vec<Application>,
}

/// One application (the first path segment, e.g. `live`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Application {
    /// Name, e.g. [`DEFAULT_APPLICATION`].
    pub name: String,
    /// Instances.
    #[serde(rename = "Instance", default)]
    pub instances: Vec<Instance>,
}

/// One application instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// Name, usually [`DEFAULT_INSTANCE`].
    pub name: String,
    /// Streams.
    #[serde(rename = "Stream", default)]
    pub streams: Vec<StreamUsage>,
}

/// One stream and its viewers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamUsage {
    /// Stream name.
    pub name: String,
    /// Viewers.
    #[serde(rename = "Player", default)]
    pub players: Vec<Player>,
}

/// One viewer's usage since the previous sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Player {
    /// The site's viewer id (the WMSAuth `id`).
    pub id: String,
    /// Client IP.
    pub ip: String,
    /// Seconds watched since the previous sync.
    pub delta: u64,
}

/// The handler's answer to a [`SyncRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncResponse {
    /// Every viewer id blocked now; an id missing from the list is allowed again.
    #[serde(rename = "DenyList")]
    pub deny_list: DenyList,
    /// [`solution`] of the request's `Puzzle`, present with mutual authorization.
    #[serde(rename = "Solution", default, skip_serializing_if = "Option::is_none")]
    pub solution: Option<String>,
}

/// The blocked ids of a [`SyncResponse`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DenyList {
    /// Blocked viewer ids.
    #[serde(rename = "ID", default)]
    pub ids: Vec<String>,
}

/// One viewer's usage as gatecast records it, before it is nested into a [`SyncRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRecord {
    /// Public stream name.
    pub stream: String,
    /// The site's viewer id.
    pub viewer: String,
    /// Client IP.
    pub ip: String,
    /// Seconds watched since the previous report.
    pub seconds: u64,
}

/// `base64(md5(ID + Puzzle + Token))`: what the media server sends so the handler knows it.
pub fn signature(server_id: &str, puzzle: &str, token: &str) -> String {
    STANDARD.encode(crypto::md5(&[
        server_id.as_bytes(),
        puzzle.as_bytes(),
        token.as_bytes(),
    ]))
}

/// `base64(md5(Puzzle + Token))`: what the handler answers so the media server knows it.
pub fn solution(puzzle: &str, token: &str) -> String {
    STANDARD.encode(crypto::md5(&[puzzle.as_bytes(), token.as_bytes()]))
}

/// The handler to sync with, from `ppv_handler_path` and `ppv_token`: `Ok(None)` when no
/// handler is configured (sync off), [`PpvError::TokenRequired`] when one is configured with an
/// empty token.
///
/// Why a token is required: with an empty token the expected `Solution` is `md5(Puzzle)`, which
/// anyone can compute, so whoever answers the handler URL (a hijacked DNS name, a proxy on the
/// way) could deny every viewer or lift the site's deny list. There is no unauthenticated mode.
pub fn handler_settings<'a>(
    path: &'a str,
    token: &'a str,
) -> Result<Option<(&'a str, &'a str)>, PpvError> {
    match (path.is_empty(), token.is_empty()) {
        (true, _) => Ok(None),
        (false, true) => Err(PpvError::TokenRequired),
        (false, false) => Ok(Some((path, token))),
    }
}

/// Constant-time check of a response's `Solution` against the puzzle we sent.
pub fn verify_solution(puzzle: &str, token: &str, presented: &str) -> bool {
    crypto::constant_time_eq(solution(puzzle, token).as_bytes(), presented.as_bytes())
}

impl SyncRequest {
    /// Parses a JSON sync request body.
    pub fn from_json(body: &[u8]) -> Result<Self, PpvError> {
        serde_json::from_slice(body).map_err(|error| PpvError::Malformed(error.to_string()))
    }

    /// The JSON body POSTed to the handler.
    pub fn to_json(&self) -> Vec<u8> {
        // Strings, numbers and optional fields only: serialising cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The handler side of mutual authorization: checks `Signature` in constant time.
    pub fn verify_signature(&self, token: &str) -> Result<(), PpvError> {
        let (Some(puzzle), Some(presented)) = (&self.puzzle, &self.signature) else {
            return Err(PpvError::MissingSignature);
        };
        let expected = signature(&self.id, puzzle, token);
        if crypto::constant_time_eq(expected.as_bytes(), presented.as_bytes()) {
            Ok(())
        } else {
            Err(PpvError::BadSignature)
        }
    }

    /// The handler's answer: `denied` ids, plus the `Solution` when the request carried a
    /// puzzle and a token is configured.
    pub fn respond(&self, token: Option<&str>, denied: Vec<String>) -> SyncResponse {
        let solution = match (&self.puzzle, token) {
            (Some(puzzle), Some(token)) => Some(solution(puzzle, token)),
            _ => None,
        };
        SyncResponse {
            deny_list: DenyList { ids: denied },
            solution,
        }
    }
}

impl SyncResponse {
    /// Parses a JSON sync response body.
    pub fn from_json(body: &[u8]) -> Result<Self, PpvError> {
        serde_json::from_slice(body).map_err(|error| PpvError::Malformed(error.to_string()))
    }

    /// The media-server side of mutual authorization: checks `Solution` for our `puzzle`.
    pub fn verify(&self, puzzle: &str, token: &str) -> Result<(), PpvError> {
        match &self.solution {
            Some(presented) if verify_solution(puzzle, token, presented) => Ok(()),
            Some(_) => Err(PpvError::BadSignature),
            None => Err(PpvError::MissingSignature),
        }
    }
}

/// Nests `records` into a sync request under `_defaultVHost_` / `live` / `_definst_`, one
/// `Stream` per distinct stream in first-seen order, one `Player` per record.
///
/// `mutual_auth` is `(puzzle, token)`: the puzzle comes from the caller's random source (this
/// crate has none), and `Signature` is computed from it.
pub fn build_sync_request(
    server_id: &str,
    mutual_auth: Option<(&str, &str)>,
    records: &[UsageRecord],
) -> SyncRequest {
    let mut streams: Vec<StreamUsage> = Vec::new();
    for record in records {
        let player = Player {
            id: record.viewer.clone(),
            ip: record.ip.clone(),
            delta: record.seconds,
        };
        match streams
            .iter_mut()
            .find(|stream| stream.name == record.stream)
        {
            Some(stream) => stream.players.push(player),
            None => streams.push(StreamUsage {
                name: record.stream.clone(),
                players: vec![player],
            }),
        }
    }
    SyncRequest {
        id: server_id.to_owned(),
        puzzle: mutual_auth.map(|(puzzle, _)| puzzle.to_owned()),
        signature: mutual_auth.map(|(puzzle, token)| signature(server_id, puzzle, token)),
        info: PayPerViewInfo {
            vhosts: vec![VHost {
                name: DEFAULT_VHOST.to_owned(),
                applications: vec![Application {
                    name: DEFAULT_APPLICATION.to_owned(),
                    instances: vec![Instance {
                        name: DEFAULT_INSTANCE.to_owned(),
                        streams,
                    }],
                }],
            }],
        },
    }
}

/// What a stream costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Price {
    /// No charge.
    Free,
    /// `n` credits for each key period (each new key id) watched.
    CreditsPerKeyPeriod(u64),
    /// `n` credits per minute watched, charged per key period.
    CreditsPerMinute(u64),
}

/// Credits one key period costs.
///
/// Per-minute prices round *up* to whole credits: a viewer who receives a key can watch its
/// whole period, so a partial minute is charged as a started one (with 10 s periods and
/// `minute:1`, each period costs 1 credit). Choose key periods that are a multiple of 60 s to
/// make per-minute prices exact. Saturates instead of overflowing.
pub fn charge_for_key_period(price: Price, key_period_seconds: u64) -> u64 {
    match price {
        Price::Free => 0,
        Price::CreditsPerKeyPeriod(credits) => credits,
        Price::CreditsPerMinute(credits) => {
            let credit_seconds = u128::from(credits) * u128::from(key_period_seconds);
            u64::try_from(credit_seconds.div_ceil(60)).unwrap_or(u64::MAX)
        }
    }
}

impl FromStr for Price {
    type Err = PpvError;

    /// `free`, `key:<n>` or `minute:<n>` (decimal `n`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || PpvError::InvalidPrice(text.to_owned());
        let credits = |n: &str| -> Result<u64, PpvError> {
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid());
            }
            n.parse().map_err(|_| invalid())
        };
        match text.split_once(':') {
            None if text == "free" => Ok(Self::Free),
            Some(("key", n)) => Ok(Self::CreditsPerKeyPeriod(credits(n)?)),
            Some(("minute", n)) => Ok(Self::CreditsPerMinute(credits(n)?)),
            _ => Err(invalid()),
        }
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Free => f.write_str("free"),
            Self::CreditsPerKeyPeriod(n) => write!(f, "key:{n}"),
            Self::CreditsPerMinute(n) => write!(f, "minute:{n}"),
        }
    }
}

/// `ppv-price:<stream>`: the stream's [`Price`] text.
pub fn price_key(stream: &StreamName) -> String {
    format!("ppv-price:{stream}")
}

/// `ppv-balance:<viewer>`: the viewer's credits, decimal.
pub fn balance_key(viewer: &str) -> String {
    format!("ppv-balance:{viewer}")
}

/// `ppv-charged:<stream>:<key id>:<viewer>`: marker that this key period is paid for.
pub fn charged_key(viewer: &str, stream: &StreamName, key_id: u64) -> String {
    format!("{CHARGED_PREFIX}{stream}:{key_id}:{viewer}")
}

/// Prefix of every deny-list entry, for listing the whole deny list.
pub const DENIED_PREFIX: &str = "ppv-denied:";

/// `ppv-denied:<viewer>`: the viewer is on the pay-per-view deny list.
pub fn denied_key(viewer: &str) -> String {
    format!("{DENIED_PREFIX}{viewer}")
}

/// `sessions:<viewer>`: the viewer's [`SessionSet`].
pub fn sessions_key(viewer: &str) -> String {
    format!("sessions:{viewer}")
}

/// The sessions a viewer has used recently, for the concurrent-session cap.
///
/// Stored in the compact form of [`SessionSet::encode`], not JSON: the key component is the
/// only reader and writer, and without serde_json it stays inside the 400 KB edge budget.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionSet {
    /// Sessions and the unix time each last fetched a key.
    pub sessions: Vec<SessionSeen>,
}

/// One entry of a [`SessionSet`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSeen {
    /// Session id.
    pub session: String,
    /// Unix time of its latest key fetch.
    pub last_seen: u64,
}

impl SessionSet {
    /// Admits `session` at `now` if it is already active or fewer than `cap` other sessions
    /// fetched a key in the last `idle_seconds`; records it and forgets idle sessions either
    /// way. Returns whether the session may have the key. A session is "active" for one key
    /// period or so after its last fetch, so `idle_seconds` should be about twice the period.
    pub fn admit(&mut self, session: &str, now: u64, cap: usize, idle_seconds: u64) -> bool {
        self.sessions
            .retain(|seen| now.saturating_sub(seen.last_seen) <= idle_seconds);
        if let Some(seen) = self
            .sessions
            .iter_mut()
            .find(|seen| seen.session == session)
        {
            seen.last_seen = seen.last_seen.max(now);
            return true;
        }
        if self.sessions.len() >= cap {
            return false;
        }
        self.sessions.push(SessionSeen {
            session: session.to_owned(),
            last_seen: now,
        });
        true
    }

    /// The stored form: per session `<last_seen>,<length>:<session>` (the length in bytes, so
    /// a session id may hold any character).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = String::new();
        for seen in &self.sessions {
            out.push_str(&seen.last_seen.to_string());
            out.push(',');
            push_field(&mut out, &seen.session);
        }
        out.into_bytes()
    }

    /// Reads [`SessionSet::encode`]'s form; `None` when it is not one.
    pub fn decode(stored: &[u8]) -> Option<Self> {
        let mut rest = std::str::from_utf8(stored).ok()?;
        let mut sessions = Vec::new();
        while !rest.is_empty() {
            let (last_seen, after) = rest.split_once(',')?;
            let (session, after) = take_field(after)?;
            sessions.push(SessionSeen {
                session: session.to_owned(),
                last_seen: parse_decimal(last_seen)?,
            });
            rest = after;
        }
        Some(Self { sessions })
    }
}

/// Appends `<byte length>:<text>`.
fn push_field(out: &mut String, text: &str) {
    out.push_str(&text.len().to_string());
    out.push(':');
    out.push_str(text);
}

/// Splits one [`push_field`] field off the front of `input`: (the text, the rest).
fn take_field(input: &str) -> Option<(&str, &str)> {
    let (length, rest) = input.split_once(':')?;
    let length = usize::try_from(parse_decimal(length)?).ok()?;
    Some((rest.get(..length)?, rest.get(length..)?))
}

/// Plain decimal digits only (no sign, no blanks), as the encoders write them.
fn parse_decimal(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Header naming why a key was refused, so a player or support tool can tell "pay first"
/// from "forbidden" without gatecast leaking anything else.
pub const REASON_HEADER: &str = "x-gatecast-reason";

/// Why pay-per-view refused a key; the [`REASON_HEADER`] value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The balance does not cover this key period (or the stream is paid and the viewer
    /// token names no viewer to charge).
    PaymentRequired,
    /// The viewer is on the WMSPanel handler's deny list.
    Denied,
    /// The viewer already has the allowed number of concurrent sessions.
    SessionLimit,
    /// Fail-closed: the handler has not answered a sync for two intervals and this viewer was
    /// never reported in an accepted sync.
    SyncUnavailable,
}

impl Refusal {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PaymentRequired => "payment-required",
            Self::Denied => "denied",
            Self::SessionLimit => "session-limit",
            Self::SyncUnavailable => "sync-unavailable",
        }
    }

    /// The 403 answer carrying this reason.
    pub fn reply(self) -> crate::reply::Reply {
        let mut reply = crate::reply::refused();
        reply
            .headers_mut()
            .insert(REASON_HEADER, http::HeaderValue::from_static(self.as_str()));
        reply
    }
}

/// Added to a charge marker (an atomic counter, see [`Claim`]) once the charge is complete.
/// Far above any number of concurrent claimants, so "paid" is `value >= PAID_MARK`.
pub const PAID_MARK: i64 = 1 << 40;

/// What one atomic `increment(charged_key, 1)` tells its caller. The marker counts claimants:
/// exactly one caller sees 1 after the marker was absent, and only that caller debits; it then
/// adds [`PAID_MARK`] (done) or deletes the marker (refused: the next claimant starts over).
/// This is the exactly-once rule: the KV's increment is atomic (one SQLite transaction in
/// Spin's and gatecast's backends, `INCRBY` on Redis), while a compare-and-swap from "absent"
/// is not (Spin writes unconditionally when the key was absent), so it cannot claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// First claimant: debit, then mark paid (or delete the marker if refused).
    Charge,
    /// The period is paid for: serve without charging.
    Paid,
    /// Another request is charging right now: wait for it to finish.
    InFlight,
}

/// Classifies the value an `increment(charged_key, 1)` returned (or a plain read of it).
pub fn classify_claim(counter: i64) -> Claim {
    if counter >= PAID_MARK {
        Claim::Paid
    } else if counter == 1 {
        Claim::Charge
    } else {
        Claim::InFlight
    }
}

/// Credits are stored as Spin counters (8 bytes, little-endian `i64`) so a credit is one atomic
/// `increment` and a debit a compare-and-swap on the exact bytes. Anything else reads as `None`.
pub fn decode_counter(stored: &[u8]) -> Option<i64> {
    <[u8; 8]>::try_from(stored).ok().map(i64::from_le_bytes)
}

/// The stored form of a counter (see [`decode_counter`]).
pub fn encode_counter(value: i64) -> [u8; 8] {
    value.to_le_bytes()
}

/// The balance after taking `amount` from `balance`, or `None` when it does not cover it (a
/// balance never goes negative).
pub fn debit(balance: i64, amount: u64) -> Option<i64> {
    let amount = i64::try_from(amount).ok()?;
    balance.checked_sub(amount).filter(|left| *left >= 0)
}

/// `ppv-usage-seconds:<stream>`: counter of viewer-seconds served (one key period per first
/// fetch of a key id by a viewer).
pub fn usage_seconds_key(stream: &StreamName) -> String {
    format!("ppv-usage-seconds:{stream}")
}

/// `ppv-usage-viewers:<stream>`: counter of distinct viewers of the stream.
pub fn usage_viewers_key(stream: &StreamName) -> String {
    format!("ppv-usage-viewers:{stream}")
}

/// `ppv-seen:<stream>:<viewer>`: counter whose first increment counts a new unique viewer.
pub fn seen_key(viewer: &str, stream: &StreamName) -> String {
    format!("ppv-seen:{stream}:{viewer}")
}

/// Prefix of the per-viewer seconds not yet reported to the WMSPanel handler.
pub const PENDING_PREFIX: &str = "ppv-pending:";

/// `ppv-pending:<stream> <viewer> <ip>`: seconds watched since the last sync (counter). Space
/// separates the parts: neither stream names nor viewer ids nor IPs contain one.
pub fn pending_key(stream: &StreamName, viewer: &str, ip: &str) -> String {
    format!("{PENDING_PREFIX}{stream} {viewer} {ip}")
}

/// The stream, viewer and IP of a [`pending_key`].
pub fn parse_pending_key(key: &str) -> Option<(&str, &str, &str)> {
    let mut parts = key.strip_prefix(PENDING_PREFIX)?.splitn(3, ' ');
    Some((parts.next()?, parts.next()?, parts.next()?))
}

/// `ppv-audit-count:<stream>:<key id>`: sequence of the key id's audit log.
pub fn audit_count_key(stream: &StreamName, key_id: u64) -> String {
    format!("ppv-audit-count:{stream}:{key_id}")
}

/// `ppv-audit:<stream>:<key id>:<n>`: the `n`th (from 1) [`AuditEntry`] of the key id, written
/// once under a sequence number from one atomic increment, so entries are never overwritten.
pub fn audit_entry_key(stream: &StreamName, key_id: u64, sequence: i64) -> String {
    format!("ppv-audit:{stream}:{key_id}:{sequence}")
}

/// `ppv-audit-seen:<stream>:<key id>:<session>:<viewer>`: counter so each (viewer, session) is
/// logged once per key id, however often its player refetches.
pub fn audit_seen_key(stream: &StreamName, key_id: u64, viewer: &str, session: &str) -> String {
    format!("{AUDIT_SEEN_PREFIX}{stream}:{key_id}:{session}:{viewer}")
}

/// Who fetched a key id, and when. Answered as JSON by the API; stored in the compact form of
/// [`AuditEntry::encode`] because the key component writes it and must not link serde_json.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Viewer id (empty when the credential names none).
    pub viewer: String,
    /// Session id (empty when the credential names none).
    pub session: String,
    /// Client IP as the edge saw it (empty when unknown).
    pub ip: String,
    /// Unix time of the first fetch.
    pub at: u64,
}

impl AuditEntry {
    /// The stored form: `<at>,<length>:<viewer><length>:<session><length>:<ip>` (lengths in
    /// bytes, so no field needs escaping).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.at.to_string();
        out.push(',');
        for field in [&self.viewer, &self.session, &self.ip] {
            push_field(&mut out, field);
        }
        out.into_bytes()
    }

    /// Reads [`AuditEntry::encode`]'s form; `None` when it is not one.
    pub fn decode(stored: &[u8]) -> Option<Self> {
        let (at, rest) = std::str::from_utf8(stored).ok()?.split_once(',')?;
        let at = parse_decimal(at)?;
        let (viewer, rest) = take_field(rest)?;
        let (session, rest) = take_field(rest)?;
        let (ip, rest) = take_field(rest)?;
        rest.is_empty().then(|| Self {
            viewer: viewer.to_owned(),
            session: session.to_owned(),
            ip: ip.to_owned(),
            at,
        })
    }
}

/// `GET /api/ppv/usage` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamUsageReport {
    /// Stream name.
    pub stream: String,
    /// Distinct viewers who fetched a key.
    pub unique_viewers: i64,
    /// Key periods served, in seconds.
    pub viewer_seconds: i64,
}

/// `ppv-denylist`: the ids the last accepted sync denied ([`encode_id_list`]), so the next
/// sync can lift the ones it no longer lists.
pub const DENY_LIST_KEY: &str = "ppv-denylist";

/// The stored form of a list of ids: `<length>:<id>` each, so an id may hold any character.
pub fn encode_id_list(ids: &[String]) -> Vec<u8> {
    let mut out = String::new();
    for id in ids {
        push_field(&mut out, id);
    }
    out.into_bytes()
}

/// Reads [`encode_id_list`]'s form; `None` when it is not one.
pub fn decode_id_list(stored: &[u8]) -> Option<Vec<String>> {
    let mut rest = std::str::from_utf8(stored).ok()?;
    let mut ids = Vec::new();
    while !rest.is_empty() {
        let (id, after) = take_field(rest)?;
        ids.push(id.to_owned());
        rest = after;
    }
    Some(ids)
}

/// `ppv-sync-last`: unix time (counter encoding) the last sync round started.
pub const SYNC_LAST_KEY: &str = "ppv-sync-last";

/// `ppv-sync-ok`: unix time (counter encoding) of the last sync the handler accepted.
pub const SYNC_OK_KEY: &str = "ppv-sync-ok";

/// `ppv-known:<viewer>`: the viewer was reported in an accepted sync (fail-closed admits it).
pub fn known_key(viewer: &str) -> String {
    format!("ppv-known:{viewer}")
}

/// Fail-closed rule: with the handler silent for more than two intervals since `last_ok` (or
/// never heard from), only viewers it already knows are admitted.
pub fn handler_is_stale(last_ok: Option<i64>, now: u64, interval: u64) -> bool {
    match last_ok.and_then(|last| u64::try_from(last).ok()) {
        Some(last) => now.saturating_sub(last) > interval.saturating_mul(2),
        None => true,
    }
}

/// `ppv-sync-round:<n>`: counter whose first increment wins round `n` (`now / interval`), the
/// lease that lets exactly one request run a sync per interval.
pub fn sync_round_key(round: u64) -> String {
    format!("{SYNC_ROUND_PREFIX}{round}")
}

const SYNC_ROUND_PREFIX: &str = "ppv-sync-round:";

/// Whether `key` is the lease of a round before the previous one (`round` is the current):
/// nobody can contend for it any more, so the round prunes it.
pub fn is_past_round_key(key: &str, round: u64) -> bool {
    key.strip_prefix(SYNC_ROUND_PREFIX)
        .and_then(parse_decimal)
        .is_some_and(|past| past.saturating_add(1) < round)
}

/// Whether a sync is due at `now`: the last one started `interval` or more seconds ago.
pub fn sync_due(last_started: Option<i64>, now: u64, interval: u64) -> bool {
    match last_started.and_then(|last| u64::try_from(last).ok()) {
        Some(last) => now.saturating_sub(last) >= interval,
        None => true,
    }
}

/// The component that owns the WMSPanel sync, addressed by Spin local service chaining
/// (`http://<component id>.spin.internal`): the key component calls it when a sync is due.
pub const SYNC_COMPONENT_HOST: &str = "ppv-sync.spin.internal";

/// Path of the chained "sync if due" call. Reachable only through chaining: the `ppv-sync`
/// component's only public route is [`SYNC_ROUTE`], so a request from outside never has this
/// path (chained requests bypass routing).
pub const SYNC_IF_DUE_PATH: &str = "/internal/sync-if-due";

/// The public route of a forced sync (bearer `api_token`), for an external scheduler.
pub const SYNC_ROUTE: &str = "/api/ppv/sync";

/// Key ids of a stream kept in the charge markers and audit-seen keys behind the stream's
/// newest one. Older ones are pruned during the sync round.
///
/// Why counted in key ids, not seconds: a key id is the broadcast's start time in unix
/// milliseconds plus the number of segments since (layout.rs), so it says nothing about when a
/// *later* key of a long broadcast was current; "more than this many key ids behind the newest
/// of the same stream" is exact for a running broadcast (1440 segments: 48 minutes of 2 s
/// segments, four hours of 10 s ones), and a new broadcast (a new base, far above) retires
/// every marker of the previous one. What it costs: a refetch of a key id that old (a replay
/// of a recording) is charged again.
///
/// Why viewers cannot steer it: the key component claims a marker only for a key id whose key
/// object it has read (the worker wrote it), so "the newest key id" is the worker's, never a
/// number a viewer typed; [`prunable_markers`] also ignores (and prunes) key ids no worker can
/// have written yet ([`latest_plausible_key_id`]), so a marker left by an older release cannot
/// steer it either.
pub const RETAINED_KEY_IDS: u64 = 1440;

/// How far a worker's clock may run ahead of the edge's before its key ids count as forged:
/// a day, far beyond any clock a broadcast would work with.
pub const KEY_ID_CLOCK_TOLERANCE_MS: u64 = 24 * 60 * 60 * 1000;

/// The highest key id a worker can have written by `now` (unix seconds). A key id is the
/// publish time in unix milliseconds plus the segments since, and a segment lasts far more than
/// a millisecond, so every written key id is below the current time in milliseconds (plus the
/// clock tolerance).
pub fn latest_plausible_key_id(now: u64) -> u64 {
    now.saturating_mul(1000)
        .saturating_add(KEY_ID_CLOCK_TOLERANCE_MS)
}

/// Prefix of the charge markers.
const CHARGED_PREFIX: &str = "ppv-charged:";
/// Prefix of the audit-seen keys.
const AUDIT_SEEN_PREFIX: &str = "ppv-audit-seen:";

/// The stream and key id a charge marker or audit-seen key belongs to.
fn marker_period(key: &str) -> Option<(&str, u64)> {
    let rest = key
        .strip_prefix(CHARGED_PREFIX)
        .or_else(|| key.strip_prefix(AUDIT_SEEN_PREFIX))?;
    let mut parts = rest.splitn(3, ':');
    let stream = parts.next()?;
    let key_id = parse_decimal(parts.next()?)?;
    parts.next()?;
    Some((stream, key_id))
}

/// Of a listing of the `viewers` store at `now`, the charge markers and audit-seen keys more
/// than `retained` key ids behind the newest key id of their stream (see [`RETAINED_KEY_IDS`]),
/// and those of key ids no worker can have written ([`latest_plausible_key_id`]), which never
/// count as a stream's newest. Balances, audit entries, usage counters and unique-viewer marks
/// are never pruned.
pub fn prunable_markers(keys: &[String], retained: u64, now: u64) -> Vec<&str> {
    let plausible = latest_plausible_key_id(now);
    let mut newest: Vec<(&str, u64)> = Vec::new();
    for (stream, key_id) in keys
        .iter()
        .filter_map(|key| marker_period(key))
        .filter(|(_, key_id)| *key_id <= plausible)
    {
        match newest.iter_mut().find(|(known, _)| *known == stream) {
            Some((_, top)) => *top = (*top).max(key_id),
            None => newest.push((stream, key_id)),
        }
    }
    keys.iter()
        .map(String::as_str)
        .filter(|key| {
            marker_period(key).is_some_and(|(stream, key_id)| {
                key_id > plausible
                    || newest.iter().any(|(known, top)| {
                        *known == stream && key_id.saturating_add(retained) < *top
                    })
            })
        })
        .collect()
}

/// The ids to add to and lift from the deny list when `next` replaces `previous`.
pub fn deny_list_changes<'a>(
    previous: &'a [String],
    next: &'a [String],
) -> (Vec<&'a str>, Vec<&'a str>) {
    let added = next
        .iter()
        .filter(|id| !previous.contains(id))
        .map(String::as_str)
        .collect();
    let lifted = previous
        .iter()
        .filter(|id| !next.contains(id))
        .map(String::as_str)
        .collect();
    (added, lifted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> StreamName {
        StreamName::parse(text).expect("valid test name")
    }

    /// Expected values from python3:
    /// `base64.b64encode(hashlib.md5(b'srv-1' + b'PjxTZXJ2ZXJBdXRob3JpemF0aW9u' + b'ppv-token').digest())`
    /// `base64.b64encode(hashlib.md5(b'PjxTZXJ2ZXJBdXRob3JpemF0aW9u' + b'ppv-token').digest())`
    const PUZZLE: &str = "PjxTZXJ2ZXJBdXRob3JpemF0aW9u";
    const SIGNATURE: &str = "aU2R3TfJ0XMxh1lhaT0NMw==";
    const SOLUTION: &str = "uvXuoqImyFybLCKa3BmhZw==";

    #[test]
    fn mutual_authorization_matches_python() {
        assert_eq!(signature("srv-1", PUZZLE, "ppv-token"), SIGNATURE);
        assert_eq!(solution(PUZZLE, "ppv-token"), SOLUTION);
        assert!(verify_solution(PUZZLE, "ppv-token", SOLUTION));
        assert!(!verify_solution(PUZZLE, "ppv-tokem", SOLUTION));
        assert!(!verify_solution(
            PUZZLE,
            "ppv-token",
            "uvXuoqImyFybLCKa3BmhZw="
        ));
    }

    /// Issue 13 item 15: a handler without a token is a configuration error, not "no mutual
    /// authorization"; no handler means no sync whatever the token.
    #[test]
    fn a_configured_handler_requires_a_token() {
        assert_eq!(handler_settings("", ""), Ok(None));
        assert_eq!(handler_settings("", "t"), Ok(None));
        assert_eq!(handler_settings("/ppv", ""), Err(PpvError::TokenRequired));
        assert_eq!(handler_settings("/ppv", "t"), Ok(Some(("/ppv", "t"))));
    }

    /// The request of docs/PROTOCOLS.md §5, as the media server sends it.
    #[test]
    fn parses_and_answers_the_documented_request() {
        let body = format!(
            r#"{{"ID":"srv-1","Puzzle":"{PUZZLE}","Signature":"{SIGNATURE}",
            "PayPerViewInfo":{{"VHost":[{{"name":"_defaultVHost_","Application":[{{"name":"live",
            "Instance":[{{"name":"_definst_","Stream":[{{"name":"stream",
            "Player":[{{"id":"ID_1","ip":"203.0.113.5","delta":30}}]}}]}}]}}]}}]}}}}"#
        );
        let request = SyncRequest::from_json(body.as_bytes()).expect("parses");
        assert_eq!(
            request,
            build_sync_request(
                "srv-1",
                Some((PUZZLE, "ppv-token")),
                &[UsageRecord {
                    stream: "stream".into(),
                    viewer: "ID_1".into(),
                    ip: "203.0.113.5".into(),
                    seconds: 30,
                }]
            )
        );
        assert_eq!(request.verify_signature("ppv-token"), Ok(()));
        assert_eq!(
            request.verify_signature("other"),
            Err(PpvError::BadSignature)
        );
        let unsigned = SyncRequest {
            puzzle: None,
            signature: None,
            ..request.clone()
        };
        assert_eq!(
            unsigned.verify_signature("ppv-token"),
            Err(PpvError::MissingSignature)
        );

        let response = request.respond(Some("ppv-token"), vec!["ID_1".into(), "ID_7".into()]);
        let json = serde_json::to_string(&response).expect("serialises");
        assert_eq!(
            json,
            format!(r#"{{"DenyList":{{"ID":["ID_1","ID_7"]}},"Solution":"{SOLUTION}"}}"#)
        );
        let parsed = SyncResponse::from_json(json.as_bytes()).expect("parses");
        assert_eq!(parsed.verify(PUZZLE, "ppv-token"), Ok(()));
        assert_eq!(parsed.verify(PUZZLE, "other"), Err(PpvError::BadSignature));
        assert_eq!(
            unsigned.respond(None, vec![]).verify(PUZZLE, "ppv-token"),
            Err(PpvError::MissingSignature)
        );
    }

    #[test]
    fn builder_groups_players_by_stream_in_first_seen_order() {
        let record = |stream: &str, viewer: &str, seconds| UsageRecord {
            stream: stream.into(),
            viewer: viewer.into(),
            ip: "198.51.100.1".into(),
            seconds,
        };
        let request = build_sync_request(
            "srv-2",
            None,
            &[
                record("b", "v1", 30),
                record("a", "v2", 10),
                record("b", "v3", 5),
            ],
        );
        let json = serde_json::to_string(&request).expect("serialises");
        // Written by hand from docs/PROTOCOLS.md §5 (no Puzzle/Signature without mutual auth).
        assert_eq!(
            json,
            concat!(
                r#"{"ID":"srv-2","PayPerViewInfo":{"VHost":[{"name":"_defaultVHost_","#,
                r#""Application":[{"name":"live","Instance":[{"name":"_definst_","Stream":["#,
                r#"{"name":"b","Player":[{"id":"v1","ip":"198.51.100.1","delta":30},"#,
                r#"{"id":"v3","ip":"198.51.100.1","delta":5}]},"#,
                r#"{"name":"a","Player":[{"id":"v2","ip":"198.51.100.1","delta":10}]}]}]}]}]}}"#
            )
        );
    }

    #[test]
    fn malformed_json_is_a_typed_error() {
        for bad in [
            &b""[..],
            b"{}",
            b"[]",
            br#"{"ID":"x","PayPerViewInfo":{"VHost":[{}]}}"#,
        ] {
            assert!(matches!(
                SyncRequest::from_json(bad),
                Err(PpvError::Malformed(_))
            ));
        }
        assert!(matches!(
            SyncResponse::from_json(b"{\"Solution\":1}"),
            Err(PpvError::Malformed(_))
        ));
    }

    #[test]
    fn charges_follow_the_price() {
        assert_eq!(charge_for_key_period(Price::Free, 60), 0);
        assert_eq!(charge_for_key_period(Price::CreditsPerKeyPeriod(3), 60), 3);
        assert_eq!(charge_for_key_period(Price::CreditsPerMinute(2), 60), 2);
        assert_eq!(charge_for_key_period(Price::CreditsPerMinute(2), 120), 4);
        // 10 s at 1/min: a started minute is a whole credit.
        assert_eq!(charge_for_key_period(Price::CreditsPerMinute(1), 10), 1);
        // 90 s at 1/min = 1.5 credits, rounded up.
        assert_eq!(charge_for_key_period(Price::CreditsPerMinute(1), 90), 2);
        assert_eq!(
            charge_for_key_period(Price::CreditsPerMinute(u64::MAX), u64::MAX),
            u64::MAX
        );
        assert_eq!(charge_for_key_period(Price::CreditsPerMinute(5), 0), 0);
    }

    #[test]
    fn prices_round_trip_as_text() {
        for (text, price) in [
            ("free", Price::Free),
            ("key:3", Price::CreditsPerKeyPeriod(3)),
            ("minute:0", Price::CreditsPerMinute(0)),
        ] {
            assert_eq!(text.parse::<Price>(), Ok(price));
            assert_eq!(price.to_string(), text);
        }
        for bad in [
            "",
            "FREE",
            "key:",
            "key:-1",
            "key:+1",
            "minute:1.5",
            "hour:1",
            "free:1",
        ] {
            assert_eq!(
                bad.parse::<Price>(),
                Err(PpvError::InvalidPrice(bad.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn claims_counters_and_debits() {
        assert_eq!(classify_claim(1), Claim::Charge);
        assert_eq!(classify_claim(2), Claim::InFlight);
        assert_eq!(classify_claim(PAID_MARK), Claim::Paid);
        assert_eq!(classify_claim(PAID_MARK + 3), Claim::Paid);
        // Spin's counter bytes for 5 and -7 (little-endian two's complement, by hand).
        assert_eq!(encode_counter(5), [5, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            decode_counter(&[0xf9, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            Some(-7)
        );
        assert_eq!(decode_counter(b"5"), None);
        assert_eq!(debit(5, 2), Some(3));
        assert_eq!(debit(2, 2), Some(0));
        assert_eq!(debit(1, 2), None);
        assert_eq!(debit(-1, 0), None);
        assert_eq!(debit(5, u64::MAX), None);
    }

    #[test]
    fn refusals_carry_their_reason() {
        let reply = Refusal::PaymentRequired.reply();
        assert_eq!(reply.status(), http::StatusCode::FORBIDDEN);
        assert_eq!(reply.headers()[REASON_HEADER], "payment-required");
    }

    #[test]
    fn pending_keys_round_trip_and_syncs_fall_due() {
        let key = pending_key(&name("benw"), "ID_1", "2001:db8::1");
        assert_eq!(key, "ppv-pending:benw ID_1 2001:db8::1");
        assert_eq!(
            parse_pending_key(&key),
            Some(("benw", "ID_1", "2001:db8::1"))
        );
        assert_eq!(parse_pending_key("ppv-pending:benw ID_1"), None);
        assert!(sync_due(None, 100, 30));
        assert!(!sync_due(Some(80), 100, 30));
        assert!(sync_due(Some(70), 100, 30));
        assert!(handler_is_stale(None, 100, 30));
        assert!(!handler_is_stale(Some(40), 100, 30));
        assert!(handler_is_stale(Some(39), 100, 30));
        assert_eq!(known_key("ID_1"), "ppv-known:ID_1");
        assert_eq!(sync_round_key(7), "ppv-sync-round:7");
        assert!(is_past_round_key("ppv-sync-round:5", 7));
        assert!(!is_past_round_key("ppv-sync-round:6", 7));
        assert!(!is_past_round_key("ppv-sync-round:7", 7));
        assert!(!is_past_round_key("ppv-sync-round:x", 7));
        assert!(!is_past_round_key("ppv-sync-last", 7));
        let previous = vec!["a".to_owned(), "b".to_owned()];
        let next = vec!["b".to_owned(), "c".to_owned()];
        assert_eq!(deny_list_changes(&previous, &next), (vec!["c"], vec!["a"]));
        assert_eq!(encode_id_list(&next), b"1:b1:c");
        assert_eq!(decode_id_list(b"1:b1:c"), Some(next));
        assert_eq!(decode_id_list(b""), Some(vec![]));
        assert_eq!(decode_id_list(b"2:b"), None);
    }

    #[test]
    fn kv_keys_follow_the_schema() {
        let benw = name("benw");
        assert_eq!(price_key(&benw), "ppv-price:benw");
        assert_eq!(balance_key("viewer-7"), "ppv-balance:viewer-7");
        assert_eq!(
            charged_key("viewer-7", &benw, 42),
            "ppv-charged:benw:42:viewer-7"
        );
        assert_eq!(denied_key("viewer-7"), "ppv-denied:viewer-7");
        assert!(denied_key("viewer-7").starts_with(DENIED_PREFIX));
        assert_eq!(sessions_key("viewer-7"), "sessions:viewer-7");
    }

    #[test]
    fn session_cap_admits_known_sessions_and_forgets_idle_ones() {
        let mut set = SessionSet::default();
        assert!(set.admit("a", 100, 2, 60));
        assert!(set.admit("b", 110, 2, 60));
        assert!(!set.admit("c", 120, 2, 60));
        assert!(set.admit("a", 130, 2, 60));
        // At 171, "b" (last seen 110) has been idle 61 s: it is forgotten and "c" fits.
        assert!(set.admit("c", 171, 2, 60));
        assert_eq!(
            set.sessions
                .iter()
                .map(|seen| seen.session.as_str())
                .collect::<Vec<_>>(),
            ["a", "c"]
        );
        // Written by hand: `<last_seen>,<length>:<session>` per session.
        assert_eq!(set.encode(), b"130,1:a171,1:c");
        assert_eq!(SessionSet::decode(b"130,1:a171,1:c"), Some(set));
        assert!(!SessionSet::default().admit("a", 0, 0, 60));
    }

    #[test]
    fn compact_encodings_round_trip_any_text_and_refuse_garbage() {
        assert_eq!(SessionSet::default().encode(), b"");
        assert_eq!(SessionSet::decode(b""), Some(SessionSet::default()));
        let odd = SessionSet {
            sessions: vec![SessionSeen {
                session: "a,1:b:é".into(),
                last_seen: 7,
            }],
        };
        // "a,1:b:é" is 8 bytes (é is two in UTF-8).
        assert_eq!(odd.encode(), "7,8:a,1:b:é".as_bytes());
        assert_eq!(SessionSet::decode(&odd.encode()), Some(odd));
        let entry = AuditEntry {
            viewer: "ID_1".into(),
            session: "s:1".into(),
            ip: "2001:db8::1".into(),
            at: 1_700_000_000,
        };
        assert_eq!(entry.encode(), b"1700000000,4:ID_13:s:111:2001:db8::1");
        assert_eq!(AuditEntry::decode(&entry.encode()), Some(entry));
        let anonymous = AuditEntry {
            viewer: String::new(),
            session: String::new(),
            ip: String::new(),
            at: 0,
        };
        assert_eq!(anonymous.encode(), b"0,0:0:0:");
        assert_eq!(AuditEntry::decode(b"0,0:0:0:"), Some(anonymous));
        for bad in [
            &b"{\"viewer\":\"a\"}"[..],
            b"1,4:ID_1",
            b"1,4:ID_13:s:111:2001:db8::1x",
            b"-1,0:0:0:",
            b"1,9:ID_1",
            b"\xff,0:0:0:",
        ] {
            assert_eq!(AuditEntry::decode(bad), None, "{bad:?}");
        }
        for bad in [&b"130,1:a171"[..], b"130,2:a", b"x,1:a", b"130;1:a"] {
            assert_eq!(SessionSet::decode(bad), None, "{bad:?}");
        }
    }

    /// A plausible `now` (unix seconds, 2023-11-14) for the pruning tests.
    const NOW: u64 = 1_700_000_000;

    #[test]
    fn pruning_keeps_the_newest_key_ids_of_each_stream() {
        let keys: Vec<String> = [
            "ppv-charged:cam:100:v1",
            "ppv-charged:cam:103:v1",
            "ppv-charged:cam:104:v2",
            "ppv-audit-seen:cam:101:s1:v1",
            "ppv-audit-seen:cam:102:s1:v1",
            "ppv-charged:other:5:v1",
            "ppv-balance:v1",
            "ppv-audit:cam:100:1",
            "ppv-seen:cam:v1",
            "ppv-charged:cam:notanumber:v1",
        ]
        .iter()
        .map(|key| (*key).to_owned())
        .collect();
        // Newest of cam is 104: with 2 retained, ids below 102 go; `other` keeps its only one.
        assert_eq!(
            prunable_markers(&keys, 2, NOW),
            ["ppv-charged:cam:100:v1", "ppv-audit-seen:cam:101:s1:v1"]
        );
        assert!(prunable_markers(&keys, 10, NOW).is_empty());
        assert_eq!(
            charged_key("v1", &name("cam"), 100),
            "ppv-charged:cam:100:v1"
        );
        assert_eq!(
            audit_seen_key(&name("cam"), 101, "v1", "s1"),
            "ppv-audit-seen:cam:101:s1:v1"
        );
    }

    /// Issue 13 item 4: one request for key id 18446744073709551615 (a marker left by a
    /// release that charged before reading the key) must not make every real marker "old".
    #[test]
    fn forged_key_ids_neither_steer_pruning_nor_survive_it() {
        // Worker-written ids: publish time 2023-11-14 22:13:00 UTC in ms plus segments.
        let base = 1_699_999_980_000_u64;
        let keys: Vec<String> = [
            format!("ppv-charged:cam:{base}:v1"),
            format!("ppv-charged:cam:{}:v1", base + 3),
            format!("ppv-audit-seen:cam:{}:s1:v1", base + 3),
            "ppv-charged:cam:18446744073709551615:mallory".to_owned(),
            "ppv-audit-seen:cam:18446744073709551615:s:mallory".to_owned(),
        ]
        .into();
        assert_eq!(
            prunable_markers(&keys, 2, NOW),
            [
                format!("ppv-charged:cam:{base}:v1").as_str(),
                "ppv-charged:cam:18446744073709551615:mallory",
                "ppv-audit-seen:cam:18446744073709551615:s:mallory",
            ]
        );
        // The horizon is now in ms plus one day (86 400 000 ms), by hand.
        assert_eq!(latest_plausible_key_id(NOW), 1_700_086_400_000);
        let edge: Vec<String> = [
            format!("ppv-charged:cam:{base}:v1"),
            "ppv-charged:cam:1700086400000:v2".to_owned(),
            "ppv-charged:cam:1700086400001:v3".to_owned(),
        ]
        .into();
        // The id at the horizon still counts as written (and retires `base`); one above is not.
        assert_eq!(
            prunable_markers(&edge, RETAINED_KEY_IDS, NOW),
            [
                format!("ppv-charged:cam:{base}:v1").as_str(),
                "ppv-charged:cam:1700086400001:v3",
            ]
        );
        assert_eq!(latest_plausible_key_id(u64::MAX), u64::MAX);
    }
}

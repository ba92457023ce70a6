//! Pay-per-view: the WMSPanel push protocol (protocols.md §5, seed 004) and gatecast's own
//! charging rules, as pure functions so the key function and the api component agree on every
//! rule and every KV key name (one home for each).
//!
//! Two ways to charge, both enforced at the key endpoint (a viewer who cannot get the next key
//! stops playing within one key period — the stateless cut-off of protocols.md §6):
//! - per key period: [`decide_charge`] debits [`charge_for_key_period`] credits the first time a
//!   viewer fetches a given key id of a stream, and records a marker so refetches are free;
//! - WMSPanel-style sync: usage is reported as a [`SyncRequest`] built by
//!   [`build_sync_request`], and the handler's [`SyncResponse`] deny list blocks viewers.
//!
//! KV layout (store [`crate::registry::VIEWERS_STORE`] unless stated otherwise):
//!
//! ```text
//! ppv-price:<stream>                     Price text ("free", "key:<n>", "minute:<n>")
//! ppv-balance:<viewer>                   decimal credits left
//! ppv-charged:<stream>:<key id>:<viewer> decimal unix time of the charge (marker)
//! ppv-denied:<viewer>                    decimal unix time the viewer was put on the deny list
//! sessions:<viewer>                      JSON SessionSet (concurrent-session cap)
//! ```
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
#[non_exhaustive]
pub enum PpvError {
    /// The body is not a sync request/response as protocols.md §5 describes.
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

/// Constant-time check of a response's `Solution` against the puzzle we sent.
pub fn verify_solution(puzzle: &str, token: &str, presented: &str) -> bool {
    crypto::constant_time_eq(solution(puzzle, token).as_bytes(), presented.as_bytes())
}

impl SyncRequest {
    /// Parses a JSON sync request body.
    pub fn from_json(body: &[u8]) -> Result<Self, PpvError> {
        serde_json::from_slice(body).map_err(|error| PpvError::Malformed(error.to_string()))
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
#[non_exhaustive]
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

/// What to do with a key request under a price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChargeDecision {
    /// Serve the key; nothing to write (free stream, or this key id is already paid for).
    Serve,
    /// Serve the key after writing `new_balance` to [`balance_key`] and the marker to
    /// [`charged_key`] (marker first is safer: a lost balance write favours the viewer, a
    /// lost marker write charges twice).
    Charge {
        /// Credits taken.
        amount: u64,
        /// Balance after the charge.
        new_balance: u64,
    },
    /// Refuse the key: the balance does not cover the period.
    InsufficientCredits,
}

/// The per-key-period charging rule. `balance` is the viewer's credits (0 when absent) and
/// `already_charged` whether [`charged_key`] exists for this viewer, stream and key id.
pub fn decide_charge(
    price: Price,
    key_period_seconds: u64,
    balance: u64,
    already_charged: bool,
) -> ChargeDecision {
    let amount = charge_for_key_period(price, key_period_seconds);
    if amount == 0 || already_charged {
        return ChargeDecision::Serve;
    }
    match balance.checked_sub(amount) {
        Some(new_balance) => ChargeDecision::Charge {
            amount,
            new_balance,
        },
        None => ChargeDecision::InsufficientCredits,
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
    format!("ppv-charged:{stream}:{key_id}:{viewer}")
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSet {
    /// Sessions and the unix time each last fetched a key.
    pub sessions: Vec<SessionSeen>,
}

/// One entry of a [`SessionSet`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

    /// The request of protocols.md §5, as the media server sends it.
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
        // Written by hand from protocols.md §5 (no Puzzle/Signature without mutual auth).
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
    fn charge_decisions() {
        let price = Price::CreditsPerMinute(2);
        assert_eq!(
            decide_charge(price, 60, 5, false),
            ChargeDecision::Charge {
                amount: 2,
                new_balance: 3
            }
        );
        assert_eq!(
            decide_charge(price, 60, 2, false),
            ChargeDecision::Charge {
                amount: 2,
                new_balance: 0
            }
        );
        assert_eq!(
            decide_charge(price, 60, 1, false),
            ChargeDecision::InsufficientCredits
        );
        assert_eq!(decide_charge(price, 60, 0, true), ChargeDecision::Serve);
        assert_eq!(
            decide_charge(Price::Free, 60, 0, false),
            ChargeDecision::Serve
        );
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
        let json = serde_json::to_string(&set).expect("serialises");
        assert_eq!(
            json,
            r#"{"sessions":[{"session":"a","last_seen":130},{"session":"c","last_seen":171}]}"#
        );
        assert!(!SessionSet::default().admit("a", 0, 0, 60));
    }
}

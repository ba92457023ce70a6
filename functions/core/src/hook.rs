//! The nginx-rtmp publish hook contract (docs/PROTOCOLS.md §1), both ends of it: the form the
//! ingest worker posts ([`HookForm::encode`]), what the edge `api` reads from it
//! ([`stream_key`], [`lease_holder`], [`lease_seconds`], [`is_update_call`]), and the SHA-256 of
//! a stream key ([`KeyDigest`]) that both sides look keys up by and log in place of the key.
//!
//! Writer and reader share this one module so they cannot drift apart: a field is named once,
//! and a test parses what the builder writes. The form is nginx-rtmp's (so an existing site
//! backend answers the worker unchanged) plus two gatecast fields, [`LEASE_FIELD`] and
//! [`UPDATE_INTERVAL_FIELD`], which come before the publisher's own URL arguments: readers take
//! the first occurrence of a field ([`crate::form::field`]), so a publisher cannot override them.

use std::fmt;
use std::net::IpAddr;

use sha2::{Digest as _, Sha256};

use crate::crypto::{constant_time_eq, sha256_hex};
use crate::form;

/// The RTMP application the publisher connected to.
pub const APP_FIELD: &str = "app";
/// The encoder's `flashVer` from RTMP `connect`.
pub const FLASHVER_FIELD: &str = "flashver";
/// `swfUrl` from RTMP `connect`, usually empty for encoders.
pub const SWFURL_FIELD: &str = "swfurl";
/// `tcUrl` from RTMP `connect`: the URL the publisher connected to.
pub const TCURL_FIELD: &str = "tcurl";
/// `pageUrl` from RTMP `connect`, usually empty for encoders.
pub const PAGEURL_FIELD: &str = "pageurl";
/// The publisher's IP address.
pub const ADDR_FIELD: &str = "addr";
/// The server's id of the RTMP connection.
pub const CLIENTID_FIELD: &str = "clientid";
/// Which callback this is ([`Call`]).
pub const CALL_FIELD: &str = "call";
/// The stream name the publisher used: the secret stream key, in every call of a publish (also
/// `publish_done` after a rename), so the site can match the calls.
pub const NAME_FIELD: &str = "name";
/// Always [`LIVE_TYPE`] for a publish.
pub const TYPE_FIELD: &str = "type";
/// The only [`TYPE_FIELD`] a publish sends.
pub const LIVE_TYPE: &str = "live";
/// gatecast's random id of one publish, the same in all its calls (nginx-rtmp does not send
/// it): the api's publish lease names its holder by it ([`lease_holder`]).
pub const LEASE_FIELD: &str = "lease";
/// gatecast's seconds between two `update_publish` calls, sent when the heartbeat is on: the
/// api's lease lasts [`LEASE_INTERVALS`] of them ([`lease_seconds`]).
pub const UPDATE_INTERVAL_FIELD: &str = "update_interval";
/// Seconds the publish has been live, in `update_publish`.
pub const TIME_FIELD: &str = "time";
/// RTMP timestamp (ms) the media reached, in `update_publish`.
pub const TIMESTAMP_FIELD: &str = "timestamp";

/// nginx-rtmp's default `notify_update_timeout`, assumed when a callback states no interval.
pub const DEFAULT_UPDATE_INTERVAL_SECS: u64 = 30;
/// A lease lapses this many update intervals after its last renewal: one late or lost update
/// must not hand a live channel to someone else, a crashed worker must not hold it for long.
pub const LEASE_INTERVALS: u64 = 3;
/// Longest update interval honoured (an hour), so a bogus field cannot lock a channel for days.
const MAX_UPDATE_INTERVAL_SECS: u64 = 3600;

/// [`CALL_FIELD`] of [`Call::UpdatePublish`], the one call the api tells apart by its name.
const UPDATE_PUBLISH_CALL: &str = "update_publish";

/// The callback, and the fields only it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// `on_publish`: may this key publish, under which name?
    Publish,
    /// `on_update`'s heartbeat of a live publish: may it go on?
    UpdatePublish {
        /// Seconds live.
        time_secs: u64,
        /// RTMP timestamp (ms) the media reached.
        timestamp_ms: u32,
    },
    /// `on_publish_done`: the publish ended.
    PublishDone,
}

impl Call {
    /// The [`CALL_FIELD`] value, as nginx-rtmp names the call.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Publish => "publish",
            Self::UpdatePublish { .. } => UPDATE_PUBLISH_CALL,
            Self::PublishDone => "publish_done",
        }
    }
}

/// What a hook call says about one publish, borrowed from the worker's view of it.
#[derive(Debug, Clone, Copy)]
pub struct HookForm<'a> {
    /// [`APP_FIELD`].
    pub app: &'a str,
    /// [`FLASHVER_FIELD`].
    pub flashver: &'a str,
    /// [`SWFURL_FIELD`].
    pub swfurl: &'a str,
    /// [`TCURL_FIELD`].
    pub tcurl: &'a str,
    /// [`PAGEURL_FIELD`].
    pub pageurl: &'a str,
    /// [`ADDR_FIELD`].
    pub addr: IpAddr,
    /// [`CLIENTID_FIELD`].
    pub client_id: u64,
    /// [`NAME_FIELD`]: the secret stream key.
    pub name: &'a str,
    /// [`LEASE_FIELD`].
    pub lease: &'a str,
    /// [`UPDATE_INTERVAL_FIELD`], when the worker sends `update_publish` heartbeats.
    pub update_interval_secs: Option<u64>,
    /// The query arguments the publisher put on its RTMP URL, decoded, in order.
    pub publisher_args: &'a [(String, String)],
}

impl HookForm<'_> {
    /// The urlencoded body of `call`: nginx-rtmp's fields in its order, [`LEASE_FIELD`], then
    /// [`UPDATE_INTERVAL_FIELD`] and the call's own fields, last the publisher's arguments.
    pub fn encode(&self, call: Call) -> String {
        let mut body = String::new();
        let fixed = [
            (APP_FIELD, self.app),
            (FLASHVER_FIELD, self.flashver),
            (SWFURL_FIELD, self.swfurl),
            (TCURL_FIELD, self.tcurl),
            (PAGEURL_FIELD, self.pageurl),
        ];
        for (name, value) in fixed {
            form::append_pair(&mut body, name, value);
        }
        form::append_pair(&mut body, ADDR_FIELD, &self.addr.to_string());
        form::append_pair(&mut body, CLIENTID_FIELD, &self.client_id.to_string());
        form::append_pair(&mut body, CALL_FIELD, call.as_str());
        form::append_pair(&mut body, NAME_FIELD, self.name);
        form::append_pair(&mut body, TYPE_FIELD, LIVE_TYPE);
        form::append_pair(&mut body, LEASE_FIELD, self.lease);
        if let Some(interval) = self.update_interval_secs {
            form::append_pair(&mut body, UPDATE_INTERVAL_FIELD, &interval.to_string());
        }
        if let Call::UpdatePublish {
            time_secs,
            timestamp_ms,
        } = call
        {
            form::append_pair(&mut body, TIME_FIELD, &time_secs.to_string());
            form::append_pair(&mut body, TIMESTAMP_FIELD, &timestamp_ms.to_string());
        }
        for (name, value) in self.publisher_args {
            form::append_pair(&mut body, name, value);
        }
        body
    }
}

/// The secret stream key a callback body presents ([`NAME_FIELD`]), if any.
pub fn stream_key(body: &str) -> Option<String> {
    form::field(body, NAME_FIELD).filter(|key| !key.is_empty())
}

/// Whether a callback body is the periodic `update_publish` of a live publish.
pub fn is_update_call(body: &str) -> bool {
    form::field(body, CALL_FIELD).as_deref() == Some(UPDATE_PUBLISH_CALL)
}

/// Which publish a callback body speaks for, as a 32-bit tag: the worker's [`LEASE_FIELD`] when
/// present, else (plain nginx-rtmp) the client address, nginx's connection id and `tcurl`,
/// which stay the same in every callback of one publish.
pub fn lease_holder(body: &str) -> u32 {
    let field = |name| form::field(body, name).unwrap_or_default();
    let lease = field(LEASE_FIELD);
    let digest = if lease.is_empty() {
        let (addr, clientid, tcurl) =
            (field(ADDR_FIELD), field(CLIENTID_FIELD), field(TCURL_FIELD));
        sha256_hex(&[
            addr.as_bytes(),
            b" ",
            clientid.as_bytes(),
            b" ",
            tcurl.as_bytes(),
        ])
    } else {
        sha256_hex(&[lease.as_bytes()])
    };
    // Reuses the hex digest already needed for stream keys: its first 8 digits are 32 bits.
    digest
        .get(..8)
        .and_then(|prefix| u32::from_str_radix(prefix, 16).ok())
        .unwrap_or_default()
}

/// How long a lease taken or renewed by this callback lasts: [`LEASE_INTERVALS`] times the
/// update interval the worker states ([`DEFAULT_UPDATE_INTERVAL_SECS`] when it states none),
/// the interval capped at an hour.
pub fn lease_seconds(body: &str) -> u64 {
    let interval = form::field(body, UPDATE_INTERVAL_FIELD)
        .and_then(|value| value.parse::<u32>().ok())
        .map(u64::from)
        .filter(|seconds| *seconds > 0)
        .map_or(DEFAULT_UPDATE_INTERVAL_SECS, |seconds| {
            seconds.min(MAX_UPDATE_INTERVAL_SECS)
        });
    interval * LEASE_INTERVALS
}

/// SHA-256 hex of a stream key: the only form in which the api stores a key, and the one its
/// hooks look a presented key up by ([`KeyDigest::of`] in text).
pub fn stream_key_digest(stream_key: &str) -> String {
    sha256_hex(&[stream_key.as_bytes()])
}

/// SHA-256 of a stream key, as the worker keeps it: equality is constant-time, and formatting
/// shows only the [`fingerprint`](Self::fingerprint), so a digest in a log cannot be replayed
/// against a store indexed by [`stream_key_digest`] (the same hash, in full).
#[derive(Clone, Copy, Eq)]
pub struct KeyDigest([u8; 32]);

impl KeyDigest {
    /// Hashes `key`.
    pub fn of(key: &str) -> Self {
        Self(Sha256::digest(key.as_bytes()).into())
    }

    /// The first 8 hex digits of the digest: enough to tell keys apart in logs, useless for
    /// publishing or for a lookup by [`stream_key_digest`].
    pub fn fingerprint(&self) -> String {
        self.0[..4]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }
}

impl PartialEq for KeyDigest {
    fn eq(&self, other: &Self) -> bool {
        constant_time_eq(&self.0, &other.0)
    }
}

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyDigest({}…)", self.fingerprint())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn benw_form(args: &[(String, String)]) -> HookForm<'_> {
        HookForm {
            app: "live",
            flashver: "FMLE/3.0 (compatible; Lavf61.7.100)",
            swfurl: "",
            tcurl: "rtmp://127.0.0.1:1935/live",
            pageurl: "",
            addr: "192.0.2.4".parse().expect("ip"),
            client_id: 17,
            name: "J42nin Lbjl&2E2V8ePqy7",
            lease: "5be1",
            update_interval_secs: Some(2),
            publisher_args: args,
        }
    }

    /// The api reads back exactly what the worker wrote: key, lease holder, interval and call,
    /// and the publisher's arguments (which come last) cannot override any of them. The holder
    /// is python3's `int(hashlib.sha256(b"5be1").hexdigest()[:8], 16)`.
    #[test]
    fn the_api_reads_what_the_worker_writes() {
        let args = [
            ("lease".to_owned(), "forged".to_owned()),
            ("name".to_owned(), "other-key".to_owned()),
            ("update_interval".to_owned(), "3600".to_owned()),
            ("call".to_owned(), "update_publish".to_owned()),
        ];
        let form = benw_form(&args);
        let update = Call::UpdatePublish {
            time_secs: 4,
            timestamp_ms: 4021,
        };
        for call in [Call::Publish, update, Call::PublishDone] {
            let body = form.encode(call);
            assert_eq!(
                stream_key(&body).as_deref(),
                Some("J42nin Lbjl&2E2V8ePqy7"),
                "{body}"
            );
            assert_eq!(lease_holder(&body), 0xBACA_BF6F, "{body}");
            assert_eq!(lease_seconds(&body), 6, "{body}");
            assert_eq!(is_update_call(&body), call == update, "{body}");
            assert_eq!(
                form::field(&body, CALL_FIELD).as_deref(),
                Some(call.as_str())
            );
        }
        let plain = HookForm {
            update_interval_secs: None,
            publisher_args: &[],
            ..form
        };
        assert_eq!(
            lease_seconds(&plain.encode(Call::Publish)),
            DEFAULT_UPDATE_INTERVAL_SECS * LEASE_INTERVALS
        );
    }

    #[test]
    fn stream_keys_come_from_the_callback() {
        assert_eq!(
            stream_key("call=publish&name=J42ninLbjl2E2V8ePqy7&type=live").as_deref(),
            Some("J42ninLbjl2E2V8ePqy7")
        );
        assert_eq!(stream_key("call=publish&name=&type=live"), None);
        assert_eq!(stream_key("call=publish"), None);
    }

    /// Holder tags from python3: `int(hashlib.sha256(s).hexdigest()[:8], 16)` for `b"9f2c"` and
    /// `b"203.0.113.5 17 rtmp://ingest/live"`.
    #[test]
    fn holders_come_from_the_worker_lease_or_nginx_fields() {
        assert_eq!(
            lease_holder("call=publish&lease=9f2c&addr=192.0.2.1&name=k"),
            lease_holder("call=update_publish&time=30&lease=9f2c&addr=192.0.2.9")
        );
        assert_eq!(lease_holder("lease=9f2c"), 0x745C_056D);
        let nginx = "app=live&tcurl=rtmp%3A%2F%2Fingest%2Flive&addr=203.0.113.5&clientid=17\
                     &call=publish&name=k";
        assert_eq!(lease_holder(nginx), 0x77F4_BD87);
        assert_ne!(
            lease_holder(nginx),
            lease_holder("addr=203.0.113.5&clientid=18")
        );
    }

    #[test]
    fn lease_length_follows_the_stated_update_interval() {
        assert_eq!(lease_seconds("call=publish"), 90);
        assert_eq!(lease_seconds("update_interval=2"), 6);
        assert_eq!(lease_seconds("update_interval=0"), 90);
        assert_eq!(lease_seconds("update_interval=x"), 90);
        assert_eq!(lease_seconds("update_interval=99999999"), 3 * 3600);
        assert!(is_update_call("app=live&call=update_publish&time=30"));
        assert!(!is_update_call("call=publish"));
    }

    /// `hashlib.sha256(b"J42ninLbjl2E2V8ePqy7").hexdigest()`: the stored digest is the whole
    /// hash, the logged fingerprint its first 8 digits.
    #[test]
    fn digests_match_python_hashlib() {
        let full = "ccaec3f7cfd0a42ef47a1b64fc9d801c64ed763443712b1de5d794f66e26822e";
        assert_eq!(stream_key_digest("J42ninLbjl2E2V8ePqy7"), full);
        let digest = KeyDigest::of("J42ninLbjl2E2V8ePqy7");
        assert_eq!(digest.fingerprint(), "ccaec3f7");
        assert_eq!(format!("{digest:?}"), "KeyDigest(ccaec3f7…)");
        assert_eq!(digest, KeyDigest::of("J42ninLbjl2E2V8ePqy7"));
        assert_ne!(digest, KeyDigest::of("J42ninLbjl2E2V8ePqy"));
    }
}

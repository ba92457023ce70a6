//! Process-wide counters, rendered in the Prometheus text format by the admin endpoint.
//!
//! Hand-rolled on atomics rather than a metrics crate: the set is small and fixed, and keeping
//! it closed means no code path can ever attach a stream key (or any caller-chosen string) as a
//! label. Every label value below comes from a Rust enum.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Why a publish (or connection) was refused; the `reason` label of
/// `gatecast_ingest_publishes_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    /// The RTMP `connect` named another application than `--app`.
    WrongApp,
    /// The stream key is unknown (keys file) or the hook answered with a refusal.
    UnknownKey,
    /// The keys file lists the key but marks it inactive.
    InactiveKey,
    /// The `on_publish` hook did not answer in time or could not be reached.
    HookUnavailable,
    /// The public name (from the keys file or a hook rename) is not a valid stream name.
    InvalidName,
    /// Another publisher is live under the same public name (on this worker, or elsewhere: the
    /// `on_publish` hook answered 409).
    NameBusy,
    /// Too many failed key attempts from this client address.
    RateLimited,
    /// The connection already publishes a stream.
    AlreadyPublishing,
    /// RTMP playback was requested; this worker only ingests.
    PlayRequested,
    /// The connection cap (`--max-connections`) was reached.
    TooManyConnections,
    /// The `on_update` hook refused a live publish (e.g. another worker holds the channel's
    /// lease, or the channel was banned): it was cut off.
    UpdateRefused,
    /// The `on_publish` hook allowed with a 2xx but named no public stream (no 3xx
    /// `Location`), and `--on-publish-names-are-public` is off: publishing under the presented
    /// name would make the secret stream key public.
    HookNoRename,
    /// The client's address already holds `--max-connections-per-address` connections; the
    /// new one was closed at accept, before the handshake.
    TooManyFromAddress,
    /// The connection did not publish within `--publish-deadline-secs` of connecting.
    PublishDeadline,
    /// The connection sent more than `--max-preauth-kib` before its publish was accepted.
    PreauthTooLarge,
}

impl RefusalReason {
    const ALL: [Self; 15] = [
        Self::WrongApp,
        Self::UnknownKey,
        Self::InactiveKey,
        Self::HookUnavailable,
        Self::InvalidName,
        Self::NameBusy,
        Self::RateLimited,
        Self::AlreadyPublishing,
        Self::PlayRequested,
        Self::TooManyConnections,
        Self::UpdateRefused,
        Self::HookNoRename,
        Self::TooManyFromAddress,
        Self::PublishDeadline,
        Self::PreauthTooLarge,
    ];

    /// The label value, stable for dashboards.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WrongApp => "wrong_app",
            Self::UnknownKey => "unknown_key",
            Self::InactiveKey => "inactive_key",
            Self::HookUnavailable => "hook_unavailable",
            Self::InvalidName => "invalid_name",
            Self::NameBusy => "name_busy",
            Self::RateLimited => "rate_limited",
            Self::AlreadyPublishing => "already_publishing",
            Self::PlayRequested => "play_requested",
            Self::TooManyConnections => "too_many_connections",
            Self::UpdateRefused => "update_refused",
            Self::HookNoRename => "hook_no_rename",
            Self::TooManyFromAddress => "too_many_from_address",
            Self::PublishDeadline => "publish_deadline",
            Self::PreauthTooLarge => "preauth_too_large",
        }
    }

    fn index(self) -> usize {
        // `ALL` lists every variant once, so the position always exists.
        Self::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// Which storage operation a latency sample or error belongs to (the `op` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageOp {
    /// PUT of a 16-byte key object.
    PutKey,
    /// PUT of an encrypted segment.
    PutSegment,
    /// PUT of a live or replay playlist.
    PutPlaylist,
    /// DELETE of an expired segment or key.
    Delete,
}

impl StorageOp {
    const ALL: [Self; 4] = [
        Self::PutKey,
        Self::PutSegment,
        Self::PutPlaylist,
        Self::Delete,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Self::PutKey => "put_key",
            Self::PutSegment => "put_segment",
            Self::PutPlaylist => "put_playlist",
            Self::Delete => "delete",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Upper bounds (seconds) of the latency histogram buckets; fine below 50 ms, the
/// segment-visible target.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// A cumulative Prometheus histogram over [`LATENCY_BUCKETS`].
#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Writes the `_bucket`, `_sum` and `_count` series of `name`; `labels` is empty or ends
    /// with a comma (`op="put_key",`), since `le` follows it.
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.buckets) {
            let value = bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{bound}\"}} {value}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {count}");
        let bare = labels.trim_end_matches(',');
        if bare.is_empty() {
            let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
        } else {
            let _ = writeln!(
                out,
                "{name}_sum{{{bare}}} {sum}\n{name}_count{{{bare}}} {count}"
            );
        }
    }
}

/// All counters of one worker. Shared as `Arc<Metrics>`; every method is lock-free.
#[derive(Default)]
pub struct Metrics {
    connections_open: AtomicU64,
    streams_live: AtomicU64,
    bytes_received: AtomicU64,
    segments_stored: AtomicU64,
    segments_dropped: AtomicU64,
    refused: [AtomicU64; RefusalReason::ALL.len()],
    storage_errors: [AtomicU64; StorageOp::ALL.len()],
    storage_latency: [Histogram; StorageOp::ALL.len()],
    segment_visible: Histogram,
}

impl Metrics {
    /// A connection was accepted; pair with [`Metrics::handle_connection_closed`].
    pub fn handle_connection_opened(&self) {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection ended.
    pub fn handle_connection_closed(&self) {
        self.connections_open.fetch_sub(1, Ordering::Relaxed);
    }

    /// A stream went live; pair with [`Metrics::handle_stream_ended`].
    pub fn handle_stream_started(&self) {
        self.streams_live.fetch_add(1, Ordering::Relaxed);
    }

    /// A stream's final playlist was written (or abandoned at shutdown).
    pub fn handle_stream_ended(&self) {
        self.streams_live.fetch_sub(1, Ordering::Relaxed);
    }

    /// Bytes read from RTMP sockets (after the handshake or not: every byte counts).
    pub fn handle_bytes_received(&self, count: usize) {
        self.bytes_received
            .fetch_add(count as u64, Ordering::Relaxed);
    }

    /// A segment became durable in storage.
    pub fn handle_segment_stored(&self) {
        self.segments_stored.fetch_add(1, Ordering::Relaxed);
    }

    /// Segments were shed because the upload buffer was full.
    pub fn handle_segments_dropped(&self, count: u64) {
        self.segments_dropped.fetch_add(count, Ordering::Relaxed);
    }

    /// The playlist referencing a new segment was stored `elapsed` after the input that closed
    /// the segment arrived.
    pub fn handle_segment_visible(&self, elapsed: Duration) {
        self.segment_visible.observe(elapsed);
    }

    /// A publish or connection was refused.
    pub fn handle_refused(&self, reason: RefusalReason) {
        self.refused[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// A storage request finished; `succeeded` is false for an error (which will be retried).
    pub fn handle_storage_request(&self, op: StorageOp, elapsed: Duration, succeeded: bool) {
        self.storage_latency[op.index()].observe(elapsed);
        if !succeeded {
            self.storage_errors[op.index()].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Number of live streams right now.
    pub fn streams_live(&self) -> u64 {
        self.streams_live.load(Ordering::Relaxed)
    }

    /// Renders every metric in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let gauge = |out: &mut String, name: &str, help: &str, value: &AtomicU64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        };
        let counter = |out: &mut String, name: &str, help: &str, value: &AtomicU64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        };
        gauge(
            &mut out,
            "gatecast_ingest_connections_open",
            "Open RTMP connections.",
            &self.connections_open,
        );
        gauge(
            &mut out,
            "gatecast_ingest_streams_live",
            "Streams being published right now.",
            &self.streams_live,
        );
        counter(
            &mut out,
            "gatecast_ingest_bytes_received_total",
            "Bytes read from RTMP connections.",
            &self.bytes_received,
        );
        counter(
            &mut out,
            "gatecast_ingest_segments_stored_total",
            "Encrypted segments written to storage.",
            &self.segments_stored,
        );
        counter(
            &mut out,
            "gatecast_ingest_segments_dropped_total",
            "Segments shed because the upload buffer was full.",
            &self.segments_dropped,
        );

        write_labelled_counter(
            &mut out,
            "gatecast_ingest_publishes_refused_total",
            "Refused publishes and connections, by reason.",
            "reason",
            RefusalReason::ALL.map(|reason| {
                let value = self.refused[reason.index()].load(Ordering::Relaxed);
                (reason.as_str(), value)
            }),
        );
        write_labelled_counter(
            &mut out,
            "gatecast_ingest_storage_errors_total",
            "Failed storage requests (each is retried).",
            "op",
            StorageOp::ALL.map(|op| {
                let value = self.storage_errors[op.index()].load(Ordering::Relaxed);
                (op.as_str(), value)
            }),
        );

        let name = "gatecast_ingest_storage_request_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Storage request latency, failures included."
        );
        let _ = writeln!(out, "# TYPE {name} histogram");
        for op in StorageOp::ALL {
            let labels = format!("op=\"{}\",", op.as_str());
            self.storage_latency[op.index()].render(&mut out, name, &labels);
        }
        let name = "gatecast_ingest_segment_visible_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} From the arrival of the input that closed a segment to the stored \
             playlist referencing it."
        );
        let _ = writeln!(out, "# TYPE {name} histogram");
        self.segment_visible.render(&mut out, name, "");
        out
    }
}

/// One counter family with a single label, one series per label value (label values come from
/// enums, never from input).
fn write_labelled_counter(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    series: impl IntoIterator<Item = (&'static str, u64)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (label_value, value) in series {
        let _ = writeln!(out, "{name}{{{label}=\"{label_value}\"}} {value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let metrics = Metrics::default();
        metrics.handle_storage_request(StorageOp::PutSegment, Duration::from_millis(20), true);
        metrics.handle_storage_request(StorageOp::PutSegment, Duration::from_secs(3), false);
        let text = metrics.render();
        let line = |needle: &str| {
            text.lines()
                .find(|l| l.starts_with(needle))
                .unwrap_or_else(|| panic!("no line {needle} in\n{text}"))
                .to_owned()
        };
        let metric = "gatecast_ingest_storage_request_duration_seconds";
        assert_eq!(
            line(&format!(
                "{metric}_bucket{{op=\"put_segment\",le=\"0.01\"}}"
            ))
            .split(' ')
            .nth(1),
            Some("0")
        );
        assert_eq!(
            line(&format!(
                "{metric}_bucket{{op=\"put_segment\",le=\"0.025\"}}"
            ))
            .split(' ')
            .nth(1),
            Some("1")
        );
        assert_eq!(
            line(&format!("{metric}_bucket{{op=\"put_segment\",le=\"10\"}}"))
                .split(' ')
                .nth(1),
            Some("2")
        );
        assert_eq!(
            line(&format!("{metric}_count{{op=\"put_segment\"}}"))
                .split(' ')
                .nth(1),
            Some("2")
        );
        assert_eq!(
            line(&format!("{metric}_sum{{op=\"put_segment\"}}"))
                .split(' ')
                .nth(1),
            Some("3.02")
        );
        assert_eq!(
            line("gatecast_ingest_storage_errors_total{op=\"put_segment\"}")
                .split(' ')
                .nth(1),
            Some("1")
        );
    }

    #[test]
    fn segment_visible_latency_is_a_histogram_without_labels() {
        let metrics = Metrics::default();
        metrics.handle_segment_visible(Duration::from_micros(1_800));
        metrics.handle_segment_visible(Duration::from_millis(40));
        let text = metrics.render();
        let name = "gatecast_ingest_segment_visible_seconds";
        for expected in [
            format!("{name}_bucket{{le=\"0.001\"}} 0\n"),
            format!("{name}_bucket{{le=\"0.0025\"}} 1\n"),
            format!("{name}_bucket{{le=\"0.05\"}} 2\n"),
            format!("{name}_bucket{{le=\"+Inf\"}} 2\n"),
            // 0.0018 + 0.040 by hand.
            format!("{name}_sum 0.0418\n"),
            format!("{name}_count 2\n"),
        ] {
            assert!(text.contains(&expected), "no {expected:?} in\n{text}");
        }
    }

    #[test]
    fn refusals_are_counted_by_reason() {
        let metrics = Metrics::default();
        metrics.handle_refused(RefusalReason::RateLimited);
        metrics.handle_refused(RefusalReason::RateLimited);
        metrics.handle_refused(RefusalReason::TooManyConnections);
        let text = metrics.render();
        assert!(
            text.contains("gatecast_ingest_publishes_refused_total{reason=\"rate_limited\"} 2\n")
        );
        assert!(text.contains(
            "gatecast_ingest_publishes_refused_total{reason=\"too_many_connections\"} 1\n"
        ));
        assert!(
            text.contains("gatecast_ingest_publishes_refused_total{reason=\"unknown_key\"} 0\n")
        );
    }
}

//! The live (and, when recording, replay) HLS playlist as a pure state machine.
//!
//! The uploader reports a segment only once it and its key are durable in storage
//! ([`LivePlaylist::handle_segment_stored`]), so a rendered playlist never names a missing
//! object: the write order is key → segment → playlist.
//!
//! Media sequence numbers in the playlist count stored segments (one per segment, as RFC 8216
//! §6.2.1 requires), starting at the first stored segment's `sequence`. They differ from the
//! segment file names only after the uploader dropped segments, which is marked with
//! `#EXT-X-DISCONTINUITY` anyway.
//!
//! Retention without recording: a segment that slid out of the live window, and a key once its
//! last segment did, stays in storage for one more window of stored segments, so a player that
//! loaded the previous playlist can still fetch everything it names (nginx-rtmp deleted keys
//! that playlists still referenced, #1111). [`LivePlaylist::poll_expired`] hands out what may be
//! deleted; the count of stored segments drives it, not a clock.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use gatecast_core::layout::{StreamName, key_path, key_uri, segment_path, segment_uri};

use super::EncryptedSegment;

/// Playlist parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaylistConfig {
    /// Segments in the live playlist (0 is treated as 1).
    pub window: usize,
    /// Prefix of key URIs, usually `gatecast_core::layout::DEFAULT_KEY_URI_PREFIX`.
    pub key_uri_prefix: String,
    /// Keep every segment and render a replay playlist; nothing expires.
    pub record: bool,
}

/// What the playlist remembers about one stored segment.
#[derive(Debug, Clone)]
struct Entry {
    sequence: u64,
    duration_ms: u64,
    program_date_time: SystemTime,
    key_id: u64,
    iv: [u8; 16],
    /// `#EXT-X-DISCONTINUITY` goes in front of this segment.
    discontinuity: bool,
}

/// Live playlist state for one broadcast. See the module docs for the call contract.
#[derive(Debug)]
pub struct LivePlaylist {
    name: StreamName,
    window_len: usize,
    key_uri_prefix: String,
    record: bool,
    /// The live window, oldest first.
    window: VecDeque<Entry>,
    /// Every stored segment, only when recording.
    history: Vec<Entry>,
    /// Media sequence number of the oldest segment in `window`, or of the next one if empty.
    media_sequence: Option<u64>,
    /// Discontinuity tags that slid out of the window.
    discontinuity_sequence: u64,
    /// Ceil of the longest segment seconds so far: EXT-X-TARGETDURATION must never shrink.
    target_duration_s: u64,
    discontinuity_pending: bool,
    ended: bool,
    stored_segments: u64,
    /// (stored-segment count at which it may go, storage path), in due order.
    retiring: VecDeque<(u64, String)>,
}

impl LivePlaylist {
    /// An empty playlist for stream `name`.
    pub fn new(name: StreamName, config: PlaylistConfig) -> Self {
        Self {
            name,
            window_len: config.window.max(1),
            key_uri_prefix: config.key_uri_prefix,
            record: config.record,
            window: VecDeque::new(),
            history: Vec::new(),
            media_sequence: None,
            discontinuity_sequence: 0,
            target_duration_s: 1,
            discontinuity_pending: false,
            ended: false,
            stored_segments: 0,
            retiring: VecDeque::new(),
        }
    }

    /// Call once the segment AND its key are durable in storage.
    pub fn handle_segment_stored(&mut self, segment: &EncryptedSegment) {
        let first_ever = self.stored_segments == 0;
        let duration_ms = u64::try_from(segment.duration.as_millis()).unwrap_or(u64::MAX);
        self.target_duration_s = self.target_duration_s.max(duration_ms.div_ceil(1000));
        let entry = Entry {
            sequence: segment.sequence,
            duration_ms,
            program_date_time: segment.program_date_time,
            key_id: segment.key_id,
            iv: segment.iv,
            // A discontinuity before the very first segment would mean nothing.
            discontinuity: std::mem::take(&mut self.discontinuity_pending) && !first_ever,
        };
        self.media_sequence.get_or_insert(segment.sequence);
        self.stored_segments += 1;
        if self.record {
            self.history.push(entry.clone());
        }
        self.window.push_back(entry);
        while self.window.len() > self.window_len {
            let Some(evicted) = self.window.pop_front() else {
                break;
            };
            self.media_sequence = self.media_sequence.map(|msn| msn + 1);
            if evicted.discontinuity {
                self.discontinuity_sequence += 1;
            }
            if !self.record {
                self.retire(&evicted);
            }
        }
    }

    /// Call when the uploader had to drop unsent segments: the next stored segment is preceded
    /// by EXT-X-DISCONTINUITY.
    pub fn handle_segments_dropped(&mut self) {
        self.discontinuity_pending = true;
    }

    /// Publisher stopped or was cut off: the next render ends with EXT-X-ENDLIST.
    pub fn handle_end(&mut self) {
        self.ended = true;
    }

    /// The live playlist text (`layout::live_playlist_path`). Render only after the first
    /// stored segment: an empty live playlist makes players give up.
    pub fn render_live(&self) -> String {
        let mut text = self.header();
        if self.discontinuity_sequence > 0 {
            let _ = writeln!(
                text,
                "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
                self.discontinuity_sequence
            );
        }
        self.write_segments(&mut text, self.window.iter());
        text
    }

    /// Some(..) only when recording: the whole broadcast, `EVENT` while live (players may seek
    /// back to the start and the list only grows), `VOD` with ENDLIST once ended.
    pub fn render_vod(&self) -> Option<String> {
        if !self.record {
            return None;
        }
        let playlist_type = if self.ended { "VOD" } else { "EVENT" };
        // The history ends with the live window and numbers are consecutive.
        let first_msn =
            self.media_sequence.unwrap_or(0) - (self.history.len() - self.window.len()) as u64;
        let mut text = format!(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-PLAYLIST-TYPE:{playlist_type}\n#EXT-X-TARGETDURATION:{}\n#EXT-X-MEDIA-SEQUENCE:{first_msn}\n",
            self.target_duration_s,
        );
        self.write_segments(&mut text, self.history.iter());
        Some(text)
    }

    /// Storage paths (segments and keys) no playlist has referenced for one window length;
    /// delete them. Call until `None` after every `handle_segment_stored`.
    #[must_use]
    pub fn poll_expired(&mut self) -> Option<String> {
        match self.retiring.front() {
            Some((due, _)) if *due <= self.stored_segments => {
                self.retiring.pop_front().map(|(_, path)| path)
            }
            _ => None,
        }
    }

    fn header(&self) -> String {
        format!(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{}\n#EXT-X-MEDIA-SEQUENCE:{}\n",
            self.target_duration_s,
            self.media_sequence.unwrap_or(0)
        )
    }

    fn write_segments<'a>(&self, text: &mut String, entries: impl Iterator<Item = &'a Entry>) {
        let mut previous_key: Option<(u64, [u8; 16])> = None;
        for entry in entries {
            if entry.discontinuity {
                text.push_str("#EXT-X-DISCONTINUITY\n");
            }
            if previous_key != Some((entry.key_id, entry.iv)) {
                let uri = key_uri(&self.key_uri_prefix, &self.name, entry.key_id);
                let _ = write!(text, "#EXT-X-KEY:METHOD=AES-128,URI=\"{uri}\",IV=0x");
                for byte in entry.iv {
                    let _ = write!(text, "{byte:02x}");
                }
                text.push('\n');
                previous_key = Some((entry.key_id, entry.iv));
            }
            let _ = writeln!(
                text,
                "#EXT-X-PROGRAM-DATE-TIME:{}",
                rfc3339_millis(entry.program_date_time)
            );
            let _ = writeln!(
                text,
                "#EXTINF:{}.{:03},",
                entry.duration_ms / 1000,
                entry.duration_ms % 1000
            );
            text.push_str(&segment_uri(entry.sequence));
            text.push('\n');
        }
        if self.ended {
            text.push_str("#EXT-X-ENDLIST\n");
        }
    }

    /// Schedules deletion of a segment that left the window, and of its key if no segment in
    /// the window uses it any more (key ids only grow, so no later segment will).
    fn retire(&mut self, evicted: &Entry) {
        let due = self.stored_segments + self.window_len as u64;
        self.retiring
            .push_back((due, segment_path(&self.name, evicted.sequence)));
        if self
            .window
            .front()
            .is_none_or(|oldest| oldest.key_id != evicted.key_id)
        {
            self.retiring
                .push_back((due, key_path(&self.name, evicted.key_id)));
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` in UTC (times before 1970 print as the epoch).
fn rfc3339_millis(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let total_ms = since_epoch.as_millis();
    let millis = total_ms % 1000;
    let total_s = total_ms / 1000;
    let (days, seconds_of_day) = (total_s / 86_400, total_s % 86_400);
    let (year, month, day) = civil_from_days(days as i64); // < 2^64 / 86400: fits
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        seconds_of_day / 3600,
        seconds_of_day / 60 % 60,
        seconds_of_day % 60
    )
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32; // 1..=31
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // 1..=12
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

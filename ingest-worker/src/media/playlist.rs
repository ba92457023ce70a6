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

/// An object of this stream that no playlist has named for one window length: the uploader
/// deletes it. Segments and keys live in different stores, so the kind is a variant rather
/// than something a caller reads back out of a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// The segment `live/<name>/<sequence>.ts`, in the media store.
    Segment {
        /// The segment's sequence number.
        sequence: u64,
    },
    /// The key `keys/<name>/<key id>.key`, in the key store: its last segment expired too.
    Key {
        /// The key's id.
        key_id: u64,
    },
}

impl Expired {
    /// The object's storage path for stream `name`.
    pub fn path(&self, name: &StreamName) -> String {
        match *self {
            Self::Segment { sequence } => segment_path(name, sequence),
            Self::Key { key_id } => key_path(name, key_id),
        }
    }
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
    /// (stored-segment count at which it may go, the object), in due order.
    retiring: VecDeque<(u64, Expired)>,
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

    /// Segments and keys no playlist has referenced for one window length; delete them. Call
    /// until `None` after every `handle_segment_stored`.
    #[must_use]
    pub fn poll_expired(&mut self) -> Option<Expired> {
        match self.retiring.front() {
            Some((due, _)) if *due <= self.stored_segments => {
                self.retiring.pop_front().map(|(_, expired)| expired)
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
        self.retiring.push_back((
            due,
            Expired::Segment {
                sequence: evicted.sequence,
            },
        ));
        if self
            .window
            .front()
            .is_none_or(|oldest| oldest.key_id != evicted.key_id)
        {
            self.retiring.push_back((
                due,
                Expired::Key {
                    key_id: evicted.key_id,
                },
            ));
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;

    /// 2023-11-14T22:13:20.000Z
    const T0_MS: u64 = 1_700_000_000_000;

    fn segment(sequence: u64, key_id: u64, duration_ms: u64, start_ms: u64) -> EncryptedSegment {
        EncryptedSegment {
            sequence,
            duration: Duration::from_millis(duration_ms),
            program_date_time: UNIX_EPOCH + Duration::from_millis(T0_MS + start_ms),
            key_id,
            key: [0; 16],
            key_is_new: sequence == key_id,
            iv: [sequence as u8; 16],
            bytes: Bytes::new(),
        }
    }

    fn playlist(window: usize, record: bool) -> LivePlaylist {
        let name = StreamName::parse("benw").expect("valid");
        LivePlaylist::new(
            name,
            PlaylistConfig {
                window,
                key_uri_prefix: "/keys".into(),
                record,
            },
        )
    }

    /// The storage paths of what expired, so the expectations read as the objects deleted.
    fn expired(playlist: &mut LivePlaylist) -> Vec<String> {
        let name = StreamName::parse("benw").expect("valid");
        std::iter::from_fn(|| playlist.poll_expired())
            .map(|expired| expired.path(&name))
            .collect()
    }

    #[test]
    fn window_slides_with_a_key_tag_per_segment() {
        let mut live = playlist(3, false);
        // Two segments per key: key ids 100, 102, 104.
        let segments = [
            segment(100, 100, 2000, 0),
            segment(101, 100, 2040, 2000),
            segment(102, 102, 1960, 4040),
            segment(103, 102, 2500, 6000),
            segment(104, 104, 2000, 8500),
        ];
        for s in &segments[..1] {
            live.handle_segment_stored(s);
        }
        assert_eq!(
            live.render_live(),
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:100\n\
             #EXT-X-KEY:METHOD=AES-128,URI=\"/keys/benw/100.key\",IV=0x64646464646464646464646464646464\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z\n#EXTINF:2.000,\n100.ts\n"
        );
        for s in &segments[1..] {
            live.handle_segment_stored(s);
        }
        // Target grew to ceil(2.5) = 3 and stays there; the window holds 102..=104.
        assert_eq!(
            live.render_live(),
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:3\n#EXT-X-MEDIA-SEQUENCE:102\n\
             #EXT-X-KEY:METHOD=AES-128,URI=\"/keys/benw/102.key\",IV=0x66666666666666666666666666666666\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:24.040Z\n#EXTINF:1.960,\n102.ts\n\
             #EXT-X-KEY:METHOD=AES-128,URI=\"/keys/benw/102.key\",IV=0x67676767676767676767676767676767\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:26.000Z\n#EXTINF:2.500,\n103.ts\n\
             #EXT-X-KEY:METHOD=AES-128,URI=\"/keys/benw/104.key\",IV=0x68686868686868686868686868686868\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:28.500Z\n#EXTINF:2.000,\n104.ts\n"
        );
        live.handle_end();
        assert!(live.render_live().ends_with("104.ts\n#EXT-X-ENDLIST\n"));
        assert_eq!(live.render_vod(), None);
    }

    #[test]
    fn evicted_objects_expire_one_window_later_keys_after_their_last_segment() {
        let mut live = playlist(3, false);
        let stored = |live: &mut LivePlaylist, sequence: u64| {
            live.handle_segment_stored(&segment(sequence, sequence - sequence % 2, 2000, 0));
            expired(live)
        };
        for sequence in 100..=103 {
            assert!(stored(&mut live, sequence).is_empty(), "{sequence}");
        }
        // 100 left the window when 103 was stored (4 stored); due at 4 + 3 = 7 stored.
        assert!(stored(&mut live, 104).is_empty());
        assert!(stored(&mut live, 105).is_empty());
        assert_eq!(stored(&mut live, 106), ["live/benw/100.ts"]);
        // 101 (the last segment of key 100) left when 104 was stored: due at 8.
        assert_eq!(
            stored(&mut live, 107),
            ["live/benw/101.ts", "keys/benw/100.key"]
        );
        assert_eq!(stored(&mut live, 108), ["live/benw/102.ts"]);
        assert_eq!(
            stored(&mut live, 109),
            ["live/benw/103.ts", "keys/benw/102.key"]
        );
    }

    #[test]
    fn dropped_segments_mark_a_discontinuity_that_is_counted_once_it_slides_out() {
        let mut live = playlist(2, false);
        live.handle_segment_stored(&segment(10, 10, 1000, 0));
        live.handle_segment_stored(&segment(11, 10, 1000, 1000));
        live.handle_segments_dropped();
        live.handle_segment_stored(&segment(13, 10, 1000, 3000));
        let text = live.render_live();
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:11\n"), "{text}");
        assert!(
            text.contains("11.ts\n#EXT-X-DISCONTINUITY\n#EXT-X-KEY:"),
            "{text}"
        );
        assert!(!text.contains("DISCONTINUITY-SEQUENCE"), "{text}");

        live.handle_segment_stored(&segment(14, 10, 1000, 4000));
        live.handle_segment_stored(&segment(15, 10, 1000, 5000));
        // Playlist numbering counts stored segments: 10, 11, 13→12, 14→13, 15→14.
        assert_eq!(
            live.render_live(),
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:13\n\
             #EXT-X-DISCONTINUITY-SEQUENCE:1\n\
             #EXT-X-KEY:METHOD=AES-128,URI=\"/keys/benw/10.key\",IV=0x0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:24.000Z\n#EXTINF:1.000,\n14.ts\n\
             #EXT-X-KEY:METHOD=AES-128,URI=\"/keys/benw/10.key\",IV=0x0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:25.000Z\n#EXTINF:1.000,\n15.ts\n"
        );
    }

    #[test]
    fn recording_keeps_everything_as_event_then_vod() {
        let mut live = playlist(1, true);
        live.handle_segment_stored(&segment(7, 7, 4000, 0));
        live.handle_segment_stored(&segment(8, 7, 3001, 4000));
        assert_eq!(expired(&mut live), Vec::<String>::new());
        let event = live.render_vod().expect("recording");
        assert_eq!(
            event,
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-PLAYLIST-TYPE:EVENT\n#EXT-X-TARGETDURATION:4\n\
             #EXT-X-MEDIA-SEQUENCE:7\n\
             #EXT-X-KEY:METHOD=AES-128,URI=\"/keys/benw/7.key\",IV=0x07070707070707070707070707070707\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z\n#EXTINF:4.000,\n7.ts\n\
             #EXT-X-KEY:METHOD=AES-128,URI=\"/keys/benw/7.key\",IV=0x08080808080808080808080808080808\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:24.000Z\n#EXTINF:3.001,\n8.ts\n"
        );
        assert!(live.render_live().contains("#EXT-X-MEDIA-SEQUENCE:8\n"));
        live.handle_end();
        let vod = live.render_vod().expect("recording");
        assert!(vod.contains("#EXT-X-PLAYLIST-TYPE:VOD\n"));
        assert!(vod.ends_with("8.ts\n#EXT-X-ENDLIST\n"));
    }

    #[test]
    fn dates_are_rfc3339_utc_with_millis() {
        // Values checked with python3 datetime.fromtimestamp(.., timezone.utc).
        let at = |ms: u64| rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms));
        assert_eq!(at(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400_000 + 86_399_999), "2000-02-29T23:59:59.999Z");
        assert_eq!(at(T0_MS + 7), "2023-11-14T22:13:20.007Z");
        assert_eq!(at(4_102_444_800_000), "2100-01-01T00:00:00.000Z");
    }
}

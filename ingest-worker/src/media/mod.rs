//! The pure media stages: FLV tags in, encrypted HLS segments and playlist text out.
//!
//! ```text
//! handle_video / handle_audio (FLV tag bodies from rml_rtmp)
//!   → flv        parse tag, codec configs           (typed FlvError, never a panic)
//!   → h264/adts  Annex-B access units / ADTS frames
//!   → segmenter  cut at keyframes ≥ segment_duration, mux via ts (libmpegts)
//!   → crypto     AES-128-CBC + PKCS7, key rotation, IV per segment
//!   → poll_segment() → EncryptedSegment             (shell stores key, then segment)
//! playlist::LivePlaylist: handle_segment_stored → render_live / render_vod / poll_expired
//! ```
//!
//! Nothing here does I/O, reads a clock or draws OS randomness: time arrives as RTMP timestamps
//! plus the `started_at` wall-clock anchor, randomness through [`KeySource`]. That keeps the
//! stages deterministic under test and lets the shell run them on a blocking thread.
//!
//! # Call order
//! Call [`Pipeline::poll_segment`] until it returns `None` after every `handle_*` call. Every
//! [`MediaError`] leaves the pipeline consistent (the offending tag is skipped), so the shell may
//! log and go on; [`FlvError::UnsupportedCodec`] will repeat for every tag of that stream, so the
//! shell should refuse the publisher then.
//!
//! # Decisions worth knowing
//! - Track detection: the PMT is fixed once both an AVC and an AAC sequence header arrived, or
//!   after [`PROBE_MS`] of media (or [`PROBE_MAX_FRAMES`] frames) with only one of them. Frames
//!   seen meanwhile are buffered, not lost. A track whose config shows up later is ignored.
//! - Media before the first video keyframe is dropped (nothing could decode it).
//! - RTMP timestamps are unwrapped past their 32-bit wrap (~49.7 days) by signed deltas, so a
//!   slightly late audio tag (timestamp a few ms back) is not mistaken for a wrap.
//! - 90 kHz PTS/DTS = ms × 90 + 1.4 s (see [`ts::TIMESTAMP_OFFSET_90KHZ`]).
//! - Randomness: for a segment that starts a new key, [`KeySource::fill`] is called first for
//!   the key, then for the IV.
//!
//! # API beyond the agreed surface
//! The agreed names and signatures are kept unchanged. Added: [`MediaError::is_unsupported_codec`]
//! (so the shell can refuse the publisher), [`Pipeline::with_segment_buffers`] (segment memory
//! reused across the worker's streams, see [`buffers`]), and the stage modules are public
//! (`flv`, `h264`, `adts`, `ts`, `segmenter`, `crypto`) for the fuzz target and the benches.
//! [`playlist::LivePlaylist::poll_expired`] returns an [`Expired`] segment or key; each lives
//! in its own store ([`Expired::path`] names the object).

pub mod adts;
pub mod buffers;
pub mod crypto;
pub mod flv;
pub mod h264;
pub mod playlist;
pub mod segmenter;
pub mod ts;

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

pub use adts::AdtsError;
pub use buffers::SegmentBuffers;
pub use flv::{FlvError, TrackKind};
pub use h264::H264Error;
pub use playlist::{Expired, LivePlaylist, PlaylistConfig};

use flv::{AacConfig, AudioTag, AvcConfig, VideoTag};
use segmenter::{EsFrame, EsPayload, Segmenter};
use ts::Tracks;

/// How long the pipeline waits for the second sequence header before fixing the program to
/// the tracks it has seen (media time).
pub const PROBE_MS: i64 = 1_000;
/// Upper bound on frames buffered while probing, so a flood of same-timestamp tags cannot grow
/// memory.
pub const PROBE_MAX_FRAMES: usize = 512;

/// Segmenting and keying parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaConfig {
    /// Target segment duration: segments are cut at the first keyframe at or after it.
    pub segment_duration: Duration,
    /// A fresh key is drawn every this many segments (0 is treated as 1).
    pub segments_per_key: u32,
}

/// Source of key and IV bytes. The shell passes one backed by the OS CSPRNG (getrandom).
pub trait KeySource {
    /// Fills `buf` with unpredictable bytes.
    fn fill(&mut self, buf: &mut [u8; 16]);
}

/// Why a tag could not be processed. The tag is skipped; the pipeline stays usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    /// The FLV tag body is malformed, truncated or uses an unsupported codec.
    #[error(transparent)]
    Flv(#[from] FlvError),
    /// The H.264 payload's NAL unit framing is broken.
    #[error(transparent)]
    H264(#[from] H264Error),
    /// An AAC frame cannot be put into ADTS.
    #[error(transparent)]
    Adts(#[from] AdtsError),
}

impl MediaError {
    /// The publisher uses a codec gatecast cannot package; every further tag will fail too.
    pub fn is_unsupported_codec(&self) -> bool {
        matches!(self, Self::Flv(FlvError::UnsupportedCodec { .. }))
    }
}

/// One encrypted segment, ready for upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedSegment {
    /// Media sequence number; names the object (`layout::segment_path`).
    pub sequence: u64,
    /// Playback duration (EXTINF).
    pub duration: Duration,
    /// Wall-clock time of its first frame (EXT-X-PROGRAM-DATE-TIME).
    pub program_date_time: SystemTime,
    /// Sequence number of the first segment under this key; names the key object.
    pub key_id: u64,
    /// The AES-128 key.
    pub key: [u8; 16],
    /// True for the first segment under this key: the shell must store the key first.
    pub key_is_new: bool,
    /// The CBC IV, fresh per segment (written into the playlist's KEY tag).
    pub iv: [u8; 16],
    /// AES-128-CBC(PKCS7) ciphertext of the MPEG-TS segment.
    pub bytes: Bytes,
}

/// Extends 32-bit RTMP millisecond timestamps to a monotonic-ish 64-bit broadcast clock.
#[derive(Debug, Default)]
struct TimestampUnwrapper {
    last: Option<(u32, i64)>,
}

impl TimestampUnwrapper {
    fn extend(&mut self, raw: u32) -> i64 {
        let extended = match self.last {
            None => i64::from(raw),
            // Reinterpreting the wrapped difference as i32 gives the nearest signed step.
            Some((last_raw, last_extended)) => {
                last_extended.saturating_add(i64::from(raw.wrapping_sub(last_raw) as i32))
            }
        };
        self.last = Some((raw, extended));
        extended
    }
}

/// Where the pipeline is in a broadcast.
enum Stage {
    /// Waiting to learn which tracks the stream has.
    Probing { buffered: Vec<EsFrame> },
    /// Program fixed; frames go straight into the segmenter.
    Segmenting(Box<Segmenter>),
}

/// FLV tags in, encrypted MPEG-TS segments out. One per broadcast.
pub struct Pipeline {
    target_ms: i64,
    next_sequence: u64,
    started_at: SystemTime,
    clock: TimestampUnwrapper,
    avc: Option<AvcConfig>,
    aac: Option<AacConfig>,
    stage: Stage,
    key_schedule: crypto::KeySchedule,
    ready: VecDeque<EncryptedSegment>,
    buffers: SegmentBuffers,
}

impl Pipeline {
    /// `first_sequence`: media sequence number of the first segment (shell passes publish time
    /// in unix ms). `started_at`: wall-clock time of RTMP timestamp 0, used for
    /// PROGRAM-DATE-TIME.
    pub fn new(config: MediaConfig, first_sequence: u64, started_at: SystemTime) -> Self {
        Self {
            target_ms: i64::try_from(config.segment_duration.as_millis()).unwrap_or(i64::MAX),
            next_sequence: first_sequence,
            started_at,
            clock: TimestampUnwrapper::default(),
            avc: None,
            aac: None,
            stage: Stage::Probing {
                buffered: Vec::new(),
            },
            key_schedule: crypto::KeySchedule::new(config.segments_per_key),
            ready: VecDeque::new(),
            buffers: SegmentBuffers::default(),
        }
    }

    /// Muxes each segment into a buffer from `buffers`, the worker's shared pool (the shell
    /// hands finished segments back to it). Without it every segment's buffer is allocated anew.
    #[must_use]
    pub fn with_segment_buffers(mut self, buffers: SegmentBuffers) -> Self {
        self.buffers = buffers;
        self
    }

    /// Feeds one VIDEODATA tag body (rml_rtmp `VideoDataReceived`).
    pub fn handle_video(
        &mut self,
        timestamp_ms: u32,
        tag_body: &[u8],
        keys: &mut impl KeySource,
    ) -> Result<(), MediaError> {
        match flv::parse_video_tag(tag_body)? {
            VideoTag::Config(config) => {
                self.avc = Some(config);
                self.advance_probe(false);
            }
            VideoTag::Nalus {
                keyframe,
                composition_offset_ms,
                data,
            } => {
                // NALUs before the first sequence header cannot be framed: drop them.
                let Some(avc) = &self.avc else { return Ok(()) };
                let Some(unit) = h264::to_annex_b(avc, data, keyframe)? else {
                    return Ok(());
                };
                let dts_ms = self.clock.extend(timestamp_ms);
                // A negative offset would put PTS before DTS, which decoders reject.
                let pts_ms = dts_ms.saturating_add(i64::from(composition_offset_ms.max(0)));
                self.handle_frame(
                    EsFrame {
                        dts_ms,
                        payload: EsPayload::Video {
                            pts_ms,
                            keyframe: unit.keyframe,
                            annex_b: unit.annex_b,
                        },
                    },
                    keys,
                );
            }
            VideoTag::Ignored => {}
        }
        Ok(())
    }

    /// Feeds one AUDIODATA tag body (rml_rtmp `AudioDataReceived`).
    pub fn handle_audio(
        &mut self,
        timestamp_ms: u32,
        tag_body: &[u8],
        keys: &mut impl KeySource,
    ) -> Result<(), MediaError> {
        match flv::parse_audio_tag(tag_body)? {
            AudioTag::Config(config) => {
                self.aac = Some(config);
                self.advance_probe(false);
            }
            AudioTag::Frame(frame) => {
                let Some(aac) = &self.aac else { return Ok(()) };
                let adts = adts::to_adts(aac, frame)?;
                let dts_ms = self.clock.extend(timestamp_ms);
                self.handle_frame(
                    EsFrame {
                        dts_ms,
                        payload: EsPayload::Audio { adts },
                    },
                    keys,
                );
            }
        }
        Ok(())
    }

    /// Flushes the open segment (publisher stopped).
    pub fn handle_end_of_stream(&mut self, keys: &mut impl KeySource) -> Result<(), MediaError> {
        self.advance_probe(true);
        if let Stage::Segmenting(segmenter) = &mut self.stage {
            segmenter.handle_end();
        }
        self.encrypt_closed_segments(keys);
        Ok(())
    }

    /// Segments ready for upload, in order. Call after every handle_*.
    #[must_use]
    pub fn poll_segment(&mut self) -> Option<EncryptedSegment> {
        self.ready.pop_front()
    }

    fn handle_frame(&mut self, frame: EsFrame, keys: &mut impl KeySource) {
        let probe_over = match &mut self.stage {
            Stage::Segmenting(segmenter) => {
                segmenter.handle_frame(frame);
                false
            }
            Stage::Probing { buffered } => {
                buffered.push(frame);
                let first_ms = buffered.first().map_or(0, |f| f.dts_ms);
                let last_ms = buffered.last().map_or(0, |f| f.dts_ms);
                last_ms.saturating_sub(first_ms) >= PROBE_MS || buffered.len() >= PROBE_MAX_FRAMES
            }
        };
        if probe_over {
            self.advance_probe(true);
        }
        self.encrypt_closed_segments(keys);
    }

    /// Leaves the probing stage once both tracks are known, or `give_up` with what is known.
    fn advance_probe(&mut self, give_up: bool) {
        let tracks = Tracks {
            video: self.avc.is_some(),
            audio: self.aac.is_some(),
        };
        let complete = tracks.video && tracks.audio;
        if !matches!(self.stage, Stage::Probing { .. }) || !(complete || give_up) {
            return;
        }
        if !tracks.video && !tracks.audio {
            return; // nothing to mux yet; keep probing
        }
        let mut segmenter = Segmenter::new(self.target_ms, tracks, self.buffers.clone());
        if let Stage::Probing { buffered } = std::mem::replace(
            &mut self.stage,
            Stage::Probing {
                buffered: Vec::new(),
            },
        ) {
            for frame in buffered {
                segmenter.handle_frame(frame);
            }
        }
        self.stage = Stage::Segmenting(Box::new(segmenter));
    }

    fn encrypt_closed_segments(&mut self, keys: &mut impl KeySource) {
        let Stage::Segmenting(segmenter) = &mut self.stage else {
            return;
        };
        while let Some(closed) = segmenter.poll_segment() {
            let sequence = self.next_sequence;
            self.next_sequence += 1;
            let key = self.key_schedule.key_for(sequence, keys);
            let mut iv = [0u8; 16];
            keys.fill(&mut iv);
            let mut bytes = closed.bytes;
            crypto::encrypt_segment(&key.key, &iv, &mut bytes);
            let offset = Duration::from_millis(closed.start_ms.unsigned_abs());
            let program_date_time = if closed.start_ms >= 0 {
                self.started_at.checked_add(offset)
            } else {
                self.started_at.checked_sub(offset)
            }
            .unwrap_or(self.started_at);
            self.ready.push_back(EncryptedSegment {
                sequence,
                duration: Duration::from_millis(closed.duration_ms.unsigned_abs()),
                program_date_time,
                key_id: key.key_id,
                key: key.key,
                key_is_new: key.is_new,
                iv,
                bytes: Bytes::from(bytes),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_unwrap_past_32_bits_and_tolerate_small_steps_back() {
        let mut clock = TimestampUnwrapper::default();
        assert_eq!(clock.extend(u32::MAX - 40), i64::from(u32::MAX) - 40);
        assert_eq!(clock.extend(u32::MAX - 50), i64::from(u32::MAX) - 50);
        assert_eq!(clock.extend(u32::MAX), i64::from(u32::MAX));
        assert_eq!(clock.extend(25), i64::from(u32::MAX) + 26);
        assert_eq!(clock.extend(20), i64::from(u32::MAX) + 21);
        assert_eq!(clock.extend(1_000), i64::from(u32::MAX) + 1_001);
    }
}

//! Cuts the muxed stream into HLS segments.
//!
//! With video, a segment is cut in front of the first keyframe at or after the target duration,
//! so every segment starts with an IDR (plus PAT/PMT/PCR, see [`super::ts`]) and decodes on its
//! own. Audio-only streams are cut on time alone (every AAC frame is a random access point).
//! A publisher that never sends keyframes would grow a segment without bound; after
//! [`FORCED_CUT_FACTOR`] × target (or [`MAX_SEGMENT_BYTES`]) the segment is cut anyway.
//!
//! Times are milliseconds on the broadcast clock (RTMP timestamps already unwrapped past their
//! 32-bit wrap by the pipeline), so durations are plain differences.

use std::collections::VecDeque;

use super::buffers::SegmentBuffers;
use super::ts::{Tracks, TsMuxer};

/// A segment is cut without keyframe once it spans this many target durations.
pub const FORCED_CUT_FACTOR: i64 = 10;
/// A segment is cut without keyframe once it holds this many bytes.
pub const MAX_SEGMENT_BYTES: usize = 64 << 20;

/// One elementary stream frame, in arrival order.
#[derive(Debug)]
pub struct EsFrame {
    /// Decode time in ms.
    pub dts_ms: i64,
    /// What it carries.
    pub payload: EsPayload,
}

/// The codec-specific part of an [`EsFrame`].
#[derive(Debug)]
pub enum EsPayload {
    /// One Annex-B access unit.
    Video {
        /// Presentation time in ms (≥ DTS).
        pts_ms: i64,
        /// Segments may start here.
        keyframe: bool,
        /// Annex-B bytes.
        annex_b: Vec<u8>,
    },
    /// One ADTS frame.
    Audio {
        /// ADTS bytes.
        adts: Vec<u8>,
    },
}

/// A finished, still unencrypted segment.
#[derive(Debug)]
pub struct ClosedSegment {
    /// Broadcast time of its first frame in ms.
    pub start_ms: i64,
    /// Time until the next segment starts (or until the last frame ends, for the final one).
    pub duration_ms: i64,
    /// MPEG-TS bytes, starting with PAT/PMT.
    pub bytes: Vec<u8>,
}

struct OpenSegment {
    start_ms: i64,
    /// End of the latest frame (its time plus the previous inter-frame gap of its track).
    end_ms: i64,
    bytes: Vec<u8>,
}

/// Last decode time and gap of one track, to estimate when the final frame ends.
#[derive(Default, Clone, Copy)]
struct TrackClock {
    last_ms: Option<i64>,
    gap_ms: i64,
}

impl TrackClock {
    /// Records a frame at `ms`; returns its estimated end.
    fn handle_frame(&mut self, ms: i64) -> i64 {
        if let Some(last) = self.last_ms
            && ms > last
        {
            self.gap_ms = ms.saturating_sub(last);
        }
        self.last_ms = Some(ms);
        ms.saturating_add(self.gap_ms)
    }
}

/// Feeds frames through the muxer and cuts segments. Emits [`ClosedSegment`]s via
/// [`Segmenter::poll_segment`].
pub struct Segmenter {
    target_ms: i64,
    tracks: Tracks,
    muxer: TsMuxer,
    open: Option<OpenSegment>,
    video_clock: TrackClock,
    audio_clock: TrackClock,
    closed: VecDeque<ClosedSegment>,
    /// Where each new segment's buffer comes from.
    buffers: SegmentBuffers,
    /// Bytes of the last closed segment: the next one is allocated at about this size once,
    /// rather than grown by doubling (each step a copy, and fresh pages to fault in).
    last_segment_len: usize,
}

impl Segmenter {
    /// A segmenter for a program with `tracks`, cutting every `target_ms` (at keyframes), each
    /// segment in a buffer taken from `buffers`.
    pub fn new(target_ms: i64, tracks: Tracks, buffers: SegmentBuffers) -> Self {
        Self {
            target_ms: target_ms.max(0),
            tracks,
            muxer: TsMuxer::new(tracks),
            open: None,
            video_clock: TrackClock::default(),
            audio_clock: TrackClock::default(),
            closed: VecDeque::new(),
            buffers,
            last_segment_len: 0,
        }
    }

    /// The program's tracks.
    pub fn tracks(&self) -> Tracks {
        self.tracks
    }

    /// Muxes one frame, closing the open segment first if this frame starts a new one.
    /// Frames of a track the program does not declare, and frames before the first video
    /// keyframe, are dropped: nothing could decode them.
    pub fn handle_frame(&mut self, frame: EsFrame) {
        let dts_ms = frame.dts_ms;
        let (is_video, can_start_segment) = match &frame.payload {
            EsPayload::Video { keyframe, .. } => (true, *keyframe),
            EsPayload::Audio { .. } => (false, !self.tracks.video),
        };
        if (is_video && !self.tracks.video) || (!is_video && !self.tracks.audio) {
            return;
        }
        let starts_segment = match &self.open {
            None => can_start_segment,
            Some(open) => {
                let elapsed = dts_ms.saturating_sub(open.start_ms);
                (can_start_segment && elapsed >= self.target_ms)
                    || elapsed >= self.target_ms.max(1).saturating_mul(FORCED_CUT_FACTOR)
                    || open.bytes.len() >= MAX_SEGMENT_BYTES
            }
        };
        if starts_segment {
            self.close(Some(dts_ms));
            self.open = Some(OpenSegment {
                start_ms: dts_ms,
                end_ms: dts_ms,
                bytes: self.buffers.take(segment_capacity(self.last_segment_len)),
            });
        }
        let Some(open) = self.open.as_mut() else {
            return; // waiting for the first keyframe
        };
        let end_ms = match frame.payload {
            EsPayload::Video {
                pts_ms,
                keyframe,
                annex_b,
            } => {
                self.muxer.write_video(
                    dts_ms,
                    pts_ms,
                    starts_segment || keyframe,
                    annex_b,
                    &mut open.bytes,
                );
                self.video_clock.handle_frame(dts_ms)
            }
            EsPayload::Audio { adts } => {
                self.muxer
                    .write_audio(dts_ms, starts_segment, adts, &mut open.bytes);
                self.audio_clock.handle_frame(dts_ms)
            }
        };
        open.end_ms = open.end_ms.max(end_ms);
    }

    /// Closes the open segment (publisher stopped). The next frame starts a new one, at a
    /// keyframe when there is video.
    pub fn handle_end(&mut self) {
        self.close(None);
    }

    /// The next finished segment, oldest first.
    #[must_use]
    pub fn poll_segment(&mut self) -> Option<ClosedSegment> {
        self.closed.pop_front()
    }

    /// Closes the open segment, ending at `next_start_ms` or, at the end, at its last frame.
    fn close(&mut self, next_start_ms: Option<i64>) {
        if let Some(open) = self.open.take() {
            let end_ms = next_start_ms.unwrap_or(open.end_ms);
            self.last_segment_len = open.bytes.len();
            self.closed.push_back(ClosedSegment {
                start_ms: open.start_ms,
                duration_ms: end_ms.saturating_sub(open.start_ms).max(0),
                bytes: open.bytes,
            });
        }
    }
}

/// Capacity for a segment following one of `last_len` bytes: 1/8 more for a busier scene, plus
/// the encryptor's PKCS7 padding (up to one AES block) so padding never reallocates.
fn segment_capacity(last_len: usize) -> usize {
    last_len
        .saturating_add(last_len / 8)
        .saturating_add(16)
        .min(MAX_SEGMENT_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(dts_ms: i64, keyframe: bool) -> EsFrame {
        EsFrame {
            dts_ms,
            payload: EsPayload::Video {
                pts_ms: dts_ms + 80,
                keyframe,
                annex_b: vec![
                    0,
                    0,
                    0,
                    1,
                    0x09,
                    0xF0,
                    0,
                    0,
                    0,
                    1,
                    if keyframe { 0x65 } else { 0x41 },
                    0x88,
                ],
            },
        }
    }

    fn audio(dts_ms: i64) -> EsFrame {
        EsFrame {
            dts_ms,
            payload: EsPayload::Audio {
                adts: vec![0xFF, 0xF1, 0x50, 0x80, 0x01, 0x1F, 0xFC, 0x00],
            },
        }
    }

    fn segments(segmenter: &mut Segmenter) -> Vec<(i64, i64)> {
        std::iter::from_fn(|| segmenter.poll_segment())
            .map(|s| (s.start_ms, s.duration_ms))
            .collect()
    }

    #[test]
    fn cuts_at_the_first_keyframe_after_the_target() {
        let mut segmenter = Segmenter::new(
            2000,
            Tracks {
                video: true,
                audio: true,
            },
            SegmentBuffers::default(),
        );
        // Audio and a delta frame before the first keyframe are dropped.
        segmenter.handle_frame(audio(0));
        segmenter.handle_frame(video(0, false));
        // Keyframes at 40, 1540 (too early), 3040, 4000 (too early), 5040 (cut), 6000.
        for ms in (40..6040).step_by(40) {
            let keyframe = [40, 1540, 3040, 4000, 5040].contains(&ms);
            segmenter.handle_frame(video(ms, keyframe));
            segmenter.handle_frame(audio(ms + 3));
        }
        assert_eq!(segments(&mut segmenter), [(40, 3000), (3040, 2000)]);
        segmenter.handle_end();
        // The last frame is at 6003 (audio) + 40 ms gap.
        assert_eq!(segments(&mut segmenter), [(5040, 1003)]);
    }

    #[test]
    fn audio_only_cuts_on_time() {
        let mut segmenter = Segmenter::new(
            1000,
            Tracks {
                video: false,
                audio: true,
            },
            SegmentBuffers::default(),
        );
        for frame in 0..100 {
            segmenter.handle_frame(audio(frame * 23));
        }
        segmenter.handle_end();
        let cut = segments(&mut segmenter);
        // 1012 = 44 * 23 is the first frame time at or past 1000 ms.
        assert_eq!(cut, [(0, 1012), (1012, 1012), (2024, 276)]);
    }

    #[test]
    fn every_segment_starts_with_pat_and_a_key_video_pes() {
        let mut segmenter = Segmenter::new(
            1000,
            Tracks {
                video: true,
                audio: true,
            },
            SegmentBuffers::default(),
        );
        for ms in (0..4000).step_by(40) {
            segmenter.handle_frame(video(ms, ms % 1000 == 0));
            segmenter.handle_frame(audio(ms));
        }
        segmenter.handle_end();
        let all: Vec<_> = std::iter::from_fn(|| segmenter.poll_segment()).collect();
        assert_eq!(all.len(), 4);
        for segment in all {
            let pid = |packet: &[u8]| (u16::from(packet[1] & 0x1F) << 8) | u16::from(packet[2]);
            let packets: Vec<_> = segment.bytes.chunks(188).collect();
            assert_eq!(pid(packets[0]), 0, "PAT first");
            assert_eq!(pid(packets[1]), super::super::ts::PMT_PID, "PMT second");
            assert_eq!(packets[0][1] & 0x40, 0x40, "PAT starts a section");
        }
    }

    #[test]
    fn no_keyframes_force_a_cut_eventually() {
        let mut segmenter = Segmenter::new(
            100,
            Tracks {
                video: true,
                audio: false,
            },
            SegmentBuffers::default(),
        );
        segmenter.handle_frame(video(0, true));
        for ms in (40..2000).step_by(40) {
            segmenter.handle_frame(video(ms, false));
        }
        assert_eq!(segments(&mut segmenter), [(0, 1000)]);
    }
}

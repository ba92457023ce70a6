//! MPEG-TS multiplexing on top of `libmpegts`' single-program multiplexer.
//!
//! One [`TsMuxer`] lives for the whole broadcast, so continuity counters run on across segment
//! boundaries (a player appending segment n+1 after n sees no CC jump). PAT, PMT and a PCR are
//! written by `libmpegts` in front of every frame pushed as `random_access`; the segmenter marks
//! the first frame of every segment that way, so every segment starts with PAT/PMT.

use libmpegts::mux::{Multiplexer, MuxFrame, MuxService, MuxStream};
use libmpegts::pes::PtsDts;
use libmpegts::ts::PACKET_SIZE;

/// PID of the PMT (ffmpeg's default, familiar in analyzers).
pub const PMT_PID: u16 = 0x1000;
/// PID of the H.264 stream.
pub const VIDEO_PID: u16 = 0x100;
/// PID of the AAC stream.
pub const AUDIO_PID: u16 = 0x101;
const STREAM_TYPE_H264: u8 = 0x1B;
const STREAM_TYPE_AAC_ADTS: u8 = 0x0F;
/// Offset added to every 90 kHz timestamp. `libmpegts` sends the PCR 700 ms ahead of the DTS;
/// without an offset the first PCR of a stream starting at 0 would wrap to 2^33 - 63000.
/// 1.4 s is what ffmpeg uses.
pub const TIMESTAMP_OFFSET_90KHZ: i64 = 126_000;
/// Packets drained per further step, should a frame need more than [`packets_for_frame`].
const DRAIN_PACKETS: usize = 64;
/// PAT, PMT and a PCR packet, which `libmpegts` may write in front of any frame.
const PSI_AND_PCR_PACKETS: usize = 3;
/// A PES header with PTS and DTS.
const PES_HEADER_MAX: usize = 19;
/// Fewest payload bytes a PES packet carries (184 less an adaptation field's flags, with room
/// to spare; the last packet's stuffing is counted by rounding up).
const MIN_PES_PAYLOAD: usize = 176;

/// At least as many packets as `libmpegts` writes for a frame of `len` bytes, plus one.
///
/// Why: the drain buffer must be initialised (zeroed) before `libmpegts` writes into it.
/// A fixed 64 packets zeroed 12 KB for every frame, most of it for nothing: an AAC frame fills
/// three packets. At 576 streams that zeroing was ~13 % of the worker's CPU samples. The spare
/// packet makes a full drain mean "there may be more", so an exact estimate still stops after
/// one call; should the estimate ever fall short, `write` simply drains again.
fn packets_for_frame(len: usize) -> usize {
    PSI_AND_PCR_PACKETS + (len + PES_HEADER_MAX).div_ceil(MIN_PES_PAYLOAD) + 1
}

/// Which elementary streams the program carries, fixed when the broadcast starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tracks {
    /// An H.264 stream is declared.
    pub video: bool,
    /// An AAC stream is declared.
    pub audio: bool,
}

/// Converts milliseconds on the broadcast clock to a 33-bit 90 kHz timestamp.
pub fn to_90khz(ms: i64) -> u64 {
    // Wrapping arithmetic is exact modulo 2^64, hence modulo 2^33 too; rem_euclid keeps the
    // value in 0..2^33 for (rare) negative times. A hostile publisher pushing timestamps
    // towards i64::MAX therefore gets wrapped timestamps, not an overflow panic.
    ms.wrapping_mul(90)
        .wrapping_add(TIMESTAMP_OFFSET_90KHZ)
        .rem_euclid(1 << 33) as u64
}

/// A persistent MPEG-TS multiplexer that appends whole frames to a caller's buffer.
pub struct TsMuxer {
    mux: Multiplexer,
    video_index: Option<usize>,
    audio_index: Option<usize>,
}

impl TsMuxer {
    /// A program with the given tracks; the PCR rides on the video PID if there is one.
    pub fn new(tracks: Tracks) -> Self {
        let mut streams = Vec::new();
        if tracks.video {
            streams.push(MuxStream {
                stream_type: STREAM_TYPE_H264,
                elementary_pid: VIDEO_PID,
                stream_descriptors: Vec::new(),
            });
        }
        if tracks.audio || !tracks.video {
            streams.push(MuxStream {
                stream_type: STREAM_TYPE_AAC_ADTS,
                elementary_pid: AUDIO_PID,
                stream_descriptors: Vec::new(),
            });
        }
        let pcr_pid = if tracks.video { VIDEO_PID } else { AUDIO_PID };
        let mut mux = Multiplexer::new(1);
        // `add_service` panics if the PCR PID is not one of the streams; it always is here.
        mux.add_service(&MuxService {
            program_number: 1,
            pmt_pid: PMT_PID,
            pcr_pid,
            program_descriptors: Vec::new(),
            service_descriptors: Vec::new(),
            streams,
        });
        Self {
            video_index: mux.stream_index(VIDEO_PID).filter(|_| tracks.video),
            audio_index: mux.stream_index(AUDIO_PID).filter(|_| tracks.audio),
            mux,
        }
    }

    /// Muxes one H.264 access unit. `random_access` writes PAT/PMT/PCR in front and sets the
    /// random access indicator. Does nothing if the program has no video.
    pub fn write_video(
        &mut self,
        dts_ms: i64,
        pts_ms: i64,
        random_access: bool,
        annex_b: Vec<u8>,
        out: &mut Vec<u8>,
    ) {
        let pts_dts = if pts_ms == dts_ms {
            PtsDts::new(to_90khz(pts_ms))
        } else {
            PtsDts::new(to_90khz(pts_ms)).with_dts(to_90khz(dts_ms))
        };
        if let Some(index) = self.video_index {
            self.write(index, pts_dts, random_access, annex_b, out);
        }
    }

    /// Muxes one ADTS frame. Does nothing if the program has no audio.
    pub fn write_audio(
        &mut self,
        pts_ms: i64,
        random_access: bool,
        adts: Vec<u8>,
        out: &mut Vec<u8>,
    ) {
        if let Some(index) = self.audio_index {
            self.write(
                index,
                PtsDts::new(to_90khz(pts_ms)),
                random_access,
                adts,
                out,
            );
        }
    }

    fn write(
        &mut self,
        index: usize,
        pts_dts: PtsDts,
        random_access: bool,
        data: Vec<u8>,
        out: &mut Vec<u8>,
    ) {
        let mut packets = packets_for_frame(data.len());
        self.mux.push_frame(
            index,
            MuxFrame {
                data,
                is_key_frame: random_access,
                pts_dts: Some(pts_dts),
            },
        );
        loop {
            let start = out.len();
            out.resize(start + packets * PACKET_SIZE, 0);
            let written = self.mux.drain(&mut out[start..]);
            out.truncate(start + written);
            if written < packets * PACKET_SIZE {
                break;
            }
            packets = DRAIN_PACKETS;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Video access units and audio frames of the sizes a 720p stream carries (a keyframe
    /// of 60 kB, inter frames of 200 B to 12 kB, AAC frames of 7 to 400 B), as a publisher
    /// interleaves them.
    fn frames() -> Vec<(bool, i64, bool, Vec<u8>)> {
        let mut frames = Vec::new();
        for index in 0..90i64 {
            let video_len = if index % 30 == 0 {
                60_000
            } else {
                200 + (index as usize * 137) % 12_000
            };
            let fill = (index % 251) as u8;
            frames.push((true, index * 33, index % 30 == 0, vec![fill; video_len]));
            let audio_len = 7 + (index as usize * 53) % 400;
            frames.push((false, index * 33 + 5, false, vec![fill ^ 0x5A; audio_len]));
        }
        frames
    }

    #[test]
    fn drains_each_frame_whole_and_as_a_packet_by_packet_drain_does() {
        let tracks = Tracks {
            video: true,
            audio: true,
        };
        let mut muxer = TsMuxer::new(tracks);
        let mut ours = Vec::new();
        // The oracle: libmpegts itself, drained one packet at a time, so no buffer size of
        // ours is involved.
        let mut oracle = TsMuxer::new(tracks);
        let mut expected = Vec::new();
        for (is_video, at_ms, random_access, data) in frames() {
            let before = ours.len();
            if is_video {
                muxer.write_video(at_ms, at_ms, random_access, data.clone(), &mut ours);
            } else {
                muxer.write_audio(at_ms, random_access, data.clone(), &mut ours);
            }
            let written_packets = (ours.len() - before) / PACKET_SIZE;
            assert!(
                written_packets < packets_for_frame(data.len()),
                "a {} byte frame took {written_packets} packets",
                data.len()
            );
            let index = if is_video {
                oracle.video_index
            } else {
                oracle.audio_index
            };
            let Some(index) = index else {
                panic!("both tracks are declared");
            };
            oracle.mux.push_frame(
                index,
                MuxFrame {
                    data,
                    is_key_frame: random_access,
                    pts_dts: Some(PtsDts::new(to_90khz(at_ms))),
                },
            );
            let mut packet = [0u8; PACKET_SIZE];
            while oracle.mux.drain(&mut packet) == PACKET_SIZE {
                expected.extend_from_slice(&packet);
            }
        }
        assert_eq!(ours.len() % PACKET_SIZE, 0);
        assert!(
            ours == expected,
            "the muxed bytes differ from the packet-by-packet drain"
        );
    }
}

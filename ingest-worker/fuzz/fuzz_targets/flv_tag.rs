//! Fuzzes the FLV tag parsers and the whole media pipeline behind them.
//!
//! Input layout: the whole input is split once as an FLV file and parsed once as a video and
//! once as an audio tag body; then it is read as a sequence of records
//! `[kind: u8][timestamp: u32 BE][len: u16 BE][body]` fed to one `Pipeline` (kind bit 0:
//! video/audio), so state carried between tags (codec configs, probing, segmenting, timestamp
//! unwrapping) is exercised too. Any panic is a bug: malformed
//! input must come back as a `MediaError`.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use gatecast_ingest::media::flv::{parse_audio_tag, parse_video_tag, split_file};
use gatecast_ingest::media::{KeySource, MediaConfig, Pipeline};
use libfuzzer_sys::fuzz_target;

struct FixedKeys;

impl KeySource for FixedKeys {
    fn fill(&mut self, buf: &mut [u8; 16]) {
        *buf = [0x5A; 16];
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = split_file(data);
    let _ = parse_video_tag(data);
    let _ = parse_audio_tag(data);

    let config = MediaConfig { segment_duration: Duration::from_millis(500), segments_per_key: 2 };
    let mut pipeline = Pipeline::new(config, 1, UNIX_EPOCH);
    let mut keys = FixedKeys;
    let mut rest = data;
    while rest.len() >= 7 {
        let kind = rest[0];
        let timestamp = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]);
        let len = usize::from(u16::from_be_bytes([rest[5], rest[6]])).min(rest.len() - 7);
        let body = &rest[7..7 + len];
        rest = &rest[7 + len..];
        let _ = if kind & 1 == 0 {
            pipeline.handle_video(timestamp, body, &mut keys)
        } else {
            pipeline.handle_audio(timestamp, body, &mut keys)
        };
        while pipeline.poll_segment().is_some() {}
    }
    let _ = pipeline.handle_end_of_stream(&mut keys);
    while pipeline.poll_segment().is_some() {}
});

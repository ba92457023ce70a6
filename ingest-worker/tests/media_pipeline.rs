//! The media pipeline end to end on real bytes: ffmpeg-made FLV in, encrypted segments out,
//! decrypted with the openssl CLI, checked with `mpeg2ts` and ffprobe.
#![allow(clippy::unwrap_used, missing_docs)]

mod media_support;

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gatecast_ingest::media::{EncryptedSegment, FlvError, MediaConfig, MediaError, Pipeline};
use media_support::*;
use mpeg2ts::es::StreamType;
use mpeg2ts::ts::{ReadTsPacket, TsPacketReader, TsPayload};

const FIRST_SEQUENCE: u64 = 1_700_000_000_000;
const VIDEO_PID: u16 = 0x100;
const AUDIO_PID: u16 = 0x101;

fn started_at() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(FIRST_SEQUENCE)
}

fn two_second_config() -> MediaConfig {
    MediaConfig {
        segment_duration: Duration::from_secs(2),
        segments_per_key: 2,
    }
}

/// What the TS checker saw in one segment.
#[derive(Debug, Default)]
struct SegmentReport {
    first_pids: Vec<u16>,
    pmt_streams: Vec<(StreamType, u16)>,
    pcr_pid: Option<u16>,
    /// First video PES: random access indicator set, and its first packet carries an SPS.
    starts_with_keyframe: bool,
    video_dts: Vec<u64>,
    audio_pts: Vec<u64>,
    pcrs: Vec<u64>,
}

/// Parses one decrypted segment with `mpeg2ts`, checking continuity counters against
/// `counters` (carried over from the previous segment of the same stream).
fn check_ts(bytes: &[u8], counters: &mut HashMap<u16, u8>) -> SegmentReport {
    assert_eq!(bytes.len() % 188, 0, "whole TS packets");
    let mut reader = TsPacketReader::new(bytes);
    let mut report = SegmentReport::default();
    let mut seen_video_pes = false;
    while let Some(packet) = reader.read_ts_packet().expect("valid TS") {
        let pid = packet.header.pid.as_u16();
        if report.first_pids.len() < 2 {
            report.first_pids.push(pid);
        }
        let cc = packet.header.continuity_counter.as_u8();
        let has_payload = packet.payload.is_some();
        if let Some(&previous) = counters.get(&pid) {
            let expected = if has_payload {
                (previous + 1) % 16
            } else {
                previous
            };
            assert_eq!(cc, expected, "continuity counter on PID {pid:#x}");
        }
        counters.insert(pid, cc);
        if let Some(pcr) = packet.adaptation_field.as_ref().and_then(|af| af.pcr) {
            report.pcrs.push(pcr.as_u64());
        }
        let random_access = packet
            .adaptation_field
            .as_ref()
            .is_some_and(|af| af.random_access_indicator);
        match packet.payload {
            Some(TsPayload::Pmt(pmt)) => {
                report.pcr_pid = pmt.pcr_pid.map(|p| p.as_u16());
                report.pmt_streams = pmt
                    .es_info
                    .iter()
                    .map(|es| (es.stream_type, es.elementary_pid.as_u16()))
                    .collect();
            }
            Some(TsPayload::Pes(pes)) if pid == VIDEO_PID => {
                let pts = pes.header.pts.expect("video PTS").as_u64();
                let dts = pes.header.dts.map_or(pts, |d| d.as_u64());
                assert!(pts >= dts, "PTS {pts} before DTS {dts}");
                if !seen_video_pes {
                    seen_video_pes = true;
                    // AUD, then SPS (NAL type 7) right behind it.
                    let data: &[u8] = &pes.data;
                    report.starts_with_keyframe = random_access
                        && data.starts_with(&[0, 0, 0, 1, 0x09, 0xF0, 0, 0, 0, 1])
                        && data[10] & 0x1F == 7;
                }
                report.video_dts.push(dts);
            }
            Some(TsPayload::Pes(pes)) if pid == AUDIO_PID => {
                report
                    .audio_pts
                    .push(pes.header.pts.expect("audio PTS").as_u64());
            }
            _ => {}
        }
    }
    report
}

fn assert_increasing(values: &[u64], what: &str) {
    for pair in values.windows(2) {
        assert!(
            pair[1] > pair[0],
            "{what} not increasing: {} then {}",
            pair[0],
            pair[1]
        );
    }
}

fn decrypt_all(segments: &[EncryptedSegment], dir: &std::path::Path) -> Vec<Vec<u8>> {
    segments
        .iter()
        .map(|s| openssl_decrypt(s, dir).expect("openssl decrypts"))
        .collect()
}

#[test]
fn av_fixture_becomes_decryptable_h264_aac_segments() {
    let tags = fixture_tags("av_6s.flv");
    let segments =
        run_pipeline(&tags, two_second_config(), FIRST_SEQUENCE, started_at(), 0).unwrap();

    // Keyframes every 2 s over 6 s: three segments of about 2 s.
    assert_eq!(segments.len(), 3, "{segments:#?}");
    let sequences: Vec<_> = segments.iter().map(|s| s.sequence).collect();
    assert_eq!(
        sequences,
        [FIRST_SEQUENCE, FIRST_SEQUENCE + 1, FIRST_SEQUENCE + 2]
    );
    let keys: Vec<_> = segments.iter().map(|s| (s.key_id, s.key_is_new)).collect();
    assert_eq!(
        keys,
        [
            (FIRST_SEQUENCE, true),
            (FIRST_SEQUENCE, false),
            (FIRST_SEQUENCE + 2, true)
        ]
    );
    assert_eq!(segments[0].key, segments[1].key);
    assert_ne!(segments[1].key, segments[2].key);
    assert_ne!(segments[0].iv, segments[1].iv, "fresh IV per segment");
    for segment in &segments {
        let seconds = segment.duration.as_secs_f64();
        assert!((1.9..=2.2).contains(&seconds), "duration {seconds}");
        assert_eq!(segment.bytes.len() % 16, 0);
    }
    // PROGRAM-DATE-TIME advances by the segment durations.
    for pair in segments.windows(2) {
        assert_eq!(
            pair[1]
                .program_date_time
                .duration_since(pair[0].program_date_time)
                .unwrap(),
            pair[0].duration
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let plaintexts = decrypt_all(&segments, dir.path());
    let mut counters = HashMap::new();
    let mut previous_video_dts = None;
    let mut all_pcrs = Vec::new();
    for (segment, plaintext) in segments.iter().zip(&plaintexts) {
        let report = check_ts(plaintext, &mut counters);
        assert_eq!(report.first_pids, [0, 0x1000], "PAT then PMT first");
        assert_eq!(
            report.pmt_streams,
            [
                (StreamType::H264, VIDEO_PID),
                (StreamType::AdtsAac, AUDIO_PID)
            ]
        );
        assert_eq!(report.pcr_pid, Some(VIDEO_PID));
        assert!(
            report.starts_with_keyframe,
            "segment {} starts with AUD+SPS and RAI",
            segment.sequence
        );
        assert_increasing(&report.video_dts, "video DTS");
        assert_increasing(&report.audio_pts, "audio PTS");
        assert!(!report.pcrs.is_empty(), "PCR in every segment");
        all_pcrs.extend(&report.pcrs);
        if let Some(previous) = previous_video_dts {
            assert!(
                report.video_dts[0] > previous,
                "DTS continues across segments"
            );
        }
        previous_video_dts = report.video_dts.last().copied();

        // ffprobe on the decrypted segment on its own.
        let path = dir.path().join(format!("{}.ts", segment.sequence));
        std::fs::write(&path, plaintext).unwrap();
        let probe = ffprobe(&path).unwrap();
        assert_eq!(probe.format, "mpegts");
        assert_eq!(probe.codecs, ["h264", "aac"], "{probe:?}");
        let expected = segment.duration.as_secs_f64();
        assert!(
            (probe.duration - expected).abs() < 0.15,
            "ffprobe {} vs {expected}",
            probe.duration
        );
    }

    assert_increasing(&all_pcrs, "PCR across the broadcast");

    // The whole broadcast decodes without errors when the segments are played back to back.
    let joined = dir.path().join("all.ts");
    std::fs::write(&joined, plaintexts.concat()).unwrap();
    let decode = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-xerror", "-i"])
        .arg(&joined)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(
        decode.status.success(),
        "{}",
        String::from_utf8_lossy(&decode.stderr)
    );
    assert!(
        decode.stderr.is_empty(),
        "decoder complaints: {}",
        String::from_utf8_lossy(&decode.stderr)
    );
}

#[test]
fn timestamps_crossing_the_32_bit_wrap_segment_the_same() {
    let tags = fixture_tags("av_6s.flv");
    let plain = run_pipeline(&tags, two_second_config(), 1, started_at(), 0).unwrap();
    // RTMP timestamps start 3 s before the wrap and cross it in the middle segment.
    let shift = u32::MAX - 3_000;
    let wrapped = run_pipeline(&tags, two_second_config(), 1, started_at(), shift).unwrap();
    let durations =
        |segments: &[EncryptedSegment]| segments.iter().map(|s| s.duration).collect::<Vec<_>>();
    assert_eq!(durations(&wrapped), durations(&plain));
    let offset = Duration::from_millis(u64::from(shift));
    for (w, p) in wrapped.iter().zip(&plain) {
        assert_eq!(w.program_date_time, p.program_date_time + offset);
    }
    let dir = tempfile::tempdir().unwrap();
    let joined = dir.path().join("wrapped.ts");
    std::fs::write(&joined, decrypt_all(&wrapped, dir.path()).concat()).unwrap();
    let probe = ffprobe(&joined).unwrap();
    assert_eq!(probe.codecs, ["h264", "aac"]);
    let total: f64 = plain.iter().map(|s| s.duration.as_secs_f64()).sum();
    assert!(
        (probe.duration - total).abs() < 0.2,
        "ffprobe {} vs {total}",
        probe.duration
    );
}

#[test]
fn audio_only_stream_is_cut_on_time() {
    let dir = tempfile::tempdir().unwrap();
    let tags = ffmpeg_flv(
        dir.path(),
        "audio.flv",
        &[
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=300:sample_rate=48000",
            "-t",
            "5",
            "-c:a",
            "aac",
        ],
    )
    .unwrap();
    let segments = run_pipeline(&tags, two_second_config(), 5, started_at(), 0).unwrap();
    let durations: Vec<_> = segments.iter().map(|s| s.duration.as_secs_f64()).collect();
    assert_eq!(durations.len(), 3, "{durations:?}");
    // AAC frames are 1024 / 48000 s ≈ 21.3 ms: the cut lands within one frame of the target.
    for duration in &durations[..2] {
        assert!((2.0..2.03).contains(duration), "{durations:?}");
    }
    let mut counters = HashMap::new();
    for (segment, plaintext) in segments.iter().zip(decrypt_all(&segments, dir.path())) {
        let report = check_ts(&plaintext, &mut counters);
        assert_eq!(report.first_pids, [0, 0x1000]);
        assert_eq!(report.pmt_streams, [(StreamType::AdtsAac, AUDIO_PID)]);
        assert_eq!(report.pcr_pid, Some(AUDIO_PID));
        assert_increasing(&report.audio_pts, "audio PTS");
        assert!(!report.pcrs.is_empty(), "PCR in every segment");
        let path = dir.path().join(format!("{}.ts", segment.sequence));
        std::fs::write(&path, &plaintext).unwrap();
        assert_eq!(ffprobe(&path).unwrap().codecs, ["aac"]);
    }
}

#[test]
fn unsupported_codecs_from_ffmpeg_are_refused_with_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let tags = ffmpeg_flv(
        dir.path(),
        "legacy.flv",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=64x64:rate=5",
            "-f",
            "lavfi",
            "-i",
            "sine",
            "-t",
            "1",
        ]
        .into_iter()
        .chain(["-c:v", "flv1", "-c:a", "adpcm_swf", "-ar", "22050"])
        .collect::<Vec<_>>(),
    )
    .unwrap();
    let mut pipeline = Pipeline::new(two_second_config(), 0, started_at());
    let mut keys = TestKeys(1);
    let video = tags.iter().find(|t| t.kind == TAG_VIDEO).unwrap();
    let error = pipeline
        .handle_video(video.timestamp, &video.body, &mut keys)
        .unwrap_err();
    assert!(error.is_unsupported_codec(), "{error}");
    let audio = tags.iter().find(|t| t.kind == TAG_AUDIO).unwrap();
    let error = pipeline
        .handle_audio(audio.timestamp, &audio.body, &mut keys)
        .unwrap_err();
    assert!(
        matches!(
            error,
            MediaError::Flv(FlvError::UnsupportedCodec { codec_id: 1, .. })
        ),
        "{error}"
    );
}

#[test]
fn truncated_and_corrupted_tags_are_typed_errors_and_the_pipeline_recovers() {
    let tags = fixture_tags("av_6s.flv");
    let mut pipeline = Pipeline::new(two_second_config(), 0, started_at());
    let mut keys = TestKeys(7);
    let mut errors = 0;
    for tag in &tags {
        let lengths = (0..tag.body.len().min(64)).chain((64..tag.body.len()).step_by(997));
        for len in lengths {
            let mut body = tag.body[..len].to_vec();
            // Also corrupt one byte past the headers.
            if let Some(byte) = body.get_mut(len / 2 + 5) {
                *byte ^= 0x5A;
            }
            let result = match tag.kind {
                TAG_VIDEO => pipeline.handle_video(tag.timestamp, &body, &mut keys),
                TAG_AUDIO => pipeline.handle_audio(tag.timestamp, &body, &mut keys),
                _ => Ok(()),
            };
            if result.is_err() {
                errors += 1;
            }
            while pipeline.poll_segment().is_some() {}
        }
    }
    assert!(
        errors > 100,
        "broken input must be reported, saw {errors} errors"
    );

    // After all that, the real stream still goes through a fresh pipeline, and the damaged
    // one still accepts tags without panicking.
    for tag in &tags {
        let _ = match tag.kind {
            TAG_VIDEO => pipeline.handle_video(tag.timestamp + 10_000, &tag.body, &mut keys),
            TAG_AUDIO => pipeline.handle_audio(tag.timestamp + 10_000, &tag.body, &mut keys),
            _ => Ok(()),
        };
    }
    pipeline.handle_end_of_stream(&mut keys).unwrap();
    assert!(pipeline.poll_segment().is_some());
}

/// The playlist, keys and segments together, laid out as the uploader stores them, play back
/// through ffmpeg's HLS demuxer (which fetches each key named in the KEY tags and decrypts with
/// the playlist's IVs): catches any mismatch between playlist text and segment encryption.
#[test]
fn stored_layout_plays_through_ffmpegs_hls_demuxer() {
    use gatecast_core::layout::{StreamName, key_path, live_playlist_path, segment_path};
    use gatecast_ingest::media::{LivePlaylist, PlaylistConfig};

    let tags = fixture_tags("av_6s.flv");
    let config = MediaConfig {
        segment_duration: Duration::from_secs(1),
        segments_per_key: 2,
    };
    let segments = run_pipeline(&tags, config, FIRST_SEQUENCE, started_at(), 0).unwrap();
    assert_eq!(
        segments.len(),
        3,
        "keyframes every 2 s win over a 1 s target"
    );

    let root = tempfile::tempdir().unwrap();
    let name = StreamName::parse("benw").unwrap();
    // Absolute key URIs into the temp dir stand in for the key function.
    let key_uri_prefix = format!("{}/keys", root.path().display());
    let mut playlist = LivePlaylist::new(
        name.clone(),
        PlaylistConfig {
            window: 10,
            key_uri_prefix,
            record: true,
        },
    );
    let store = |path: String, bytes: &[u8]| {
        let full = root.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, bytes).unwrap();
    };
    for segment in &segments {
        if segment.key_is_new {
            store(key_path(&name, segment.key_id), &segment.key);
        }
        store(segment_path(&name, segment.sequence), &segment.bytes);
        playlist.handle_segment_stored(segment);
    }
    playlist.handle_end();
    store(live_playlist_path(&name), playlist.render_live().as_bytes());

    // Decrypt every segment with the key file and IV the playlist names (openssl CLI): a wrong
    // IV only garbles the first 16 bytes, which ffmpeg would quietly resync past.
    let live_text = playlist.render_live();
    let playlist_dir = root.path().join(live_playlist_path(&name));
    let playlist_dir = playlist_dir.parent().unwrap();
    let mut current_key: Option<(String, String)> = None;
    let mut decrypted = 0;
    for line in live_text.lines() {
        if let Some(attributes) = line.strip_prefix("#EXT-X-KEY:") {
            let uri = attributes
                .split("URI=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            let iv = attributes.split("IV=0x").nth(1).unwrap();
            let key: String = std::fs::read(uri)
                .unwrap()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            current_key = Some((key, iv.to_owned()));
        } else if !line.starts_with('#') {
            let (key, iv) = current_key.as_ref().expect("KEY tag before the segment");
            let output = std::process::Command::new("openssl")
                .args(["enc", "-d", "-aes-128-cbc", "-K", key, "-iv", iv, "-in"])
                .arg(playlist_dir.join(line))
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "{line}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            let ts = output.stdout;
            assert!(
                ts.len().is_multiple_of(188) && ts.chunks(188).all(|p| p[0] == 0x47),
                "{line}"
            );
            assert_eq!((ts[1] & 0x1F, ts[2]), (0, 0), "{line} starts with the PAT");
            decrypted += 1;
        }
    }
    assert_eq!(decrypted, segments.len());

    let output = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-allowed_extensions", "ALL", "-i"])
        .arg(root.path().join(live_playlist_path(&name)))
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let probe = ffprobe_with(
        &["-allowed_extensions", "ALL"],
        &root.path().join(live_playlist_path(&name)),
    )
    .unwrap();
    assert_eq!(probe.codecs, ["h264", "aac"]);
    let total: f64 = segments.iter().map(|s| s.duration.as_secs_f64()).sum();
    assert!(
        (probe.duration - total).abs() < 0.2,
        "ffprobe {} vs {total}",
        probe.duration
    );
}

//! Test support for the media pipeline tests: an FLV file reader (container → tag bodies, as
//! rml_rtmp would deliver them), a deterministic key source, and wrappers around the real
//! `openssl`, `ffmpeg` and `ffprobe` CLIs.
#![allow(dead_code, clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use gatecast_ingest::media::{EncryptedSegment, KeySource, MediaConfig, MediaError, Pipeline, flv};

pub use gatecast_ingest::media::flv::{TAG_TYPE_AUDIO as TAG_AUDIO, TAG_TYPE_VIDEO as TAG_VIDEO};

/// One FLV tag: type, 32-bit timestamp, body.
#[derive(Debug, Clone)]
pub struct FlvTag {
    pub kind: u8,
    pub timestamp: u32,
    pub body: Vec<u8>,
}

/// An FLV file's tags, owned (the worker's own splitter, `flv::split_file`).
pub fn read_flv(bytes: &[u8]) -> Result<Vec<FlvTag>> {
    Ok(flv::split_file(bytes)?
        .into_iter()
        .map(|tag| FlvTag {
            kind: tag.tag_type,
            timestamp: tag.timestamp_ms,
            body: tag.body.to_vec(),
        })
        .collect())
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn fixture_tags(name: &str) -> Vec<FlvTag> {
    read_flv(&std::fs::read(fixture(name)).unwrap()).unwrap()
}

/// Deterministic xorshift bytes: the tests check the crypto by decrypting, so key quality is
/// irrelevant here, reproducibility is not.
pub struct TestKeys(pub u64);

impl KeySource for TestKeys {
    fn fill(&mut self, buf: &mut [u8; 16]) {
        for byte in buf.iter_mut() {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *byte = self.0 as u8;
        }
    }
}

/// Feeds `tags` to a pipeline (timestamps shifted by `shift`, wrapping like RTMP's), ends the
/// stream and collects every segment.
pub fn run_pipeline(
    tags: &[FlvTag],
    config: MediaConfig,
    first_sequence: u64,
    started_at: std::time::SystemTime,
    shift: u32,
) -> Result<Vec<EncryptedSegment>, MediaError> {
    let mut pipeline = Pipeline::new(config, first_sequence, started_at);
    let mut keys = TestKeys(0x9E37_79B9_7F4A_7C15);
    let mut segments = Vec::new();
    for tag in tags {
        let timestamp = tag.timestamp.wrapping_add(shift);
        match tag.kind {
            TAG_VIDEO => pipeline.handle_video(timestamp, &tag.body, &mut keys)?,
            TAG_AUDIO => pipeline.handle_audio(timestamp, &tag.body, &mut keys)?,
            _ => {}
        }
        segments.extend(std::iter::from_fn(|| pipeline.poll_segment()));
    }
    pipeline.handle_end_of_stream(&mut keys)?;
    segments.extend(std::iter::from_fn(|| pipeline.poll_segment()));
    Ok(segments)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Decrypts a segment with the openssl CLI (independent of the code under test).
pub fn openssl_decrypt(segment: &EncryptedSegment, dir: &Path) -> Result<Vec<u8>> {
    let input = dir.join(format!("{}.enc", segment.sequence));
    std::fs::write(&input, &segment.bytes)?;
    let output = Command::new("openssl")
        .args([
            "enc",
            "-d",
            "-aes-128-cbc",
            "-K",
            &hex(&segment.key),
            "-iv",
            &hex(&segment.iv),
            "-in",
        ])
        .arg(&input)
        .output()
        .context("running openssl")?;
    if !output.status.success() {
        bail!(
            "openssl failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(output.stdout)
}

/// What ffprobe says about a file.
#[derive(Debug)]
pub struct Probe {
    pub codecs: Vec<String>,
    pub duration: f64,
    pub format: String,
}

pub fn ffprobe(path: &Path) -> Result<Probe> {
    ffprobe_with(&[], path)
}

/// ffprobe with extra input options (e.g. `-allowed_extensions ALL` for local HLS).
pub fn ffprobe_with(input_options: &[&str], path: &Path) -> Result<Probe> {
    let output = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_streams",
            "-show_format",
            "-of",
            "flat",
        ])
        .args(input_options)
        .arg(path)
        .output()
        .context("running ffprobe")?;
    if !output.status.success() {
        bail!(
            "ffprobe failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let text = String::from_utf8(output.stdout)?;
    let value = |line: &str| {
        line.split_once('=')
            .map(|(_, v)| v.trim_matches('"').to_owned())
    };
    let mut probe = Probe {
        codecs: Vec::new(),
        duration: 0.0,
        format: String::new(),
    };
    for line in text.lines() {
        if line.starts_with("streams.stream.") && line.contains(".codec_name=") {
            probe.codecs.extend(value(line));
        } else if line.starts_with("format.duration=") {
            probe.duration = value(line).unwrap_or_default().parse().unwrap_or(0.0);
        } else if line.starts_with("format.format_name=") {
            probe.format = value(line).unwrap_or_default();
        }
    }
    Ok(probe)
}

/// Runs ffmpeg with `args` writing an FLV to `dir/name`, returns its tags.
pub fn ffmpeg_flv(dir: &Path, name: &str, args: &[&str]) -> Result<Vec<FlvTag>> {
    let path = dir.join(name);
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .args(["-f", "flv"])
        .arg(&path)
        .status()
        .context("running ffmpeg")?;
    ensure!(status.success(), "ffmpeg failed");
    read_flv(&std::fs::read(path)?)
}

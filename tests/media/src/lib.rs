//! ffmpeg as the publisher and ffprobe as the judge of what came out: one definition for the
//! ingest worker's tests and the end-to-end tests (`gatecast_e2e::ffmpeg` re-exports it).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

/// Starts ffmpeg publishing `seconds` of a real-time H.264 + AAC test pattern (`testsrc2` +
/// `sine`, keyframe every 2 s) to `rtmp_url`. The caller awaits the child for its exit status:
/// ffmpeg exits non-zero when the server refuses the publish.
pub fn publish(rtmp_url: &str, seconds: u32) -> anyhow::Result<Child> {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args(["-t", &seconds.to_string()])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
        ])
        .args(["-g", "50", "-keyint_min", "50", "-pix_fmt", "yuv420p"])
        .args(["-c:a", "aac", "-b:a", "64k", "-f", "flv", rtmp_url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start ffmpeg (is it installed?)")
}

/// What ffprobe saw in a piece of media.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// Codec names of every stream, in order (e.g. `["h264", "aac"]`).
    pub codecs: Vec<String>,
    /// Container duration in seconds.
    pub duration: f64,
}

/// Runs ffprobe on `media` (written to a temporary file) and reports its streams and duration.
pub async fn probe(media: &[u8]) -> anyhow::Result<Probe> {
    let dir = tempfile::tempdir().context("temp dir")?;
    let file = dir.path().join("probe.ts");
    tokio::fs::write(&file, media)
        .await
        .context("write media for ffprobe")?;
    probe_file(&file).await
}

/// Runs ffprobe on a media file and reports its streams and duration.
pub async fn probe_file(file: &Path) -> anyhow::Result<Probe> {
    let output = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_streams",
            "-show_format",
        ])
        .arg(file)
        .output()
        .await
        .context("cannot run ffprobe")?;
    if !output.status.success() {
        bail!(
            "ffprobe failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("ffprobe printed no JSON")?;
    let codecs = report["streams"]
        .as_array()
        .context("ffprobe: no streams")?
        .iter()
        .filter_map(|stream| stream["codec_name"].as_str().map(str::to_owned))
        .collect();
    let duration = report["format"]["duration"]
        .as_str()
        .context("ffprobe: no duration")?
        .parse()
        .context("ffprobe: duration is not a number")?;
    Ok(Probe { codecs, duration })
}

/// Waits for a publisher to finish, giving up after `limit`.
pub async fn wait(child: &mut Child, limit: Duration) -> anyhow::Result<std::process::ExitStatus> {
    tokio::time::timeout(limit, child.wait())
        .await
        .context("ffmpeg did not finish in time")?
        .context("waiting for ffmpeg")
}

//! Concurrent RTMP publishers sustained in real time: `gatecast-ingest` vs nginx 1.22 +
//! libnginx-mod-rtmp (`hls on; hls_keys on;`), same recorded FLV, same machine, same run.
//!
//! For each server and each N: N publishers replay the FLV in real time, either the light
//! in-process replayer of [`gatecast_bench::replay`] (default: N connections from one child
//! process, so the publishers do not eat the CPU the servers are measured on) or N
//! `ffmpeg -re -stream_loop -1 -c copy` processes (`--publisher ffmpeg`); after a warm-up,
//! segments produced during a window are compared with what real time demands
//! (N × window / segment length), and the server's CPU and RSS are read from `/proc`.
//! For gatecast it also reads the segment-visible latency histogram from `/metrics` (from the
//! arrival of the input that closed a segment to the stored playlist referencing it), with
//! `file://` storage or (`--storage s3`) the embedded S3 endpoint of the dev stack.

#![allow(clippy::print_stdout)] // A benchmark's report is its standard output.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use gatecast_bench::load_average;
use gatecast_bench::nginx::Nginx;
use gatecast_bench::procstat::{MachineCpu, Sample};
use gatecast_bench::replay::{self, Recording};
use tokio::process::{Child, Command};

const SEGMENT_SECONDS: u64 = 4;
const SEGMENTS_PER_KEY: u32 = 6;
/// Produced / expected segments at or above which a run counts as keeping up with real time
/// (the window edges cost up to one segment per stream).
const SUSTAINED_RATIO: f64 = 0.9;
/// Produced / expected segments above which a run was storing a backlog it had built before
/// the window (gatecast buffers what it could not store in time), which is not keeping up.
const BACKLOG_RATIO: f64 = 1.1;

#[derive(Parser)]
struct Args {
    /// Publisher counts to step through, in order.
    #[arg(long, value_delimiter = ',', default_value = "4,8,16,32,48,64")]
    streams: Vec<usize>,
    /// Seconds before the measurement window (connects, first segments).
    #[arg(long, default_value_t = 10)]
    warmup: u64,
    /// Measurement window in seconds.
    #[arg(long, default_value_t = 20)]
    window: u64,
    /// Which servers: `gatecast`, `nginx` or both.
    #[arg(long, value_delimiter = ',', default_value = "gatecast,nginx")]
    servers: Vec<String>,
    /// Recorded input (created on first use: 30 s 720p H.264 2.5 Mbit/s veryfast + AAC).
    #[arg(long)]
    input: Option<PathBuf>,
    /// Release binary of the ingest worker (default: $CARGO_TARGET_DIR/release/gatecast-ingest).
    #[arg(long)]
    ingest_bin: Option<PathBuf>,
    /// gatecast's storage: `file` (a temp dir) or `s3` (the embedded S3 endpoint, in this
    /// process, over loopback HTTP).
    #[arg(long, default_value = "file")]
    storage: String,
    /// The load tool: `replay` (gatecast-bench's RTMP replayer, one process for all N) or
    /// `ffmpeg` (one `ffmpeg -re -c copy` per publisher).
    #[arg(long, default_value = "replay")]
    publisher: String,
    /// nginx `worker_processes` (nginx-rtmp's default deployment is 1; each publishing
    /// connection stays on one worker, so more workers spread streams over cores).
    #[arg(long, default_value_t = 1)]
    nginx_workers: usize,
    /// Internal: run as the replayer child, publishing `--input` to these RTMP URLs.
    #[arg(long, hide = true, num_args = 1..)]
    replay_child: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !args.replay_child.is_empty() {
        let input = args
            .input
            .as_deref()
            .context("the replayer needs --input")?;
        return replay_all(input, &args.replay_child).await;
    }
    let target_dir = PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or("target".into()));
    let input = match &args.input {
        Some(path) => path.clone(),
        None => record_input(&target_dir.join("bench-input-720p-30s.flv")).await?,
    };
    let ingest_bin = args
        .ingest_bin
        .clone()
        .unwrap_or_else(|| target_dir.join("release/gatecast-ingest"));
    println!(
        "server    N  segments/expected  sustained  server CPU%  RSS MB  (idle MB)  RSS/stream MB  \
         publishers CPU%  machine busy%  load avg"
    );
    for server in &args.servers {
        for &streams in &args.streams {
            let work = tempfile::tempdir()?;
            let outcome = match server.as_str() {
                "gatecast" => {
                    let mut worker =
                        Gatecast::start(&ingest_bin, work.path(), streams, &args.storage).await?;
                    let outcome = measure(&args, &input, streams, &mut worker).await;
                    worker.stop().await?;
                    outcome?
                }
                "nginx" => {
                    let mut nginx = NginxRtmp::start(work.path(), args.nginx_workers).await?;
                    let outcome = measure(&args, &input, streams, &mut nginx).await;
                    nginx.nginx.stop().await?;
                    outcome?
                }
                other => bail!("unknown server {other}"),
            };
            println!("{server:8} {outcome}");
            if let Some(visible) = &outcome.visible {
                let storage = &args.storage;
                println!(
                    "{server:8} {streams:3}  segment visible in the window ({storage}): {visible}"
                );
            }
            if !outcome.sustained() {
                break;
            }
        }
    }
    Ok(())
}

/// What one (server, N) run measured.
struct Outcome {
    streams: usize,
    produced: u64,
    expected: f64,
    server_cpu_percent: f64,
    rss_bytes: u64,
    idle_rss_bytes: u64,
    publishers_cpu_percent: f64,
    machine_busy_percent: f64,
    publishers_exited: usize,
    /// gatecast's segment-visible latency of the segments stored during the window.
    visible: Option<VisibleLatency>,
}

impl Outcome {
    fn sustained(&self) -> bool {
        let ratio = self.produced as f64 / self.expected;
        self.publishers_exited == 0 && (SUSTAINED_RATIO..=BACKLOG_RATIO).contains(&ratio)
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mb = |bytes: u64| bytes as f64 / 1e6;
        write!(
            f,
            "{:3}  {:5}/{:<5.0} ({:4.2})  {:9}  {:10.1}  {:6.1}  ({:7.1})  {:13.2}  {:15.1}  {:13.0}  {}",
            self.streams,
            self.produced,
            self.expected,
            self.produced as f64 / self.expected,
            if self.sustained() { "yes" } else { "NO" },
            self.server_cpu_percent,
            mb(self.rss_bytes),
            mb(self.idle_rss_bytes),
            mb(self.rss_bytes.saturating_sub(self.idle_rss_bytes)) / self.streams as f64,
            self.publishers_cpu_percent,
            self.machine_busy_percent,
            load_average(),
        )?;
        if self.publishers_exited > 0 {
            write!(f, "  ({} publishers exited)", self.publishers_exited)?;
        }
        Ok(())
    }
}

/// A server under test: where to publish and how many segments it has finished so far.
trait Server {
    fn pid(&self) -> anyhow::Result<u32>;
    fn publish_url(&self, index: usize) -> String;
    async fn segments(&self) -> anyhow::Result<u64>;
    /// The segment-visible latency histogram so far, if the server reports one.
    async fn visible_latency(&self) -> anyhow::Result<Option<VisibleLatency>>;
}

async fn measure(
    args: &Args,
    input: &Path,
    streams: usize,
    server: &mut impl Server,
) -> anyhow::Result<Outcome> {
    let idle = Sample::of_tree(server.pid()?)?;
    let urls: Vec<String> = (0..streams)
        .map(|index| server.publish_url(index))
        .collect();
    let mut publishers = Vec::with_capacity(streams);
    if args.publisher == "replay" {
        publishers.push(
            Command::new(std::env::current_exe()?)
                .arg("--input")
                .arg(input)
                .arg("--replay-child")
                .args(&urls)
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .context("cannot start the replayer")?,
        );
        // The replayer spreads its starts over one segment itself.
        tokio::time::sleep(Duration::from_secs(SEGMENT_SECONDS)).await;
    } else {
        for url in &urls {
            publishers.push(publish(input, url)?);
            // Spread the keyframes (and the segment closes) of the streams over time.
            tokio::time::sleep(Duration::from_millis(
                SEGMENT_SECONDS * 1000 / streams as u64,
            ))
            .await;
        }
    }
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    let publisher_pids: Vec<u32> = publishers.iter().filter_map(Child::id).collect();
    let (before, publishers_before, machine_before) = (
        Sample::of_tree(server.pid()?)?,
        Sample::of(&publisher_pids)?,
        MachineCpu::read()?,
    );
    let segments_before = server.segments().await?;
    let visible_before = server.visible_latency().await?;
    let mut rss_bytes = 0;
    for _ in 0..args.window {
        tokio::time::sleep(Duration::from_secs(1)).await;
        rss_bytes = rss_bytes.max(Sample::of_tree(server.pid()?)?.rss_bytes);
    }
    let segments_after = server.segments().await?;
    let visible_after = server.visible_latency().await?;
    let (after, publishers_after, machine_after) = (
        Sample::of_tree(server.pid()?)?,
        Sample::of(&publisher_pids)?,
        MachineCpu::read()?,
    );
    let mut publishers_exited = 0;
    for publisher in &mut publishers {
        if publisher.try_wait()?.is_some() {
            // The replayer exits when any of its publishers fails: count them all.
            publishers_exited += if args.publisher == "replay" {
                streams
            } else {
                1
            };
        }
        publisher.kill().await?;
    }
    Ok(Outcome {
        streams,
        produced: segments_after - segments_before,
        expected: (streams as u64 * args.window) as f64 / SEGMENT_SECONDS as f64,
        server_cpu_percent: after.cpu_percent_since(&before),
        rss_bytes,
        idle_rss_bytes: idle.rss_bytes,
        publishers_cpu_percent: publishers_after.cpu_percent_since(&publishers_before),
        machine_busy_percent: machine_after.busy_percent_since(&machine_before),
        publishers_exited,
        visible: visible_after
            .zip(visible_before)
            .map(|(after, before)| after.since(&before)),
    })
}

/// The replayer child: every URL gets a publisher, starts spread over one segment so the
/// streams' keyframes (and segment closes) are spread too; exits with the first failure.
async fn replay_all(input: &Path, urls: &[String]) -> anyhow::Result<()> {
    let recording = std::sync::Arc::new(Recording::load(input)?);
    let mut publishers = tokio::task::JoinSet::new();
    let spacing = Duration::from_millis(SEGMENT_SECONDS * 1000 / urls.len().max(1) as u64);
    for url in urls {
        let (addr, app, key) = split_rtmp_url(url)?;
        let recording = std::sync::Arc::clone(&recording);
        publishers.spawn(async move { replay::publish(recording, addr, &app, &key).await });
        tokio::time::sleep(spacing).await;
    }
    while let Some(ended) = publishers.join_next().await {
        ended?.context("a replayed publisher failed")?;
    }
    Ok(())
}

/// `rtmp://HOST:PORT/APP/KEY` → (address, app, key).
fn split_rtmp_url(url: &str) -> anyhow::Result<(std::net::SocketAddr, String, String)> {
    let rest = url
        .strip_prefix("rtmp://")
        .with_context(|| format!("not an rtmp URL: {url}"))?;
    let mut parts = rest.splitn(3, '/');
    let (Some(addr), Some(app), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        bail!("expected rtmp://HOST:PORT/APP/KEY, got {url}");
    };
    Ok((addr.parse()?, app.to_owned(), key.to_owned()))
}

/// One publisher replaying the recording in real time, forever.
fn publish(input: &Path, url: &str) -> anyhow::Result<Child> {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-re"])
        .args(["-stream_loop", "-1", "-i"])
        .arg(input)
        .args(["-c", "copy", "-f", "flv", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start ffmpeg")
}

/// Records the input once: 30 s of 720p30 test pattern, H.264 veryfast at 2.5 Mbit/s with a
/// keyframe every 2 s, AAC 128 kbit/s.
async fn record_input(path: &Path) -> anyhow::Result<PathBuf> {
    if path.exists() {
        return Ok(path.to_path_buf());
    }
    let partial = path.with_extension("partial.flv");
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args(["-t", "30", "-c:v", "libx264", "-preset", "veryfast"])
        .args(["-b:v", "2500k", "-maxrate", "2500k", "-bufsize", "5000k"])
        .args(["-g", "60", "-keyint_min", "60", "-sc_threshold", "0"])
        .args([
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", "-f", "flv",
        ])
        .arg(&partial)
        .status()
        .await?;
    if !status.success() {
        bail!("recording the input failed: {status}");
    }
    std::fs::rename(&partial, path)?;
    Ok(path.to_path_buf())
}

/// `gatecast_ingest_segment_visible_seconds` of one run: count, mean, and quantiles as the
/// upper bound of the histogram bucket they fall in.
struct VisibleLatency {
    /// Cumulative (upper bound in seconds, count) pairs, `+Inf` last.
    buckets: Vec<(f64, u64)>,
    count: u64,
    sum: f64,
}

impl VisibleLatency {
    fn parse(metrics: &str) -> Self {
        let name = "gatecast_ingest_segment_visible_seconds";
        let value = |line: &str| line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
        let mut latency = Self {
            buckets: Vec::new(),
            count: 0,
            sum: 0.0,
        };
        for line in metrics.lines() {
            if let Some(rest) = line.strip_prefix(&format!("{name}_bucket{{le=\"")) {
                let bound = rest.split('"').next().unwrap_or_default();
                let bound = if bound == "+Inf" {
                    f64::INFINITY
                } else {
                    bound.parse().unwrap_or(f64::NAN)
                };
                latency
                    .buckets
                    .push((bound, value(line).unwrap_or(0.0) as u64));
            } else if line.starts_with(&format!("{name}_count ")) {
                latency.count = value(line).unwrap_or(0.0) as u64;
            } else if line.starts_with(&format!("{name}_sum ")) {
                latency.sum = value(line).unwrap_or(0.0);
            }
        }
        latency
    }

    /// What was observed between `earlier` and this snapshot of the same histogram.
    fn since(&self, earlier: &Self) -> Self {
        let buckets = self
            .buckets
            .iter()
            .map(|&(bound, cumulative)| {
                let before = earlier
                    .buckets
                    .iter()
                    .find(|(earlier_bound, _)| earlier_bound.total_cmp(&bound).is_eq())
                    .map_or(0, |(_, count)| *count);
                (bound, cumulative.saturating_sub(before))
            })
            .collect();
        Self {
            buckets,
            count: self.count.saturating_sub(earlier.count),
            sum: self.sum - earlier.sum,
        }
    }

    /// Upper bound of the bucket holding quantile `q`.
    fn quantile(&self, q: f64) -> f64 {
        let rank = (q * self.count as f64).ceil() as u64;
        self.buckets
            .iter()
            .find(|(_, cumulative)| *cumulative >= rank.max(1))
            .map_or(f64::NAN, |(bound, _)| *bound)
    }

    fn within(&self, bound: f64) -> u64 {
        self.buckets
            .iter()
            .find(|(le, _)| (*le - bound).abs() < 1e-9)
            .map_or(0, |(_, cumulative)| *cumulative)
    }
}

impl std::fmt::Display for VisibleLatency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.count == 0 {
            return write!(f, "no segments");
        }
        let ms = |seconds: f64| seconds * 1000.0;
        write!(
            f,
            "{} segments, mean {:.1} ms, p50 <= {} ms, p99 <= {} ms, max bucket <= {} ms, \
             {:.1} % within 50 ms",
            self.count,
            ms(self.sum / self.count as f64),
            ms(self.quantile(0.5)),
            ms(self.quantile(0.99)),
            ms(self.quantile(1.0)),
            100.0 * self.within(0.05) as f64 / self.count as f64,
        )
    }
}

/// The release `gatecast-ingest` binary with a keys file of N keys and file or S3 storage.
struct Gatecast {
    child: Child,
    rtmp_port: u16,
    admin_port: u16,
    /// The embedded S3 endpoint with `--storage s3`.
    s3: Option<gatecast_dev::stack::S3Server>,
}

/// Bucket and credentials of the embedded S3 endpoint (`--storage s3`).
const S3_BUCKET: &str = "bench-media";
const S3_KEY_BUCKET: &str = "bench-keys";
const S3_ACCESS_KEY: &str = "bench-access";
const S3_SECRET_KEY: &str = "bench-secret-0123456789";

impl Gatecast {
    async fn start(
        binary: &Path,
        work: &Path,
        streams: usize,
        storage_kind: &str,
    ) -> anyhow::Result<Self> {
        let keys = work.join("keys.toml");
        let table: String = (0..streams)
            .map(|index| {
                format!(
                    "[[channel]]\nkey = \"{}\"\nname = \"s{index}\"\nactive = true\n",
                    key(index)
                )
            })
            .collect();
        std::fs::write(&keys, table)?;
        let storage = work.join("storage");
        std::fs::create_dir_all(&storage)?;
        let (storage_args, s3) = match storage_kind {
            "file" => (
                vec![
                    format!("file://{}", storage.join("media").display()),
                    "--key-storage".to_owned(),
                    format!("file://{}", storage.join("keys").display()),
                ],
                None,
            ),
            "s3" => {
                let config = gatecast_dev::stack::S3Config {
                    root: storage,
                    buckets: vec![S3_BUCKET.to_owned(), S3_KEY_BUCKET.to_owned()],
                    access_key: S3_ACCESS_KEY.to_owned(),
                    secret_key: S3_SECRET_KEY.to_owned(),
                    readers: Vec::new(),
                };
                let server =
                    gatecast_dev::stack::S3Server::start(config, ([127, 0, 0, 1], 0).into())
                        .await?;
                let args = vec![
                    format!("s3://{S3_BUCKET}"),
                    "--key-storage".to_owned(),
                    format!("s3://{S3_KEY_BUCKET}"),
                    "--s3-endpoint".to_owned(),
                    format!("http://{}", server.addr()),
                ];
                (args, Some(server))
            }
            other => bail!("unknown storage {other} (file or s3)"),
        };
        let (rtmp_port, admin_port) = (gatecast_bench::free_port()?, gatecast_bench::free_port()?);
        let child = Command::new(binary)
            .arg("--listen")
            .arg(format!("127.0.0.1:{rtmp_port}"))
            .arg("--admin")
            .arg(format!("127.0.0.1:{admin_port}"))
            .arg("--keys")
            .arg(&keys)
            .arg("--storage")
            .args(&storage_args)
            .env("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY)
            .args(["--segment-seconds", &SEGMENT_SECONDS.to_string()])
            .args(["--segments-per-key", &SEGMENTS_PER_KEY.to_string()])
            // The default caps (256, 8 per address) are safety limits, not a capacity: every
            // publisher here comes from loopback, so lift both past N.
            .args(["--max-connections", &(streams + 16).to_string()])
            .args(["--max-connections-per-address", &(streams + 16).to_string()])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let worker = Self {
            child,
            rtmp_port,
            admin_port,
            s3,
        };
        for _ in 0..100 {
            if worker.metrics().await.is_ok() {
                return Ok(worker);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("gatecast-ingest did not start")
    }

    async fn metrics(&self) -> anyhow::Result<String> {
        Ok(
            reqwest::get(format!("http://127.0.0.1:{}/metrics", self.admin_port))
                .await?
                .error_for_status()?
                .text()
                .await?,
        )
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        self.child.kill().await?;
        if let Some(mut s3) = self.s3.take() {
            s3.stop().await?;
        }
        Ok(())
    }
}

fn key(index: usize) -> String {
    format!("bench-stream-key-{index:04}")
}

impl Server for Gatecast {
    fn pid(&self) -> anyhow::Result<u32> {
        self.child.id().context("gatecast-ingest exited")
    }

    fn publish_url(&self, index: usize) -> String {
        format!("rtmp://127.0.0.1:{}/live/{}", self.rtmp_port, key(index))
    }

    /// Segments stored (uploaded), from `/metrics`; dropped segments do not count.
    async fn segments(&self) -> anyhow::Result<u64> {
        let metrics = self.metrics().await?;
        metrics
            .lines()
            .find_map(|line| line.strip_prefix("gatecast_ingest_segments_stored_total "))
            .context("no gatecast_ingest_segments_stored_total in /metrics")?
            .trim()
            .parse()
            .context("segments_stored_total")
    }

    async fn visible_latency(&self) -> anyhow::Result<Option<VisibleLatency>> {
        Ok(Some(VisibleLatency::parse(&self.metrics().await?)))
    }
}

/// nginx 1.22 + nginx-rtmp, `workers` worker processes, HLS with keys, old fragments deleted
/// (`hls_cleanup on`, its default) as gatecast deletes expired segments: both servers do the
/// same filesystem work per segment (create, write, rename the playlist, delete the expired).
struct NginxRtmp {
    nginx: Nginx,
    port: u16,
    hls: PathBuf,
}

impl NginxRtmp {
    async fn start(work: &Path, workers: usize) -> anyhow::Result<Self> {
        let (hls, keys) = (work.join("hls"), work.join("keys"));
        std::fs::create_dir_all(&hls)?;
        std::fs::create_dir_all(&keys)?;
        let port = gatecast_bench::free_port()?;
        let body = format!(
            r#"worker_processes {workers};
events {{ worker_connections 4096; }}
rtmp {{
    server {{
        listen 127.0.0.1:{port};
        chunk_size 4096;
        application live {{
            live on;
            record off;
            hls on;
            hls_path {hls};
            hls_nested on;
            hls_fragment {SEGMENT_SECONDS}s;
            hls_playlist_length 30s;
            hls_cleanup on;
            hls_keys on;
            hls_key_path {keys};
            hls_key_url /keys/;
            hls_fragments_per_key {SEGMENTS_PER_KEY};
        }}
    }}
}}
"#,
            hls = hls.display(),
            keys = keys.display()
        );
        let nginx = Nginx::start(
            &work.join("nginx-rtmp"),
            &["ngx_rtmp_module.so"],
            &body,
            "",
            port,
        )
        .await?;
        Ok(Self { nginx, port, hls })
    }
}

impl Server for NginxRtmp {
    fn pid(&self) -> anyhow::Result<u32> {
        self.nginx.pid()
    }

    fn publish_url(&self, index: usize) -> String {
        format!("rtmp://127.0.0.1:{}/live/{}", self.port, key(index))
    }

    /// Fragments finished so far, from each stream's live playlist: its media sequence plus
    /// the fragments it lists (fragment ids are sequential and a playlist lists only finished
    /// fragments), so deleted fragments are still counted.
    async fn segments(&self) -> anyhow::Result<u64> {
        let mut count = 0;
        for stream in std::fs::read_dir(&self.hls)? {
            let playlist = stream?.path().join("index.m3u8");
            // A stream whose first fragment is not finished has no playlist yet.
            let Ok(text) = std::fs::read_to_string(&playlist) else {
                continue;
            };
            let media_sequence = text
                .lines()
                .find_map(|line| line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
                .and_then(|value| value.trim().parse::<u64>().ok())
                .with_context(|| format!("no media sequence in {}", playlist.display()))?;
            let listed = text
                .lines()
                .filter(|line| line.starts_with("#EXTINF:"))
                .count();
            count += media_sequence + listed as u64;
        }
        Ok(count)
    }

    /// nginx-rtmp keeps no such histogram.
    async fn visible_latency(&self) -> anyhow::Result<Option<VisibleLatency>> {
        Ok(None)
    }
}

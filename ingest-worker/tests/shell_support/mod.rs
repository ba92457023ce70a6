//! Shared helpers for the ingest shell's integration tests: the worker in-process on
//! `127.0.0.1:0`, real ffmpeg publishers, a real hook HTTP server, a real S3 server (s3s-fs), log
//! capture, and an independent check of the HLS output (own m3u8 reading, `openssl enc -d` for
//! decryption, `ffprobe` for the media).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use gatecast_ingest::config::AdminToken;
use gatecast_ingest::{Config, Stores, Worker};
use gatecast_s3::{S3Config, S3Server};
use gatecast_test_media::Probe;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::process::Command;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

// ---------------------------------------------------------------------------------------------
// Log capture

static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

#[derive(Clone)]
struct CaptureWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs (once per test binary) a subscriber that records every log line of the worker at
/// TRACE level, so tests can check that no stream key ever reaches the logs.
pub fn capture_logs() {
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = CaptureWriter(Arc::clone(&buffer));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init();
        buffer
    });
}

/// Everything logged so far by any test in this binary.
pub fn captured_logs() -> String {
    let logs = LOGS.get().expect("capture_logs() called first");
    String::from_utf8_lossy(&logs.lock().unwrap()).into_owned()
}

// ---------------------------------------------------------------------------------------------
// Worker

/// A worker running in-process.
pub struct RunningWorker {
    pub rtmp: SocketAddr,
    pub admin: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

/// A test config: files under `dir`, short segments, fast rotation.
pub fn test_config(storage_url: String) -> Config {
    let mut config = Config::local(storage_url);
    config.media.segment_duration = Duration::from_secs(2);
    config.media.segments_per_key = 2;
    config.media.playlist_segments = 10;
    config.shutdown_timeout = Duration::from_secs(20);
    config.admin_token = AdminToken::new(ADMIN_TOKEN);
    config
}

/// [`test_config`] with `file://` storage under `root`, and its opened stores. The key store
/// is a store of its own (owner-only files) over the same folder, so the checks below find
/// `live/` and `keys/` side by side: sharing is the explicit opt-in.
pub fn file_config(root: &std::path::Path) -> (Config, Stores) {
    let mut config = test_config(format!("file://{}", root.display()));
    config.storage.keys_url = Some(config.storage.media_url.clone());
    config.storage.insecure_keys_in_media_store = true;
    let stores = Stores::open(&config.storage).expect("file stores open");
    (config, stores)
}

pub async fn start_worker(config: Config, stores: Stores) -> RunningWorker {
    capture_logs();
    let worker = Worker::bind(config, stores).await.expect("worker binds");
    let (rtmp, admin) = (worker.rtmp_addr(), worker.admin_addr());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(worker.run(async {
        let _ = stopped.await;
    }));
    RunningWorker {
        rtmp,
        admin,
        stop: Some(stop),
        task,
    }
}

impl RunningWorker {
    pub fn url(&self, key: &str) -> String {
        format!("rtmp://{}/live/{key}", self.rtmp)
    }

    /// Signals shutdown and waits for `run` to return.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(30), &mut self.task)
            .await
            .expect("worker stops within 30 s")
            .expect("worker task did not panic")
    }

    /// GET on the admin port: (status, body).
    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        http_request(self.admin, "GET", path, "").await
    }

    pub async fn admin_post(&self, path: &str) -> (u16, String) {
        http_request(self.admin, "POST", path, "").await
    }

    /// POST on the admin port with `Authorization: Bearer` [`ADMIN_TOKEN`].
    pub async fn admin_post_authorized(&self, path: &str) -> (u16, String) {
        let bearer = format!("Bearer {ADMIN_TOKEN}");
        http_request_with(self.admin, "POST", path, &[("Authorization", &bearer)], "").await
    }

    /// One sample from `/metrics`, by its full name with labels.
    pub async fn metric_owned(&self, series: String) -> f64 {
        self.metric(&series).await
    }

    pub async fn metric(&self, series: &str) -> f64 {
        let (status, body) = self.admin_get("/metrics").await;
        assert_eq!(status, 200);
        body.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no metric {series} in\n{body}"))
    }
}

/// The admin token [`test_config`] sets.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// A minimal HTTP/1.1 client over a raw TCP socket (no client library: the request is tiny and
/// this keeps the test independent of the worker's own HTTP client).
pub async fn http_request(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    http_request_with(addr, method, path, &[], body).await
}

/// [`http_request`] with extra request headers.
pub async fn http_request_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let headers: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    socket.read_to_end(&mut response).await.expect("read");
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

// ---------------------------------------------------------------------------------------------
// ffmpeg

/// Starts ffmpeg publishing `seconds` of a real-time H.264 + AAC test pattern to `url`.
pub fn spawn_publisher(url: &str, seconds: u32) -> tokio::process::Child {
    gatecast_test_media::publish(url, seconds).expect("ffmpeg runs")
}

/// Publishes and waits for ffmpeg to exit.
pub async fn publish(url: &str, seconds: u32) -> Output {
    let child = spawn_publisher(url, seconds);
    tokio::time::timeout(
        Duration::from_secs(u64::from(seconds) + 30),
        child.wait_with_output(),
    )
    .await
    .expect("ffmpeg finishes")
    .expect("ffmpeg output")
}

// ---------------------------------------------------------------------------------------------
// HLS checks

/// One segment entry of a playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentEntry {
    pub uri: String,
    pub extinf: f64,
    pub key_uri: String,
    pub iv_hex: String,
    pub discontinuity: bool,
}

/// What we read from a media playlist (written independently of the worker's renderer).
#[derive(Debug, Clone, Default)]
pub struct Playlist {
    pub target_duration: u64,
    pub media_sequence: u64,
    pub segments: Vec<SegmentEntry>,
    pub ended: bool,
}

pub fn parse_playlist(text: &str) -> Playlist {
    let mut playlist = Playlist::default();
    let (mut key_uri, mut iv_hex, mut extinf, mut discontinuity) =
        (String::new(), String::new(), None, false);
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("#EXTM3U"),
        "playlist starts with #EXTM3U:\n{text}"
    );
    for line in lines {
        if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            playlist.target_duration = v.parse().unwrap();
        } else if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            playlist.media_sequence = v.parse().unwrap();
        } else if let Some(attrs) = line.strip_prefix("#EXT-X-KEY:") {
            assert!(attrs.starts_with("METHOD=AES-128,"), "{line}");
            key_uri = attrs
                .split("URI=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .to_owned();
            iv_hex = attrs.split("IV=0x").nth(1).unwrap().to_owned();
            assert_eq!(iv_hex.len(), 32, "explicit 128-bit IV: {line}");
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            extinf = Some(v.trim_end_matches(',').parse::<f64>().unwrap());
        } else if line == "#EXT-X-DISCONTINUITY" {
            discontinuity = true;
        } else if line == "#EXT-X-ENDLIST" {
            playlist.ended = true;
        } else if !line.starts_with('#') && !line.is_empty() {
            playlist.segments.push(SegmentEntry {
                uri: line.to_owned(),
                extinf: extinf.take().expect("EXTINF before URI"),
                key_uri: key_uri.clone(),
                iv_hex: iv_hex.clone(),
                discontinuity: std::mem::take(&mut discontinuity),
            });
        }
    }
    playlist
}

/// Storage path (relative to the store root) of a key URI `/keys/<name>/<id>.key`.
pub fn key_storage_path(key_uri: &str) -> String {
    key_uri
        .strip_prefix('/')
        .expect("root-relative key URI")
        .to_owned()
}

/// The key id in a key URI.
pub fn key_id(key_uri: &str) -> u64 {
    key_uri
        .rsplit('/')
        .next()
        .unwrap()
        .strip_suffix(".key")
        .unwrap()
        .parse()
        .unwrap()
}

/// Decrypts `ciphertext` with `openssl enc -d -aes-128-cbc` (PKCS7) and probes it with ffprobe.
pub async fn decrypt_and_probe(ciphertext: &[u8], key: &[u8], iv_hex: &str) -> Probe {
    assert_eq!(key.len(), 16, "key objects are exactly 16 bytes");
    let dir = tempfile::tempdir().unwrap();
    let (encrypted, plain) = (dir.path().join("enc.ts"), dir.path().join("plain.ts"));
    std::fs::write(&encrypted, ciphertext).unwrap();
    let status = Command::new("openssl")
        .args([
            "enc",
            "-d",
            "-aes-128-cbc",
            "-K",
            &hex::encode(key),
            "-iv",
            iv_hex,
            "-in",
        ])
        .arg(&encrypted)
        .arg("-out")
        .arg(&plain)
        .status()
        .await
        .unwrap();
    assert!(
        status.success(),
        "openssl decrypts the segment (padding checks out)"
    );
    gatecast_test_media::probe_file(&plain)
        .await
        .expect("ffprobe reads the decrypted segment")
}

/// Reads objects from a directory-backed store (the worker's `file://` store or s3s-fs's
/// bucket folder).
pub fn read_object(root: &Path, path: &str) -> Option<Vec<u8>> {
    std::fs::read(root.join(path)).ok()
}

/// Every object path currently under `root`, relative, with `/` separators. The `file://`
/// store's pool of recycled files is not an object and is left out.
pub fn list_objects(root: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path == base.join(gatecast_ingest::storage::recycle::POOL_DIR) {
                continue;
            }
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                out.push(
                    path.strip_prefix(base)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/"),
                );
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// Checks the finished stream `name` under `root` end to end and returns its playlist:
/// ENDLIST present, every segment and key object exists, every segment decrypts with its key
/// and IV into H.264 + AAC whose duration matches EXTINF, key ids rotate every
/// `segments_per_key` segments with distinct keys.
pub async fn verify_finished_stream(root: &Path, name: &str, segments_per_key: usize) -> Playlist {
    verify_finished_stream_split(root, root, name, segments_per_key).await
}

/// [`verify_finished_stream`] with key objects under another root (`--key-storage`).
pub async fn verify_finished_stream_split(
    root: &Path,
    keys_root: &Path,
    name: &str,
    segments_per_key: usize,
) -> Playlist {
    let text = read_object(root, &format!("live/{name}/index.m3u8")).expect("live playlist exists");
    let playlist = parse_playlist(std::str::from_utf8(&text).unwrap());
    assert!(playlist.ended, "final playlist has EXT-X-ENDLIST");
    assert!(!playlist.segments.is_empty());
    let mut keys_by_id: HashMap<u64, Vec<u8>> = HashMap::new();
    let mut ivs = std::collections::HashSet::new();
    for segment in &playlist.segments {
        let ciphertext =
            read_object(root, &format!("live/{name}/{}", segment.uri)).expect("segment exists");
        let key = read_object(keys_root, &key_storage_path(&segment.key_uri)).expect("key exists");
        assert!(ivs.insert(segment.iv_hex.clone()), "IVs are never reused");
        let probed = decrypt_and_probe(&ciphertext, &key, &segment.iv_hex).await;
        assert!(probed.codecs.contains(&"h264".to_owned()), "{probed:?}");
        assert!(probed.codecs.contains(&"aac".to_owned()), "{probed:?}");
        assert!(
            (probed.duration - segment.extinf).abs() < 0.3,
            "probed {} s vs EXTINF {} s",
            probed.duration,
            segment.extinf
        );
        assert!(
            segment.extinf <= playlist.target_duration as f64 + 0.5,
            "EXTINF {} within TARGETDURATION {}",
            segment.extinf,
            playlist.target_duration
        );
        keys_by_id.entry(key_id(&segment.key_uri)).or_insert(key);
    }
    // Rotation: consecutive runs of `segments_per_key` share a key id (the last run may be
    // shorter), and the key id is the sequence number of the first segment under it.
    for (index, chunk) in playlist.segments.chunks(segments_per_key).enumerate() {
        let ids: Vec<u64> = chunk.iter().map(|s| key_id(&s.key_uri)).collect();
        assert!(
            ids.iter().all(|id| *id == ids[0]),
            "run {index} shares one key: {ids:?}"
        );
        assert_eq!(
            format!("{}.ts", ids[0]),
            chunk[0].uri,
            "key id names the run's first segment"
        );
    }
    let distinct: std::collections::HashSet<&Vec<u8>> = keys_by_id.values().collect();
    assert_eq!(
        distinct.len(),
        keys_by_id.len(),
        "every key id has different key bytes"
    );
    playlist
}

/// Waits for a publisher to exit successfully (`why` explains a failure), then for the stored
/// `playlist` to be finalized with `#EXT-X-ENDLIST` within `finalize_within`.
pub async fn finish_publish(
    publisher: tokio::process::Child,
    playlist: &Path,
    why: &str,
    finalize_within: Duration,
) {
    let output = tokio::time::timeout(Duration::from_secs(40), publisher.wait_with_output())
        .await
        .expect("ffmpeg finishes")
        .expect("ffmpeg runs");
    assert!(
        output.status.success(),
        "{why}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    wait_for("final playlist", finalize_within, || {
        std::fs::read_to_string(playlist).is_ok_and(|text| text.contains("#EXT-X-ENDLIST"))
    })
    .await;
}

/// Waits until `condition` holds, polling every 100 ms, or panics after `timeout`.
pub async fn wait_for(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Hook server (a stand-in for the site backend of seed 001)

/// A call the hook server received: path and decoded form fields.
#[derive(Debug, Clone)]
pub struct HookCall {
    pub path: String,
    pub form: Vec<(String, String)>,
}

impl HookCall {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

pub struct HookServer {
    pub addr: SocketAddr,
    pub calls: Arc<Mutex<Vec<HookCall>>>,
    task: JoinHandle<()>,
}

/// Answer of the hook: status and optional `Location`.
pub type HookAnswer = (u16, Option<String>);

/// Serves hooks on `127.0.0.1:0`, answering each call with `answer(call)`.
pub async fn start_hook_server(
    answer: impl Fn(&HookCall) -> HookAnswer + Send + Sync + 'static,
) -> HookServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let answer = Arc::new(answer);
    let task = {
        let calls = Arc::clone(&calls);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (calls, answer) = (Arc::clone(&calls), Arc::clone(&answer));
                tokio::spawn(async move {
                    let service =
                        service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                            let (calls, answer) = (Arc::clone(&calls), Arc::clone(&answer));
                            async move {
                                let path = request.uri().path().to_owned();
                                let body = request.into_body().collect().await.unwrap().to_bytes();
                                let form =
                                    url::form_urlencoded::parse(&body).into_owned().collect();
                                let call = HookCall { path, form };
                                let (status, location) = answer(&call);
                                calls.lock().unwrap().push(call);
                                let mut response =
                                    hyper::Response::new(Full::new(Bytes::from_static(b"ok")));
                                *response.status_mut() =
                                    hyper::StatusCode::from_u16(status).unwrap();
                                if let Some(location) = location {
                                    response
                                        .headers_mut()
                                        .insert("location", location.parse().unwrap());
                                }
                                Ok::<_, Infallible>(response)
                            }
                        });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        })
    };
    HookServer { addr, calls, task }
}

impl HookServer {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
    pub fn calls(&self) -> Vec<HookCall> {
        self.calls.lock().unwrap().clone()
    }
}

impl Drop for HookServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---------------------------------------------------------------------------------------------
// S3 server (s3s + s3s-fs), stoppable and restartable on the same port and folder

pub const S3_ACCESS_KEY: &str = "gatecast-test-access";
pub const S3_SECRET_KEY: &str = "gatecast-test-secret-0123456789";
pub const S3_BUCKET: &str = "media";
pub const S3_KEYS_BUCKET: &str = "private-keys";

/// Starts a real S3 endpoint (s3s + s3s-fs, SigV4 with the test credentials) over `root` on
/// `127.0.0.1:0`, with the media and key buckets created.
pub async fn start_s3(root: PathBuf) -> S3Server {
    let config = S3Config {
        root,
        buckets: vec![S3_BUCKET.to_owned(), S3_KEYS_BUCKET.to_owned()],
        access_key: S3_ACCESS_KEY.to_owned(),
        secret_key: S3_SECRET_KEY.to_owned(),
        readers: Vec::new(),
    };
    S3Server::start(config, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("S3 endpoint starts")
}

/// The folder behind a bucket of `s3`.
pub fn bucket_dir(s3: &S3Server, bucket: &str) -> PathBuf {
    s3.config().root.join(bucket)
}

/// Writes a keys file.
pub fn write_keys_file(path: &Path, channels: &[(&str, &str, bool)]) {
    let mut text = String::new();
    for (key, name, active) in channels {
        text.push_str(&format!(
            "[[channel]]\nkey = \"{key}\"\nname = \"{name}\"\nactive = {active}\n\n"
        ));
    }
    // Write-then-rename so the worker's watcher never reads a half-written file.
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::File::create(&temporary).unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file.sync_all().unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

/// Asserts that `secret` occurs in no object path, no playlist and no log line.
pub fn assert_secret_nowhere(root: &Path, secret: &str) {
    for path in list_objects(root) {
        assert!(!path.contains(secret), "stream key in object path {path}");
        if path.ends_with(".m3u8") {
            let text = String::from_utf8(read_object(root, &path).unwrap()).unwrap();
            assert!(!text.contains(secret), "stream key in playlist {path}");
        }
    }
    assert!(!captured_logs().contains(secret), "stream key in the logs");
}

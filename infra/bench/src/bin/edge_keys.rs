//! Edge key requests/s and p50/p99 latency: gatecast's key function in the wasm host vs nginx
//! `auth_request` to a minimal Python authorize endpoint (the seed 000 setup, with its
//! `set_hmac_sha1` check), both driven by the same `wrk` on the other core, interleaved
//! anchor, ours, anchor, ours so machine noise hits both alike.
//!
//! `--pay-per-view`: instead of the anchor, a paid stream (`key:1`, a viewer with credits,
//! session cap 2, its key already charged once, so the run measures the steady state every
//! refetch and every rendition pays: price, claim marker, session set, audit-seen, sync-due
//! reads) against a free stream of the same stack, interleaved free, paid per round.

#![allow(clippy::print_stdout)] // A benchmark's report is its standard output.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine as _;
use clap::Parser;
use gatecast_bench::nginx::Nginx;
use gatecast_bench::wrk::{WrkLoad, WrkResult};
use gatecast_bench::{free_port, load_average, pinned};
use gatecast_dev::stack::{Stack, StackConfig};
use gatecast_e2e::{ffmpeg, hls};
use hmac::{KeyInit, Mac};
use tokio::io::AsyncBufReadExt;

/// Seed 000's `authorize_key` view without Django: any request is a logged-in, active user.
/// The default backlog of `socketserver` is 5; Django behind gunicorn listens with 2048, so the
/// anchor gets a real backlog rather than SYN drops.
const AUTHORIZE_PY: &str = r#"
import sys
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
class Authorize(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/authorize_key"):
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"OK")
        else:
            self.send_response(403)
            self.send_header("Content-Length", "0")
            self.end_headers()
    def log_message(self, *args):
        pass
class Server(ThreadingHTTPServer):
    request_queue_size = 2048
    daemon_threads = True
server = Server(("127.0.0.1", 0), Authorize)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

const STREAM: &str = "bench";
/// The priced stream of `--pay-per-view`.
const PAID_STREAM: &str = "benchpaid";
/// The viewer every signed URL names.
const VIEWER: &str = "bench-viewer";
const SESSION_ID: &str = "benchsession0123456789";
const SITE_SECRET: &str = "bench-site-secret-key";

#[derive(Parser)]
struct Args {
    /// Seconds per wrk run.
    #[arg(long, default_value_t = 10)]
    seconds: u32,
    /// Interleaved rounds (anchor, ours, ours-rejected per round).
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Keep-alive connections of wrk.
    #[arg(long, default_value_t = 32)]
    connections: u32,
    /// CPUs of the servers (this process with the stack; nginx + Python), `taskset -c` syntax.
    #[arg(long, default_value = "0")]
    server_cpus: String,
    /// CPUs of wrk.
    #[arg(long, default_value = "1")]
    client_cpus: String,
    /// Cargo target dir holding the `--profile wasm` components (default: $CARGO_TARGET_DIR).
    #[arg(long, env = "CARGO_TARGET_DIR")]
    target_dir: PathBuf,
    /// Compare a paid stream with a free one (same run) instead of gatecast with nginx.
    #[arg(long)]
    pay_per_view: bool,
}

/// Marks the re-executed, pinned copy of this process.
const PINNED_MARK: &str = "GATECAST_BENCH_PINNED";

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // The stack runs in this process: pin it by re-executing under taskset, so the tokio runtime
    // sizes itself to the server CPUs.
    if std::env::var_os(PINNED_MARK).is_none() && !args.server_cpus.is_empty() {
        let status = std::process::Command::new("taskset")
            .args(["-c", &args.server_cpus])
            .arg(std::env::current_exe()?)
            .args(std::env::args_os().skip(1))
            .env(PINNED_MARK, "1")
            .status()
            .context("cannot run taskset")?;
        std::process::exit(status.code().unwrap_or(1));
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../spin.toml");
    let mut config = StackConfig::ephemeral(work.path().join("data"), manifest);
    config.target_dir = Some(args.target_dir.clone());
    // One token serves the whole run.
    config
        .variables
        .insert("key_token_ttl_seconds".into(), "3600".into());
    if args.pay_per_view {
        config
            .variables
            .insert("ppv_session_cap".into(), "2".into());
    }
    let stack = Stack::start(config).await.context("stack")?;
    let load = WrkLoad {
        cpus: args.client_cpus.clone(),
        threads: 1,
        connections: args.connections,
        seconds: args.seconds,
    };
    if args.pay_per_view {
        pay_per_view(&stack, &load, args.rounds).await?;
        return stack.shutdown().await;
    }
    let ours = key_url_of_a_live_stream(&stack, STREAM).await?;
    let rejected = tampered(&ours)?;
    let refused = reqwest::get(&rejected).await?.status();
    if refused != reqwest::StatusCode::FORBIDDEN {
        bail!("a tampered key token got {refused}, not 403");
    }

    let anchor = Anchor::start(work.path(), &args.server_cpus).await?;
    eprintln!(
        "load average before: {}; tokio workers: {}",
        load_average(),
        std::thread::available_parallelism()?
    );
    let mut rows = Vec::new();
    for round in 1..=args.rounds {
        let nginx = load
            .run(&anchor.url, std::slice::from_ref(&anchor.cookie))
            .await?;
        report(round, "nginx+auth_request+python", &nginx);
        let gatecast = load.run(&ours, &[]).await?;
        report(round, "gatecast key (storage read)", &gatecast);
        let reject = load.run(&rejected, &[]).await?;
        report(round, "gatecast key, bad token 403", &reject);
        rows.push((nginx, gatecast, reject));
    }
    eprintln!("load average after: {}", load_average());
    summary(&rows);
    anchor.stop().await?;
    stack.shutdown().await
}

/// Paid vs free key requests/s in the same stack: `PAID_STREAM` costs `key:1`, the viewer has
/// credits for the whole run, and its key was charged once before the load starts.
async fn pay_per_view(stack: &Stack, load: &WrkLoad, rounds: u32) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let api = |path: &str| {
        client
            .post(format!("{}{path}", stack.http_base))
            .bearer_auth(&stack.secrets.api_token)
    };
    api(&format!("/api/ppv/prices/{PAID_STREAM}"))
        .json(&serde_json::json!({ "price": "key:1" }))
        .send()
        .await?
        .error_for_status()?;
    api(&format!("/api/ppv/viewers/{VIEWER}/credit"))
        .json(&serde_json::json!({ "credits": 1000 }))
        .send()
        .await?
        .error_for_status()?;
    let free = key_url_of_a_live_stream(stack, STREAM).await?;
    let paid = key_url_of_a_live_stream(stack, PAID_STREAM).await?;
    let balance: serde_json::Value = client
        .get(format!(
            "{}/api/ppv/viewers/{VIEWER}/balance",
            stack.http_base
        ))
        .bearer_auth(&stack.secrets.api_token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    if balance["balance"] != 999 {
        bail!("the paid key was not charged exactly once: {balance}");
    }
    eprintln!("load average before: {}", load_average());
    let mut ratios = Vec::new();
    for round in 1..=rounds {
        let free_run = load.run(&free, &[]).await?;
        report(round, "gatecast key, free stream", &free_run);
        let paid_run = load.run(&paid, &[]).await?;
        report(round, "gatecast key, paid stream", &paid_run);
        if paid_run.non_success > 0 {
            bail!("{} paid key requests were refused", paid_run.non_success);
        }
        ratios.push(paid_run.requests_per_second / free_run.requests_per_second);
    }
    eprintln!("load average after: {}", load_average());
    ratios.sort_by(f64::total_cmp);
    println!(
        "median over {rounds} rounds: paid/free key req/s ratio {:.2}x (target >= 0.5x)",
        ratios[ratios.len() / 2]
    );
    Ok(())
}

fn report(round: u32, name: &str, result: &WrkResult) {
    eprintln!(
        "round {round} {name:30} {:>9.0} req/s  p50 {:>8.3} ms  p99 {:>8.3} ms  non-2xx {} errors {}",
        result.requests_per_second,
        result.p50.as_secs_f64() * 1e3,
        result.p99.as_secs_f64() * 1e3,
        result.non_success,
        result.socket_errors,
    );
}

fn summary(rows: &[(WrkResult, WrkResult, WrkResult)]) {
    let median = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let ratio = median(
        rows.iter()
            .map(|(nginx, ours, _)| ours.requests_per_second / nginx.requests_per_second)
            .collect(),
    );
    let p99 = |pick: fn(&(WrkResult, WrkResult, WrkResult)) -> &WrkResult| {
        median(
            rows.iter()
                .map(|row| pick(row).p99.as_secs_f64() * 1e3)
                .collect(),
        )
    };
    let rps = |pick: fn(&(WrkResult, WrkResult, WrkResult)) -> &WrkResult| {
        median(
            rows.iter()
                .map(|row| pick(row).requests_per_second)
                .collect(),
        )
    };
    println!(
        "median over {} rounds: nginx {:.0} req/s p99 {:.3} ms | gatecast {:.0} req/s p99 {:.3} ms \
         | gatecast 403 path {:.0} req/s p99 {:.3} ms | ours/nginx req/s ratio {:.2}x",
        rows.len(),
        rps(|row| &row.0),
        p99(|row| &row.0),
        rps(|row| &row.1),
        p99(|row| &row.1),
        rps(|row| &row.2),
        p99(|row| &row.2),
        ratio
    );
}

#[derive(serde::Deserialize)]
struct Channel {
    stream_key: String,
}

#[derive(serde::Deserialize)]
struct Signed {
    url: String,
}

/// Creates channel `stream`, publishes a few seconds of real video so keys exist in storage,
/// and returns the first key URI of the signed playlist with its viewer token (checked once:
/// 16 bytes, which also charges a paid stream).
async fn key_url_of_a_live_stream(stack: &Stack, stream: &str) -> anyhow::Result<String> {
    let client = reqwest::Client::new();
    let api = |path: &str| {
        client
            .post(format!("{}{path}", stack.http_base))
            .bearer_auth(&stack.secrets.api_token)
    };
    let channel: Channel = api("/api/channels")
        .json(&serde_json::json!({ "name": stream }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let mut publisher = ffmpeg::publish(&stack.publish_url(&channel.stream_key), 7)?;
    let status = ffmpeg::wait(&mut publisher, Duration::from_secs(60)).await?;
    if !status.success() {
        bail!("ffmpeg publish failed: {status}");
    }
    let signed: Signed = api("/api/sign")
        .json(&serde_json::json!({
            "stream": stream, "viewer": VIEWER, "session": "bench-session", "ttl": 3600,
        }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let playlist_url = format!("{}{}", stack.http_base, signed.url);
    let playlist = client
        .get(&playlist_url)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let key_uri = hls::parse(&playlist)?
        .segments
        .into_iter()
        .find_map(|segment| segment.key_uri)
        .context("playlist has no key")?;
    let key_url = hls::resolve(&playlist_url, &key_uri)?;
    let key = client.get(&key_url).send().await?.error_for_status()?;
    let bytes = key.bytes().await?;
    if bytes.len() != 16 {
        bail!("key response is {} bytes, not 16", bytes.len());
    }
    Ok(key_url)
}

/// The same key URL with one character of its token changed (not the last, whose low bits may
/// be base64 padding): verification fails before any storage read, so this measures the host +
/// wasm + HMAC path alone.
fn tampered(url: &str) -> anyhow::Result<String> {
    let mut chars: Vec<char> = url.chars().collect();
    let index = chars.len().checked_sub(8).context("url too short")?;
    chars[index] = if chars[index] == 'x' { 'y' } else { 'x' };
    Ok(chars.into_iter().collect())
}

/// nginx + `auth_request` + Python: the seed 000 key path.
struct Anchor {
    nginx: Nginx,
    python: tokio::process::Child,
    url: String,
    cookie: String,
}

impl Anchor {
    async fn start(work: &std::path::Path, cpus: &str) -> anyhow::Result<Self> {
        let mut python = pinned(cpus, "python3")
            .args(["-c", AUTHORIZE_PY])
            .stdout(Stdio::piped())
            // socketserver prints a traceback for every connection nginx resets at shutdown;
            // the anchor's failures are counted by wrk instead.
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start python3")?;
        let stdout = python.stdout.take().context("python stdout")?;
        let mut line = String::new();
        tokio::io::BufReader::new(stdout)
            .read_line(&mut line)
            .await?;
        let python_port: u16 = line
            .trim()
            .parse()
            .context("python did not print its port")?;

        let root = work.join("nginx-www");
        std::fs::create_dir_all(root.join(format!("keys/{STREAM}")))?;
        std::fs::write(root.join(format!("keys/{STREAM}/0.key")), [7u8; 16])?;
        let port = free_port()?;
        let body = format!(
            r#"worker_processes 1;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    server {{
        listen 127.0.0.1:{port};
        location ~ ^/keys/([^/]+)/[0-9]+\.key$ {{
            set $stream_username $1;
            set $user_sig $arg_s;
            auth_request /authorize_key;
            root {root};
        }}
        location = /authorize_key {{
            internal;
            set_hmac_sha1 $sig "{SITE_SECRET}" "$cookie_sessionid $stream_username";
            set_encode_base64 $sig $sig;
            if ($sig != $user_sig) {{
                return 403;
            }}
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Stream-Username $stream_username;
            proxy_pass http://127.0.0.1:{python_port}/authorize_key;
        }}
    }}
}}
"#,
            root = root.display()
        );
        let nginx = Nginx::start(
            &work.join("nginx-keys"),
            &["ndk_http_module.so", "ngx_http_set_misc_module.so"],
            &body,
            cpus,
            port,
        )
        .await?;
        let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(SITE_SECRET.as_bytes())?;
        mac.update(format!("{SESSION_ID} {STREAM}").as_bytes());
        let signature =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let url = format!("http://127.0.0.1:{port}/keys/{STREAM}/0.key?s={signature}");
        let cookie = format!("Cookie: sessionid={SESSION_ID}");
        let anchor = Self {
            nginx,
            python,
            url,
            cookie,
        };
        anchor.check().await?;
        Ok(anchor)
    }

    /// The anchor must really check: 16 bytes with the right cookie, 403 without.
    async fn check(&self) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        let allowed = client
            .get(&self.url)
            .header("Cookie", &self.cookie["Cookie: ".len()..])
            .send()
            .await?;
        let status = allowed.status();
        if status != reqwest::StatusCode::OK || allowed.bytes().await?.len() != 16 {
            bail!("anchor refused a valid key request ({status})");
        }
        let refused = client
            .get(&self.url)
            .header("Cookie", "sessionid=someone-else")
            .send()
            .await?
            .status();
        if refused != reqwest::StatusCode::FORBIDDEN {
            bail!("anchor allowed a wrong session ({refused})");
        }
        Ok(())
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        self.python.kill().await?;
        self.nginx.stop().await
    }
}

//! `gatecast-dev`: the whole stack on one machine. See README.md, "Run the stack".

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Parser;
use gatecast_dev::demo;
use gatecast_dev::stack::{Stack, StackConfig};

/// Runs embedded S3, the ingest worker and the edge functions (spin.toml in gatecast's wasm host).
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// State kept across restarts: secrets, S3 objects, KV stores, dev.json.
    #[arg(long, env = "GATECAST_DATA", default_value = ".gatecast")]
    data: PathBuf,
    /// The Spin app to serve.
    #[arg(long, env = "GATECAST_MANIFEST", default_value = "spin.toml")]
    manifest: PathBuf,
    /// Cargo target directory holding the built components.
    #[arg(long, env = "CARGO_TARGET_DIR")]
    target_dir: Option<PathBuf>,
    /// RTMP listen address.
    #[arg(long, env = "GATECAST_RTMP", default_value = "127.0.0.1:1935")]
    rtmp: SocketAddr,
    /// HTTP listen address of the edge functions.
    #[arg(long, env = "GATECAST_HTTP", default_value = "127.0.0.1:3000")]
    http: SocketAddr,
    /// S3 listen address.
    #[arg(long, env = "GATECAST_S3", default_value = "127.0.0.1:9000")]
    s3: SocketAddr,
    /// Target segment duration in seconds.
    #[arg(long, env = "GATECAST_SEGMENT_SECONDS", default_value_t = 4)]
    segment_seconds: u64,
    /// A fresh AES key every this many segments.
    #[arg(long, env = "GATECAST_SEGMENTS_PER_KEY", default_value_t = 6)]
    segments_per_key: u32,
    /// Keep every segment and write a replay playlist (vod.m3u8).
    #[arg(long, env = "GATECAST_RECORD")]
    record: bool,
    /// Skip building the components (like `spin up` without `--build`).
    #[arg(long)]
    no_build: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GATECAST_LOG")
                .unwrap_or_else(|_| "info,wasmtime=warn,cranelift=warn".into()),
        )
        .init();
    let cli = Cli::parse();
    if !cli.no_build {
        build_components(&cli.manifest)?;
    }
    let config = StackConfig {
        target_dir: cli.target_dir,
        rtmp: cli.rtmp,
        http: cli.http,
        s3: cli.s3,
        segment_seconds: cli.segment_seconds,
        segments_per_key: cli.segments_per_key,
        record: cli.record,
        ..StackConfig::ephemeral(&cli.data, &cli.manifest)
    };
    let stack = Stack::start(config).await?;
    let info = demo::prepare(&stack, &cli.data).await?;
    tracing::info!(dev_json = %cli.data.join("dev.json").display(), "stack is up");
    eprintln!(
        "\n\
        gatecast is running.\n\n\
        Publish (ffmpeg):\n  ffmpeg -re -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine \\\n    \
        -c:v libx264 -preset veryfast -g 60 -c:a aac -f flv {publish}\n\
        Publish (OBS): Server {server}  Stream Key {key}\n\n\
        Play (signed, 24 h):\n  ffplay '{playback}'\n\n\
        Sign more URLs:\n  curl -s -H 'Authorization: Bearer {token}' -d '{{\"stream\":\"{stream}\",\"viewer\":\"v1\",\"session\":\"s1\",\"ttl\":3600}}' \\\n    \
        {base}/api/sign\n\n\
        Everything above is also in {json}. Ctrl-C stops the stack.\n",
        publish = info.rtmp_publish_url,
        server = info
            .rtmp_publish_url
            .rsplit_once('/')
            .map_or("", |(server, _)| server),
        key = info.rtmp_publish_url.rsplit('/').next().unwrap_or_default(),
        playback = info.playback_url,
        token = info.api_token,
        stream = info.stream,
        base = info.http_base,
        json = cli.data.join("dev.json").display(),
    );
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for Ctrl-C")?;
    tracing::info!("stopping: finalizing live playlists");
    stack.shutdown().await
}

/// Runs every component's `[component.<id>.build] command` from the manifest's folder, as
/// `spin build` does. Cargo makes this a no-op when nothing changed.
fn build_components(manifest: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("cannot read {}", manifest.display()))?;
    let parsed: toml::Table = text.parse().context("spin.toml is not valid TOML")?;
    let folder = manifest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let components = parsed.get("component").and_then(toml::Value::as_table);
    for (id, component) in components.into_iter().flatten() {
        let Some(command) = component
            .get("build")
            .and_then(|build| build.get("command"))
            .and_then(toml::Value::as_str)
        else {
            continue;
        };
        tracing::info!(component = %id, %command, "building");
        let status = std::process::Command::new("sh")
            .args(["-c", command])
            .current_dir(folder)
            .status()
            .with_context(|| format!("cannot run the build of {id}"))?;
        if !status.success() {
            bail!("building component {id} failed ({status})");
        }
    }
    Ok(())
}

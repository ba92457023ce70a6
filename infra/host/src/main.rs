//! `gatecast-host`: serve a Spin app (manifest v2) on wasmtime, like `spin up`.

use clap::Parser;
use gatecast_host::variables::ENV_PREFIX;
use gatecast_host::{Host, HostConfig, ReusePolicy};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Serve gatecast's Spin app with the embedded wasmtime host.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// The Spin manifest.
    #[arg(long, default_value = "spin.toml")]
    manifest: PathBuf,
    /// Directory for host state (key-value stores in `<data>/kv/<label>.db`).
    /// Default: `.gatecast` beside the manifest.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Cargo target directory used for component sources starting with `target/`.
    #[arg(long, env = "CARGO_TARGET_DIR")]
    target_dir: Option<PathBuf>,
    /// Application variable value, `name=value` (wins over SPIN_VARIABLE_* and defaults).
    #[arg(long = "variable", value_parser = parse_variable)]
    variables: Vec<(String, String)>,
    /// Per-request time limit in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    request_timeout_ms: u64,
    /// Per-instance linear memory limit in MiB.
    #[arg(long, default_value_t = 256)]
    max_memory_mib: usize,
    /// Requests one instance serves before it is dropped (Spin's WASIp3 default; 1 = a fresh
    /// instance per request, to find a component that keeps state between requests).
    #[arg(long, default_value_t = ReusePolicy::default().max_requests_per_instance)]
    max_instance_reuse_count: usize,
    /// Requests one instance serves at the same time.
    #[arg(long, default_value_t = ReusePolicy::default().max_concurrent_requests_per_instance)]
    max_instance_concurrent_reuse_count: usize,
    /// Milliseconds an instance may sit idle before it is dropped.
    #[arg(long, default_value_t = 1_000)]
    idle_instance_timeout_ms: u64,
}

fn parse_variable(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| "expected name=value".to_owned())
}

/// Spin's environment provider: this process's `SPIN_VARIABLE_<NAME>` entries (one whose name
/// or value is not UTF-8 is skipped, as `std::env::var` would).
fn spin_variable_env() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
        .filter(|(name, _)| name.starts_with(ENV_PREFIX))
        .collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let mut config = HostConfig::new(&args.manifest);
    if let Some(data) = args.data {
        config.data_dir = data;
    }
    config.target_dir = args.target_dir;
    config.variables = args.variables.into_iter().collect::<BTreeMap<_, _>>();
    config.env_variables = spin_variable_env();
    config.request_timeout = Duration::from_millis(args.request_timeout_ms);
    config.max_memory_bytes = args.max_memory_mib.saturating_mul(1024 * 1024);
    config.reuse = ReusePolicy {
        max_requests_per_instance: args.max_instance_reuse_count.max(1),
        max_concurrent_requests_per_instance: args.max_instance_concurrent_reuse_count.max(1),
        idle_instance_timeout: Duration::from_millis(args.idle_instance_timeout_ms),
    };

    let host = Host::load(&config)?;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let local = listener.local_addr()?;
    tracing::info!("serving http://{local}");
    for (route, component) in host.routes() {
        tracing::info!("  {component}: http://{local}{route}");
    }
    gatecast_host::serve(host, listener, async {
        // Ctrl-C failing to install leaves SIGTERM/kill as the way out; keep serving.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    })
    .await
}

//! Whole-system benchmarks of gatecast against the nginx setups it replaces, each anchor measured
//! in the same run so the result is a ratio that survives a noisy, shared machine.
//!
//! - `edge-keys`: key requests/s and latency through the wasm host vs nginx `auth_request` to a
//!   minimal Python authorize endpoint (seed 000), driven by `wrk`.
//! - `ingest-publishers`: concurrent RTMP publishers (the replayer of [`replay`], or ffmpeg)
//!   sustained in real time by `gatecast-ingest` vs nginx-rtmp with `hls on; hls_keys on;`.
//!
//! These are benchmarks, not tests: nothing here runs under `cargo test`.
#![warn(missing_docs)]

pub mod nginx;
pub mod procstat;
pub mod replay;
pub mod wrk;

use std::net::TcpListener;

/// A free loopback port for a child process that cannot report the port it bound (nginx).
/// The port is released before the child binds it; a collision fails loudly at start-up.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Runs `command` pinned to `cpus` (a `taskset -c` list) when `cpus` is non-empty.
pub fn pinned(cpus: &str, program: &str) -> tokio::process::Command {
    if cpus.is_empty() {
        tokio::process::Command::new(program)
    } else {
        let mut command = tokio::process::Command::new("taskset");
        command.args(["-c", cpus, program]);
        command
    }
}

/// The 1-minute load average, to report beside every figure.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".to_owned())
}

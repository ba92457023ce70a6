#![allow(clippy::unwrap_used)]
//! The `gatecast-ingest` binary: flags and `GATECAST_*` environment reach the worker, ports
//! chosen with `:0` are logged, SIGTERM stops it cleanly.
//!
//! Run: `cargo test -p gatecast-ingest --test rtmp_binary`.

mod shell_support;

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test]
async fn binary_runs_from_flags_and_env_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.toml");
    shell_support::write_keys_file(&keys, &[("binary-test-key", "henry", true)]);
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_gatecast-ingest"))
        .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .arg("--storage")
        .arg(format!("file://{}", dir.path().join("media").display()))
        .arg("--key-storage")
        .arg(format!("file://{}", dir.path().join("keys").display()))
        .env("GATECAST_KEYS", &keys)
        .env("GATECAST_SEGMENTS_PER_KEY", "3")
        .env("GATECAST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut admin = None;
    let mut saw_keys = false;
    while admin.is_none() {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .expect("the worker logs its addresses");
        saw_keys |= line.contains("keys file loaded") && line.contains("channels=1");
        if line.contains("ingest worker listening") {
            let field = line.split("admin=").nth(1).unwrap();
            let field = field
                .split(|c: char| c.is_whitespace() || c == '\u{1b}')
                .next()
                .unwrap();
            admin = Some(field.parse::<std::net::SocketAddr>().unwrap());
        }
    }
    assert!(saw_keys, "GATECAST_KEYS was read");
    let (status, body) = shell_support::http_request(admin.unwrap(), "GET", "/healthz", "").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));

    let pid = child.id().unwrap().to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "clean exit on SIGTERM: {status}");
}

#[tokio::test]
async fn binary_rejects_bad_config() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_gatecast-ingest"))
        .args([
            "--segments-per-key",
            "0",
            "--admin",
            "127.0.0.1:0",
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--segments-per-key"));
}

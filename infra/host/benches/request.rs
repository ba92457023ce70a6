//! Per-request cost of the host: routing, a fresh instance, host calls, body forwarding.
//!
//! Runs the real probe component in-process (no TCP), so the numbers are the host's own
//! overhead on top of what the guest does.
#![allow(missing_docs, clippy::unwrap_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use gatecast_host::{Host, HostConfig};
use http_body_util::{BodyExt as _, Empty};
use std::collections::BTreeMap;
use std::net::SocketAddr;

const MANIFEST: &str = r#"
spin_manifest_version = 2
[application]
name = "bench"
[variables]
greeting = { default = "hello" }
[[trigger.http]]
route = "/..."
component = "probe"
[component.probe]
source = "PROBE"
variables = { plain = "{{ greeting }}" }
key_value_stores = ["default"]
"#;

fn requests(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("spin.toml");
    let wasm = support::probe_wasm();
    std::fs::write(
        &manifest,
        MANIFEST.replace("PROBE", &wasm.display().to_string()),
    )
    .unwrap();
    let mut config = HostConfig::new(&manifest);
    config.data_dir = dir.path().join("data");
    config.variables = BTreeMap::new();
    let host = Host::load(&config).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client: SocketAddr = "127.0.0.1:40000".parse().unwrap();

    let call = |path: &'static str| {
        let host = host.clone();
        async move {
            let request = http::Request::get(path)
                .header("host", "bench")
                .body(Empty::<Bytes>::new())
                .unwrap();
            let response = host.handle_body(request, client).await;
            let status = response.status();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (status, body)
        }
    };

    runtime.block_on(async {
        let (status, body) = call("/kv/default/set/k").await;
        assert_eq!(status, 200, "{body:?}");
    });

    let mut group = c.benchmark_group("host_request");
    group.bench_function("variable_get", |b| {
        b.iter(|| {
            let (status, body) = runtime.block_on(call("/var/plain"));
            assert_eq!((status.as_u16(), &body[..]), (200, &b"hello"[..]));
        })
    });
    group.bench_function("kv_get", |b| {
        b.iter(|| {
            let (status, _) = runtime.block_on(call("/kv/default/get/k"));
            assert_eq!(status.as_u16(), 200);
        })
    });
    group.bench_function("routing_headers_echo", |b| {
        b.iter(|| {
            let (status, _) = runtime.block_on(call("/echo"));
            assert_eq!(status.as_u16(), 200);
        })
    });
    group.finish();
}

criterion_group!(benches, requests);
criterion_main!(benches);

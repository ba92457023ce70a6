#![allow(clippy::unwrap_used)]
//! Conformance tests: the real probe component (tests/probe) served by the real host over real
//! TCP. Expected values are Spin's documented behaviour, written out by hand.

use bytes::Bytes;
use gatecast_host::{Host, HostConfig, ReusePolicy};
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

mod support;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::probe_wasm;

const MANIFEST: &str = r#"
spin_manifest_version = 2

[application]
name = "probe-app"

[variables]
greeting = { default = "hello" }
region = { required = true }
upstream = { default = "http://127.0.0.1:1" }

[[trigger.http]]
route = "/..."
component = "probe"

[[trigger.http]]
route = "/route/exact"
component = "probe"

[[trigger.http]]
route = "/route/..."
component = "probe"

[[trigger.http]]
route = "/route/:item_id/detail"
component = "probe"

[[trigger.http]]
route = "/route/deep/..."
component = "probe"

[[trigger.http]]
route = "/limited/..."
component = "limited"

[component.probe]
source = "PROBE"
variables = { message = "{{ greeting }} from {{ region }}", plain = "literal" }
key_value_stores = ["default", "other"]
allowed_outbound_hosts = ["{{ upstream }}"]

[component.limited]
source = "PROBE"
"#;

struct TestApp {
    addr: SocketAddr,
    data: tempfile::TempDir,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

fn write_manifest(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("spin.toml");
    let text = text.replace("PROBE", &probe_wasm().display().to_string());
    std::fs::write(&path, text).expect("write manifest");
    path
}

fn config(dir: &Path, manifest: &str, upstream: Option<SocketAddr>) -> HostConfig {
    let mut config = HostConfig::new(write_manifest(dir, manifest));
    config.data_dir = dir.join("data");
    config.variables = BTreeMap::from([("region".to_owned(), "eu-west".to_owned())]);
    if let Some(upstream) = upstream {
        config
            .variables
            .insert("upstream".to_owned(), format!("http://{upstream}"));
    }
    config
}

async fn start(config: HostConfig, data: tempfile::TempDir) -> TestApp {
    let host = Host::load(&config).expect("load host");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(gatecast_host::serve(host, listener, async {
        let _ = rx.await;
    }));
    TestApp {
        addr,
        data,
        _shutdown: tx,
    }
}

async fn app_with(upstream: Option<SocketAddr>, tweak: impl FnOnce(&mut HostConfig)) -> TestApp {
    let data = tempfile::tempdir().unwrap();
    let mut config = config(data.path(), MANIFEST, upstream);
    tweak(&mut config);
    start(config, data).await
}

async fn app() -> TestApp {
    app_with(None, |_| {}).await
}

/// One HTTP/1 request on a fresh connection; returns status, headers and body text.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &'static [u8],
) -> (u16, hyper::HeaderMap, String) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut builder = hyper::Request::builder().method(method).uri(path);
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        builder = builder.header("host", addr.to_string());
    }
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = sender
        .send_request(builder.body(Full::new(Bytes::from_static(body))).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let (status, _, body) = request(addr, "GET", path, &[], b"").await;
    (status, body)
}

/// A plain upstream HTTP server that counts the requests it receives.
async fn upstream(reply_status: u16, reply: &'static str) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let service = service_fn(move |_req: hyper::Request<hyper::body::Incoming>| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    async move {
                        Ok::<_, Infallible>(
                            hyper::Response::builder()
                                .status(reply_status)
                                .body(Full::new(Bytes::from_static(reply.as_bytes())))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variables_resolve_templates_and_report_spin_errors() {
    let app = app().await;
    assert_eq!(
        get(app.addr, "/var/message").await,
        (200, "hello from eu-west".to_owned())
    );
    assert_eq!(
        get(app.addr, "/var/plain").await,
        (200, "literal".to_owned())
    );
    let (status, body) = get(app.addr, "/var/nope").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body, r#"undefined: no variable for "probe"."nope""#);
    // Application variables are invisible unless the component declares them.
    let (status, body) = get(app.addr, "/var/greeting").await;
    assert_eq!(
        (status, body.starts_with("undefined:")),
        (404, true),
        "{body}"
    );
    let (status, body) = get(app.addr, "/var/Upper").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.starts_with("invalid-name:"), "{body}");
    // Another component sees only its own (no) variables.
    let (status, body) = get(app.addr, "/limited/var/message").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body, r#"undefined: no variable for "limited"."message""#);
}

/// Spin's provider order when the embedder passes the environment in (the library reads none):
/// `--variable` values win over `SPIN_VARIABLE_<NAME>`, which wins over the default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_values_come_from_the_config_behind_explicit_ones() {
    let app = app_with(None, |config| {
        config.env_variables = BTreeMap::from([
            ("SPIN_VARIABLE_GREETING".to_owned(), "hi".to_owned()),
            ("SPIN_VARIABLE_REGION".to_owned(), "from-env".to_owned()),
        ]);
    })
    .await;
    assert_eq!(
        get(app.addr, "/var/message").await,
        (200, "hi from eu-west".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_value_crud_access_rules_and_persistence() {
    let app = app().await;
    let addr = app.addr;
    assert_eq!(
        get(addr, "/kv/default/get/k1").await,
        (404, "none".to_owned())
    );
    assert_eq!(
        get(addr, "/kv/default/exists/k1").await,
        (200, "false".to_owned())
    );
    let (status, _, body) = request(addr, "PUT", "/kv/default/set/k1", &[], b"v1").await;
    assert_eq!((status, body.as_str()), (200, "set"));
    let (status, _, _) = request(addr, "PUT", "/kv/default/set/k2", &[], b"v2").await;
    assert_eq!(status, 200);
    assert_eq!(
        get(addr, "/kv/default/get/k1").await,
        (200, "v1".to_owned())
    );
    assert_eq!(
        get(addr, "/kv/default/exists/k1").await,
        (200, "true".to_owned())
    );
    assert_eq!(
        get(addr, "/kv/default/keys").await,
        (200, "k1\nk2".to_owned())
    );
    // Stores are isolated.
    assert_eq!(get(addr, "/kv/other/keys").await, (200, String::new()));
    assert_eq!(
        get(addr, "/kv/default/delete/k1").await,
        (200, "deleted".to_owned())
    );
    assert_eq!(
        get(addr, "/kv/default/delete/k1").await,
        (200, "deleted".to_owned())
    );
    assert_eq!(
        get(addr, "/kv/default/get/k1").await,
        (404, "none".to_owned())
    );
    assert_eq!(get(addr, "/kv/default/keys").await, (200, "k2".to_owned()));

    // Spin checks the component's list first: unlisted and unknown labels are access-denied.
    assert_eq!(
        get(addr, "/kv/unlisted/open").await,
        (403, "access-denied".to_owned())
    );
    assert_eq!(
        get(addr, "/limited/kv/default/open").await,
        (403, "access-denied".to_owned())
    );

    // The data is in <data>/kv/default.db in Spin's SQLite schema, readable independently.
    let db = rusqlite::Connection::open(app.data.path().join("data/kv/default.db")).unwrap();
    let value: Vec<u8> = db
        .query_row(
            "SELECT value FROM spin_key_value WHERE store = 'default' AND key = 'k2'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(value, b"v2");
    drop(db);

    // A new host on the same data directory sees the same data.
    let data = app.data;
    let again = start(
        config(data.path(), MANIFEST, None),
        tempfile::tempdir().unwrap(),
    )
    .await;
    assert_eq!(
        get(again.addr, "/kv/default/get/k2").await,
        (200, "v2".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_http_is_limited_to_allowed_hosts() {
    let (allowed, allowed_hits) = upstream(203, "upstream says hi").await;
    let (denied, denied_hits) = upstream(200, "should never be reached").await;
    let app = app_with(Some(allowed), |_| {}).await;

    let url = format!("http://{allowed}/hello");
    let (status, _, body) =
        request(app.addr, "GET", "/outbound", &[("x-probe-url", &url)], b"").await;
    assert_eq!(
        (status, body.as_str()),
        (200, "status=203\nupstream says hi")
    );
    assert_eq!(allowed_hits.load(Ordering::SeqCst), 1);

    let url = format!("http://{denied}/hello");
    let (status, _, body) =
        request(app.addr, "GET", "/outbound", &[("x-probe-url", &url)], b"").await;
    assert_eq!(
        (status, body.as_str()),
        (502, "ErrorCode::HttpRequestDenied")
    );
    // Same host, other scheme: also denied (the pattern's scheme is http only).
    let url = format!("https://{allowed}/hello");
    let (status, _, body) =
        request(app.addr, "GET", "/outbound", &[("x-probe-url", &url)], b"").await;
    assert_eq!(
        (status, body.as_str()),
        (502, "ErrorCode::HttpRequestDenied")
    );
    assert_eq!(denied_hits.load(Ordering::SeqCst), 0);

    // A component without allowed_outbound_hosts may not reach even the allowed upstream.
    let url = format!("http://{allowed}/hello");
    let (status, _, body) = request(
        app.addr,
        "GET",
        "/limited/outbound",
        &[("x-probe-url", &url)],
        b"",
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (502, "ErrorCode::HttpRequestDenied")
    );
    assert_eq!(allowed_hits.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trap_is_a_500_for_that_request_only() {
    let app = app().await;
    let (status, _) = get(app.addr, "/trap").await;
    assert_eq!(status, 500);
    assert_eq!(
        get(app.addr, "/var/plain").await,
        (200, "literal".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runaway_guest_is_stopped_by_the_time_limit() {
    let app = app_with(None, |c| c.request_timeout = Duration::from_millis(500)).await;
    let started = std::time::Instant::now();
    let (status, _) = get(app.addr, "/spin").await;
    assert_eq!(status, 500);
    // Generous bound: the epoch deadline is 0.5 s; a missing limit would hang forever.
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(
        get(app.addr, "/var/plain").await,
        (200, "literal".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_limit_fails_only_the_greedy_request() {
    let app = app_with(None, |c| c.max_memory_bytes = 32 * 1024 * 1024).await;
    let (status, _) = get(app.addr, "/alloc/64").await;
    assert_eq!(status, 500);
    // 1 MiB of bytes valued 1 sums to 1048576.
    assert_eq!(get(app.addr, "/alloc/1").await, (200, "1048576".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_completely() {
    let app = app().await;
    let (status, body) = get(app.addr, "/big/3000000").await;
    assert_eq!(status, 200);
    assert_eq!(body.len(), 3_000_000);
    assert!(body.bytes().all(|b| b == b'x'));
}

fn routing_headers(body: &str) -> serde_json::Value {
    let value: serde_json::Value = serde_json::from_str(body).expect("probe echoes JSON");
    value["headers"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_picks_the_most_specific_route_and_sets_spin_headers() {
    let app = app().await;
    let addr = app.addr;

    let (status, body) = get(addr, "/route/exact").await;
    assert_eq!(status, 200, "{body}");
    let h = routing_headers(&body);
    assert_eq!(h["spin-matched-route"], "/route/exact");
    assert_eq!(h["spin-path-info"], "");
    assert_eq!(h["spin-component-route"], "/route/exact");

    let h = routing_headers(&get(addr, "/route/abc/detail").await.1);
    assert_eq!(h["spin-matched-route"], "/route/:item_id/detail");
    assert_eq!(h["spin-path-match-item-id"], "abc");

    let h = routing_headers(&get(addr, "/route/deep/a/b/").await.1);
    assert_eq!(h["spin-matched-route"], "/route/deep/...");
    assert_eq!(h["spin-raw-component-route"], "/route/deep/...");
    assert_eq!(h["spin-component-route"], "/route/deep");
    assert_eq!(h["spin-path-info"], "/a/b/");

    let h = routing_headers(&get(addr, "/route/other/x").await.1);
    assert_eq!(h["spin-matched-route"], "/route/...");
    assert_eq!(h["spin-path-info"], "/other/x");

    let h = routing_headers(&get(addr, "/elsewhere").await.1);
    assert_eq!(h["spin-matched-route"], "/...");
    assert_eq!(h["spin-path-info"], "/elsewhere");
    assert_eq!(h["spin-base-path"], "/");

    // Full URL keeps the query.
    let (_, _, body) = request(addr, "GET", "/route/exact?token=abc&x=1", &[], b"").await;
    let h = routing_headers(&body);
    assert_eq!(
        h["spin-full-url"],
        format!("http://{addr}/route/exact?token=abc&x=1")
    );
}

/// Issue 13 item 16: client-sent `spin-*` headers reach the component exactly as on Spin
/// (`crates/trigger-http/src/headers.rs` `prepare_request_headers`, then `wasi.rs`
/// `prepare_request`'s `HeaderMap::extend`): the client's values first, in the order sent,
/// and Spin's own value appended last; a `spin-*` name Spin does not set passes unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_sent_spin_headers_come_before_spins_own_as_on_spin() {
    let app = app().await;
    let (status, _, body) = request(
        app.addr,
        "GET",
        "/route/abc/detail",
        &[
            ("spin-client-addr", "203.0.113.5:1"),
            ("spin-client-addr", "198.51.100.7:2"),
            ("spin-path-info", "/forged"),
            ("spin-path-match-item-id", "forged"),
            ("spin-custom", "kept"),
        ],
        b"",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let echoed: serde_json::Value = serde_json::from_str(&body).expect("probe echoes JSON");
    let values = &echoed["values"];
    let client = values["spin-client-addr"]
        .as_array()
        .expect("spin-client-addr values");
    assert_eq!(client.len(), 3, "{client:?}");
    assert_eq!(client[0], "203.0.113.5:1");
    assert_eq!(client[1], "198.51.100.7:2");
    let real = client[2].as_str().unwrap_or_default();
    assert!(real.starts_with("127.0.0.1:"), "{real}");
    assert_eq!(values["spin-path-info"], serde_json::json!(["/forged", ""]));
    assert_eq!(
        values["spin-path-match-item-id"],
        serde_json::json!(["forged", "abc"])
    );
    assert_eq!(
        values["spin-matched-route"],
        serde_json::json!(["/route/:item_id/detail"])
    );
    assert_eq!(values["spin-custom"], serde_json::json!(["kept"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmatched_path_is_404() {
    let manifest = MANIFEST.replace("route = \"/...\"", "route = \"/only/...\"");
    let data = tempfile::tempdir().unwrap();
    let config = config(data.path(), &manifest, None);
    let app = start(config, data).await;
    assert_eq!(get(app.addr, "/nowhere").await.0, 404);
    assert_eq!(
        get(app.addr, "/only/var/plain").await,
        (200, "literal".to_owned())
    );
}

#[test]
fn startup_fails_like_spin_for_missing_required_variable_and_source() {
    let data = tempfile::tempdir().unwrap();
    let mut config = config(data.path(), MANIFEST, None);
    config.variables.clear();
    let err = Host::load(&config).err().expect("region is required");
    assert!(format!("{err:#}").contains("region"), "{err:#}");

    let manifest = MANIFEST.replace("source = \"PROBE\"", "source = \"missing.wasm\"");
    let config = self::config(data.path(), &manifest, None);
    let err = Host::load(&config).err().expect("missing source");
    assert!(format!("{err:#}").contains("missing.wasm"), "{err:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_get_isolated_instances() {
    let app = app().await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let addr = app.addr;
        tasks.push(tokio::spawn(async move {
            let key = format!("/kv/default/set/c{i}");
            let (status, _, _) = request(addr, "PUT", &key, &[], b"x").await;
            status
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    let (_, keys) = get(app.addr, "/kv/default/keys").await;
    assert_eq!(keys.lines().count(), 16);
}

/// Local service chaining and private routes (Spin SIP 017 and its docs): `caller` may chain
/// to `internal` only; `open` has the allow-all entry, which does not grant chaining; `wild`
/// may chain to any component; `internal` has only a private route.
const CHAIN_MANIFEST: &str = r#"
spin_manifest_version = 2

[application]
name = "chain-app"

[[trigger.http]]
route = "/caller/..."
component = "caller"

[[trigger.http]]
route = "/open/..."
component = "open"

[[trigger.http]]
route = "/wild/..."
component = "wild"

[[trigger.http]]
route = { private = true }
component = "internal"

[component.caller]
source = "PROBE"
allowed_outbound_hosts = ["http://internal.spin.internal"]

[component.open]
source = "PROBE"
allowed_outbound_hosts = ["*://*:*"]

[component.wild]
source = "PROBE"
allowed_outbound_hosts = ["http://*.spin.internal"]

[component.internal]
source = "PROBE"
"#;

async fn chain_app() -> TestApp {
    let data = tempfile::tempdir().unwrap();
    let config = config(data.path(), CHAIN_MANIFEST, None);
    start(config, data).await
}

/// `GET <route>/outbound` of the probe at `route`, asking it to fetch `url`.
async fn probe_fetch(addr: SocketAddr, route: &str, url: &str) -> (u16, String) {
    let (status, _, body) = request(
        addr,
        "GET",
        &format!("{route}/outbound"),
        &[("x-probe-url", url)],
        b"",
    )
    .await;
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaining_reaches_a_listed_component_in_process_with_spins_headers() {
    let app = chain_app().await;
    let (status, body) = probe_fetch(
        app.addr,
        "/caller",
        "http://internal.spin.internal/some/path?q=1",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let echo: serde_json::Value = serde_json::from_str(
        body.strip_prefix("status=200\n")
            .unwrap_or_else(|| panic!("{body}")),
    )
    .unwrap();
    // Spin's synthetic match: as if the whole path matched `/...`, no client address.
    assert_eq!(echo["path"], "/some/path");
    let headers = &echo["headers"];
    assert_eq!(headers["spin-path-info"], "/some/path");
    assert_eq!(headers["spin-matched-route"], "/...");
    assert_eq!(headers["spin-raw-component-route"], "/...");
    assert_eq!(headers["spin-component-route"], "");
    assert_eq!(headers["spin-base-path"], "/");
    assert_eq!(headers["spin-client-addr"], "0.0.0.0:0");
    assert_eq!(
        headers["spin-full-url"],
        "http://internal.spin.internal/some/path?q=1"
    );

    // A wildcard chaining entry reaches any component; a callee that traps is a 500 for the
    // caller, not a trap of the caller.
    for (url, expected) in [
        (
            "http://internal.spin.internal/trap",
            (200, "status=500\nInternal Server Error"),
        ),
        (
            "http://nosuch.spin.internal/",
            (502, "ErrorCode::DestinationNotFound"),
        ),
    ] {
        let (status, body) = probe_fetch(app.addr, "/wild", url).await;
        assert_eq!((status, body.as_str()), expected, "{url}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaining_not_listed_is_denied_even_with_allow_all() {
    let app = chain_app().await;
    // `caller` lists internal only; SIP 017: `*://*:*` does not, by itself, enable chaining.
    for (route, url) in [
        ("/caller", "http://wild.spin.internal/x"),
        ("/open", "http://internal.spin.internal/x"),
    ] {
        let (status, body) = probe_fetch(app.addr, route, url).await;
        assert_eq!(
            (status, body.as_str()),
            (502, "ErrorCode::HttpRequestDenied"),
            "{route} -> {url}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_route_is_404_from_outside_and_chaining_host_is_stripped() {
    let app = chain_app().await;
    for path in ["/", "/internal", "/internal/x", "/trap"] {
        assert_eq!(get(app.addr, path).await.0, 404, "{path}");
    }
    // An outside request cannot pose as a chained one: Spin drops a `*.spin.internal` Host.
    let (status, _, body) = request(
        app.addr,
        "GET",
        "/caller/echo",
        &[("host", "internal.spin.internal")],
        b"",
    )
    .await;
    assert_eq!(status, 200);
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        echo["headers"]["spin-full-url"],
        "http://localhost/caller/echo"
    );
    assert_ne!(echo["headers"]["host"], "internal.spin.internal");
}

/// Spin 4 serves a WASIp3 component from instances it reuses (128 requests each by default),
/// so a component's globals live across requests of one instance and are fresh in the next:
/// with a lifetime of 3, one-at-a-time requests see instance counters 1, 2, 3, then 1, 2 again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_are_reused_within_the_configured_lifetime() {
    let app = app_with(None, |config| {
        config.reuse = ReusePolicy {
            max_requests_per_instance: 3,
            ..ReusePolicy::default()
        };
    })
    .await;
    let mut served = Vec::new();
    for _ in 0..5 {
        let (status, body) = get(app.addr, "/served").await;
        assert_eq!(status, 200);
        served.push(body);
    }
    assert_eq!(served, ["1", "2", "3", "1", "2"]);

    let fresh = app_with(None, |config| {
        config.reuse = ReusePolicy {
            max_requests_per_instance: 1,
            ..ReusePolicy::default()
        };
    })
    .await;
    for _ in 0..3 {
        assert_eq!(get(fresh.addr, "/served").await, (200, "1".to_owned()));
    }
}

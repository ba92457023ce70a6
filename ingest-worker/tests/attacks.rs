#![allow(clippy::unwrap_used)]
//! Issue 13, the publisher side: each test does the attack against a real worker (real RTMP
//! clients, real ffmpeg, real hook servers), asserts it is refused, and asserts that the
//! legitimate use next to it still works.
//!
//! Run: `cargo test -p gatecast-ingest --test attacks` (needs ffmpeg, ffprobe, openssl).

mod shell_support;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use gatecast_ingest::Stores;
use shell_support::*;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

/// The attacker's source address; ffmpeg publishes from 127.0.0.1.
const ATTACKER: &str = "127.0.0.2:0";

/// Request headers of one admin request.
type Headers<'a> = Vec<(&'a str, &'a str)>;

fn refused(reason: &str) -> String {
    format!("gatecast_ingest_publishes_refused_total{{reason=\"{reason}\"}}")
}

/// Issue 13 item 8: an `on_publish` hook that answers 2xx without a rename would publish the
/// secret stream key as the public name. Such a publish is refused (the key reaches no object
/// path, playlist or log line) while a hook that renames with a 3xx, as the seed Django views
/// and the edge's own hook do, publishes next to it. `--on-publish-names-are-public` is the
/// opt-in for hooks whose names are public.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item8_hook_2xx_without_rename_never_publishes_the_key() {
    let secret_key = "sEcReTkEy2xxNoRename";
    let hook = start_hook_server(move |call| match (call.path.as_str(), call.field("name")) {
        ("/on_publish", Some(name)) if name == secret_key => (200, None),
        ("/on_publish", Some("renamed-key")) => (302, Some("grace".to_owned())),
        ("/on_publish", Some("public-name")) => (200, None),
        ("/on_publish", _) => (403, None),
        _ => (200, None),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    let (mut config, stores) = file_config(&media);
    config.auth.on_publish = Some(hook.url("/on_publish"));
    let worker = start_worker(config, stores).await;

    let legit = spawn_publisher(&worker.url("renamed-key"), 5);
    let attack = publish(&worker.url(secret_key), 2).await;
    assert!(!attack.status.success(), "a 2xx without a rename refuses");
    finish_publish(
        legit,
        &media.join("live/grace/index.m3u8"),
        "the renamed publisher",
        Duration::from_secs(10),
    )
    .await;
    verify_finished_stream(&media, "grace", 2).await;
    assert_eq!(worker.metric(&refused("hook_no_rename")).await, 1.0);
    assert_secret_nowhere(&media, secret_key);
    assert!(!media.join(format!("live/{secret_key}")).exists());
    worker.shutdown().await.unwrap();

    // The explicit opt-in: the hook's names are public, so a 2xx publishes under the name.
    let opted = dir.path().join("opted");
    let (mut config, stores) = file_config(&opted);
    config.auth.on_publish = Some(hook.url("/on_publish"));
    config.auth.on_publish_names_are_public = true;
    let worker = start_worker(config, stores).await;
    finish_publish(
        spawn_publisher(&worker.url("public-name"), 3),
        &opted.join("live/public-name/index.m3u8"),
        "a declared-public name publishes on a 2xx",
        Duration::from_secs(10),
    )
    .await;
    worker.shutdown().await.unwrap();
}

/// Issue 13 item 9: hook URLs carry the hook secret in their query (the edge's
/// `/hooks/on-publish?secret=…`). A hook that fails logs WARN lines, and a bad URL is an error
/// at start-up; neither shows more than `scheme://host/path` (a URL with `user:password@`,
/// which the HTTP client would trace-log, is refused). Every log line is captured at TRACE. The publisher next to
/// it, allowed by a working hook whose URL holds the same secret, publishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item9_hook_secret_never_reaches_the_logs() {
    let secret = "HoOkSeCrEt9qXz";
    let hook = start_hook_server(|call| match call.path.as_str() {
        "/on_publish" => (302, Some("heidi".to_owned())),
        _ => (200, None),
    })
    .await;
    // A port that was free a moment ago: the on_update hook is unreachable, and every
    // heartbeat logs a WARN line naming it.
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    let (mut config, stores) = file_config(&media);
    config.auth.on_publish = Some(hook.url(&format!("/on_publish?secret={secret}")));
    config.auth.on_update = Some(format!(
        "http://127.0.0.1:{down}/hooks/on-update?secret={secret}&x=1"
    ));
    config.auth.notify_update_interval = Duration::from_secs(1);
    config.auth.hook_timeout = Duration::from_secs(1);
    let worker = start_worker(config.clone(), stores).await;
    finish_publish(
        spawn_publisher(&worker.url("heidi-key"), 4),
        &media.join("live/heidi/index.m3u8"),
        "publishing through a hook URL that holds the secret",
        Duration::from_secs(10),
    )
    .await;
    worker.shutdown().await.unwrap();

    let logs = captured_logs();
    let shown = format!("http://127.0.0.1:{down}/hooks/on-update");
    assert!(
        logs.contains(&format!("url={shown} ")),
        "the failing hook is named, redacted"
    );
    let leaks: Vec<&str> = logs.lines().filter(|line| line.contains(secret)).collect();
    assert!(leaks.is_empty(), "hook secret in the logs: {leaks:#?}");

    // Start-up errors: an https hook, userinfo (which the HTTP client would trace-log), and a
    // URL that does not parse.
    for url in [
        format!("https://ops:{secret}@site.example/hooks/on-publish?secret={secret}"),
        format!("http://ops:{secret}@127.0.0.1:{down}/hooks/on-publish?secret={secret}"),
        format!("http://site.example/hooks on-publish?secret={secret}"),
    ] {
        config.auth.on_publish = Some(url);
        let stores = Stores::open(&config.storage).unwrap();
        let error = gatecast_ingest::Worker::bind(config.clone(), stores)
            .await
            .err()
            .expect("a bad hook URL is refused at start-up");
        let text = format!("{error:#} {error:?}");
        assert!(!text.contains(secret), "hook secret in {text}");
        assert!(
            !format!("{config:?}").contains(secret),
            "hook secret in the config's Debug"
        );
    }
}

/// Issue 13 item 10: an editor that truncates the keys file and then writes it leaves it empty,
/// unparsable or cut short for a moment. None of it revokes anything: the live publisher
/// stays live and the old keys still authenticate. A rewrite by rename still takes effect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item10_truncated_keys_file_cuts_nobody_off() {
    let dir = tempfile::tempdir().unwrap();
    let (spare, live) = ("spareKeyJudy10", "liveKeyIvan10");
    // The spare channel first: a prefix of the file that stops after it parses, and would
    // revoke the live one if it were ever read.
    let (media, config) =
        keys_file_config(dir.path(), &[(spare, "judy", true), (live, "ivan", true)]);
    let keys = dir.path().join("keys.toml");
    let full = std::fs::read_to_string(&keys).unwrap();
    let prefix_end = full.find(live).unwrap();
    let prefix = &full[..full[..prefix_end].rfind("[[channel]]").unwrap()];
    let worker = start_worker(config.clone(), Stores::open(&config.storage).unwrap()).await;

    let ivan = spawn_publisher(&worker.url(live), 40);
    let playlist = media.join("live/ivan/index.m3u8");
    wait_for("ivan live", Duration::from_secs(15), || playlist.exists()).await;

    // Truncated (empty) for a few poll intervals.
    std::fs::File::create(&keys).unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let judy = publish(&worker.url(spare), 2).await;
    assert!(
        judy.status.success(),
        "the old keys still authenticate while the file is empty: {}",
        String::from_utf8_lossy(&judy.stderr)
    );
    // Unparsable, then a slow writer's prefix that parses (without ivan), then the whole file.
    std::fs::write(&keys, full.trim_end().strip_suffix('e').unwrap()).unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    std::fs::write(&keys, prefix).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::write(&keys, &full).unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let text = std::fs::read_to_string(&playlist).unwrap();
    assert!(!text.contains("#EXT-X-ENDLIST"), "ivan is still live");
    assert_eq!(worker.metric("gatecast_ingest_streams_live").await, 1.0);

    // A proper rewrite (temporary file + rename) revoking ivan takes effect.
    write_keys_file(&keys, &[(spare, "judy", true), (live, "ivan", false)]);
    let output = tokio::time::timeout(Duration::from_secs(20), ivan.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        !output.status.success(),
        "ivan is cut off by the revocation"
    );
    verify_finished_stream(&media, "ivan", 2).await;
    worker.shutdown().await.unwrap();

    let logs = captured_logs();
    assert_eq!(
        logs.matches("keys file lists no channel").count(),
        1,
        "one warning for the empty version"
    );
    assert_secret_nowhere(&media, live);
    assert_secret_nowhere(&media, spare);
}

/// Issue 13 item 11: keys never land in the media storage (public or CDN-fronted) by default.
/// The binary refuses to start with `s3://` or custom `file://` media and no `--key-storage`,
/// or with a `--key-storage` inside the media storage;
/// with the default media folder its keys go to a folder of their own. A `file://` key store
/// writes `0600` files in `0700` folders, and the stream published through it plays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item11_keys_stay_out_of_the_media_storage() {
    let dir = tempfile::tempdir().unwrap();
    let media_url = format!("file://{}", dir.path().join("public").display());
    let inside = format!("{media_url}/keys");
    let refusals = [
        vec!["--storage", "s3://media"],
        vec!["--storage", &media_url],
        vec![
            "--storage",
            "s3://media",
            "--key-storage",
            "s3://media/keys",
        ],
        vec!["--storage", &media_url, "--key-storage", &inside],
    ];
    for storage in &refusals {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_gatecast-ingest"))
            .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
            .args(["--s3-endpoint", "http://127.0.0.1:9"])
            .args(storage)
            .output()
            .await
            .unwrap();
        assert!(!output.status.success(), "{storage:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("--insecure-keys-in-media-storage"),
            "{stderr}"
        );
    }

    // The default media folder gets the default key folder beside it.
    let run_dir = dir.path().join("run");
    std::fs::create_dir(&run_dir).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_gatecast-ingest"))
        .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .current_dir(&run_dir)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .expect("the worker starts");
        if line.contains("ingest worker listening") {
            break;
        }
    }
    assert_eq!(mode(&run_dir.join(".gatecast/keys")), 0o700);
    assert!(run_dir.join(".gatecast/media").is_dir());
    child.kill().await.unwrap();

    // A separate file:// key store: owner-only, and the stream decrypts with its keys.
    let (media, key_root) = (dir.path().join("media"), dir.path().join("keys"));
    let keys_file = dir.path().join("keys.toml");
    write_keys_file(&keys_file, &[("modesKeyKarl11", "karl", true)]);
    let mut config = test_config(format!("file://{}", media.display()));
    config.storage.keys_url = Some(format!("file://{}", key_root.display()));
    config.auth.keys_file = Some(keys_file);
    let stores = Stores::open(&config.storage).unwrap();
    let worker = start_worker(config, stores).await;
    finish_publish(
        spawn_publisher(&worker.url("modesKeyKarl11"), 5),
        &media.join("live/karl/index.m3u8"),
        "publishing with a private key store",
        Duration::from_secs(10),
    )
    .await;
    verify_finished_stream_split(&media, &key_root, "karl", 2).await;
    worker.shutdown().await.unwrap();
    assert!(!media.join("keys").exists(), "no key in the media folder");
    let mut files = 0;
    walk(&key_root, &mut |path| {
        if path.is_dir() {
            assert_eq!(mode(path), 0o700, "{}", path.display());
        } else {
            files += 1;
            assert_eq!(mode(path), 0o600, "{}", path.display());
        }
    });
    assert!(files >= 2, "key files were written");
}

/// Issue 13 item 13: the admin port's cut-off is a control route. Without the bearer token,
/// with a wrong one, from a browser (an `Origin` header) or by GET it does nothing, and the
/// live stream goes on; `/metrics` and `/healthz` stay open. With the token it cuts off. A
/// worker without a token refuses the control route whatever the request carries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item13_admin_cutoff_needs_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let (media, mut config) = keys_file_config(dir.path(), &[("adminKeyLena13", "lena", true)]);
    let worker = start_worker(config.clone(), Stores::open(&config.storage).unwrap()).await;
    let lena = spawn_publisher(&worker.url("adminKeyLena13"), 30);
    let playlist = media.join("live/lena/index.m3u8");
    wait_for("lena live", Duration::from_secs(15), || playlist.exists()).await;

    let path = "/streams/lena/cutoff";
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let wrong = format!("Bearer {ADMIN_TOKEN}x");
    let attacks: [(&str, Headers, u16); 6] = [
        ("POST", vec![], 403),
        ("POST", vec![("Authorization", wrong.as_str())], 403),
        ("POST", vec![("Authorization", ADMIN_TOKEN)], 403),
        (
            "POST",
            vec![
                ("Authorization", bearer.as_str()),
                ("Origin", "https://evil.example"),
            ],
            403,
        ),
        ("GET", vec![("Authorization", bearer.as_str())], 405),
        ("OPTIONS", vec![("Origin", "https://evil.example")], 405),
    ];
    for (method, headers, status) in attacks {
        let (got, _) = http_request_with(worker.admin, method, path, &headers, "").await;
        assert_eq!(got, status, "{method} {headers:?}");
    }
    assert_eq!(worker.admin_get("/healthz").await.0, 200);
    assert_eq!(worker.metric("gatecast_ingest_streams_live").await, 1.0);
    let text = std::fs::read_to_string(&playlist).unwrap();
    assert!(!text.contains("#EXT-X-ENDLIST"), "lena is still live");

    assert_eq!(worker.admin_post_authorized(path).await.0, 202);
    let output = tokio::time::timeout(Duration::from_secs(20), lena.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(!output.status.success(), "the token's cut-off ends lena");
    verify_finished_stream(&media, "lena", 2).await;
    worker.shutdown().await.unwrap();

    config.admin_token = None;
    let stores = Stores::open(&config.storage).unwrap();
    let worker = start_worker(config, stores).await;
    assert_eq!(worker.admin_post_authorized(path).await.0, 403);
    assert_eq!(worker.admin_get("/metrics").await.0, 200);
    worker.shutdown().await.unwrap();
}

/// Issue 13 item 6: one address opening handshaken idle connections. It gets its cap of them
/// (closed at once past it, before any handshake byte), each is closed at the publish deadline
/// and gives its slot back, and all the while a publisher from another address publishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item6_one_address_cannot_hold_every_slot() {
    let dir = tempfile::tempdir().unwrap();
    let (media, mut config) = keys_file_config(dir.path(), &[("slotsKeyMia6", "mia", true)]);
    config.rtmp.max_connections = 6;
    config.rtmp.max_connections_per_address = 4;
    let deadline = Duration::from_secs(8);
    config.rtmp.publish_deadline = deadline;
    let worker = start_worker(config.clone(), Stores::open(&config.storage).unwrap()).await;

    let attack_started = Instant::now();
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(handshaken(worker.rtmp).await);
    }
    let mut over = connect_from_attacker(worker.rtmp).await;
    let mut sink = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), over.read_to_end(&mut sink)).await;
    assert!(
        closed.is_ok_and(|read| read.is_ok()) && sink.is_empty(),
        "over its address's cap: closed without a byte"
    );
    assert_eq!(worker.metric(&refused("too_many_from_address")).await, 1.0);
    assert_eq!(worker.metric("gatecast_ingest_connections_open").await, 4.0);

    // Another address publishes while the attacker holds its four.
    let mia = spawn_publisher(&worker.url("slotsKeyMia6"), 6);
    while worker.metric("gatecast_ingest_streams_live").await < 1.0 {
        assert!(
            attack_started.elapsed() < deadline,
            "mia's publish accepted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        worker.metric("gatecast_ingest_connections_open").await,
        5.0,
        "mia went live while the four idle connections were open"
    );
    let playlist = media.join("live/mia/index.m3u8");

    // Each idle connection is closed at the deadline, not before.
    for mut connection in idle {
        let mut sink = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(15), connection.read_to_end(&mut sink)).await;
        assert!(read.is_ok(), "closed at the deadline");
    }
    let waited = attack_started.elapsed();
    assert!(
        waited >= deadline && waited < deadline + Duration::from_secs(6),
        "{waited:?}"
    );
    assert_eq!(worker.metric(&refused("publish_deadline")).await, 4.0);
    finish_publish(
        mia,
        &playlist,
        "the publisher from another address",
        Duration::from_secs(10),
    )
    .await;
    verify_finished_stream(&media, "mia", 2).await;
    // The slots came back: the attacker's address connects again.
    drop(handshaken(worker.rtmp).await);
    worker.shutdown().await.unwrap();
}

/// Issue 13 item 6: before its publish is accepted a connection may send a few KiB, not a media
/// message. One that announces a 1 MiB message (under the 8 MiB media cap) is closed after at
/// most 64 KiB, and the live publisher next to it does not notice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item6_oversized_preauth_message_ends_only_its_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (media, config) = keys_file_config(dir.path(), &[("preauthKeyNoah6", "noah", true)]);
    let worker = start_worker(config.clone(), Stores::open(&config.storage).unwrap()).await;
    let noah = spawn_publisher(&worker.url("preauthKeyNoah6"), 8);
    let playlist = media.join("live/noah/index.m3u8");
    wait_for("noah live", Duration::from_secs(15), || playlist.exists()).await;

    // fmt 0, csid 4, timestamp 0, length 1 MiB, type 20 (AMF0 command), message stream 0,
    // then well-formed 128-byte chunks.
    let mut hostile = handshaken(worker.rtmp).await;
    let mut message = vec![0x04, 0, 0, 0, 0x10, 0, 0, 0x14, 0, 0, 0, 0];
    message.extend_from_slice(&[0x02; 128]);
    let continuation: Vec<u8> = std::iter::once(0xc4).chain([0x41; 128]).collect();
    let mut sent = message.len();
    let mut cut = hostile.write_all(&message).await.is_err();
    while !cut && sent < 1 << 20 {
        cut = hostile.write_all(&continuation).await.is_err();
        sent += continuation.len();
    }
    let mut sink = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), hostile.read_to_end(&mut sink)).await;
    assert!(cut || closed.is_ok(), "the hostile connection is closed");
    // Counted only past the 64 KiB pre-auth cap: the session never buffered the message whole.
    assert_eq!(worker.metric(&refused("preauth_too_large")).await, 1.0);

    finish_publish(
        noah,
        &playlist,
        "the live publisher",
        Duration::from_secs(10),
    )
    .await;
    verify_finished_stream(&media, "noah", 2).await;
    worker.shutdown().await.unwrap();
}

/// A worker config with `file://` storage in `<dir>/media` (returned) and the keys file
/// `<dir>/keys.toml` listing `channels`.
fn keys_file_config(
    dir: &Path,
    channels: &[(&str, &str, bool)],
) -> (std::path::PathBuf, gatecast_ingest::Config) {
    let (media, keys) = (dir.join("media"), dir.join("keys.toml"));
    write_keys_file(&keys, channels);
    let (mut config, _) = file_config(&media);
    config.auth.keys_file = Some(keys);
    (media, config)
}

/// A TCP connection from [`ATTACKER`].
async fn connect_from_attacker(to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(ATTACKER.parse().unwrap()).unwrap();
    socket.connect(to).await.unwrap()
}

/// A connection from [`ATTACKER`] with the RTMP handshake done by hand (C0+C1, S0+S1+S2, C2
/// echoing S1), then silent.
async fn handshaken(to: SocketAddr) -> TcpStream {
    let mut stream = connect_from_attacker(to).await;
    stream.write_all(&[0x03]).await.unwrap();
    stream.write_all(&[7u8; 1536]).await.unwrap();
    let mut s0s1s2 = vec![0u8; 1 + 1536 * 2];
    stream.read_exact(&mut s0s1s2).await.unwrap();
    stream.write_all(&s0s1s2[1..1537]).await.unwrap();
    stream
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn walk(dir: &Path, visit: &mut impl FnMut(&Path)) {
    visit(dir);
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, visit);
        } else {
            visit(&path);
        }
    }
}

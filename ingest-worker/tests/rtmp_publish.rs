#![allow(clippy::unwrap_used)]
//! Real ffmpeg publishing real RTMP to the worker (in-process, `127.0.0.1:0`), with the output
//! checked independently: our own m3u8 reading, `openssl enc -d`, `ffprobe`.
//!
//! Run: `cargo test -p gatecast-ingest --test rtmp_publish` (needs ffmpeg, ffprobe, openssl).

mod shell_support;

use std::time::Duration;

use gatecast_ingest::Stores;
use shell_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn file_store(dir: &std::path::Path) -> (String, Stores) {
    let url = format!("file://{}", dir.display());
    let mut storage = gatecast_ingest::Config::local(url.clone()).storage;
    storage.keys_url = Some(url.clone());
    storage.insecure_keys_in_media_store = true;
    let stores = Stores::open(&storage).expect("store");
    (url, stores)
}

/// The main path, with abuse running next to it: a garbage connection, a truncated handshake
/// and a second publisher for the same name must not disturb the good stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_file_publish_is_encrypted_rotating_hls_undisturbed_by_abuse() {
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    let keys = dir.path().join("keys.toml");
    let key = "J42ninLbjl2E2V8ePqy7";
    write_keys_file(&keys, &[(key, "benw", true)]);
    let (url, stores) = file_store(&media);
    let mut config = test_config(url);
    config.auth.keys_file = Some(keys);
    let worker = start_worker(config, stores).await;

    let publisher = spawn_publisher(&worker.url(key), 12);

    // Garbage instead of a handshake.
    let mut garbage = tokio::net::TcpStream::connect(worker.rtmp).await.unwrap();
    garbage
        .write_all(&[0x16, 0x03, 0x01, 0xff, 0xee, 0xdd])
        .await
        .unwrap();
    garbage.write_all(&[0xab; 5000]).await.unwrap();
    let mut sink = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), garbage.read_to_end(&mut sink)).await;
    assert!(
        closed.is_ok(),
        "the worker closes a garbage connection at once"
    );

    // A valid C0+C1, then a truncated C2 and silence; then a valid handshake followed by
    // garbage chunks.
    let mut truncated = tokio::net::TcpStream::connect(worker.rtmp).await.unwrap();
    truncated.write_all(&[0x03]).await.unwrap();
    truncated.write_all(&[0u8; 1536]).await.unwrap();
    truncated.write_all(&[0u8; 100]).await.unwrap();
    let mut bad_chunks = tokio::net::TcpStream::connect(worker.rtmp).await.unwrap();
    bad_chunks.write_all(&[0x03]).await.unwrap();
    bad_chunks.write_all(&[7u8; 1536]).await.unwrap();
    let mut s0s1s2 = vec![0u8; 1 + 1536 * 2];
    bad_chunks.read_exact(&mut s0s1s2).await.unwrap();
    bad_chunks.write_all(&s0s1s2[1..1537]).await.unwrap(); // C2 echoes S1
    bad_chunks
        .write_all(&[0x02, 0xff, 0xff, 0xff, 0x00, 0x00, 0x04, 0x14, 0, 0, 0, 0])
        .await
        .unwrap();
    bad_chunks.write_all(&[0x55; 4096]).await.unwrap();

    // Once the stream is live, a second publisher with the same key is refused.
    let playlist_path = media.join("live/benw/index.m3u8");
    wait_for("first playlist", Duration::from_secs(15), || {
        playlist_path.exists()
    })
    .await;
    let second = publish(&worker.url(key), 3).await;
    assert!(
        !second.status.success(),
        "second publisher for a live name is refused"
    );
    assert_eq!(
        worker
            .metric("gatecast_ingest_publishes_refused_total{reason=\"name_busy\"}")
            .await,
        1.0
    );
    assert_eq!(worker.metric("gatecast_ingest_streams_live").await, 1.0);

    finish_publish(publisher, &playlist_path, "ffmpeg", Duration::from_secs(10)).await;

    let playlist = verify_finished_stream(&media, "benw", 2).await;
    // 12 s of media in ~2 s segments (cut at the 2 s GOP boundary).
    assert!(
        (5..=7).contains(&playlist.segments.len()),
        "{} segments",
        playlist.segments.len()
    );
    let total: f64 = playlist.segments.iter().map(|s| s.extinf).sum();
    assert!((total - 12.0).abs() < 0.5, "total {total} s");
    for segment in &playlist.segments[..playlist.segments.len() - 1] {
        assert!(
            (segment.extinf - 2.0).abs() < 0.1,
            "segment {} s",
            segment.extinf
        );
    }
    assert!(playlist.segments.iter().all(|s| !s.discontinuity));

    // Only the public layout exists: live/benw/*, keys/benw/*.
    for path in list_objects(&media) {
        assert!(
            path.starts_with("live/benw/") || path.starts_with("keys/benw/"),
            "{path}"
        );
    }
    assert_secret_nowhere(&media, key);

    let stored = worker.metric("gatecast_ingest_segments_stored_total").await;
    assert_eq!(stored, playlist.segments.len() as f64);
    assert!(worker.metric("gatecast_ingest_bytes_received_total").await > 100_000.0);
    assert_eq!(worker.metric("gatecast_ingest_streams_live").await, 0.0);
    let (_, metrics) = worker.admin_get("/metrics").await;
    assert!(!metrics.contains(key));
    assert_eq!(worker.admin_get("/healthz").await, (200, "ok\n".to_owned()));

    drop((garbage, truncated, bad_chunks));
    worker.shutdown().await.unwrap();
}

/// Unknown and inactive keys are refused (ffmpeg fails); after the burst of failures from one
/// address even the right key is refused for a while.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_and_inactive_keys_are_refused_and_failures_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    let keys = dir.path().join("keys.toml");
    write_keys_file(
        &keys,
        &[
            ("good-key-1", "alice", true),
            ("banned-key-2", "troll", false),
        ],
    );
    let (url, stores) = file_store(&media);
    let mut config = test_config(url);
    config.auth.keys_file = Some(keys);
    config.auth.failed_attempts_burst = 2;
    config.auth.failed_attempt_interval = Duration::from_secs(3600);
    let worker = start_worker(config, stores).await;

    let wrong = publish(&worker.url("no-such-key"), 2).await;
    assert!(!wrong.status.success(), "unknown key refused");
    let inactive = publish(&worker.url("banned-key-2"), 2).await;
    assert!(!inactive.status.success(), "inactive key refused");
    let limited = publish(&worker.url("good-key-1"), 2).await;
    assert!(
        !limited.status.success(),
        "after 2 failures the address is rate limited"
    );

    let refused =
        |reason: &str| format!("gatecast_ingest_publishes_refused_total{{reason=\"{reason}\"}}");
    assert_eq!(worker.metric(&refused("unknown_key")).await, 1.0);
    assert_eq!(worker.metric(&refused("inactive_key")).await, 1.0);
    assert_eq!(worker.metric(&refused("rate_limited")).await, 1.0);
    assert!(
        list_objects(&media).is_empty(),
        "nothing written for refused publishers"
    );
    assert_secret_nowhere(&media, "no-such-key");
    assert_secret_nowhere(&media, "banned-key-2");
    assert_secret_nowhere(&media, "good-key-1");
    worker.shutdown().await.unwrap();
}

/// Flipping `active = false` in the keys file ends the live stream cleanly (ENDLIST), and so
/// does the admin cut-off call for another stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_file_revocation_and_admin_cutoff_end_live_streams() {
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    let keys = dir.path().join("keys.toml");
    write_keys_file(
        &keys,
        &[
            ("revoke-me-key", "dave", true),
            ("cut-me-key", "erin", true),
        ],
    );
    let (url, stores) = file_store(&media);
    let mut config = test_config(url);
    config.auth.keys_file = Some(keys.clone());
    let worker = start_worker(config, stores).await;

    let started = tokio::time::Instant::now();
    let dave = spawn_publisher(&worker.url("revoke-me-key"), 15);
    let erin = spawn_publisher(&worker.url("cut-me-key"), 15);
    let (dave_playlist, erin_playlist) = (
        media.join("live/dave/index.m3u8"),
        media.join("live/erin/index.m3u8"),
    );
    wait_for("both live", Duration::from_secs(15), || {
        dave_playlist.exists() && erin_playlist.exists()
    })
    .await;

    write_keys_file(
        &keys,
        &[
            ("revoke-me-key", "dave", false),
            ("cut-me-key", "erin", true),
        ],
    );
    let cutoff = |path: &'static str| worker.admin_post_authorized(path);
    assert_eq!(cutoff("/streams/erin/cutoff").await.0, 202);
    assert_eq!(cutoff("/streams/nobody/cutoff").await.0, 404);
    assert_eq!(cutoff("/streams/..%2F/cutoff").await.0, 400);
    assert_eq!(worker.admin_get("/streams/erin/cutoff").await.0, 405);

    for publisher in [dave, erin] {
        let output = tokio::time::timeout(Duration::from_secs(20), publisher.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        assert!(
            !output.status.success(),
            "a cut-off publisher sees its connection end"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(13),
        "cut off before the 15 s stream ended"
    );
    for name in ["dave", "erin"] {
        let playlist = verify_finished_stream(&media, name, 2).await;
        let total: f64 = playlist.segments.iter().map(|s| s.extinf).sum();
        assert!(total < 13.0, "{name}: {total} s stored before the cut-off");
    }
    // The revoked key cannot come back.
    assert!(
        !publish(&worker.url("revoke-me-key"), 2)
            .await
            .status
            .success()
    );
    worker.shutdown().await.unwrap();
}

/// Shutdown while a stream is live: the open segment is flushed and the playlist ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finalizes_live_playlists() {
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    let keys = dir.path().join("keys.toml");
    write_keys_file(&keys, &[("shutdown-key", "frank", true)]);
    let (url, stores) = file_store(&media);
    let mut config = test_config(url);
    config.auth.keys_file = Some(keys);
    let worker = start_worker(config, stores).await;

    let publisher = spawn_publisher(&worker.url("shutdown-key"), 15);
    let playlist = media.join("live/frank/index.m3u8");
    wait_for("live", Duration::from_secs(15), || playlist.exists()).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    worker.shutdown().await.unwrap();
    let output = publisher.wait_with_output().await.unwrap();
    assert!(!output.status.success(), "the publisher was disconnected");
    verify_finished_stream(&media, "frank", 2).await;
}

/// Limits: connections over the cap are closed at once, an oversized message ends its
/// connection before it is buffered, RTMP playback is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cap_message_cap_and_play_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let (url, stores) = file_store(dir.path());
    let mut config = test_config(url);
    config.rtmp.max_connections = 1;
    config.rtmp.max_message_size = 64 * 1024;
    config.rtmp.idle_timeout = Duration::from_secs(2);
    config.rtmp.publish_deadline = Duration::from_secs(2);
    let worker = start_worker(config, stores).await;

    let holder = tokio::net::TcpStream::connect(worker.rtmp).await.unwrap();
    wait_for_metric(&worker, "gatecast_ingest_connections_open", 1.0).await;
    let mut over_cap = tokio::net::TcpStream::connect(worker.rtmp).await.unwrap();
    let mut sink = Vec::new();
    let closed =
        tokio::time::timeout(Duration::from_secs(5), over_cap.read_to_end(&mut sink)).await;
    assert!(
        closed.is_ok_and(|r| r.is_ok()) && sink.is_empty(),
        "closed without a byte"
    );
    let refused =
        |reason: &str| format!("gatecast_ingest_publishes_refused_total{{reason=\"{reason}\"}}");
    assert_eq!(worker.metric(&refused("too_many_connections")).await, 1.0);
    drop(holder);
    wait_for_metric(&worker, "gatecast_ingest_connections_open", 0.0).await;

    // Handshake by hand, then one video message announcing 16 MiB - 1, sent as well-formed
    // 128-byte chunks: the worker must hang up long before 16 MiB arrive.
    let mut big = tokio::net::TcpStream::connect(worker.rtmp).await.unwrap();
    big.write_all(&[0x03]).await.unwrap();
    big.write_all(&[9u8; 1536]).await.unwrap();
    let mut s0s1s2 = vec![0u8; 1 + 1536 * 2];
    big.read_exact(&mut s0s1s2).await.unwrap();
    big.write_all(&s0s1s2[1..1537]).await.unwrap();
    // fmt 0, csid 4, timestamp 0, length 0xFFFFFF, type 9 (video), message stream 1.
    let mut message = vec![0x04, 0, 0, 0, 0xff, 0xff, 0xff, 0x09, 1, 0, 0, 0];
    message.extend_from_slice(&[0x17; 128]);
    let continuation: Vec<u8> = std::iter::once(0xc4).chain([0x27; 128]).collect();
    let batch: Vec<u8> = continuation
        .iter()
        .copied()
        .cycle()
        .take(continuation.len() * 32)
        .collect();
    let mut sent = message.len();
    let mut cut = big.write_all(&message).await.is_err();
    while !cut && sent < 20 << 20 {
        cut = big.write_all(&batch).await.is_err();
        sent += batch.len();
    }
    assert!(
        cut,
        "connection still open after {sent} bytes of one message"
    );
    // Kernel buffers accept megabytes before the reset arrives, so count what the worker read.
    let read = worker.metric("gatecast_ingest_bytes_received_total").await;
    assert!(
        read < f64::from(1 << 20),
        "worker read {read} bytes of the oversized message"
    );

    // A connection that keeps talking (acknowledgements every 300 ms) but never publishes
    // is closed at the publish deadline all the same.
    let mut chatty = tokio::net::TcpStream::connect(worker.rtmp).await.unwrap();
    chatty.write_all(&[0x03]).await.unwrap();
    chatty.write_all(&[5u8; 1536]).await.unwrap();
    chatty.read_exact(&mut s0s1s2).await.unwrap();
    chatty.write_all(&s0s1s2[1..1537]).await.unwrap();
    let started = tokio::time::Instant::now();
    let acknowledgement = [0x02, 0, 0, 0, 0, 0, 4, 0x03, 0, 0, 0, 0, 0, 0, 0x10, 0];
    let mut chatty_cut = false;
    while started.elapsed() < Duration::from_secs(8) {
        if chatty.write_all(&acknowledgement).await.is_err() {
            chatty_cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(chatty_cut, "a connection that never publishes is closed");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "not before the publish deadline"
    );
    wait_for_metric(&worker, "gatecast_ingest_connections_open", 0.0).await;

    let play = tokio::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-rw_timeout",
            "5000000",
        ])
        .args(["-i", &worker.url("some-key"), "-t", "1", "-f", "null", "-"])
        .kill_on_drop(true)
        .output();
    let play = tokio::time::timeout(Duration::from_secs(20), play)
        .await
        .unwrap()
        .unwrap();
    assert!(!play.status.success(), "RTMP playback is refused");
    assert_eq!(worker.metric(&refused("play_requested")).await, 1.0);
    worker.shutdown().await.unwrap();
}

async fn wait_for_metric(worker: &RunningWorker, series: &str, expected: f64) {
    for _ in 0..100 {
        if worker.metric(series).await == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{series} never reached {expected}");
}

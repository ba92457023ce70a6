#![allow(clippy::unwrap_used)]
//! The worker against a real S3 server (s3s + s3s-fs, SigV4 with a test access key), keys in a
//! separate bucket, and the S3 server stopped mid-stream and restarted on the same port and
//! folder. While it runs, a poller checks that the live playlist never names a missing object.
//!
//! Run: `cargo test -p gatecast-ingest --test rtmp_s3` (needs ffmpeg, ffprobe, openssl).

mod shell_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use gatecast_ingest::Stores;
use shell_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_outage_mid_stream_loses_nothing_referenced() {
    let dir = tempfile::tempdir().unwrap();
    let mut s3 = start_s3(dir.path().join("s3")).await;
    let (media, keys_dir) = (bucket_dir(&s3, S3_BUCKET), bucket_dir(&s3, S3_KEYS_BUCKET));

    let keys_file = dir.path().join("keys.toml");
    let key = "s3StreamKeyZ7vPq";
    write_keys_file(&keys_file, &[(key, "gina", true)]);
    let mut config = test_config(format!("s3://{S3_BUCKET}"));
    config.storage.keys_url = Some(format!("s3://{S3_KEYS_BUCKET}"));
    config.storage.s3.endpoint = Some(s3.endpoint());
    config.storage.s3.access_key_id = Some(S3_ACCESS_KEY.to_owned());
    config.storage.s3.secret_access_key = Some(S3_SECRET_KEY.to_owned());
    config.auth.keys_file = Some(keys_file);
    let stores = Stores::open(&config.storage).unwrap();
    let worker = start_worker(config, stores).await;

    // Poll the playlist the whole time: every object it names must already exist.
    let stop_polling = Arc::new(AtomicBool::new(false));
    let polls = Arc::new(AtomicUsize::new(0));
    let poller = {
        let (media, keys_dir) = (media.clone(), keys_dir.clone());
        let (stop, polls) = (Arc::clone(&stop_polling), Arc::clone(&polls));
        tokio::spawn(async move {
            let mut violations = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                if let Some(text) = read_object(&media, "live/gina/index.m3u8") {
                    polls.fetch_add(1, Ordering::SeqCst);
                    let playlist = parse_playlist(std::str::from_utf8(&text).unwrap());
                    for segment in &playlist.segments {
                        let segment_path = format!("live/gina/{}", segment.uri);
                        if read_object(&media, &segment_path).is_none() {
                            violations.push(segment_path);
                        }
                        let key_path = key_storage_path(&segment.key_uri);
                        if read_object(&keys_dir, &key_path).is_none() {
                            violations.push(key_path);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            violations
        })
    };

    let publisher = spawn_publisher(&worker.url(key), 14);
    let playlist = media.join("live/gina/index.m3u8");
    wait_for("first playlist in S3", Duration::from_secs(15), || {
        playlist.exists()
    })
    .await;

    s3.stop().await.expect("S3 stops");
    let during_outage = std::fs::read_to_string(&playlist).unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        std::fs::read_to_string(&playlist).unwrap(),
        during_outage,
        "nothing is written while S3 is down"
    );
    s3.restart().await.expect("S3 restarts");

    finish_publish(
        publisher,
        &playlist,
        "the RTMP session survived the outage",
        Duration::from_secs(20),
    )
    .await;
    stop_polling.store(true, Ordering::SeqCst);
    let violations = poller.await.unwrap();
    assert!(
        violations.is_empty(),
        "playlist referenced missing objects: {violations:?}"
    );
    assert!(
        polls.load(Ordering::SeqCst) > 20,
        "the poller actually watched the stream"
    );

    let finished = verify_finished_stream_split(&media, &keys_dir, "gina", 2).await;
    // Every segment was kept (the buffer is far from its cap): ~14 s of media.
    let total: f64 = finished.segments.iter().map(|s| s.extinf).sum();
    assert!((total - 14.0).abs() < 0.5, "total {total} s");
    assert!(finished.segments.iter().all(|s| !s.discontinuity));
    assert!(
        list_objects(&media).iter().all(|p| !p.starts_with("keys/")),
        "keys only in the key bucket"
    );
    assert_secret_nowhere(&media, key);
    assert_secret_nowhere(&keys_dir, key);

    let errors: f64 =
        futures::future::join_all(["put_key", "put_segment", "put_playlist"].map(|op| {
            worker.metric_owned(format!(
                "gatecast_ingest_storage_errors_total{{op=\"{op}\"}}"
            ))
        }))
        .await
        .into_iter()
        .sum();
    assert!(errors >= 1.0, "the outage showed up as storage errors");
    worker.shutdown().await.unwrap();
}

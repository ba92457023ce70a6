#![allow(clippy::unwrap_used)]
//! nginx-rtmp compatible `on_publish` / `on_publish_done` against a real HTTP server standing in
//! for the site backend of seed 001 (its Django views: 3xx relative redirect to the username,
//! 403 for inactive users, publish_done keyed by the ORIGINAL stream key).
//!
//! Run: `cargo test -p gatecast-ingest --test rtmp_hooks` (needs ffmpeg, ffprobe, openssl).

mod shell_support;

use std::time::Duration;

use shell_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_publish_renames_refuses_and_publish_done_gets_the_original_key() {
    let key = "hookSecretKey9QxW";
    let hook = start_hook_server(move |call| match (call.path.as_str(), call.field("name")) {
        // Like `HttpResponseRedirect(stream.user.username)`: a relative redirect.
        ("/on_publish", Some(name)) if name == key => (302, Some("carol".to_owned())),
        // An absolute http Location: its last path segment is the new name.
        ("/on_publish", Some("absolute-key")) => {
            (301, Some("http://site.example/u/dan?x=1".to_owned()))
        }
        // A relay redirect is not a rename: refused.
        ("/on_publish", Some("relay-key")) => (302, Some("rtmp://elsewhere/live/x".to_owned())),
        // The edge api's answer while another worker holds the channel's lease.
        ("/on_publish", Some("busy-key")) => (409, None),
        ("/on_publish", _) => (403, None),
        _ => (200, None),
    })
    .await;

    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    let (mut config, stores) = file_config(&media);
    config.auth.on_publish = Some(hook.url("/on_publish"));
    config.auth.on_publish_done = Some(hook.url("/on_publish_done"));
    let worker = start_worker(config, stores).await;

    // The renamed stream and the refusals run side by side.
    let renamed = spawn_publisher(&format!("{}?token=abc%20def&site=1", worker.url(key)), 6);
    let urls = ["denied-key", "relay-key", "absolute-key", "busy-key"].map(|k| worker.url(k));
    let (denied, relay, absolute, busy) = tokio::join!(
        publish(&urls[0], 2),
        publish(&urls[1], 2),
        publish(&urls[2], 3),
        publish(&urls[3], 2)
    );
    assert!(!denied.status.success(), "403 refuses");
    assert!(!busy.status.success(), "409 refuses");
    assert!(!relay.status.success(), "rtmp:// redirect refuses");
    assert!(absolute.status.success(), "absolute http redirect renames");

    let output = renamed.wait_with_output().await.unwrap();
    assert!(
        output.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let done = |name: &str| {
        hook.calls()
            .into_iter()
            .any(|c| c.path == "/on_publish_done" && c.field("name") == Some(name))
    };
    wait_for("publish_done calls", Duration::from_secs(10), || {
        done(key) && done("absolute-key")
    })
    .await;
    wait_for("carol finalized", Duration::from_secs(10), || {
        std::fs::read_to_string(media.join("live/carol/index.m3u8"))
            .is_ok_and(|t| t.contains("#EXT-X-ENDLIST"))
    })
    .await;

    verify_finished_stream(&media, "carol", 2).await;
    assert!(
        media.join("live/dan/index.m3u8").exists(),
        "absolute Location renamed to dan"
    );
    assert_secret_nowhere(&media, key);
    assert_secret_nowhere(&media, "absolute-key");

    // The publish call carries nginx-rtmp's fields plus the URL's query arguments.
    let calls = hook.calls();
    let publish_call = calls
        .iter()
        .find(|c| c.path == "/on_publish" && c.field("name") == Some(key))
        .expect("on_publish called");
    assert_eq!(publish_call.field("call"), Some("publish"));
    assert_eq!(publish_call.field("app"), Some("live"));
    assert_eq!(publish_call.field("type"), Some("live"));
    assert_eq!(publish_call.field("addr"), Some("127.0.0.1"));
    assert_eq!(publish_call.field("token"), Some("abc def"));
    assert_eq!(publish_call.field("site"), Some("1"));
    assert!(
        publish_call
            .field("clientid")
            .is_some_and(|id| id.parse::<u64>().is_ok())
    );
    assert_eq!(
        publish_call.field("tcurl"),
        Some(format!("rtmp://{}/live", worker.rtmp).as_str())
    );
    assert!(
        publish_call
            .field("flashver")
            .is_some_and(|v| !v.is_empty()),
        "ffmpeg sends flashVer"
    );
    for field in ["swfurl", "pageurl"] {
        assert!(publish_call.field(field).is_some(), "{field} present");
    }
    // publish_done: the original key (not "carol"), call=publish_done, same client id.
    let done_call = calls
        .iter()
        .find(|c| c.path == "/on_publish_done" && c.field("name") == Some(key))
        .unwrap();
    assert_eq!(done_call.field("call"), Some("publish_done"));
    assert_eq!(done_call.field("clientid"), publish_call.field("clientid"));
    assert!(!calls.iter().any(|c| c.field("name") == Some("carol")));
    // Refused publishes never went live, so no publish_done for them.
    assert!(
        !calls
            .iter()
            .any(|c| c.path == "/on_publish_done" && c.field("name") == Some("denied-key"))
    );

    let refused =
        |reason: &str| format!("gatecast_ingest_publishes_refused_total{{reason=\"{reason}\"}}");
    assert_eq!(worker.metric(&refused("unknown_key")).await, 2.0);
    // 409 is 'live elsewhere', not a bad key: not counted against the client's rate limit.
    assert_eq!(worker.metric(&refused("name_busy")).await, 1.0);
    worker.shutdown().await.unwrap();
}

/// A hook that does not answer in time refuses the publish (and is not the publisher's
/// failure, so it does not count against its rate limit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_hook_refuses() {
    // A port that was free a moment ago: connection refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let (mut config, stores) = file_config(dir.path());
    config.auth.on_publish = Some(format!("http://127.0.0.1:{port}/on_publish"));
    config.auth.hook_timeout = Duration::from_secs(1);
    let worker = start_worker(config, stores).await;
    assert!(!publish(&worker.url("any-key"), 2).await.status.success());
    let metric = "gatecast_ingest_publishes_refused_total{reason=\"hook_unavailable\"}";
    assert_eq!(worker.metric(metric).await, 1.0);
    worker.shutdown().await.unwrap();
}

/// nginx-rtmp's `on_update`: called every `notify_update_timeout` with `call=update_publish`,
/// the ORIGINAL key, `time` and `timestamp`, plus the same `lease` id as the publish; a refusal
/// (here 409 on the third call, as the edge answers when another worker holds the channel) cuts
/// the publisher off with a finalized playlist, and `on_publish_done` follows the last update.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_update_heartbeat_and_a_refusal_cuts_the_publisher_off() {
    let key = "updateKey7Rf2";
    let updates = std::sync::atomic::AtomicUsize::new(0);
    let hook = start_hook_server(move |call| match call.path.as_str() {
        "/on_publish" if call.field("name") == Some(key) => (302, Some("erin".to_owned())),
        "/on_publish" => (403, None),
        "/on_update" => {
            let seen = updates.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            if seen < 3 { (200, None) } else { (409, None) }
        }
        _ => (200, None),
    })
    .await;

    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    let (mut config, stores) = file_config(&media);
    config.auth.on_publish = Some(hook.url("/on_publish"));
    config.auth.on_publish_done = Some(hook.url("/on_publish_done"));
    config.auth.on_update = Some(hook.url("/on_update"));
    config.auth.notify_update_interval = Duration::from_secs(1);
    let worker = start_worker(config, stores).await;

    let started = tokio::time::Instant::now();
    let publisher = spawn_publisher(&worker.url(key), 30);
    let playlist = media.join("live/erin/index.m3u8");
    wait_for("cut-off playlist", Duration::from_secs(20), || {
        std::fs::read_to_string(&playlist).is_ok_and(|text| text.contains("#EXT-X-ENDLIST"))
    })
    .await;
    // Refused at the third update (~3 s in), far before the publisher's 30 s were up.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    let _ = tokio::time::timeout(Duration::from_secs(20), publisher.wait_with_output())
        .await
        .expect("ffmpeg exits once cut off");
    verify_finished_stream(&media, "erin", 2).await;

    wait_for("publish_done", Duration::from_secs(10), || {
        hook.calls().iter().any(|c| c.path == "/on_publish_done")
    })
    .await;
    let calls = hook.calls();
    let publish_call = calls.iter().find(|c| c.path == "/on_publish").unwrap();
    let lease = publish_call.field("lease").unwrap();
    assert_eq!(lease.len(), 32, "16 random bytes in hex: {lease}");
    assert!(lease.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(publish_call.field("update_interval"), Some("1"));
    let update_calls: Vec<&HookCall> = calls.iter().filter(|c| c.path == "/on_update").collect();
    assert_eq!(update_calls.len(), 3, "no update after the refusal");
    let mut last_time = 0;
    for update in &update_calls {
        assert_eq!(update.field("call"), Some("update_publish"));
        assert_eq!(
            update.field("name"),
            Some(key),
            "the original key, as nginx-rtmp"
        );
        assert_eq!(
            update.field("lease"),
            Some(lease),
            "one lease id per publish"
        );
        assert_eq!(update.field("update_interval"), Some("1"));
        for same in ["app", "addr", "clientid", "tcurl", "flashver"] {
            assert_eq!(update.field(same), publish_call.field(same), "{same}");
        }
        let time: u64 = update.field("time").unwrap().parse().unwrap();
        assert!(time >= last_time, "time counts seconds since the publish");
        last_time = time;
        let timestamp: u32 = update.field("timestamp").unwrap().parse().unwrap();
        assert!(timestamp < 30_000, "RTMP timestamp in ms: {timestamp}");
    }
    assert!(
        (2..=4).contains(&last_time),
        "third update ~3 s in: {last_time}"
    );
    let position = |path: &str| calls.iter().rposition(|c| c.path == path).unwrap();
    assert!(position("/on_publish_done") > position("/on_update"));
    let done = &calls[position("/on_publish_done")];
    assert_eq!(done.field("lease"), Some(lease));

    let refused = "gatecast_ingest_publishes_refused_total{reason=\"update_refused\"}";
    assert_eq!(worker.metric(refused).await, 1.0);
    worker.shutdown().await.unwrap();
}

/// A lenient heartbeat (the default) keeps publishing while the hook is down or answers 5xx;
/// only its answers count, never its absence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_update_outage_does_not_end_a_broadcast() {
    let hook = start_hook_server(|call| match call.path.as_str() {
        "/on_update" => (503, None),
        "/on_publish" => (302, Some("frank".to_owned())),
        _ => (200, None),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (mut config, stores) = file_config(dir.path());
    config.auth.on_publish = Some(hook.url("/on_publish"));
    config.auth.on_update = Some(hook.url("/on_update"));
    config.auth.notify_update_interval = Duration::from_secs(1);
    let worker = start_worker(config, stores).await;
    let playlist = dir.path().join("live/frank/index.m3u8");
    finish_publish(
        spawn_publisher(&worker.url("frank-key"), 5),
        &playlist,
        "a 503 from on_update is an outage, not a refusal",
        Duration::from_secs(10),
    )
    .await;
    assert!(
        hook.calls()
            .iter()
            .filter(|c| c.path == "/on_update")
            .count()
            >= 3
    );
    let refused = "gatecast_ingest_publishes_refused_total{reason=\"update_refused\"}";
    assert_eq!(worker.metric(refused).await, 0.0);
    worker.shutdown().await.unwrap();
}

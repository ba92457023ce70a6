//! Pay-per-view end to end: a real ffmpeg broadcast, the real wasm components in the host, a
//! real WMSPanel-style handler speaking protocols.md §5 (Signature/Solution checked by python).
//!
//! Key period: 3 segments × 2 s = 6 s (`key_period_seconds` = 6), price `key:1`, session cap 2,
//! sync interval 2 s.

use std::time::Duration;

use anyhow::{Context, ensure};
use gatecast_e2e::hls;
use gatecast_e2e::ppv::{Handler, players};
use gatecast_e2e::stack::TestStack;
use gatecast_e2e::viewer::{self, Answer};
use reqwest::Method;
use serde_json::json;

const STREAM: &str = "ppvcam";
const TOKEN: &str = "ppv-e2e-token";
const REASON: &str = "x-gatecast-reason";

/// One key of a viewer's playlist: its URL and a segment (URL, IV) it decrypts.
struct KeyedSegment {
    key_url: String,
    segment_url: String,
    iv: [u8; 16],
}

/// The first segment under each distinct key of the playlist signed for `viewer`/`session`.
async fn keys_for(
    stack: &TestStack,
    viewer: &str,
    session: &str,
) -> anyhow::Result<Vec<KeyedSegment>> {
    let (status, signed) = stack
        .api(
            Method::POST,
            "/api/sign",
            Some(json!({"stream": STREAM, "viewer": viewer, "session": session, "ttl": 600})),
        )
        .await?;
    ensure!(status == 200, "sign answered {status}");
    let playlist_url = stack.url(signed["url"].as_str().context("url")?);
    let answer = viewer::get(&stack.client, &playlist_url, None).await?;
    ensure!(answer.status == 200, "playlist answered {}", answer.status);
    let playlist = hls::parse(&answer.text())?;
    let mut keys: Vec<KeyedSegment> = Vec::new();
    for segment in &playlist.segments {
        let key_url = hls::resolve(&playlist_url, segment.key_uri.as_deref().context("key")?)?;
        if keys.iter().all(|known| known.key_url != key_url) {
            keys.push(KeyedSegment {
                key_url,
                segment_url: hls::resolve(&playlist_url, &segment.uri)?,
                iv: segment.iv.context("explicit IV")?,
            });
        }
    }
    Ok(keys)
}

async fn get(stack: &TestStack, url: &str) -> anyhow::Result<Answer> {
    viewer::get(&stack.client, url, None).await
}

/// Fetches the key and checks it decrypts its segment into MPEG-TS (sync byte 0x47 every
/// 188 bytes).
async fn assert_key_decrypts(stack: &TestStack, keyed: &KeyedSegment) -> anyhow::Result<()> {
    let key = get(stack, &keyed.key_url).await?;
    ensure!(
        key.status == 200,
        "key answered {} ({:?})",
        key.status,
        key.headers.get(REASON)
    );
    ensure!(key.body.len() == 16, "key of {} bytes", key.body.len());
    let segment = get(stack, &keyed.segment_url).await?;
    ensure!(segment.status == 200, "segment answered {}", segment.status);
    let clear = hls::decrypt(&key.body, &keyed.iv, &segment.body)?;
    ensure!(
        !clear.is_empty() && clear.chunks(188).all(|packet| packet[0] == 0x47),
        "the key does not decrypt its segment to MPEG-TS"
    );
    Ok(())
}

async fn assert_refused_for(stack: &TestStack, url: &str, reason: &str) -> anyhow::Result<()> {
    let answer = get(stack, url).await?;
    ensure!(
        answer.status == 403,
        "expected 403 {reason}, got {}",
        answer.status
    );
    let given = answer.headers.get(REASON).and_then(|v| v.to_str().ok());
    ensure!(
        given == Some(reason),
        "expected reason {reason}, got {given:?}"
    );
    Ok(())
}

async fn balance(stack: &TestStack, viewer: &str) -> anyhow::Result<i64> {
    let (status, body) = stack
        .api(
            Method::GET,
            &format!("/api/ppv/viewers/{viewer}/balance"),
            None,
        )
        .await?;
    ensure!(status == 200, "balance answered {status}");
    body["balance"].as_i64().context("balance")
}

async fn credit(stack: &TestStack, viewer: &str, credits: u32) -> anyhow::Result<()> {
    let (status, _) = stack
        .api(
            Method::POST,
            &format!("/api/ppv/viewers/{viewer}/credit"),
            Some(json!({ "credits": credits })),
        )
        .await?;
    ensure!(status == 200, "credit answered {status}");
    Ok(())
}

fn key_id(key_url: &str) -> anyhow::Result<u64> {
    let path = key_url.split('?').next().unwrap_or_default();
    let file = path.rsplit('/').next().unwrap_or_default();
    file.trim_end_matches(".key").parse().context("key id")
}

/// Prices the stream `key:1`, starts a 40 s broadcast and returns once v-pay's playlist lists
/// 3 keys (7+ segments of 2 s at 3 per key).
async fn paid_broadcast(
    stack: &TestStack,
) -> anyhow::Result<(tokio::process::Child, Vec<KeyedSegment>)> {
    let (status, _) = stack
        .api(
            Method::POST,
            &format!("/api/ppv/prices/{STREAM}"),
            Some(json!({"price": "key:1"})),
        )
        .await?;
    ensure!(status == 204, "set price answered {status}");

    // Enough broadcast for 3 keys (7+ segments of 2 s at 3 per key).
    let stream_key = {
        let (status, created) = stack
            .api(
                Method::POST,
                "/api/channels",
                Some(json!({ "name": STREAM })),
            )
            .await?;
        ensure!(status == 201, "channel answered {status}");
        created["stream_key"]
            .as_str()
            .context("stream_key")?
            .to_owned()
    };
    let ffmpeg = gatecast_e2e::ffmpeg::publish(&stack.stack.publish_url(&stream_key), 40)?;
    let mut keys = Vec::new();
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Ok(found) = keys_for(stack, "v-pay", "s-pay").await
            && found.len() >= 3
        {
            keys = found;
            break;
        }
    }
    ensure!(keys.len() >= 3, "the broadcast never listed 3 keys");

    Ok((ffmpeg, keys))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pay_per_view_charges_once_caps_sessions_and_audits() -> anyhow::Result<()> {
    let stack =
        TestStack::start_with(&[("key_period_seconds", "6"), ("ppv_session_cap", "2")]).await?;
    let (mut ffmpeg, keys) = paid_broadcast(&stack).await?;

    // 1. Credited for exactly 2 key periods: decrypts 2, is refused the 3rd.
    credit(&stack, "v-pay", 2).await?;
    assert_key_decrypts(&stack, &keys[0]).await?;
    assert_key_decrypts(&stack, &keys[1]).await?;
    assert_refused_for(&stack, &keys[2].key_url, "payment-required").await?;
    // Many retries, sequential and concurrent, of the paid keys never charge again.
    for _ in 0..5 {
        for keyed in &keys[..2] {
            ensure!(
                get(&stack, &keyed.key_url).await?.status == 200,
                "paid key refetch"
            );
        }
    }
    let concurrent: Vec<_> = (0..12)
        .map(|i| {
            let url = keys[i % 2].key_url.clone();
            let client = stack.client.clone();
            tokio::spawn(async move { viewer::get(&client, &url, None).await })
        })
        .collect();
    for task in concurrent {
        ensure!(
            task.await??.status == 200,
            "concurrent refetch of a paid key"
        );
    }
    ensure!(
        balance(&stack, "v-pay").await? == 0,
        "v-pay charged other than exactly twice"
    );
    // A credit resumes playback.
    credit(&stack, "v-pay", 1).await?;
    assert_key_decrypts(&stack, &keys[2]).await?;
    ensure!(
        balance(&stack, "v-pay").await? == 0,
        "the third period cost other than 1"
    );

    // 2. Concurrent FIRST fetches of one key id by one viewer: exactly one charge.
    credit(&stack, "v-race", 5).await?;
    let race_keys = keys_for(&stack, "v-race", "s-race").await?;
    let racing: Vec<_> = (0..16)
        .map(|_| {
            let url = race_keys[0].key_url.clone();
            let client = stack.client.clone();
            tokio::spawn(async move { viewer::get(&client, &url, None).await })
        })
        .collect();
    for task in racing {
        let answer = task.await??;
        ensure!(
            answer.status == 200,
            "racing first fetch answered {}",
            answer.status
        );
    }
    ensure!(
        balance(&stack, "v-race").await? == 4,
        "16 racing fetches charged other than once"
    );

    // 3. Session cap 2: a third concurrent session of one viewer is refused.
    credit(&stack, "v-cap", 10).await?;
    for session in ["cap-a", "cap-b"] {
        let own = keys_for(&stack, "v-cap", session).await?;
        assert_key_decrypts(&stack, &own[0]).await?;
    }
    let third = keys_for(&stack, "v-cap", "cap-c").await?;
    assert_refused_for(&stack, &third[0].key_url, "session-limit").await?;
    ensure!(
        balance(&stack, "v-cap").await? == 9,
        "two sessions of one key id cost other than 1"
    );

    // 4. The audit lists each fetcher of the first key id.
    let first_id = key_id(&keys[0].key_url)?;
    let (status, audit) = stack
        .api(
            Method::GET,
            &format!("/api/audit/keys/{STREAM}/{first_id}"),
            None,
        )
        .await?;
    ensure!(status == 200, "audit answered {status}");
    let mut fetchers: Vec<(String, String)> = audit
        .as_array()
        .context("audit list")?
        .iter()
        .map(|entry| {
            ensure!(entry["ip"] == "127.0.0.1", "audit IP {}", entry["ip"]);
            ensure!(
                entry["at"].as_u64().unwrap_or(0) > 1_700_000_000,
                "audit time"
            );
            Ok((
                entry["viewer"].as_str().unwrap_or_default().to_owned(),
                entry["session"].as_str().unwrap_or_default().to_owned(),
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    fetchers.sort();
    let expected: Vec<(String, String)> = [
        ("v-cap", "cap-a"),
        ("v-cap", "cap-b"),
        ("v-pay", "s-pay"),
        ("v-race", "s-race"),
    ]
    .iter()
    .map(|(v, s)| ((*v).to_owned(), (*s).to_owned()))
    .collect();
    ensure!(fetchers == expected, "audit lists {fetchers:?}");

    // 5. Usage: 3 viewers; periods: v-pay 3, v-race 1, v-cap 1 = 5 × 6 s.
    let (status, usage) = stack
        .api(
            Method::GET,
            &format!("/api/ppv/usage?stream={STREAM}"),
            None,
        )
        .await?;
    ensure!(status == 200, "usage answered {status}");
    ensure!(
        usage == json!({"stream": STREAM, "unique_viewers": 3, "viewer_seconds": 30}),
        "usage {usage}"
    );
    let _ = ffmpeg.kill().await;
    stack.shutdown().await
}

/// The WMSPanel push sync with a real handler: the key component triggers the `ppv-sync`
/// component through local service chaining (host-dispatched in process), the API route forces
/// a sync, and a hung handler cannot hold a sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wmspanel_handler_denies_lifts_and_fails_closed() -> anyhow::Result<()> {
    let handler = Handler::start(TOKEN).await?;
    let handler_origin = format!("http://{}", handler.addr);
    let stack = TestStack::start_with(&[
        ("key_period_seconds", "6"),
        ("ppv_handler_origin", &handler_origin),
        ("ppv_handler_path", "/ppv"),
        ("ppv_token", TOKEN),
        ("ppv_server_id", "edge-e2e"),
        ("ppv_sync_interval_seconds", "2"),
        ("ppv_fail_open", "false"),
    ])
    .await?;
    let (mut ffmpeg, _) = paid_broadcast(&stack).await?;
    // The forced sync needs the API token; the chained entry is not reachable from outside.
    let unauthenticated = stack
        .client
        .post(stack.url("/api/ppv/sync"))
        .send()
        .await?
        .status();
    ensure!(
        unauthenticated == 401,
        "sync without a token: {unauthenticated}"
    );
    let outside = stack
        .client
        .post(stack.url("/internal/sync-if-due"))
        .header("host", "ppv-sync.spin.internal")
        .send()
        .await?
        .status();
    ensure!(outside == 404, "chained entry from outside: {outside}");

    // 5. WMSPanel handler: blocks within one sync interval.
    credit(&stack, "v-deny", 10).await?;
    let denied_keys = keys_for(&stack, "v-deny", "s-deny").await?;
    assert_key_decrypts(&stack, &denied_keys[0]).await?;
    handler.answer(&["v-deny"], false);
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_refused_for(&stack, &denied_keys[0].key_url, "denied").await?;
    // A handler with a wrong Solution changes nothing: still denied, via the API trigger too.
    handler.answer(&[], true);
    let (status, _) = stack.api(Method::POST, "/api/ppv/sync", None).await?;
    ensure!(
        status == 502,
        "sync with a wrong Solution answered {status}"
    );
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_refused_for(&stack, &denied_keys[0].key_url, "denied").await?;
    // Unblocked → allowed again.
    handler.answer(&[], false);
    let (status, body) = stack.api(Method::POST, "/api/ppv/sync", None).await?;
    ensure!(
        status == 200 && body["denied"] == 0,
        "sync answered {status} {body}"
    );
    assert_key_decrypts(&stack, &denied_keys[0]).await?;

    // Fail-closed (ppv_fail_open = false): with the handler down for two intervals, a viewer
    // no accepted sync has reported is refused, a reported one keeps access; back up → admitted.
    handler.set_down(true);
    // "Two intervals" is 4 s; whole-second clocks on both sides need a margin.
    tokio::time::sleep(Duration::from_millis(6500)).await;
    credit(&stack, "v-new", 10).await?;
    let new_keys = keys_for(&stack, "v-new", "s-new").await?;
    let newest = new_keys.last().context("keys")?;
    assert_refused_for(&stack, &newest.key_url, "sync-unavailable").await?;
    let known_keys = keys_for(&stack, "v-deny", "s-deny").await?;
    assert_key_decrypts(&stack, known_keys.last().context("keys")?).await?;
    handler.set_down(false);
    let (status, _) = stack.api(Method::POST, "/api/ppv/sync", None).await?;
    ensure!(
        status == 200,
        "sync after the handler came back answered {status}"
    );
    assert_key_decrypts(&stack, newest).await?;

    // A hung handler fails the sync within its timeout (5 s) instead of holding it.
    handler.set_hung(true);
    let started = std::time::Instant::now();
    let (status, _) = stack.api(Method::POST, "/api/ppv/sync", None).await?;
    let waited = started.elapsed();
    ensure!(status == 502, "sync with a hung handler answered {status}");
    ensure!(
        waited >= Duration::from_secs(4) && waited < Duration::from_secs(10),
        "a hung handler held the sync for {waited:?}"
    );
    handler.set_hung(false);

    // Every sync the handler saw was signed right (python's md5), and the usage reported the
    // viewers with 6 s deltas per key period watched.
    let (requests, signatures_ok) = {
        let state = handler.state.lock().expect("handler state");
        (state.requests.clone(), state.signatures_ok.clone())
    };
    ensure!(!requests.is_empty(), "the handler never got a sync");
    ensure!(
        signatures_ok.iter().all(|ok| *ok),
        "a sync had a wrong Signature"
    );
    ensure!(requests.iter().all(|r| r["ID"] == "edge-e2e"), "server ID");
    let reported = players(&requests);
    let seconds_of = |viewer: &str| -> u64 {
        reported
            .iter()
            .filter(|(_, id, _)| id == viewer)
            .map(|(_, _, delta)| delta)
            .sum()
    };
    // Reported seconds are subtracted only after an accepted sync, so a rejected sync's usage
    // is sent again: totals are at least what was watched, in whole 6 s periods.
    ensure!(
        seconds_of("v-deny") >= 6,
        "v-deny reported {}",
        seconds_of("v-deny")
    );
    ensure!(
        reported.iter().all(|(_, _, delta)| delta % 6 == 0),
        "deltas {reported:?}"
    );
    ensure!(
        reported.iter().all(|(stream, _, _)| stream == STREAM),
        "stream names"
    );

    let _ = ffmpeg.kill().await;
    stack.shutdown().await
}

//! Pay-per-view end to end: a real ffmpeg broadcast, the real wasm components in the host, a
//! real WMSPanel-style handler speaking docs/PROTOCOLS.md §5 (Signature/Solution checked by
//! python).
//!
//! Key period: 3 segments × 2 s = 6 s (`key_period_seconds` = 6), price `key:1`, session cap 2,
//! sync interval 2 s.

use std::time::Duration;

use anyhow::{Context, ensure};
use gatecast_e2e::ppv::{
    Handler, assert_key_decrypts, assert_refused_for, balance, credit, get, key_id, keys_for,
    paid_broadcast, players, stack_syncing_with,
};
use gatecast_e2e::stack::TestStack;
use gatecast_e2e::viewer;
use reqwest::Method;
use serde_json::json;

const STREAM: &str = "ppvcam";
const TOKEN: &str = "ppv-e2e-token";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pay_per_view_charges_once_caps_sessions_and_audits() -> anyhow::Result<()> {
    let stack =
        TestStack::start_with(&[("key_period_seconds", "6"), ("ppv_session_cap", "2")]).await?;
    let (mut ffmpeg, keys) = paid_broadcast(&stack, STREAM).await?;

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
    let race_keys = keys_for(&stack, STREAM, "v-race", "s-race").await?;
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
        let own = keys_for(&stack, STREAM, "v-cap", session).await?;
        assert_key_decrypts(&stack, &own[0]).await?;
    }
    let third = keys_for(&stack, STREAM, "v-cap", "cap-c").await?;
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
    let stack = stack_syncing_with(
        &handler,
        TOKEN,
        "2",
        &[("ppv_server_id", "edge-e2e"), ("ppv_fail_open", "false")],
    )
    .await?;
    let (mut ffmpeg, _) = paid_broadcast(&stack, STREAM).await?;
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
    let denied_keys = keys_for(&stack, STREAM, "v-deny", "s-deny").await?;
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
    let new_keys = keys_for(&stack, STREAM, "v-new", "s-new").await?;
    let newest = new_keys.last().context("keys")?;
    assert_refused_for(&stack, &newest.key_url, "sync-unavailable").await?;
    let known_keys = keys_for(&stack, STREAM, "v-deny", "s-deny").await?;
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

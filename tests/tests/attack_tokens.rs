//! The attacker's tests of issue 13's token items, end to end: a real ffmpeg publishes, the real
//! worker encrypts to the embedded S3 and the wasm host runs the real compiled components. Each
//! test does exactly the attack, asserts the refusal (a bodiless 403, a 400 at the API, an ended
//! publish), and asserts that the legitimate use next to it still works.
//!
//! The tests take turns ([`SERIAL`]): each runs a stack and an ffmpeg encoder, and the timing
//! they assert (token expiry, a publisher cut off at its next update) must not depend on how
//! many other encoders share the machine's cores.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use gatecast_e2e::ffmpeg;
use gatecast_e2e::hls;
use gatecast_e2e::stack::{self, TestStack, publishes};
use gatecast_e2e::viewer::{self, assert_playable, assert_refused, play, query_param};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::const_new(());

/// `GET url` (with the `sessionid` cookie when given) must answer 200 with a 16-byte key.
async fn assert_key(test: &TestStack, url: &str, cookie: Option<&str>) -> anyhow::Result<()> {
    let answer = viewer::get(&test.client, url, cookie).await?;
    ensure!(
        answer.status == 200 && answer.body.len() == 16,
        "key {url}: {} with {} bytes",
        answer.status,
        answer.body.len()
    );
    Ok(())
}

/// The key id of a key URL (`.../keys/<name>/<id>.key?...`).
fn key_id(url: &str) -> anyhow::Result<u64> {
    let path = url.split('?').next().unwrap_or_default();
    let file = path.rsplit('/').next().unwrap_or_default();
    file.strip_suffix(".key")
        .and_then(|id| id.parse().ok())
        .with_context(|| format!("no key id in {url}"))
}

/// The playlist at `url` (must answer 200) and the absolute URLs of its keys.
async fn key_urls(
    test: &TestStack,
    url: &str,
    cookie: Option<&str>,
) -> anyhow::Result<Vec<String>> {
    let answer = viewer::get(&test.client, url, cookie).await?;
    ensure!(answer.status == 200, "playlist {url}: {}", answer.status);
    let playlist = hls::parse(&answer.text())?;
    let uris: BTreeSet<&str> = playlist
        .segments
        .iter()
        .filter_map(|segment| segment.key_uri.as_deref())
        .collect();
    ensure!(!uris.is_empty(), "playlist {url} names no key");
    uris.into_iter().map(|uri| hls::resolve(url, uri)).collect()
}

/// `POST /api/sign`: the absolute playlist URL and its `expires`.
async fn sign(test: &TestStack, request: serde_json::Value) -> anyhow::Result<(String, u64)> {
    let (status, signed) = test
        .api(reqwest::Method::POST, "/api/sign", Some(request))
        .await?;
    ensure!(status == 200, "sign answered {status}: {signed}");
    let url = signed["url"].as_str().context("no url")?;
    let expires = signed["expires"].as_u64().context("no expires")?;
    Ok((test.url(url), expires))
}

/// Issue 13 item 5: a viewer token opens exactly what admitted the viewer, no more and no
/// longer. A URL signed for `index.m3u8` does not open `vod.m3u8` (nor the other way round); a
/// key token opens only the key ids of the playlist it was written into, not the live keys that
/// follow; and a VOD URL signed for 5 s mints key tokens that die with it, not after the
/// recording's length.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_5_tokens_reach_no_further_and_live_no_longer_than_their_credential()
-> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let test = TestStack::start_configured(&[], |config| config.record = true).await?;
    let broadcast = test.broadcast("rec", 40, 2).await?;
    let live_request = json!({"stream": "rec", "viewer": "v-1", "session": "s-1", "ttl": 600});
    let (live_url, _) = sign(&test, live_request.clone()).await?;
    let vod_request = json!({"stream": "rec", "viewer": "v-1", "ttl": 600, "playlist": "vod"});
    let (vod_url, _) = sign(&test, vod_request).await?;

    // Each URL plays its own playlist...
    assert_playable(&play(&test.client, &live_url, None).await?).await?;
    assert_playable(&play(&test.client, &vod_url, None).await?).await?;
    // ...and not the other one.
    let live_on_vod = live_url.replacen("/index.m3u8?", "/vod.m3u8?", 1);
    assert_refused(&test.client, &live_on_vod, None, "live token on vod.m3u8").await?;
    let vod_on_live = vod_url.replacen("/vod.m3u8?", "/index.m3u8?", 1);
    assert_refused(&test.client, &vod_on_live, None, "vod token on index.m3u8").await?;

    // A key token from this window, presented for the next key the worker writes.
    let window = key_urls(&test, &live_url, None).await?;
    let ids = window
        .iter()
        .map(|url| key_id(url))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let newest = ids.into_iter().max().context("keys")?;
    test.wait_for_playlist("rec", Duration::from_secs(20), |playlist| {
        playlist.segments.iter().any(|segment| {
            segment
                .key_uri
                .as_deref()
                .is_some_and(|uri| key_id(uri).is_ok_and(|id| id > newest))
        })
    })
    .await?;
    let fresh = key_urls(&test, &live_url, None).await?;
    let next_key = fresh
        .iter()
        .find(|url| key_id(url).is_ok_and(|id| id > newest))
        .context("the fresh playlist names the next key")?;
    let old_token = query_param(&window[0], "t").context("key URL carries t")?;
    let outside = stack::with_query(
        next_key.split('?').next().unwrap_or_default(),
        "t",
        &old_token,
    )?;
    assert_refused(
        &test.client,
        &outside,
        None,
        "key token outside its key ids",
    )
    .await?;
    assert_key(&test, next_key, None).await?;
    for url in &window {
        assert_key(&test, url, None).await?;
    }

    // A VOD URL signed for 5 s: its key tokens die with it, the 600 s URL's live on.
    let short_request = json!({"stream": "rec", "viewer": "v-2", "ttl": 5, "playlist": "vod"});
    let (short_url, short_expires) = sign(&test, short_request).await?;
    let short_keys = key_urls(&test, &short_url, None).await?;
    let long_keys = key_urls(&test, &vod_url, None).await?;
    assert_key(&test, &short_keys[0], None).await?;
    let wait = short_expires.saturating_sub(stack::unix_now()) + 1;
    tokio::time::sleep(Duration::from_secs(wait)).await;
    assert_refused(
        &test.client,
        &short_keys[0],
        None,
        "key of an expired VOD URL",
    )
    .await?;
    assert_refused(&test.client, &short_url, None, "expired VOD URL").await?;
    assert_key(&test, &long_keys[0], None).await?;

    broadcast.finish().await?;
    test.shutdown().await
}

/// Issue 13 item 1, default: with `session_secret` set and no `authorize_path`, a made-up
/// `sessionid` cookie gets neither the playlist nor a key (with the `s=` the edge would compute
/// for it). A viewer token still plays. The old behaviour is an explicit opt-in
/// (`session_trust_signature_only = "true"`), under which the same cookie plays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_1_seed_000_without_the_site_refuses_made_up_sessions() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    for opt_in in [false, true] {
        let variables: &[(&str, &str)] = if opt_in {
            &[("session_trust_signature_only", "true")]
        } else {
            &[]
        };
        let test = TestStack::start_with(variables).await?;
        let broadcast = test.broadcast("seed", 14, 2).await?;
        let cookie = "made-up-session-0001";
        let playlist_url = test.url("/live/seed/index.m3u8");
        let stored = test
            .wait_for_segments("seed", 1, Duration::from_secs(5))
            .await?;
        let key_uri = stored.segments[0].key_uri.clone().context("encrypted")?;
        let secret = &test.stack.secrets.session_secret;
        let s = stack::seed000_token(secret, cookie, "seed").await?;
        let key_url = stack::with_query(&hls::resolve(&playlist_url, &key_uri)?, "s", &s)?;
        if opt_in {
            let playback = play(&test.client, &playlist_url, Some(cookie)).await?;
            assert_playable(&playback).await?;
            assert_key(&test, &key_url, Some(cookie)).await?;
        } else {
            assert_refused(&test.client, &playlist_url, Some(cookie), "made-up session").await?;
            assert_refused(
                &test.client,
                &key_url,
                Some(cookie),
                "made-up session's key",
            )
            .await?;
        }
        let url = test.sign_for("seed", "viewer-1", "session-1").await?;
        assert_playable(&play(&test.client, &url, None).await?).await?;
        broadcast.finish().await?;
        test.shutdown().await?;
    }
    Ok(())
}

/// The site's `authorize_key` view, as a tiny real HTTP server: 200 for the sessions it
/// knows, 403 for any other `sessionid`.
async fn fake_site(known: &'static [&'static str]) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let origin = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 2048];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => request.extend_from_slice(&buffer[..read]),
                    }
                }
                let request = String::from_utf8_lossy(&request).to_ascii_lowercase();
                let allowed = known
                    .iter()
                    .any(|session| request.contains(&format!("sessionid={session}\r\n")));
                let status = if allowed { "200 OK" } else { "403 Forbidden" };
                let answer =
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    Ok(origin)
}

/// The keys of the stack's `viewers` store that start with `prefix`, read with python's
/// sqlite3 straight from the host's store file.
async fn stored_keys(test: &TestStack, prefix: &str) -> anyhow::Result<Vec<String>> {
    let data = test.stack.s3_root.parent().context("data folder")?;
    let db = data.join("host").join("kv").join("viewers.db");
    let listed = stack::python(
        "import sqlite3,sys\n\
         rows = sqlite3.connect(sys.argv[1]).execute(\n\
             \"select key from spin_key_value where key like ? order by key\", (sys.argv[2] + '%',))\n\
         print('\\n'.join(r[0] for r in rows))",
        &[&db.to_string_lossy(), prefix],
    )
    .await?;
    Ok(listed.lines().map(str::to_owned).collect())
}

/// Issue 13 item 1, with the site: sessions the site knows play; made-up cookies are refused
/// at the playlist and the key, and add no row to the authorization cache (only the site's
/// yes is cached); `/api/sessions/<sessionid>/revoke` ends a seed 000 session's keys while
/// another session goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_1_seed_000_asks_the_site_and_revocation_ends_sessions() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let origin = fake_site(&["site-session-a", "site-session-b"]).await?;
    let variables = [
        ("authorize_origin", origin.as_str()),
        ("authorize_path", "/authorize_key"),
    ];
    let test = TestStack::start_with(&variables).await?;
    let broadcast = test.broadcast("club", 20, 2).await?;
    let playlist_url = test.url("/live/club/index.m3u8");

    let playback = play(&test.client, &playlist_url, Some("site-session-a")).await?;
    assert_playable(&playback).await?;
    let a_key = playback.key_urls[0].clone();
    let b_keys = key_urls(&test, &playlist_url, Some("site-session-b")).await?;
    assert_key(&test, &b_keys[0], Some("site-session-b")).await?;

    let secret = &test.stack.secrets.session_secret;
    let unsigned_key = a_key.split('?').next().unwrap_or_default().to_owned();
    for made_up in (0..10).map(|n| format!("made-up-{n}")) {
        assert_refused(
            &test.client,
            &playlist_url,
            Some(&made_up),
            "made-up session",
        )
        .await?;
        let s = stack::seed000_token(secret, &made_up, "club").await?;
        let key_url = stack::with_query(&unsigned_key, "s", &s)?;
        assert_refused(
            &test.client,
            &key_url,
            Some(&made_up),
            "made-up session's key",
        )
        .await?;
    }
    let cached = stored_keys(&test, "authorization:").await?;
    ensure!(
        (1..=4).contains(&cached.len()),
        "the cache holds rows for more than the two real sessions: {cached:?}"
    );

    let revoked = test
        .api_post("/api/sessions/site-session-a/revoke", None)
        .await?;
    ensure!(
        revoked.status() == 204,
        "revoke answered {}",
        revoked.status()
    );
    assert_refused(
        &test.client,
        &a_key,
        Some("site-session-a"),
        "revoked session's key",
    )
    .await?;
    assert_key(&test, &b_keys[0], Some("site-session-b")).await?;

    broadcast.finish().await?;
    test.shutdown().await
}

/// Issue 13 item 7: a publisher live with a leaked key is cut off once the operator rotates
/// the key and disables the channel: its next `on_update` (every second here) is refused, the
/// worker ends the stream. The old key cannot publish again; the new one publishes once the
/// channel is enabled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_7_rotate_and_disable_cut_off_the_leaked_key() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let test = TestStack::start_configured(&[], |config| config.notify_update_seconds = 1).await?;
    let leaked = test.create_channel("leak").await?;
    let mut publisher = ffmpeg::publish(&test.stack.publish_url(&leaked), 40)?;
    test.wait_for_segments("leak", 1, Duration::from_secs(20))
        .await?;

    let rotated: serde_json::Value =
        serde_json::from_slice(&test.api_ok("/api/channels/leak/rotate", None).await?)?;
    let fresh = rotated["stream_key"]
        .as_str()
        .context("new key")?
        .to_owned();
    test.api_ok("/api/channels/leak/disable", None).await?;
    let status = ffmpeg::wait(&mut publisher, Duration::from_secs(15))
        .await
        .context("the leaked key's publisher was not cut off")?;
    ensure!(
        !status.success(),
        "the leaked key's publisher was not cut off"
    );
    test.wait_ended("leak", Duration::from_secs(10)).await?;

    test.api_ok("/api/channels/leak/enable", None).await?;
    ensure!(
        !publishes(&test.stack.publish_url(&leaked), 3).await?,
        "the rotated-away key published again"
    );
    // The cut-off publish's lease lapses after three update intervals.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if publishes(&test.stack.publish_url(&fresh), 3).await? {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("the new key does not publish after enable");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    test.shutdown().await
}

/// Issue 13 item 12: `/api/sign` refuses (400) viewer and session ids that
/// `/api/viewers/<id>/block` and `/api/sessions/<id>/revoke` could never address, so no URL
/// goes out that cannot be taken back. The longest valid id signs, plays, and its block
/// refuses its next key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_12_sign_refuses_ids_that_cannot_be_blocked_or_revoked() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let test = TestStack::start().await?;
    let broadcast = test.broadcast("ids", 14, 2).await?;
    let too_long = "v".repeat(129);
    for bad in ["a b", "a/b", "a?b", too_long.as_str()] {
        for field in ["viewer", "session"] {
            let request = json!({"stream": "ids", field: bad, "ttl": 600});
            let (status, body) = test
                .api(reqwest::Method::POST, "/api/sign", Some(request))
                .await?;
            ensure!(
                status == 400,
                "{field} {bad:?}: sign answered {status} {body}"
            );
        }
    }
    let longest = "v".repeat(128);
    let url = test.sign_for("ids", &longest, &"s".repeat(128)).await?;
    let playback = play(&test.client, &url, None).await?;
    assert_playable(&playback).await?;
    test.api_ok(&format!("/api/viewers/{longest}/block"), None)
        .await?;
    let keys = key_urls(&test, &url, None).await?;
    assert_refused(&test.client, &keys[0], None, "blocked viewer's key").await?;
    broadcast.finish().await?;
    test.shutdown().await
}

//! Refusals, end to end against a live stream: every bad credential gets a bodiless 403, and
//! the sanctions of the management API (revoked session, blocked viewer, banned streamer) cut
//! a viewer off at the next key fetch. A refused publish makes ffmpeg fail.

use std::time::Duration;

use gatecast_e2e::ffmpeg;
use gatecast_e2e::stack::{self, Broadcast, TestStack};
use gatecast_e2e::viewer::{assert_refused, first_key_url, get, play, query_param};

/// `url` with the value of query parameter `name` replaced by `value`.
fn replace_param(url: &str, name: &str, value: &str) -> String {
    let mut parsed = reqwest::Url::parse(url).expect("absolute URL");
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    parsed.set_query(None);
    for (key, old) in pairs {
        let new = if key == name { value } else { &old };
        parsed.query_pairs_mut().append_pair(&key, new);
    }
    parsed.to_string()
}

/// `url` without its query string.
fn without_query(url: &str) -> String {
    url.split('?').next().unwrap_or(url).to_owned()
}

/// Flips one character in the middle of `token`, staying in the base64url alphabet.
fn tamper(token: &str) -> String {
    let mut bytes = token.as_bytes().to_vec();
    let middle = bytes.len() / 2;
    bytes[middle] = if bytes[middle] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).expect("ASCII token")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_get_a_bodiless_403() -> anyhow::Result<()> {
    let test = TestStack::start().await?;
    test.create_channel("other").await?;
    let broadcast = test.broadcast("cam", 10, 2).await?;
    let client = &test.client;
    let playlist = test.url("/live/cam/index.m3u8");

    let good = test.sign_for("cam", "v1", "s1").await?;
    let playback = play(client, &good, None).await?;
    let key_url = &playback.key_urls[0];
    let segment_url = &playback.segment_urls[0];
    let playlist_token = query_param(&good, "t").expect("t");
    let key_token = query_param(key_url, "t").expect("key t");

    assert_refused(client, &playlist, None, "playlist without token").await?;
    assert_refused(client, &without_query(key_url), None, "key without token").await?;
    assert_refused(
        client,
        &without_query(segment_url),
        None,
        "segment without token",
    )
    .await?;

    let tampered = replace_param(&good, "t", &tamper(&playlist_token));
    assert_refused(client, &tampered, None, "tampered playlist token").await?;
    let tampered_key = replace_param(key_url, "t", &tamper(&key_token));
    assert_refused(client, &tampered_key, None, "tampered key token").await?;

    // Scopes: the playlist token opens no key, a key token no playlist or segment.
    let key_with_playlist_token = replace_param(key_url, "t", &playlist_token);
    assert_refused(
        client,
        &key_with_playlist_token,
        None,
        "key with playlist token",
    )
    .await?;
    let playlist_with_key_token = stack::with_query(&playlist, "t", &key_token)?;
    assert_refused(
        client,
        &playlist_with_key_token,
        None,
        "playlist with key token",
    )
    .await?;
    let segment_with_key_token = replace_param(segment_url, "t", &key_token);
    assert_refused(
        client,
        &segment_with_key_token,
        None,
        "segment with key token",
    )
    .await?;

    // This stream's key token, on another stream's key of the same id.
    let other_key = key_url.replacen("/keys/cam/", "/keys/other/", 1);
    assert_ne!(&other_key, key_url);
    assert_refused(client, &other_key, None, "key token of another stream").await?;

    // Another stream's token, on this stream's playlist.
    let other = test.sign_for("other", "v1", "s1").await?;
    let other_token = query_param(&other, "t").expect("t");
    let crossed = stack::with_query(&playlist, "t", &other_token)?;
    assert_refused(client, &crossed, None, "token of another stream").await?;

    // Bound to another address than the 127.0.0.1 the edge sees.
    let elsewhere = test
        .sign(serde_json::json!({"stream": "cam", "ttl": 600, "ip": "203.0.113.5"}))
        .await?;
    assert_refused(client, &elsewhere, None, "token bound to another IP").await?;
    let here = test
        .sign(serde_json::json!({"stream": "cam", "ttl": 600, "ip": "127.0.0.1"}))
        .await?;
    let bound = play(client, &here, None).await?;
    assert!(!bound.key_urls.is_empty());

    // WMSAuth for another IP.
    let signature = stack::wmsauth_sign(
        &test.stack.secrets.wmsauth_key,
        "203.0.113.5",
        stack::unix_now(),
        5,
        "live/cam",
    )
    .await?;
    let wms_elsewhere = stack::with_query(&playlist, "wmsAuthSign", &signature)?;
    assert_refused(client, &wms_elsewhere, None, "WMSAuth for another IP").await?;
    // WMSAuth signed long enough ago to have expired (5 min + 30 s tolerance).
    let old = stack::wmsauth_sign(
        &test.stack.secrets.wmsauth_key,
        "127.0.0.1",
        stack::unix_now() - 400,
        5,
        "live/cam",
    )
    .await?;
    let wms_expired = stack::with_query(&playlist, "wmsAuthSign", &old)?;
    assert_refused(client, &wms_expired, None, "expired WMSAuth").await?;

    // Expired gatecast token: 1 s lifetime, presented once it has passed.
    let short = test
        .sign(serde_json::json!({"stream": "cam", "ttl": 1}))
        .await?;
    let expires_at = stack::unix_now() + 1;
    while stack::unix_now() <= expires_at + 1 {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_refused(client, &short, None, "expired token").await?;

    // The good URL still plays: the refusals above were about the credentials.
    let again = play(client, &good, None).await?;
    assert!(!again.key_urls.is_empty());
    broadcast.finish().await?;
    test.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sanctions_cut_viewers_off_at_the_next_key() -> anyhow::Result<()> {
    let test = TestStack::start().await?;
    let client = &test.client;
    let broadcast = test.broadcast("cam", 12, 2).await?;
    let alice = test.sign_for("cam", "alice", "alice-session").await?;
    let bob = test.sign_for("cam", "bob", "bob-session").await?;
    let alice_keys = play(client, &alice, None).await?.key_urls;
    let bob_keys = play(client, &bob, None).await?.key_urls;

    // Revoking alice's session mid-stream refuses her next key fetch; bob watches on.
    test.api_ok("/api/sessions/alice-session/revoke", None)
        .await?;
    assert_refused(client, &alice_keys[0], None, "key of a revoked session").await?;
    let key_url = first_key_url(client, &alice, None).await?;
    assert_refused(client, &key_url, None, "fresh key URI of a revoked session").await?;
    assert!(
        play(client, &bob, None).await.is_ok(),
        "bob was cut off too"
    );

    // Blocking bob (the viewer, any session) refuses his keys until he is unblocked.
    test.api_ok("/api/viewers/bob/block", None).await?;
    assert_refused(client, &bob_keys[0], None, "key of a blocked viewer").await?;
    test.api_ok("/api/viewers/bob/unblock", None).await?;
    assert_eq!(get(client, &bob_keys[0], None).await?.status, 200);

    // Banning the streamer: the key function refuses every key of the stream ...
    test.api_ok("/api/channels/cam/disable", None).await?;
    assert_refused(client, &bob_keys[0], None, "key of a banned stream").await?;
    let carol = test.sign_for("cam", "carol", "carol-session").await?;
    let carol_key = first_key_url(client, &carol, None).await?;
    assert_refused(
        client,
        &carol_key,
        None,
        "new viewer's key of a banned stream",
    )
    .await?;
    // ... and a new publish with the channel's key is refused once the current one ends
    // (however that one ends: the ban may or may not cut it).
    let Broadcast {
        stream_key,
        mut ffmpeg,
        ..
    } = broadcast;
    ffmpeg::wait(&mut ffmpeg, Duration::from_secs(40)).await?;
    test.wait_ended("cam", Duration::from_secs(20)).await?;
    let stored_before = std::fs::read(test.stored_playlist_path("cam"))?;
    let mut banned = ffmpeg::publish(&test.stack.publish_url(&stream_key), 4)?;
    let status = ffmpeg::wait(&mut banned, Duration::from_secs(30)).await?;
    assert!(!status.success(), "a banned streamer published");

    // An unknown stream key is refused too.
    let mut stranger = ffmpeg::publish(&test.stack.publish_url("not-a-stream-key-0000"), 4)?;
    let status = ffmpeg::wait(&mut stranger, Duration::from_secs(30)).await?;
    assert!(!status.success(), "an unknown stream key published");
    assert_eq!(
        std::fs::read(test.stored_playlist_path("cam"))?,
        stored_before,
        "a refused publish changed the stored playlist"
    );

    // Re-enabling the channel lifts the ban on its keys.
    test.api_ok("/api/channels/cam/enable", None).await?;
    let playback = play(client, &carol, None).await?;
    assert!(!playback.key_urls.is_empty());
    test.shutdown().await
}

/// The nginx-rtmp `on_publish` hook the worker (or nginx) calls: the right stream key is
/// redirected to the public name (302, `Location: <name>`), any other key, a disabled channel
/// or a wrong hook secret is refused; a rotated key replaces the old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_hook_maps_only_valid_keys_to_public_names() -> anyhow::Result<()> {
    let test = TestStack::start().await?;
    let stream_key = test.create_channel("cam").await?;
    let secret = test.stack.secrets.hook_secret.clone();
    assert_eq!(
        on_publish(&test, &secret, &stream_key).await?,
        (302, Some("cam".to_owned()))
    );
    assert_eq!(on_publish(&test, &secret, "not-a-stream-key").await?.0, 403);
    assert_eq!(on_publish(&test, "wrong-secret", &stream_key).await?.0, 403);

    let rotated: serde_json::Value =
        serde_json::from_slice(&test.api_ok("/api/channels/cam/rotate", None).await?)?;
    let new_key = rotated["stream_key"].as_str().expect("rotated key");
    assert_ne!(new_key, stream_key);
    assert_eq!(
        on_publish(&test, &secret, &stream_key).await?.0,
        403,
        "the old key still publishes"
    );
    assert_eq!(
        on_publish(&test, &secret, new_key).await?,
        (302, Some("cam".to_owned()))
    );

    test.api_ok("/api/channels/cam/disable", None).await?;
    assert_eq!(
        on_publish(&test, &secret, new_key).await?.0,
        403,
        "a disabled channel publishes"
    );
    test.shutdown().await
}

/// Calls the `on_publish` hook as nginx-rtmp does; returns the status and `Location`.
async fn on_publish(
    test: &TestStack,
    secret: &str,
    stream_key: &str,
) -> anyhow::Result<(u16, Option<String>)> {
    let url = stack::with_query(&test.url("/hooks/on-publish"), "secret", secret)?;
    let response = test
        .client
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("app=live&name={stream_key}"))
        .send()
        .await?;
    let location = response
        .headers()
        .get("location")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    Ok((response.status().as_u16(), location))
}

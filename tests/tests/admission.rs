//! Every way a viewer is admitted, end to end: a real ffmpeg publishes over RTMP, the worker
//! encrypts to S3, and a viewer admitted by a gatecast token, a WMSAuth URL or a seed 000
//! session cookie follows the rewritten playlist, fetches keys and segments through the wasm
//! components, decrypts, and ffprobe finds H.264 + AAC of the listed duration.

use std::collections::HashSet;

use gatecast_e2e::stack::{self, TestStack};
use gatecast_e2e::viewer::{Playback, assert_playable, assert_refused, play, query_param};

const STREAM: &str = "cam";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admission_path_plays_decrypted_h264_and_aac() -> anyhow::Result<()> {
    // Seed 000 without the site's authorize callback is refused by default; this test plays it
    // under the documented opt-in (the site-backed path: tests/tests/attack_tokens.rs).
    let test = TestStack::start_with(&[("session_trust_signature_only", "true")]).await?;
    // Four segments of 2 s at 3 segments per key span at least two keys.
    let broadcast = test.broadcast(STREAM, 12, 4).await?;
    let live = test.api_get("/api/streams/cam").await?;
    assert_eq!(live["name"], STREAM);
    assert_eq!(
        live["live"], true,
        "a publishing stream is not live: {live}"
    );
    assert!(!live.to_string().contains(&broadcast.stream_key));
    let mut seen = Vec::new();

    let playback = gatecast_token(&test).await?;
    seen.push(playback);
    seen.push(wmsauth_signed_by_the_test(&test).await?);
    seen.push(wmsauth_signed_by_the_api(&test).await?);
    seen.push(seed000_session(&test).await?);

    for playback in &seen {
        let visible = [&playback.playlist_text]
            .into_iter()
            .chain(&playback.key_urls)
            .chain(&playback.segment_urls);
        for text in visible {
            assert!(
                !text.contains(&broadcast.stream_key),
                "the stream key leaked to a viewer"
            );
        }
    }
    for path in test.stored_object_paths()? {
        assert!(
            !path.contains(&broadcast.stream_key),
            "the stream key names a stored object: {path}"
        );
    }
    broadcast.finish().await?;
    test.wait_ended(STREAM, std::time::Duration::from_secs(20))
        .await?;
    let ended = poll_until_offline(&test).await?;
    assert_eq!(
        ended["live"], false,
        "an ended stream is still live: {ended}"
    );
    test.shutdown().await
}

/// `/api/streams/cam` until the worker's publish-done hook has marked it offline (the hook
/// follows the final playlist write, so give it a few seconds).
async fn poll_until_offline(test: &TestStack) -> anyhow::Result<serde_json::Value> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let status = test.api_get("/api/streams/cam").await?;
        if status["live"] == false || tokio::time::Instant::now() >= deadline {
            return Ok(status);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// `/api/sign` → `?t=` playlist URL. Key URIs carry their own key-scope token (not the
/// playlist's), keys rotate every 3 segments and every segment has its own IV.
async fn gatecast_token(test: &TestStack) -> anyhow::Result<Playback> {
    let url = test.sign_for(STREAM, "viewer-1", "session-1").await?;
    let playlist_token = query_param(&url, "t").expect("signed URL carries t");
    let playback = play(&test.client, &url, None).await?;
    assert_playable(&playback).await?;
    assert!(
        playback.key_urls.len() >= 2,
        "4+ segments at 3 per key need 2+ keys, got {:?}",
        playback.key_urls
    );
    for key_url in &playback.key_urls {
        let key_token = query_param(key_url, "t").expect("key URI carries t");
        assert_ne!(
            key_token, playlist_token,
            "key URI reuses the playlist token"
        );
    }
    let ivs: HashSet<_> = playback.playlist.segments.iter().map(|s| s.iv).collect();
    assert_eq!(
        ivs.len(),
        playback.playlist.segments.len(),
        "IVs are not unique per segment"
    );
    assert!(
        ivs.iter().all(Option::is_some),
        "a segment has no explicit IV"
    );
    Ok(playback)
}

/// A WMSAuth URL signed by python (docs/PROTOCOLS.md §4) for 127.0.0.1, the address the edge sees.
/// The same signature presented for another stream is refused.
async fn wmsauth_signed_by_the_test(test: &TestStack) -> anyhow::Result<Playback> {
    let key = &test.stack.secrets.wmsauth_key;
    let signature = stack::wmsauth_sign(key, "127.0.0.1", stack::unix_now(), 5, "live/cam").await?;
    let url = stack::with_query(&test.url("/live/cam/index.m3u8"), "wmsAuthSign", &signature)?;
    let playback = play(&test.client, &url, None).await?;
    assert_playable(&playback).await?;

    let elsewhere = stack::with_query(
        &test.url("/live/other/index.m3u8"),
        "wmsAuthSign",
        &signature,
    )?;
    assert_refused(&test.client, &elsewhere, None, "WMSAuth for another stream").await?;
    Ok(playback)
}

/// `/api/sign` with `scheme: wmsauth`: python checks the signature's hash independently, and
/// the URL plays.
async fn wmsauth_signed_by_the_api(test: &TestStack) -> anyhow::Result<Playback> {
    let url = test
        .sign(serde_json::json!({
            "stream": STREAM, "ttl": 300, "ip": "127.0.0.1", "scheme": "wmsauth",
        }))
        .await?;
    let signature = query_param(&url, "wmsAuthSign").expect("URL carries wmsAuthSign");
    let verdict = stack::python(
        "import base64,hashlib,sys\n\
         sign, key, ip, path = sys.argv[1:5]\n\
         f = dict(p.split('=', 1) for p in base64.b64decode(sign).decode().split('&'))\n\
         stream = path[:int(f['strm_len'])] if 'strm_len' in f else ''\n\
         text = ip + key + f['server_time'] + f['validminutes'] + stream\n\
         print('ok' if base64.b64encode(hashlib.md5(text.encode()).digest()).decode() == f['hash_value'] else 'bad')",
        &[
            &signature,
            &test.stack.secrets.wmsauth_key,
            "127.0.0.1",
            "live/cam",
        ],
    )
    .await?;
    assert_eq!(
        verdict, "ok",
        "the API's WMSAuth hash is not md5(ip key time minutes stream)"
    );
    let playback = play(&test.client, &url, None).await?;
    assert_playable(&playback).await?;
    Ok(playback)
}

/// Seed 000 (signature only, the opt-in): the `sessionid` cookie admits to the playlist, whose
/// key URIs carry `s = b64(HMAC-SHA1(secret, "<sessionid> <stream>"))` computed here by python;
/// the key needs the same cookie.
async fn seed000_session(test: &TestStack) -> anyhow::Result<Playback> {
    let cookie = "e2e-session-7f3a";
    let expected = stack::seed000_token(&test.stack.secrets.session_secret, cookie, STREAM).await?;
    let url = test.url("/live/cam/index.m3u8");
    let playback = play(&test.client, &url, Some(cookie)).await?;
    assert_playable(&playback).await?;
    for key_url in &playback.key_urls {
        assert_eq!(
            query_param(key_url, "s").as_deref(),
            Some(expected.as_str())
        );
        assert_refused(
            &test.client,
            key_url,
            None,
            "seed 000 key without the cookie",
        )
        .await?;
        assert_refused(
            &test.client,
            key_url,
            Some("another-session"),
            "seed 000 key with another session's cookie",
        )
        .await?;
    }
    let unsigned_key_url = playback.key_urls[0].split('?').next().unwrap_or_default();
    let forged = stack::with_query(
        unsigned_key_url,
        "s",
        &stack::seed000_token("not-the-secret", cookie, STREAM).await?,
    )?;
    assert_refused(
        &test.client,
        &forged,
        Some(cookie),
        "seed 000 s under another secret",
    )
    .await?;
    assert_refused(&test.client, &url, None, "playlist without any credential").await?;
    Ok(playback)
}

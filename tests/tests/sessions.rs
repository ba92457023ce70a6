//! Long sessions against short key tokens: a key URL dies `key_token_ttl_seconds` after the
//! playlist minted it (a leaked key URL is worth little), while a player that refetches the
//! playlist, as players do every target duration, gets fresh tokens and new key ids and keeps
//! playing with the same signed playlist URL.

use std::time::Duration;

use gatecast_e2e::hls::MediaPlaylist;
use gatecast_e2e::stack::{self, TestStack};
use gatecast_e2e::viewer::{assert_playable, assert_refused, play};

/// Key tokens live this long here (90 s by default).
const KEY_TOKEN_TTL: u64 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refetched_playlists_refresh_key_tokens_and_old_ones_expire() -> anyhow::Result<()> {
    let ttl = KEY_TOKEN_TTL.to_string();
    let test = TestStack::start_with(&[("key_token_ttl_seconds", &ttl)]).await?;
    let broadcast = test.broadcast("cam", 12, 2).await?;
    let url = test.sign_for("cam", "viewer-1", "session-1").await?;

    let first = play(&test.client, &url, None).await?;
    let minted_by = stack::unix_now();
    while stack::unix_now() <= minted_by + KEY_TOKEN_TTL + 1 {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for key_url in &first.key_urls {
        assert_refused(
            &test.client,
            key_url,
            None,
            "key URL past its token lifetime",
        )
        .await?;
    }

    // Same signed URL, a few seconds later: fresh tokens, the stream moved on, and it plays.
    let next_segment =
        |playlist: &MediaPlaylist| playlist.media_sequence + playlist.segments.len() as u64;
    test.wait_for_playlist("cam", Duration::from_secs(20), |stored| {
        next_segment(stored) > next_segment(&first.playlist)
    })
    .await?;
    let later = play(&test.client, &url, None).await?;
    assert_playable(&later).await?;
    assert!(
        next_segment(&later.playlist) > next_segment(&first.playlist),
        "the refetched playlist lists no newer segment"
    );
    assert!(
        later
            .key_urls
            .iter()
            .all(|key| !first.key_urls.contains(key)),
        "a refetched playlist reused an expired key URL"
    );
    broadcast.finish().await?;
    test.shutdown().await
}

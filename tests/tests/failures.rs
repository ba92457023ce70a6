//! Failure modes: storage down answers 503 with `Retry-After` (never 500, never a trap) and
//! recovers when storage returns; malformed requests get a 4xx, never a 5xx.

use std::time::Duration;

use gatecast_e2e::stack::TestStack;
use gatecast_e2e::viewer::{self, assert_playable, get, play, raw_status};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_outage_answers_503_with_retry_after_and_recovers() -> anyhow::Result<()> {
    let mut test = TestStack::start().await?;
    // 14 s of 2 s segments at 3 per key: at least two keys, so key ids lie between them.
    let broadcast = test.broadcast("cam", 14, 2).await?;
    // The worker must not be writing while storage is down: let the publish end first.
    broadcast.finish().await?;
    test.wait_ended("cam", Duration::from_secs(20)).await?;
    let url = test.sign_for("cam", "v1", "s1").await?;
    let before = play(&test.client, &url, None).await?;

    test.stack.stop_storage().await?;
    let playlist = get(&test.client, &url, None).await?;
    // The key component remembers keys it has read (they never change), and Spin reuses its
    // instances, so a key fetched just before the outage may still be served. A key id no
    // instance has read must come from storage: the same viewer token (which opens the key ids
    // from its playlist's first to its last), a key id between them that was never written.
    let unread_key_url = with_unread_key_id(&before.key_urls)?;
    let key = get(&test.client, &unread_key_url, None).await?;
    let segment = get(&test.client, &before.segment_urls[0], None).await?;
    for (what, answer) in [
        ("playlist", &playlist),
        ("key", &key),
        ("segment", &segment),
    ] {
        assert_eq!(
            answer.status,
            503,
            "{what} with storage down: {}",
            answer.text()
        );
        let retry_after = answer
            .headers
            .get("retry-after")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_else(|| panic!("{what}: 503 without Retry-After"));
        assert!(
            retry_after.parse::<u64>().is_ok(),
            "{what}: Retry-After is not delay-seconds: {retry_after}"
        );
    }
    // A refusal still wins over the outage: no credential, no storage read.
    viewer::assert_refused(
        &test.client,
        &test.url("/live/cam/index.m3u8"),
        None,
        "no token",
    )
    .await?;

    test.stack.start_storage().await?;
    let after = play(&test.client, &url, None).await?;
    assert_playable(&after).await?;
    assert_eq!(
        after.media, before.media,
        "the same recording decrypts the same"
    );
    test.shutdown().await
}

/// The first of `key_urls` (`…/keys/<name>/<key id>.key?t=…`) with its key id plus one: never
/// written (key ids are the segment sequence numbers that start a key period, and a period is
/// 3 segments here), and inside the token's range when a later key follows.
fn with_unread_key_id(key_urls: &[String]) -> anyhow::Result<String> {
    anyhow::ensure!(key_urls.len() >= 2, "one key only: {key_urls:?}");
    let key_url = &key_urls[0];
    let (path, query) = key_url.split_once('?').unwrap_or((key_url, ""));
    let (prefix, file) = path
        .rsplit_once('/')
        .ok_or_else(|| anyhow::anyhow!("key URL without a path: {key_url}"))?;
    let key_id: u64 = file
        .strip_suffix(".key")
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("key URL without a key id: {key_url}"))?;
    Ok(format!("{prefix}/{}.key?{query}", key_id + 1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_4xx_never_5xx() -> anyhow::Result<()> {
    let test = TestStack::start().await?;
    let bearer = format!("Authorization: Bearer {}", test.stack.secrets.api_token);
    let long_name = "a".repeat(65);
    let huge_query = "x".repeat(16 * 1024);
    let big_header = "y".repeat(128 * 1024);
    let huge_header = "z".repeat(1024 * 1024);
    let get_with =
        |target: &str, headers: &str| (format!("GET {target} HTTP/1.1{headers}"), String::new());
    let plain = |target: &str| get_with(target, "");
    let post = |target: &str, headers: &str, body: &str| {
        (format!("POST {target} HTTP/1.1{headers}"), body.to_owned())
    };
    let bearer = format!("\r\n{bearer}");
    let requests = [
        plain("/live/../keys/cam/1.key"),
        plain("/live/cam/../../keys/cam/1.key"),
        plain("/live/%2e%2e/keys/cam/1.key"),
        plain("/keys/%2e%2e/%2e%2e/secrets.json"),
        plain("/keys/cam/..%2f..%2fsecrets.json"),
        plain("/keys/..%2fkeys%2fcam/1.key"),
        plain("/live/cam%2f..%2fother/index.m3u8"),
        plain("/live/cam/%00.ts"),
        plain("/live/cam/-1.ts"),
        plain("/live/cam/0001.ts"),
        plain("/keys/cam/99999999999999999999999.key"),
        plain("/keys/cam/1.key/extra"),
        plain("/keys/cam/1.key?t=%zz%ff"),
        get_with("/keys/cam/1.key?s=abc", "\r\nCookie: sessionid=;"),
        plain(&format!("/live/{long_name}/index.m3u8")),
        plain(&format!("/live/cam/index.m3u8?t={huge_query}")),
        plain("/live/cam/index.m3u8?wmsAuthSign=%%%%bm90IGJhc2U2NA"),
        plain("/live/cam/index.m3u8?wmsAuthSign=c2VydmVyX3RpbWU9eHg="),
        get_with("/live/cam/index.m3u8", &format!("\r\nX-Big: {big_header}")),
        get_with(
            "/live/cam/index.m3u8",
            &format!("\r\nX-Huge: {huge_header}"),
        ),
        plain("/nothing/here"),
        plain("/api/../keys/cam/1.key"),
        ("DELETE /keys/cam/1.key HTTP/1.1".to_owned(), String::new()),
        post("/live/cam/index.m3u8", "", ""),
        post("/api/channels/..%2fx/disable", &bearer, ""),
        post(
            &format!("/api/sessions/{long_name}{long_name}/revoke"),
            &bearer,
            "",
        ),
        post("/api/sign", &bearer, "{\"stream\""),
        post("/api/sign", &bearer, "{\"stream\":\"../x\",\"ttl\":5}"),
        post(
            "/api/sign",
            &bearer,
            "{\"stream\":\"cam\",\"ip\":\"not-an-ip\"}",
        ),
        post("/api/channels", &bearer, "{\"name\":\"a/../b\"}"),
        post("/api/channels", "\r\nAuthorization: Bearer wrong", ""),
        post("/hooks/on-publish", "", "name=abc"),
        post("/hooks/on-publish?secret=wrong", "", "name=abc"),
    ];
    let mut failures = Vec::new();
    for (head, body) in &requests {
        let head = format!("{head}\r\nHost: edge\r\nContent-Length: {}", body.len());
        let status = raw_status(&test.stack.http_base, &head, body).await?;
        let shown: String = head
            .lines()
            .next()
            .unwrap_or_default()
            .chars()
            .take(90)
            .collect();
        match status {
            Some(code) if (400..500).contains(&code) => {}
            other => failures.push(format!("{shown:?} -> {other:?}")),
        }
    }
    assert!(failures.is_empty(), "not a 4xx:\n{}", failures.join("\n"));
    // The edge still serves after all that.
    let url = test.sign_for("cam", "v1", "s1").await?;
    assert_eq!(get(&test.client, &url, None).await?.status, 404);
    test.shutdown().await
}

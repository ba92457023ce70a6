//! Attacks on pay-per-view and on the edge's storage credentials (issue 13, items 4 and 15),
//! each against the real stack: a real ffmpeg broadcast, the real wasm components in the host,
//! the embedded S3 endpoint enforcing its credentials, and a real WMSPanel-style handler.
//! Every test does the attack, asserts the refusal, and asserts the legitimate use beside it.
//!
//! Key period: 3 segments × 2 s = 6 s (`key_period_seconds` = 6), price `key:1`. Key ids are the
//! sequence number of the first segment under the key, so with 3 segments per key the id right
//! after a real one is never written.

use std::time::Duration;

use anyhow::{Context, ensure};
use gatecast_dev::stack::{KEY_BUCKET, MEDIA_BUCKET, S3Reader};
use gatecast_e2e::ppv::{
    Handler, assert_key_decrypts, assert_refused_for, balance, credit, get, key_id, keys_for,
    paid_broadcast, stack_syncing_with,
};
use gatecast_e2e::stack::{TestStack, python};
use gatecast_e2e::viewer;
use reqwest::Method;
use serde_json::{Value, json};

const STREAM: &str = "attackcam";
const TOKEN: &str = "ppv-attack-token";

/// `key_url` with its key id replaced by `key_id` (same token, same stream).
fn with_key_id(key_url: &str, key_id: u64) -> anyhow::Result<String> {
    let (path, query) = key_url.split_once('?').context("key URL without a token")?;
    let (folder, _) = path.rsplit_once('/').context("key URL path")?;
    Ok(format!("{folder}/{key_id}.key?{query}"))
}

/// The audit log of `key_id` of [`STREAM`], through the management API.
async fn audit(stack: &TestStack, key_id: u64) -> anyhow::Result<Value> {
    let (status, entries) = stack
        .api(
            Method::GET,
            &format!("/api/audit/keys/{STREAM}/{key_id}"),
            None,
        )
        .await?;
    ensure!(status == 200, "audit answered {status}");
    Ok(entries)
}

/// Issue 13 item 4: a key id the worker never wrote is 404 (GET and HEAD) with nothing charged
/// and no audit row, while the paying viewer gets the real key, charged exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_written_key_ids_are_404_and_cost_nothing() -> anyhow::Result<()> {
    let stack = TestStack::start_with(&[("key_period_seconds", "6")]).await?;
    let (mut ffmpeg, keys) = paid_broadcast(&stack, STREAM).await?;
    credit(&stack, "v-pay", 3).await?;

    // The legitimate use: the real key decrypts its segment and costs 1, once.
    assert_key_decrypts(&stack, &keys[0]).await?;
    ensure!(
        get(&stack, &keys[0].key_url).await?.status == 200,
        "refetch"
    );
    ensure!(
        balance(&stack, "v-pay").await? == 2,
        "the real key cost other than 1"
    );

    let real = key_id(&keys[0].key_url)?;
    let never_written = with_key_id(&keys[0].key_url, real + 1)?;
    let far_future = with_key_id(&keys[0].key_url, u64::MAX)?;
    for _ in 0..3 {
        let answer = get(&stack, &never_written).await?;
        ensure!(
            answer.status == 404 && answer.body.is_empty(),
            "never-written key id answered {} with {} bytes",
            answer.status,
            answer.body.len()
        );
        let head = stack.client.head(&never_written).send().await?.status();
        ensure!(
            head == 404,
            "HEAD of a never-written key id answered {head}"
        );
        // 404 here; a key token limited to a key-id range may refuse it (403) even earlier.
        let answer = get(&stack, &far_future).await?;
        ensure!(
            matches!(answer.status, 403 | 404) && answer.body.is_empty(),
            "key id u64::MAX answered {}",
            answer.status
        );
    }
    ensure!(
        balance(&stack, "v-pay").await? == 2,
        "a never-written key id was charged"
    );
    // Still able to pay for the next real key period: exactly 1 more.
    assert_key_decrypts(&stack, &keys[1]).await?;
    ensure!(
        balance(&stack, "v-pay").await? == 1,
        "the second key cost other than 1"
    );

    // The audit names v-pay for the real key id and nobody for the fake ones.
    let real_audit = audit(&stack, real).await?;
    ensure!(
        real_audit
            .as_array()
            .is_some_and(|entries| entries.len() == 1 && entries[0]["viewer"] == "v-pay"),
        "audit of the real key id: {real_audit}"
    );
    for fake in [real + 1, u64::MAX] {
        let entries = audit(&stack, fake).await?;
        ensure!(
            entries == json!([]),
            "audit rows for key id {fake}: {entries}"
        );
    }
    let _ = ffmpeg.kill().await;
    stack.shutdown().await
}

/// Issue 13 item 4: one request for key id 18446744073709551615, followed by sync rounds (which
/// prune charge markers), must not make an already-paid key period charge again on refetch; a
/// new key period is still charged exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_key_id_cannot_make_paid_keys_charge_again() -> anyhow::Result<()> {
    // A real handler counts the rounds, so the test knows pruning rounds ran in between.
    let handler = Handler::start(TOKEN).await?;
    let stack = stack_syncing_with(&handler, TOKEN, "1", &[]).await?;
    let (mut ffmpeg, keys) = paid_broadcast(&stack, STREAM).await?;
    credit(&stack, "v-pay", 5).await?;
    assert_key_decrypts(&stack, &keys[0]).await?;
    assert_key_decrypts(&stack, &keys[1]).await?;
    ensure!(
        balance(&stack, "v-pay").await? == 3,
        "two keys cost other than 2"
    );

    // The attack: a credited viewer of its own asks for the largest key id there is.
    credit(&stack, "mallory", 5).await?;
    let mallory = keys_for(&stack, STREAM, "mallory", "s-mallory").await?;
    let forged = with_key_id(&mallory[0].key_url, u64::MAX)?;
    let answer = get(&stack, &forged).await?;
    ensure!(
        matches!(answer.status, 403 | 404),
        "key id u64::MAX answered {}",
        answer.status
    );
    let rounds_before = handler.received();
    for _ in 0..3 {
        // Each refetch after an interval first runs the due round (prune, then sync).
        tokio::time::sleep(Duration::from_millis(1500)).await;
        for keyed in &keys[..2] {
            let refetch = get(&stack, &keyed.key_url).await?;
            ensure!(
                refetch.status == 200,
                "paid key refetch answered {}",
                refetch.status
            );
        }
    }
    ensure!(
        handler.received() >= rounds_before + 2,
        "the sync rounds did not run ({} -> {})",
        rounds_before,
        handler.received()
    );
    ensure!(
        balance(&stack, "v-pay").await? == 3,
        "an already-paid key period was charged again"
    );
    ensure!(
        balance(&stack, "mallory").await? == 5,
        "mallory was charged"
    );
    // The legitimate use beside it: the next key period costs 1, once.
    assert_key_decrypts(&stack, &keys[2]).await?;
    ensure!(
        get(&stack, &keys[2].key_url).await?.status == 200,
        "refetch"
    );
    ensure!(
        balance(&stack, "v-pay").await? == 2,
        "the third key cost other than 1"
    );
    let _ = ffmpeg.kill().await;
    stack.shutdown().await
}

/// A presigned `GET` of `bucket/object` with `reader`'s credential, by boto3 (not gatecast's
/// presigner), answered by the embedded S3 endpoint: (status, body).
async fn presigned_get(
    stack: &TestStack,
    reader: &S3Reader,
    bucket: &str,
    object: &str,
) -> anyhow::Result<(u16, Vec<u8>)> {
    let url = python(
        "import sys, boto3\n\
         from botocore.config import Config\n\
         endpoint, access, secret, bucket, key = sys.argv[1:6]\n\
         s3 = boto3.client('s3', endpoint_url=endpoint, aws_access_key_id=access,\n\
             aws_secret_access_key=secret, region_name='us-east-1',\n\
             config=Config(signature_version='s3v4', s3={'addressing_style': 'path'}))\n\
         print(s3.generate_presigned_url('get_object', Params={'Bucket': bucket, 'Key': key}, ExpiresIn=300))",
        &[
            &format!("http://{}", stack.stack.s3_addr),
            &reader.access_key,
            &reader.secret_key,
            bucket,
            object,
        ],
    )
    .await?;
    let answer = viewer::get(&stack.client, &url, None).await?;
    Ok((answer.status, answer.body))
}

/// Issue 13 item 15: the credential the playlist and segment components hold cannot read the
/// key bucket of the real embedded S3 (403), nor the key credential the media; the key
/// credential reads the key object and the key component still serves keys to a viewer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_media_credential_cannot_read_keys() -> anyhow::Result<()> {
    let stack = TestStack::start().await?;
    let broadcast = stack.broadcast("credcam", 20, 3).await?;
    let url = stack.sign_for("credcam", "v1", "s1").await?;
    let playback = viewer::play(&stack.client, &url, None).await?;
    viewer::assert_playable(&playback).await?;
    let first_key = key_id(playback.key_urls.first().context("no key URL")?)?;
    let object = format!("keys/credcam/{first_key}.key");
    let on_disk = std::fs::read(stack.stack.s3_root.join(KEY_BUCKET).join(&object))
        .context("the key object on disk")?;

    let readers = &stack.stack.readers;
    let (status, body) = presigned_get(&stack, &readers.media, KEY_BUCKET, &object).await?;
    ensure!(status == 403, "the media credential read a key: {status}");
    ensure!(body != on_disk, "the 403 carried the key");
    let (status, body) = presigned_get(&stack, &readers.keys, KEY_BUCKET, &object).await?;
    ensure!(
        status == 200 && body == on_disk,
        "the key credential read {status}"
    );
    let playlist = "live/credcam/index.m3u8";
    let (status, _) = presigned_get(&stack, &readers.keys, MEDIA_BUCKET, playlist).await?;
    ensure!(status == 403, "the key credential read media: {status}");
    let (status, _) = presigned_get(&stack, &readers.media, MEDIA_BUCKET, playlist).await?;
    ensure!(
        status == 200,
        "the media credential read its playlist: {status}"
    );

    broadcast.finish().await?;
    stack.shutdown().await
}

/// Issue 13 item 15: a handler configured without `ppv_token` is never called: the forced sync
/// is 503, no round reaches it, and its deny list (whose `Solution` is plain `md5(Puzzle)`,
/// which anyone can compute) is not applied; the viewer keeps watching.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_without_a_token_is_never_trusted() -> anyhow::Result<()> {
    // This "handler" knows the empty token, as anyone does: it would pass an empty-token check.
    let handler = Handler::start("").await?;
    handler.answer(&["v-pay"], false);
    let stack = stack_syncing_with(&handler, "", "1", &[]).await?;
    let (mut ffmpeg, keys) = paid_broadcast(&stack, STREAM).await?;
    credit(&stack, "v-pay", 5).await?;
    let response = stack.api_post("/api/ppv/sync", None).await?;
    let status = response.status().as_u16();
    ensure!(
        status == 503,
        "forced sync without a token answered {status}"
    );
    ensure!(response.bytes().await?.is_empty(), "the 503 has a body");
    for keyed in &keys[..2] {
        // Each key request after an interval would run a due round.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_key_decrypts(&stack, keyed).await?;
    }
    ensure!(
        handler.received() == 0,
        "the edge called a handler it cannot authenticate"
    );
    ensure!(
        balance(&stack, "v-pay").await? == 3,
        "two keys cost other than 2"
    );
    let _ = ffmpeg.kill().await;
    stack.shutdown().await
}

/// Issue 13 item 15: a deny list from a handler that does not know the token (its `Solution` is
/// computed with another one) is not applied, by the forced sync (502) or the rounds; the real
/// handler's deny list is (the legitimate use).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_deny_list_is_not_applied() -> anyhow::Result<()> {
    let handler = Handler::start(TOKEN).await?;
    let stack = stack_syncing_with(&handler, TOKEN, "1", &[]).await?;
    let (mut ffmpeg, keys) = paid_broadcast(&stack, STREAM).await?;
    credit(&stack, "v-pay", 5).await?;
    assert_key_decrypts(&stack, &keys[0]).await?;

    // An impostor answers for the handler URL: it denies v-pay, without knowing the token.
    handler.answer(&["v-pay"], true);
    let (status, _) = stack.api(Method::POST, "/api/ppv/sync", None).await?;
    ensure!(
        status == 502,
        "sync with a forged Solution answered {status}"
    );
    let rounds_before = handler.received();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_key_decrypts(&stack, &keys[1]).await?;
    ensure!(
        handler.received() > rounds_before,
        "no round asked the impostor"
    );
    assert_key_decrypts(&stack, &keys[0]).await?;

    // The real handler (it knows the token) denies v-pay: applied at once.
    handler.answer(&["v-pay"], false);
    let (status, body) = stack.api(Method::POST, "/api/ppv/sync", None).await?;
    ensure!(
        status == 200 && body["denied"] == 1,
        "sync answered {status} {body}"
    );
    assert_refused_for(&stack, &keys[0].key_url, "denied").await?;
    let _ = ffmpeg.kill().await;
    stack.shutdown().await
}

//! Publisher exclusivity across ingest workers, end to end: two workers against one edge (the
//! api component's hooks keep a publish lease per channel, renewed by the workers' nginx-rtmp
//! `on_update` heartbeat). The second publisher of a channel is refused while the first is live,
//! also past the lease length (the heartbeat renews it); it gets in at once after the first
//! stops (`on_publish_done` releases the lease) and, after a crash that sends nothing more,
//! once the lease lapses.

use std::time::Duration;

use anyhow::{Context, bail, ensure};
use gatecast_e2e::ffmpeg;
use gatecast_e2e::stack::{TestStack, publishes};
use tokio::time::Instant;

/// The extra workers' `on_update` period; the edge's lease lasts three of them.
const UPDATE: Duration = Duration::from_secs(1);
const LEASE: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_publisher_per_channel_across_workers() -> anyhow::Result<()> {
    let test = TestStack::start().await?;
    let key = test.create_channel("duo").await?;
    let second_url = test.stack.publish_url(&key);

    // The first publisher, on an extra worker.
    let first = test.stack.start_worker(UPDATE).await?;
    let mut publisher = ffmpeg::publish(&first.publish_url(&key), 14)?;
    test.wait_for_segments("duo", 1, Duration::from_secs(20))
        .await?;
    ensure!(
        !publishes(&second_url, 2).await?,
        "a second worker accepted a channel live on the first"
    );
    // Past the lease length, the first worker's updates have renewed it.
    tokio::time::sleep(LEASE + UPDATE).await;
    ensure!(
        !publishes(&second_url, 2).await?,
        "the lease lapsed although its holder kept sending on_update"
    );
    let status = ffmpeg::wait(&mut publisher, Duration::from_secs(30)).await?;
    ensure!(
        status.success(),
        "the first publisher was cut off: {status}"
    );
    test.wait_ended("duo", Duration::from_secs(15)).await?;

    // publish_done released the lease (the status flips offline only for the holder's
    // publish_done): the second worker gets the channel right away, well within the lease.
    wait_offline(&test, "duo").await?;
    ensure!(
        publishes(&second_url, 3).await?,
        "refused after the first publisher stopped"
    );
    test.wait_ended("duo", Duration::from_secs(15)).await?;
    first.shutdown().await?;

    // A worker that crashes mid-broadcast sends neither publish_done nor updates.
    let crashing = test.stack.start_worker(UPDATE).await?;
    let _doomed = ffmpeg::publish(&crashing.publish_url(&key), 60)?;
    test.wait_for_playlist("duo", Duration::from_secs(20), |playlist| {
        !playlist.ended && !playlist.segments.is_empty()
    })
    .await
    .context("the crashing worker's broadcast")?;
    crashing.crash();
    let crashed = Instant::now();
    let status = test.api_get("/api/streams/duo").await?;
    ensure!(
        status["live"] == true,
        "offline right after the crash, within the lease: {status}"
    );
    ensure!(
        !publishes(&second_url, 2).await?,
        "accepted while the crashed worker's lease still held"
    );
    // Then the lease lapses and the channel is free, without any call from the dead worker:
    // the status API says so too (no publish_done ever came to mark it offline).
    wait_offline(&test, "duo").await?;
    loop {
        if publishes(&second_url, 3).await? {
            break;
        }
        if crashed.elapsed() > LEASE + UPDATE + Duration::from_secs(15) {
            bail!("still refused {:?} after the crash", crashed.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    test.shutdown().await
}

/// Polls the stream status API until `stream` is offline.
async fn wait_offline(test: &TestStack, stream: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = test.api_get(&format!("/api/streams/{stream}")).await?;
        if status["live"] == false {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "{stream} still live: {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

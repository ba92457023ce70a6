//! Per-stream uploader: encrypted segments in, key → segment → playlist writes out.
//!
//! The RTMP connection pushes into an [`UploadQueue`] and never waits on storage: if the store
//! is slow or down, the publisher's TCP connection must not stall (encoders drop the connection
//! when their send buffer backs up). The queue is bounded in bytes instead; past the cap its
//! OLDEST unsent segments are shed (counted, logged, and marked in the playlist with
//! `#EXT-X-DISCONTINUITY`), the way mediamtx's per-reader ring buffer sheds for a slow reader.
//!
//! Write order per segment, each step durable before the next starts:
//! 1. the key object, if this uploader has not stored that key id yet — tracked here rather than
//!    trusting `key_is_new`, so shedding the first segment under a key cannot orphan the key;
//! 2. the segment;
//! 3. the live playlist (and `vod.m3u8` when recording), one PUT each;
//! 4. deletes of what the playlist retired.
//!
//! Each segment carries the instant the input that closed it arrived; when the playlist that
//! references it is stored, the difference is the segment-visible latency
//! (`gatecast_ingest_segment_visible_seconds`).
//!
//! A failed PUT is retried with exponential backoff until it succeeds or shutdown's deadline
//! passes; nothing is referenced before it is stored, so a storage outage shows up to viewers as
//! a stalled playlist, never as a missing object.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gatecast_core::layout::{
    StreamName, key_path, live_playlist_path, segment_path, vod_playlist_path,
};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::media::{EncryptedSegment, Expired, LivePlaylist, SegmentBuffers};
use crate::metrics::{Metrics, StorageOp};
use crate::registry::StreamLease;
use crate::storage::Stores;

/// First retry delay after a failed storage request.
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// Longest delay between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Deletes are best effort: a leftover expired object is harmless, a stuck stream is not.
const DELETE_ATTEMPTS: u32 = 3;

/// The upload buffer caps: one per stream (`--max-buffer-mb`) and one across all of the
/// worker's streams (`--max-total-buffer-mb`).
///
/// Why both: the per-stream cap keeps one slow stream from holding minutes of video, but
/// multiplied by a thousand streams it is more memory than the machine has. When the worker
/// falls behind everywhere at once (storage down, or more streams than its cores can store),
/// the worker-wide cap sheds the oldest unsent segments instead of getting OOM-killed with
/// every stream on it.
#[derive(Debug)]
pub struct UploadBudget {
    per_stream_bytes: usize,
    total_bytes: usize,
    /// Bytes queued in every stream's buffer now.
    queued: AtomicUsize,
}

impl UploadBudget {
    /// Caps of `per_stream_bytes` per stream and `total_bytes` in all.
    pub fn new(per_stream_bytes: usize, total_bytes: usize) -> Arc<Self> {
        Arc::new(Self {
            per_stream_bytes,
            total_bytes,
            queued: AtomicUsize::new(0),
        })
    }

    /// Bytes queued for upload across the worker's streams.
    fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    fn add(&self, bytes: usize) {
        self.queued.fetch_add(bytes, Ordering::Relaxed);
    }

    fn release(&self, bytes: usize) {
        self.queued.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// The byte-bounded, drop-oldest buffer between one connection and its uploader (pure state).
#[derive(Debug)]
struct QueueState {
    /// Segments and when the input that closed each arrived.
    pending: VecDeque<(EncryptedSegment, Instant)>,
    bytes: usize,
    budget: Arc<UploadBudget>,
    /// Segments shed since the uploader last took one.
    dropped_unreported: u64,
    closed: bool,
}

/// What [`QueueState::pop`] found.
#[derive(Debug, PartialEq)]
enum Popped {
    /// The next segment, when the input that closed it arrived, and how many segments were
    /// shed right before it.
    Segment(EncryptedSegment, Instant, u64),
    /// Nothing pending yet.
    Empty,
    /// Nothing pending and the sender is gone: the stream ended.
    Finished,
}

impl QueueState {
    fn new(budget: Arc<UploadBudget>) -> Self {
        Self {
            pending: VecDeque::new(),
            bytes: 0,
            budget,
            dropped_unreported: 0,
            closed: false,
        }
    }

    /// Appends `segment`, shedding this stream's oldest pending ones while it is over its cap
    /// or the worker is over its total. The new segment is always kept (even alone over a cap):
    /// it is the freshest media, and every stream keeps at least one. Returns how many
    /// segments were shed.
    fn push(&mut self, segment: EncryptedSegment, closed_at: Instant) -> u64 {
        self.bytes += segment.bytes.len();
        self.budget.add(segment.bytes.len());
        self.pending.push_back((segment, closed_at));
        let mut dropped = 0;
        while (self.bytes > self.budget.per_stream_bytes
            || self.budget.queued_bytes() > self.budget.total_bytes)
            && self.pending.len() > 1
        {
            if self.take_oldest().is_some() {
                dropped += 1;
            }
        }
        self.dropped_unreported += dropped;
        dropped
    }

    fn pop(&mut self) -> Popped {
        match self.take_oldest() {
            Some((segment, closed_at)) => {
                let dropped = std::mem::take(&mut self.dropped_unreported);
                Popped::Segment(segment, closed_at, dropped)
            }
            None if self.closed => Popped::Finished,
            None => Popped::Empty,
        }
    }

    /// Removes the oldest pending segment from this stream's count and the worker's.
    fn take_oldest(&mut self) -> Option<(EncryptedSegment, Instant)> {
        let (segment, closed_at) = self.pending.pop_front()?;
        self.bytes -= segment.bytes.len();
        self.budget.release(segment.bytes.len());
        Some((segment, closed_at))
    }
}

impl Drop for QueueState {
    /// An aborted uploader leaves segments pending; they no longer count against the total.
    fn drop(&mut self) {
        self.budget.release(self.bytes);
    }
}

/// Shared between a [`SegmentSender`] and its [`Uploader`].
#[derive(Debug)]
pub struct UploadQueue {
    /// A std `Mutex`: held for a push or pop, never across an await.
    state: Mutex<QueueState>,
    ready: Notify,
}

impl UploadQueue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // Every critical section leaves the state consistent, so a poisoned lock is usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn next(&self) -> Popped {
        loop {
            match self.lock().pop() {
                Popped::Empty => {}
                other => return other,
            }
            // `notify_one` stores a permit when nobody waits, so a push between the pop above
            // and this await is not missed.
            self.ready.notified().await;
        }
    }
}

/// The connection's end of an upload queue. Dropping it ends the stream: the uploader flushes
/// what is pending and writes the final playlist.
#[derive(Debug)]
pub struct SegmentSender {
    queue: Arc<UploadQueue>,
}

impl SegmentSender {
    /// Queues a segment closed by input that arrived at `closed_at`, without waiting; returns
    /// how many older segments were shed for it.
    pub fn push(&self, segment: EncryptedSegment, closed_at: Instant) -> u64 {
        let dropped = self.queue.lock().push(segment, closed_at);
        self.queue.ready.notify_one();
        dropped
    }
}

impl Drop for SegmentSender {
    fn drop(&mut self) {
        self.queue.lock().closed = true;
        self.queue.ready.notify_one();
    }
}

/// Uploads one stream. Build with [`Uploader::new`], drive with [`Uploader::run`].
pub struct Uploader {
    name: StreamName,
    stores: Stores,
    playlist: LivePlaylist,
    queue: Arc<UploadQueue>,
    metrics: Arc<Metrics>,
    abort: CancellationToken,
    /// The key id last written by this uploader (keys rotate forward only).
    stored_key: Option<u64>,
    segments_stored: u64,
    /// Where stored segments' buffers go back for the next segments to reuse.
    segment_buffers: Option<SegmentBuffers>,
    /// Held until the final playlist is written: the name stays taken until then.
    _lease: StreamLease,
}

/// The upload was abandoned because shutdown's deadline passed.
#[derive(Debug)]
struct Aborted;

impl Uploader {
    /// An uploader for stream `name` and the sender feeding it. `abort` fires when shutdown's
    /// deadline passes: retries stop and the stream is left as is.
    pub fn new(
        name: StreamName,
        stores: Stores,
        playlist: LivePlaylist,
        budget: Arc<UploadBudget>,
        metrics: Arc<Metrics>,
        abort: CancellationToken,
        lease: StreamLease,
    ) -> (Self, SegmentSender) {
        let queue = Arc::new(UploadQueue {
            state: Mutex::new(QueueState::new(budget)),
            ready: Notify::new(),
        });
        let sender = SegmentSender {
            queue: Arc::clone(&queue),
        };
        let uploader = Self {
            name,
            stores,
            playlist,
            queue,
            metrics,
            abort,
            stored_key: None,
            segments_stored: 0,
            segment_buffers: None,
            _lease: lease,
        };
        (uploader, sender)
    }

    /// Hands each stored segment's buffer back to `buffers`, the pool the worker's pipelines
    /// take from (see [`SegmentBuffers`]).
    #[must_use]
    pub fn with_segment_buffers(mut self, buffers: SegmentBuffers) -> Self {
        self.segment_buffers = Some(buffers);
        self
    }

    /// Uploads until the sender is dropped and everything pending is stored, then writes the
    /// final playlist with `#EXT-X-ENDLIST`.
    pub async fn run(mut self) {
        loop {
            let next = tokio::select! {
                next = self.queue.next() => next,
                () = self.abort.cancelled() => break,
            };
            let outcome = match next {
                Popped::Segment(segment, closed_at, dropped) => {
                    self.handle_segment(segment, closed_at, dropped).await
                }
                Popped::Finished => {
                    if self.finish().await.is_ok() {
                        tracing::info!(segments = self.segments_stored, "stream finalized");
                    }
                    return;
                }
                Popped::Empty => Ok(()),
            };
            if outcome.is_err() {
                break;
            }
        }
        tracing::error!(
            segments = self.segments_stored,
            "shutdown deadline passed; stream left without its final playlist"
        );
    }

    async fn handle_segment(
        &mut self,
        segment: EncryptedSegment,
        closed_at: Instant,
        dropped: u64,
    ) -> Result<(), Aborted> {
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "upload buffer full: shed the oldest unsent segments"
            );
            self.playlist.handle_segments_dropped();
        }
        if self.stored_key != Some(segment.key_id) {
            let path = key_path(&self.name, segment.key_id);
            let keys = Arc::clone(&self.stores.keys);
            self.put(
                &keys,
                &path,
                Bytes::copy_from_slice(&segment.key),
                StorageOp::PutKey,
            )
            .await?;
            self.stored_key = Some(segment.key_id);
        }
        let media = Arc::clone(&self.stores.media);
        let path = segment_path(&self.name, segment.sequence);
        self.put(&media, &path, segment.bytes.clone(), StorageOp::PutSegment)
            .await?;
        self.metrics.handle_segment_stored();
        self.segments_stored += 1;
        tracing::debug!(
            sequence = segment.sequence,
            key_id = segment.key_id,
            bytes = segment.bytes.len(),
            "segment stored"
        );

        self.playlist.handle_segment_stored(&segment);
        if let Some(buffers) = &self.segment_buffers {
            buffers.give_back(segment.bytes);
        }
        self.write_playlists().await?;
        self.metrics.handle_segment_visible(closed_at.elapsed());
        while let Some(expired) = self.playlist.poll_expired() {
            self.delete(expired).await;
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), Aborted> {
        if self.segments_stored == 0 {
            // Never render an empty live playlist: players treat it as a broken stream.
            return Ok(());
        }
        self.playlist.handle_end();
        self.write_playlists().await
    }

    async fn write_playlists(&mut self) -> Result<(), Aborted> {
        let media = Arc::clone(&self.stores.media);
        let live = Bytes::from(self.playlist.render_live());
        self.put(
            &media,
            &live_playlist_path(&self.name),
            live,
            StorageOp::PutPlaylist,
        )
        .await?;
        if let Some(vod) = self.playlist.render_vod() {
            self.put(
                &media,
                &vod_playlist_path(&self.name),
                Bytes::from(vod),
                StorageOp::PutPlaylist,
            )
            .await?;
        }
        Ok(())
    }

    /// PUTs until success; only the abort token stops the retries.
    async fn put(
        &self,
        store: &Arc<dyn ObjectStore>,
        path: &str,
        bytes: Bytes,
        op: StorageOp,
    ) -> Result<(), Aborted> {
        let location = Path::from(path);
        let mut backoff = INITIAL_BACKOFF;
        for attempt in 1u32.. {
            let started = Instant::now();
            let result = tokio::select! {
                result = store.put(&location, bytes.clone().into()) => result,
                () = self.abort.cancelled() => return Err(Aborted),
            };
            self.metrics
                .handle_storage_request(op, started.elapsed(), result.is_ok());
            match result {
                Ok(_) => return Ok(()),
                Err(error) => {
                    tracing::warn!(path, attempt, error = %error, retry_in = ?backoff, "storage write failed")
                }
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = self.abort.cancelled() => return Err(Aborted),
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        Err(Aborted)
    }

    async fn delete(&mut self, expired: Expired) {
        let store = match expired {
            Expired::Segment { .. } => &self.stores.media,
            Expired::Key { key_id } => {
                if self.stored_key == Some(key_id) {
                    // Should a later segment still use this key, it must be stored again.
                    self.stored_key = None;
                }
                &self.stores.keys
            }
        };
        let path = expired.path(&self.name);
        let location = Path::from(path.as_str());
        for attempt in 1..=DELETE_ATTEMPTS {
            let started = Instant::now();
            let result = store.delete(&location).await;
            let succeeded = matches!(result, Ok(()) | Err(object_store::Error::NotFound { .. }));
            self.metrics
                .handle_storage_request(StorageOp::Delete, started.elapsed(), succeeded);
            match result {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => return,
                Err(error) => {
                    tracing::warn!(path, attempt, error = %error, "storage delete failed")
                }
            }
        }
        tracing::warn!(path, "giving up deleting an expired object");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    use object_store::memory::InMemory;

    use crate::auth::{AuthSource, KeyDigest};
    use crate::media::PlaylistConfig;
    use crate::registry::Registry;

    fn segment(sequence: u64, key_id: u64, len: usize) -> EncryptedSegment {
        EncryptedSegment {
            sequence,
            duration: Duration::from_secs(4),
            program_date_time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            key_id,
            key: [key_id as u8; 16],
            key_is_new: sequence == key_id,
            iv: [sequence as u8; 16],
            bytes: Bytes::from(vec![sequence as u8; len]),
        }
    }

    #[test]
    fn queue_sheds_oldest_and_reports_before_the_next() {
        let mut queue = QueueState::new(UploadBudget::new(250, usize::MAX));
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        assert_eq!(queue.push(segment(1, 1, 100), at(1)), 0);
        assert_eq!(queue.push(segment(2, 1, 100), at(2)), 0);
        assert_eq!(
            queue.push(segment(3, 1, 100), at(3)),
            1,
            "300 > 250: segment 1 goes"
        );
        assert_eq!(queue.pop(), Popped::Segment(segment(2, 1, 100), at(2), 1));
        assert_eq!(queue.pop(), Popped::Segment(segment(3, 1, 100), at(3), 0));
        assert_eq!(queue.pop(), Popped::Empty);
        // One segment larger than the cap is still kept.
        assert_eq!(queue.push(segment(4, 4, 1000), at(4)), 0);
        queue.closed = true;
        assert_eq!(queue.pop(), Popped::Segment(segment(4, 4, 1000), at(4), 0));
        assert_eq!(queue.pop(), Popped::Finished);
        assert_eq!(queue.bytes, 0);
    }

    #[test]
    fn worker_total_sheds_the_pushing_streams_oldest_and_keeps_one_each() {
        let budget = UploadBudget::new(1000, 250);
        let mut first = QueueState::new(Arc::clone(&budget));
        let mut second = QueueState::new(Arc::clone(&budget));
        let at = Instant::now();
        assert_eq!(first.push(segment(1, 1, 100), at), 0);
        assert_eq!(first.push(segment(2, 1, 100), at), 0);
        assert_eq!(
            second.push(segment(1, 1, 100), at),
            0,
            "300 > 250, but the second stream's only segment stays"
        );
        assert_eq!(
            first.push(segment(3, 1, 100), at),
            2,
            "400 > 250: the first stream sheds down to its newest"
        );
        assert_eq!(budget.queued_bytes(), 200);
        assert_eq!(first.pop(), Popped::Segment(segment(3, 1, 100), at, 2));
        assert_eq!(budget.queued_bytes(), 100);
        drop(second);
        assert_eq!(
            budget.queued_bytes(),
            0,
            "a dropped queue's pending bytes leave the total"
        );
    }

    fn uploader(
        store: Arc<dyn ObjectStore>,
        cap: usize,
    ) -> (Uploader, SegmentSender, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::default());
        let registry = Registry::new(Arc::clone(&metrics));
        let name = StreamName::parse("benw").expect("valid");
        let (lease, _) = registry
            .claim(&name, KeyDigest::of("k"), AuthSource::KeysFile)
            .expect("free");
        let playlist = LivePlaylist::new(
            name.clone(),
            PlaylistConfig {
                window: 3,
                key_uri_prefix: "/keys".into(),
                record: false,
            },
        );
        let (uploader, sender) = Uploader::new(
            name,
            Stores::single(store),
            playlist,
            UploadBudget::new(cap, usize::MAX),
            Arc::clone(&metrics),
            CancellationToken::new(),
            lease,
        );
        (uploader, sender, metrics)
    }

    /// The stored bytes of `path`.
    async fn object(store: &InMemory, path: &str) -> Bytes {
        store
            .get(&Path::from(path))
            .await
            .expect("object exists")
            .bytes()
            .await
            .expect("body")
    }

    async fn text(store: &InMemory, path: &str) -> String {
        String::from_utf8(object(store, path).await.to_vec()).expect("utf-8")
    }

    #[tokio::test]
    async fn shed_first_segment_of_a_key_still_stores_the_key() {
        let store = Arc::new(InMemory::new());
        let (uploader, sender, metrics) = uploader(Arc::clone(&store) as Arc<dyn ObjectStore>, 150);
        // Queue before the uploader runs: segment 10 (first under key 10) is shed for 11.
        assert_eq!(sender.push(segment(10, 10, 100), Instant::now()), 0);
        assert_eq!(sender.push(segment(11, 10, 100), Instant::now()), 1);
        drop(sender);
        uploader.run().await;

        let key = object(&store, "keys/benw/10.key").await;
        assert_eq!(key.as_ref(), &[10u8; 16]);
        assert!(
            store.get(&Path::from("live/benw/10.ts")).await.is_err(),
            "shed segment never written"
        );
        let playlist = text(&store, "live/benw/index.m3u8").await;
        assert!(playlist.contains("/keys/benw/10.key"));
        assert!(playlist.contains("\n11.ts\n"));
        assert!(!playlist.contains("10.ts"));
        assert!(playlist.ends_with("#EXT-X-ENDLIST\n"));
        assert_eq!(
            metrics.streams_live(),
            0,
            "lease released after the final playlist"
        );
    }

    #[tokio::test]
    async fn expired_objects_are_deleted_and_referenced_ones_kept() {
        let store = Arc::new(InMemory::new());
        let (uploader, sender, _) = uploader(Arc::clone(&store) as Arc<dyn ObjectStore>, 1 << 20);
        let task = tokio::spawn(uploader.run());
        // Keys rotate every 2 segments: ids 1, 3, 5, ...
        for sequence in 1..=12u64 {
            sender.push(
                segment(sequence, sequence - (sequence - 1) % 2, 10),
                Instant::now(),
            );
        }
        drop(sender);
        task.await.expect("uploader");
        let playlist = text(&store, "live/benw/index.m3u8").await;
        // Every object the final playlist names exists.
        for line in playlist.lines() {
            let path = if let Some(uri) = line.strip_prefix("#EXT-X-KEY:METHOD=AES-128,URI=\"/") {
                uri.split('"').next().expect("quoted").to_owned()
            } else if line.ends_with(".ts") {
                format!("live/benw/{line}")
            } else {
                continue;
            };
            assert!(
                store.head(&Path::from(path.as_str())).await.is_ok(),
                "{path} referenced but missing"
            );
        }
        // The oldest segment and key are long gone (window 3, retained one more window).
        assert!(store.head(&Path::from("live/benw/1.ts")).await.is_err());
        assert!(store.head(&Path::from("keys/benw/1.key")).await.is_err());
    }

    /// Uploads one segment muxed into a pooled buffer and returns whether the pool got that
    /// buffer back afterwards.
    async fn buffer_comes_back(store: Arc<dyn ObjectStore>, buffers: &SegmentBuffers) -> bool {
        let (uploader, sender, _) = uploader(store, 1 << 20);
        let uploader = uploader.with_segment_buffers(buffers.clone());
        let mut bytes = buffers.take(4096);
        bytes.extend_from_slice(&[0x47; 1880]);
        let address = bytes.as_ptr();
        sender.push(
            EncryptedSegment {
                bytes: Bytes::from(bytes),
                ..segment(1, 1, 0)
            },
            Instant::now(),
        );
        drop(sender);
        uploader.run().await;
        let next = buffers.take(1);
        next.as_ptr() == address
    }

    #[tokio::test]
    async fn a_stored_segments_buffer_is_reused_only_once_nothing_holds_it() {
        // A file store writes the bytes out and lets go of them when the PUT returns.
        let dir = tempfile::tempdir().expect("temp dir");
        let files =
            object_store::local::LocalFileSystem::new_with_prefix(dir.path()).expect("file store");
        assert!(buffer_comes_back(Arc::new(files), &SegmentBuffers::default()).await);

        // So does the S3 client, once the PUT's response has arrived (a real S3 endpoint).
        let root = tempfile::tempdir().expect("temp dir");
        let s3 = gatecast_s3::S3Server::start(
            gatecast_s3::S3Config {
                root: root.path().to_owned(),
                buckets: vec!["media".to_owned()],
                access_key: "pool-test".to_owned(),
                secret_key: "pool-test-secret".to_owned(),
                readers: Vec::new(),
            },
            std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        )
        .await
        .expect("S3 endpoint");
        let bucket = crate::storage::open_url(
            "s3://media",
            &crate::config::S3Options {
                endpoint: Some(s3.endpoint()),
                region: "us-east-1".to_owned(),
                access_key_id: Some("pool-test".to_owned()),
                secret_access_key: Some("pool-test-secret".to_owned()),
                session_token: None,
            },
            crate::storage::Access::Public,
        )
        .expect("S3 store");
        assert!(buffer_comes_back(bucket, &SegmentBuffers::default()).await);

        // The in-memory store keeps the very bytes it was given: reusing them would rewrite
        // a stored segment.
        let memory = Arc::new(InMemory::new());
        let buffers = SegmentBuffers::default();
        assert!(!buffer_comes_back(Arc::clone(&memory) as Arc<dyn ObjectStore>, &buffers).await);
        let mut next = buffers.take(4096);
        next.resize(1880, 0);
        let stored = object(&memory, "live/benw/1.ts").await;
        assert_eq!(stored.as_ref(), &[0x47; 1880]);
    }
}

//! The `file://` store: object_store's `LocalFileSystem`, except that the files of deleted
//! segments are kept in a private pool and reused by later PUTs.
//!
//! Why: a live stream stores one segment and deletes an expired one every few seconds. With
//! plain unlink + create, every segment frees ~1.4 MB of page cache and allocates ~1.4 MB of
//! fresh page cache, and frees and allocates an inode. Both are dear on the machines we run on:
//! with free-page reporting (the virtio balloon of Firecracker and other micro-VMs) the freed
//! pages go back to the host and the first touch of each new page faults on the host, and ext4
//! without a journal scans past every inode deleted in the last minutes on each create. A file
//! that is overwritten in place keeps its inode and its page-cache pages. Databases recycle their
//! log files for the same reason (PostgreSQL's `wal_recycle`, RocksDB's `recycle_log_file_num`).
//! See docs/BENCHMARKS.md for what it saves.
//!
//! How: a delete renames the object's file into [`POOL_DIR`] under the store's root; a PUT of
//! a large object takes the oldest pooled file, overwrites it, truncates it to the new length
//! and renames it to its destination. Renames are atomic, so a reader sees either no object or
//! the whole new one, as with `LocalFileSystem`'s staged PUTs. Anything that fails on the
//! recycled path falls back to `LocalFileSystem`, so recycling can cost a PUT nothing but time.
//!
//! What it trades: a reader that opened a segment before it was deleted and is still reading it
//! when the file is reused would read the new bytes (with unlink it would read the old ones).
//! The uploader deletes a segment only once no playlist has referenced it for a window length,
//! and pooled files then wait [`RecyclePolicy::min_idle`] more, so such a reader has been
//! reading one segment for longer than a whole playlist window.
//!
//! Small objects (keys, playlists) are never pooled: their single page saves nothing, and a
//! key's bytes must not outlive its object anywhere.
//!
//! The pool's bookkeeping is pure (`Pool`, fed the time); [`RecyclingFileStore`] does the I/O.
//!
//! The key store is a [`RecyclingFileStore::private`]: it never pools (a deleted key is
//! unlinked at once) and writes owner-only files and folders (see `private`).

use std::collections::VecDeque;
use std::fmt;
use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
    Result,
};

/// The pool's directory under the store's root. Outside `live/` and `keys/`, so no object path
/// of the layout can name a pooled file.
pub const POOL_DIR: &str = ".gatecast-recycle";

/// Pooled files left by an earlier process are removed at start-up once they are this old. A
/// running worker reuses or removes its own within [`RecyclePolicy::max_idle`], so a worker
/// sharing the directory never loses a file it is about to reuse (and would fall back if it did).
const STALE_POOL_FILE_AGE: Duration = Duration::from_secs(600);

/// Which deleted files are kept, and for how long.
#[derive(Clone, Copy, Debug)]
pub struct RecyclePolicy {
    /// Smaller files are unlinked as usual, and smaller PUTs never take a pooled file.
    pub min_bytes: u64,
    /// A pooled file is not reused before it has been in the pool this long (see the module's
    /// "what it trades").
    pub min_idle: Duration,
    /// A pooled file that nobody reused for this long is unlinked: after a burst of streams
    /// ends, the pool shrinks back to what the remaining streams cycle through.
    pub max_idle: Duration,
    /// The pool never holds more than this many bytes of files; past it, deletes unlink.
    pub max_bytes: u64,
}

impl Default for RecyclePolicy {
    /// Segments (hundreds of kB and up) qualify, keys and playlists (under 64 KiB) do not. At
    /// 900 streams of 4 s segments, 10 s of idling keeps ~2,300 files (~3 GB at 2.7 Mbit/s)
    /// pooled, inside the 4 GiB cap.
    fn default() -> Self {
        Self {
            min_bytes: 64 * 1024,
            min_idle: Duration::from_secs(10),
            max_idle: Duration::from_secs(60),
            max_bytes: 4 << 30,
        }
    }
}

/// One file in the pool.
#[derive(Debug)]
struct Pooled {
    path: PathBuf,
    len: u64,
    since: Instant,
}

/// The pool's bookkeeping: oldest first, bounded in bytes (pure, fed the time).
#[derive(Debug)]
struct Pool {
    files: VecDeque<Pooled>,
    bytes: u64,
    policy: RecyclePolicy,
}

impl Pool {
    fn new(policy: RecyclePolicy) -> Self {
        Self {
            files: VecDeque::new(),
            bytes: 0,
            policy,
        }
    }

    /// Whether a deleted file of `len` bytes would be kept.
    fn has_room_for(&self, len: u64) -> bool {
        len >= self.policy.min_bytes && self.bytes.saturating_add(len) <= self.policy.max_bytes
    }

    /// Takes in a file that was just moved into the pool; `false` if it no longer fits (another
    /// delete filled the pool meanwhile) and the caller must unlink it.
    fn handle_pooled(&mut self, path: PathBuf, len: u64, now: Instant) -> bool {
        if !self.has_room_for(len) {
            return false;
        }
        self.bytes += len;
        self.files.push_back(Pooled {
            path,
            len,
            since: now,
        });
        true
    }

    /// The oldest file that has idled for at least `min_idle`, for a PUT of `len` bytes.
    fn poll_reusable(&mut self, len: u64, now: Instant) -> Option<PathBuf> {
        if len < self.policy.min_bytes {
            return None;
        }
        let oldest = self.files.front()?;
        if now.saturating_duration_since(oldest.since) < self.policy.min_idle {
            return None;
        }
        let oldest = self.files.pop_front()?;
        self.bytes -= oldest.len;
        Some(oldest.path)
    }

    /// Files that idled past `max_idle`, removed from the pool for the caller to unlink.
    fn poll_expired(&mut self, now: Instant) -> Vec<PathBuf> {
        let mut expired = Vec::new();
        while let Some(oldest) = self.files.front() {
            if now.saturating_duration_since(oldest.since) <= self.policy.max_idle {
                break;
            }
            if let Some(oldest) = self.files.pop_front() {
                self.bytes -= oldest.len;
                expired.push(oldest.path);
            }
        }
        expired
    }
}

/// A `LocalFileSystem` that recycles the files of deleted large objects (see the module docs).
#[derive(Clone, Debug)]
pub struct RecyclingFileStore {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    inner: LocalFileSystem,
    /// The store's root folder.
    root: PathBuf,
    /// Key store: PUTs write `0600` files in `0700` folders, and nothing is pooled.
    private: bool,
    pool_dir: PathBuf,
    /// Distinguishes this process's pooled files from another worker's in a shared directory
    /// (process id and start time).
    instance: String,
    next_file: AtomicU64,
    /// std Mutex: held for a few pointer moves, never across I/O or an await.
    pool: Mutex<Pool>,
}

impl RecyclingFileStore {
    /// Wraps `inner`, creating the pool directory under its root and removing stale pooled
    /// files an earlier process left there.
    pub fn new(inner: LocalFileSystem, policy: RecyclePolicy) -> std::io::Result<Self> {
        let store = Self::build(inner, policy, false)?;
        std::fs::create_dir_all(&store.shared.pool_dir)?;
        remove_stale_files(&store.shared.pool_dir, SystemTime::now());
        Ok(store)
    }

    /// The key store over `inner`: owner-only files and folders, and no pool, so a deleted
    /// key's bytes never outlive its object in a pooled file.
    pub fn private(inner: LocalFileSystem) -> std::io::Result<Self> {
        let never = RecyclePolicy {
            max_bytes: 0,
            ..RecyclePolicy::default()
        };
        let store = Self::build(inner, never, true)?;
        super::private::create_root(&store.shared.root)?;
        Ok(store)
    }

    fn build(
        inner: LocalFileSystem,
        policy: RecyclePolicy,
        private: bool,
    ) -> std::io::Result<Self> {
        let pool_dir = inner
            .path_to_filesystem(&Path::from(POOL_DIR))
            .map_err(std::io::Error::other)?;
        // The pool folder is one level under the root by construction.
        let root = pool_dir.parent().map(PathBuf::from).unwrap_or_default();
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        Ok(Self {
            shared: Arc::new(Shared {
                inner,
                root,
                private,
                pool_dir,
                instance: format!("{}-{started:x}", std::process::id()),
                next_file: AtomicU64::new(0),
                pool: Mutex::new(Pool::new(policy)),
            }),
        })
    }
}

impl Shared {
    fn pool(&self) -> MutexGuard<'_, Pool> {
        // A panic while holding the lock cannot leave the pool inconsistent beyond a lost
        // entry (whose file the next start-up removes), so a poisoned lock is still usable.
        self.pool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Moves the file of a deleted object into the pool. `Ok(false)`: not pooled, so the caller
    /// deletes it the ordinary way (which also reports a missing object as `NotFound`).
    fn try_pool(&self, location: &Path) -> Result<bool> {
        let now = Instant::now();
        let expired = self.pool().poll_expired(now);
        for path in expired {
            remove_file_quietly(&path);
        }
        let path = self.inner.path_to_filesystem(location)?;
        let Ok(metadata) = std::fs::symlink_metadata(&path) else {
            return Ok(false);
        };
        let len = metadata.len();
        if !metadata.is_file() || !self.pool().has_room_for(len) {
            return Ok(false);
        }
        let pooled = self.pool_dir.join(format!(
            "{}-{}",
            self.instance,
            self.next_file.fetch_add(1, Ordering::Relaxed)
        ));
        if std::fs::rename(&path, &pooled).is_err() {
            return Ok(false);
        }
        if !self.pool().handle_pooled(pooled.clone(), len, now) {
            // The object is already gone from its path: finishing the delete is all that is left.
            remove_file_quietly(&pooled);
        }
        Ok(true)
    }

    /// Writes `payload` into the pooled file `pooled` and renames it to `location`. On error
    /// the pooled file is removed and the caller falls back to an ordinary PUT.
    fn rewrite(
        &self,
        pooled: &std::path::Path,
        location: &Path,
        payload: &PutPayload,
    ) -> std::io::Result<PutResult> {
        let result = self.rewrite_in_place(pooled, location, payload);
        if result.is_err() {
            remove_file_quietly(pooled);
        }
        result
    }

    fn rewrite_in_place(
        &self,
        pooled: &std::path::Path,
        location: &Path,
        payload: &PutPayload,
    ) -> std::io::Result<PutResult> {
        let destination = self
            .inner
            .path_to_filesystem(location)
            .map_err(std::io::Error::other)?;
        let mut file = OpenOptions::new().write(true).open(pooled)?;
        for chunk in payload.iter() {
            file.write_all(chunk)?;
        }
        file.set_len(payload.content_length() as u64)?;
        let metadata = file.metadata()?;
        drop(file);
        if let Err(error) = std::fs::rename(pooled, &destination) {
            if error.kind() != ErrorKind::NotFound {
                return Err(error);
            }
            // The destination's directory does not exist yet (a new stream).
            if let Some(parent) = destination.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::rename(pooled, &destination)?;
        }
        Ok(PutResult {
            e_tag: Some(local_etag(&metadata)),
            version: None,
            extensions: Default::default(),
        })
    }

    /// A key store's PUT: folders made `0700` first, the file narrowed to `0600` after.
    async fn put_private(
        self: Arc<Self>,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let file = self.inner.path_to_filesystem(location)?;
        let io_error = |source: std::io::Error| object_store::Error::Generic {
            store: "RecyclingFileStore",
            source: Box::new(source),
        };
        let shared = Arc::clone(&self);
        let prepared_file = file.clone();
        tokio::task::spawn_blocking(move || {
            super::private::prepare_parents(&shared.root, &prepared_file)
        })
        .await
        .map_err(|error| io_error(std::io::Error::other(error)))?
        .map_err(io_error)?;
        let result = self.inner.put_opts(location, payload, opts).await?;
        super::private::seal_file(&file).map_err(io_error)?;
        Ok(result)
    }

    async fn delete(self: Arc<Self>, location: Path) -> Result<Path> {
        let pooling = Arc::clone(&self);
        let pooled_location = location.clone();
        let pooled = tokio::task::spawn_blocking(move || pooling.try_pool(&pooled_location))
            .await
            .unwrap_or(Ok(false))?;
        if !pooled {
            self.inner.delete(&location).await?;
        }
        Ok(location)
    }
}

/// The ETag `LocalFileSystem` gives a file (inode, mtime in µs, size), so recycled PUTs and
/// later GETs agree.
fn local_etag(metadata: &std::fs::Metadata) -> String {
    let mtime = metadata
        .modified()
        .ok()
        .and_then(|mtime| mtime.duration_since(UNIX_EPOCH).ok())
        .unwrap_or_default()
        .as_micros();
    format!("\"{:x}-{:x}-{:x}\"", metadata.ino(), mtime, metadata.len())
}

/// Unlinks a pooled file whose loss costs nothing but a future fresh file.
fn remove_file_quietly(path: &std::path::Path) {
    if let Err(error) = std::fs::remove_file(path)
        && error.kind() != ErrorKind::NotFound
    {
        tracing::debug!(path = %path.display(), %error, "cannot remove a pooled file");
    }
}

/// Removes pooled files not modified for [`STALE_POOL_FILE_AGE`] (best effort).
fn remove_stale_files(pool_dir: &std::path::Path, now: SystemTime) {
    let Ok(entries) = std::fs::read_dir(pool_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry
            .metadata()
            .and_then(|metadata| metadata.modified())
            .is_ok_and(|modified| {
                now.duration_since(modified)
                    .is_ok_and(|age| age >= STALE_POOL_FILE_AGE)
            });
        if stale {
            remove_file_quietly(&entry.path());
        }
    }
}

impl fmt::Display for RecyclingFileStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Recycling{}", self.shared.inner)
    }
}

#[async_trait]
impl ObjectStore for RecyclingFileStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        if self.shared.private {
            return Arc::clone(&self.shared)
                .put_private(location, payload, opts)
                .await;
        }
        let plain_overwrite = matches!(opts.mode, PutMode::Overwrite) && opts.attributes.is_empty();
        let reusable = plain_overwrite
            .then(|| {
                self.shared
                    .pool()
                    .poll_reusable(payload.content_length() as u64, Instant::now())
            })
            .flatten();
        if let Some(pooled) = reusable {
            let shared = Arc::clone(&self.shared);
            let destination = location.clone();
            let rewritten_payload = payload.clone();
            let rewritten = tokio::task::spawn_blocking(move || {
                shared.rewrite(&pooled, &destination, &rewritten_payload)
            })
            .await;
            match rewritten {
                Ok(Ok(result)) => return Ok(result),
                Ok(Err(error)) => {
                    tracing::debug!(%location, %error, "recycled PUT failed; writing a new file")
                }
                Err(error) => {
                    tracing::debug!(%location, %error, "recycled PUT failed; writing a new file")
                }
            }
        }
        self.shared.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.shared.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.shared.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let shared = Arc::clone(&self.shared);
        locations
            .then(move |location| {
                let shared = Arc::clone(&shared);
                async move { shared.delete(location?).await }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.shared.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.shared.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.shared.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.shared.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.shared.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEGMENT: u64 = 200 * 1024;

    fn policy(min_idle: Duration) -> RecyclePolicy {
        RecyclePolicy {
            min_bytes: 64 * 1024,
            min_idle,
            max_idle: Duration::from_secs(60),
            max_bytes: 3 * SEGMENT,
        }
    }

    #[test]
    fn pool_reuses_oldest_after_min_idle_and_expires_after_max_idle() {
        let start = Instant::now();
        let mut pool = Pool::new(policy(Duration::from_secs(10)));
        assert!(!pool.has_room_for(1024), "small files are never pooled");
        assert!(pool.handle_pooled("a".into(), SEGMENT, start));
        assert!(pool.handle_pooled("b".into(), SEGMENT, start + Duration::from_secs(5)));
        assert_eq!(
            pool.poll_reusable(SEGMENT, start + Duration::from_secs(9)),
            None
        );
        assert_eq!(
            pool.poll_reusable(1024, start + Duration::from_secs(11)),
            None,
            "a small PUT does not take a large file"
        );
        assert_eq!(
            pool.poll_reusable(SEGMENT, start + Duration::from_secs(11)),
            Some("a".into())
        );
        assert_eq!(
            pool.poll_reusable(SEGMENT, start + Duration::from_secs(11)),
            None
        );
        assert!(
            pool.poll_expired(start + Duration::from_secs(65))
                .is_empty()
        );
        assert_eq!(
            pool.poll_expired(start + Duration::from_secs(66)),
            vec![PathBuf::from("b")]
        );
        assert_eq!(pool.bytes, 0);
    }

    #[test]
    fn pool_is_bounded_in_bytes() {
        let now = Instant::now();
        let mut pool = Pool::new(policy(Duration::ZERO));
        for name in ["a", "b", "c"] {
            assert!(pool.handle_pooled(name.into(), SEGMENT, now));
        }
        assert!(!pool.has_room_for(SEGMENT));
        assert!(!pool.handle_pooled("d".into(), SEGMENT, now));
        assert_eq!(pool.poll_reusable(SEGMENT, now), Some("a".into()));
        assert!(pool.has_room_for(SEGMENT));
    }

    fn store(dir: &std::path::Path, min_idle: Duration) -> RecyclingFileStore {
        let inner = LocalFileSystem::new_with_prefix(dir).expect("local store");
        RecyclingFileStore::new(inner, policy(min_idle)).expect("recycling store")
    }

    fn payload(len: u64, byte: u8) -> PutPayload {
        PutPayload::from(vec![byte; usize::try_from(len).expect("test sizes fit")])
    }

    fn inode(path: &std::path::Path) -> u64 {
        std::fs::metadata(path).expect("file exists").ino()
    }

    #[tokio::test]
    async fn a_deleted_segment_file_carries_the_next_segment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store(dir.path(), Duration::ZERO);
        let old = Path::from("live/chan/1.ts");
        let new = Path::from("live/chan/2.ts");
        store.put(&old, payload(SEGMENT, 1)).await.expect("put");
        let old_inode = inode(&dir.path().join("live/chan/1.ts"));

        store.delete(&old).await.expect("delete");
        assert!(matches!(
            store.get(&old).await,
            Err(object_store::Error::NotFound { .. })
        ));
        // Shorter than the pooled file: the rest must be cut off, not left behind.
        let shorter = SEGMENT - 4096 - 7;
        let put = store.put(&new, payload(shorter, 2)).await.expect("put");

        let new_file = dir.path().join("live/chan/2.ts");
        assert_eq!(inode(&new_file), old_inode, "the pooled file was reused");
        assert_eq!(
            std::fs::read(&new_file).expect("read"),
            vec![2u8; usize::try_from(shorter).expect("fits")]
        );
        let head = store.head(&new).await.expect("head");
        assert_eq!(head.e_tag, put.e_tag, "PUT and HEAD agree on the ETag");
        assert_eq!(
            std::fs::read_dir(dir.path().join(POOL_DIR))
                .expect("pool dir")
                .count(),
            0
        );
    }

    #[tokio::test]
    async fn keys_and_playlists_are_unlinked_not_pooled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store(dir.path(), Duration::ZERO);
        let key = Path::from("keys/chan/1.key");
        store.put(&key, payload(16, 0xAB)).await.expect("put");
        store.delete(&key).await.expect("delete");
        assert_eq!(
            std::fs::read_dir(dir.path().join(POOL_DIR))
                .expect("pool dir")
                .count(),
            0,
            "a key's bytes must not outlive its object"
        );
        assert!(matches!(
            store.delete(&key).await,
            Err(object_store::Error::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn a_pooled_file_waits_min_idle_before_reuse() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store(dir.path(), Duration::from_secs(3600));
        let old = Path::from("live/chan/1.ts");
        store.put(&old, payload(SEGMENT, 1)).await.expect("put");
        let old_inode = inode(&dir.path().join("live/chan/1.ts"));
        store.delete(&old).await.expect("delete");
        store
            .put(&Path::from("live/chan/2.ts"), payload(SEGMENT, 2))
            .await
            .expect("put");
        assert_ne!(inode(&dir.path().join("live/chan/2.ts")), old_inode);
        assert_eq!(
            std::fs::read_dir(dir.path().join(POOL_DIR))
                .expect("pool dir")
                .count(),
            1,
            "the deleted file is still pooled"
        );
    }

    #[tokio::test]
    async fn a_vanished_pooled_file_falls_back_to_a_new_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store(dir.path(), Duration::ZERO);
        let old = Path::from("live/chan/1.ts");
        store.put(&old, payload(SEGMENT, 1)).await.expect("put");
        store.delete(&old).await.expect("delete");
        // Another worker's start-up (or an operator) emptied the pool meanwhile.
        std::fs::remove_dir_all(dir.path().join(POOL_DIR)).expect("empty pool");
        let new = Path::from("live/other/1.ts");
        store.put(&new, payload(SEGMENT, 3)).await.expect("put");
        let bytes = store
            .get(&new)
            .await
            .expect("get")
            .bytes()
            .await
            .expect("body");
        assert_eq!(bytes.len() as u64, SEGMENT);
        assert!(bytes.iter().all(|byte| *byte == 3));
    }

    #[test]
    fn start_up_removes_only_stale_pooled_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool_dir = dir.path().join(POOL_DIR);
        std::fs::create_dir_all(&pool_dir).expect("pool dir");
        std::fs::write(pool_dir.join("left-over"), b"x").expect("write");
        remove_stale_files(&pool_dir, SystemTime::now() + Duration::from_secs(60));
        assert!(pool_dir.join("left-over").exists(), "a fresh file stays");
        remove_stale_files(&pool_dir, SystemTime::now() + STALE_POOL_FILE_AGE);
        assert!(!pool_dir.join("left-over").exists(), "a stale file goes");
    }
}

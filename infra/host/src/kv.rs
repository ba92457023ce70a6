//! Key-value stores on SQLite: one database file per store label.
//!
//! Spin's default store is SQLite (`.spin/sqlite_key_value.db`); we keep that backend so data
//! written through the host survives restarts the same way, but use one file per label
//! (`<data>/kv/<label>.db`) so stores are isolated and easy to inspect or wipe. Access control
//! (which component may open which label) lives in the host bindings, not here.

use rusqlite::{Connection, OptionalExtension as _, params};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A key-value backend failure. Surfaces to components as `error::other(..)` so they can answer
/// 503 rather than trap.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// The database file or directory could not be opened/created.
    #[error("cannot open key-value store {label:?} at {path}: {source}")]
    Open {
        /// Store label.
        label: String,
        /// Database path.
        path: PathBuf,
        /// Underlying error.
        source: rusqlite::Error,
    },
    /// The data directory could not be created.
    #[error("cannot create key-value directory {path}: {source}")]
    Directory {
        /// Directory path.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// A query failed.
    #[error("key-value store {label:?}: {source}")]
    Query {
        /// Store label.
        label: String,
        /// Underlying error.
        source: rusqlite::Error,
    },
    /// A previous operation panicked while holding the connection.
    #[error("key-value store {0:?} is poisoned")]
    Poisoned(String),
}

/// One opened store. Cheap to clone; operations are serialised on one connection, which SQLite
/// needs anyway for writes and which keeps reads consistent with the latest write.
#[derive(Clone)]
pub struct KvStore {
    label: Arc<str>,
    connection: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for KvStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvStore")
            .field("label", &self.label)
            .finish()
    }
}

impl KvStore {
    fn open(label: &str, path: &Path) -> Result<Self, KvError> {
        let open_err = |source| KvError::Open {
            label: label.to_owned(),
            path: path.to_owned(),
            source,
        };
        let connection = Connection::open(path).map_err(open_err)?;
        // WAL lets an inspecting process read while the host writes; busy_timeout rides out
        // short lock contention with such a reader instead of failing the request.
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        connection
            .busy_timeout(std::time::Duration::from_secs(2))
            .map_err(open_err)?;
        // Same schema as Spin's SQLite key-value backend.
        connection
            .execute(
                "CREATE TABLE IF NOT EXISTS spin_key_value (
                    store TEXT NOT NULL,
                    key   TEXT NOT NULL,
                    value BLOB NOT NULL,
                    PRIMARY KEY (store, key)
                )",
                [],
            )
            .map_err(open_err)?;
        Ok(Self {
            label: label.into(),
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    /// The store's label.
    pub fn label(&self) -> &str {
        &self.label
    }

    fn with<R>(
        &self,
        op: impl FnOnce(&Connection, &str) -> rusqlite::Result<R>,
    ) -> Result<R, KvError> {
        let connection = self
            .connection
            .lock()
            .map_err(|_| KvError::Poisoned(self.label.to_string()))?;
        op(&connection, &self.label).map_err(|source| KvError::Query {
            label: self.label.to_string(),
            source,
        })
    }

    /// The value under `key`, if any.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.with(|c, store| {
            c.prepare_cached("SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                .query_row(params![store, key], |row| row.get(0))
                .optional()
        })
    }

    /// Inserts or replaces `key`.
    pub fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.with(|c, store| {
            c.prepare_cached(
                "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT(store, key) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![store, key, value])
            .map(drop)
        })
    }

    /// Removes `key`; absent keys are not an error.
    pub fn delete(&self, key: &str) -> Result<(), KvError> {
        self.with(|c, store| {
            c.prepare_cached("DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                .execute(params![store, key])
                .map(drop)
        })
    }

    /// Whether `key` is present.
    pub fn exists(&self, key: &str) -> Result<bool, KvError> {
        self.with(|c, store| {
            c.prepare_cached("SELECT 1 FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                .exists(params![store, key])
        })
    }

    /// Every key, in no particular order (Spin promises none).
    pub fn get_keys(&self) -> Result<Vec<String>, KvError> {
        self.with(|c, store| {
            c.prepare_cached("SELECT key FROM spin_key_value WHERE store = ?1")?
                .query_map(params![store], |row| row.get(0))?
                .collect()
        })
    }
}

/// Why an atomic operation of `wasi:keyvalue/atomics` did not apply.
#[derive(Debug, thiserror::Error)]
pub enum AtomicError {
    /// The store failed; nothing was written.
    #[error(transparent)]
    Store(#[from] KvError),
    /// `increment` found a value that is not an 8-byte little-endian `i64` (Spin's encoding of
    /// counters). Spin's SQLite backend panics here; we refuse instead.
    #[error("value of {0:?} is not a counter")]
    NotACounter(String),
    /// `increment` would leave the `i64` range.
    #[error("counter {0:?} would overflow")]
    Overflow(String),
    /// `swap` found another value than the one `current` observed: someone wrote in between.
    #[error("compare-and-swap of {0:?} lost a race")]
    CasFailed(String),
}

impl KvStore {
    /// Adds `delta` to the counter under `key` (absent = 0) and returns the new value, in one
    /// SQLite transaction on the store's single connection, as Spin's SQLite backend does: the
    /// value is an `i64` in 8 little-endian bytes, so one caller's `1` is never lost to
    /// another's concurrent increment, and exactly one caller sees each value.
    pub fn increment(&self, key: &str, delta: i64) -> Result<i64, AtomicError> {
        self.with(|c, store| {
            let transaction = c.unchecked_transaction()?;
            let current: Option<Vec<u8>> = transaction
                .prepare_cached("SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                .query_row(params![store, key], |row| row.get(0))
                .optional()?;
            let base = match current {
                None => 0,
                Some(bytes) => match <[u8; 8]>::try_from(bytes.as_slice()) {
                    Ok(le) => i64::from_le_bytes(le),
                    Err(_) => return Ok(Err(AtomicError::NotACounter(key.to_owned()))),
                },
            };
            let Some(next) = base.checked_add(delta) else {
                return Ok(Err(AtomicError::Overflow(key.to_owned())));
            };
            transaction
                .prepare_cached(
                    "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                     ON CONFLICT(store, key) DO UPDATE SET value = excluded.value",
                )?
                .execute(params![store, key, next.to_le_bytes().as_slice()])?;
            transaction.commit()?;
            Ok(Ok(next))
        })?
    }

    /// Writes `value` under `key` if the stored value still equals `observed` (what a `cas`
    /// handle's `current` returned). Spin's semantics exactly: with `Some(old)` it is
    /// `UPDATE … WHERE value = old` (atomic; fails if the value changed or the key vanished);
    /// with `None` (the key was absent, or `current` was never called) Spin writes
    /// unconditionally, so a CAS from "absent" is **not** atomic and callers must not rely on
    /// it (use [`KvStore::increment`] to claim a fresh key).
    pub fn swap(
        &self,
        key: &str,
        observed: Option<&[u8]>,
        value: &[u8],
    ) -> Result<(), AtomicError> {
        let changed = match observed {
            Some(old) => self.with(|c, store| {
                c.prepare_cached(
                    "UPDATE spin_key_value SET value = ?4
                     WHERE store = ?1 AND key = ?2 AND value = ?3",
                )?
                .execute(params![store, key, old, value])
            })?,
            None => {
                self.set(key, value)?;
                1
            }
        };
        if changed == 1 {
            Ok(())
        } else {
            Err(AtomicError::CasFailed(key.to_owned()))
        }
    }
}

/// A `wasi:keyvalue` compare-and-swap handle: the key and the value `current` last observed.
/// Opaque: only the host's `wasi:keyvalue/atomics` makes and reads one (public because the
/// generated bindings name it).
pub struct Cas {
    pub(crate) store: KvStore,
    pub(crate) key: String,
    /// `None` until `current` is called, then what it read (`Some(None)`: absent).
    pub(crate) observed: Option<Option<Vec<u8>>>,
}

/// The stores of one application, opened lazily and kept open for the host's lifetime.
#[derive(Debug)]
pub struct KvStores {
    dir: PathBuf,
    open: Mutex<HashMap<String, KvStore>>,
}

impl KvStores {
    /// Stores live in `dir/<label>.db`; the directory is created if missing.
    pub fn new(dir: PathBuf) -> Result<Self, KvError> {
        std::fs::create_dir_all(&dir).map_err(|source| KvError::Directory {
            path: dir.clone(),
            source,
        })?;
        Ok(Self {
            dir,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// The store for `label`, opening its file on first use. Callers must have checked that
    /// the label is defined and allowed; labels are validated by the manifest loader to be
    /// safe file names.
    pub fn get(&self, label: &str) -> Result<KvStore, KvError> {
        let mut open = self
            .open
            .lock()
            .map_err(|_| KvError::Poisoned(label.to_owned()))?;
        if let Some(store) = open.get(label) {
            return Ok(store.clone());
        }
        let store = KvStore::open(label, &self.dir.join(format!("{label}.db")))?;
        open.insert(label.to_owned(), store.clone());
        Ok(store)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn crud_round_trip_and_persistence() {
        let dir = tempfile::tempdir().unwrap();
        {
            let stores = KvStores::new(dir.path().join("kv")).unwrap();
            let store = stores.get("default").unwrap();
            assert_eq!(store.get("a").unwrap(), None);
            assert!(!store.exists("a").unwrap());
            store.set("a", b"1").unwrap();
            store.set("a", b"2").unwrap();
            store.set("b", &[0, 255]).unwrap();
            assert_eq!(store.get("a").unwrap().as_deref(), Some(&b"2"[..]));
            assert!(store.exists("a").unwrap());
            let mut keys = store.get_keys().unwrap();
            keys.sort();
            assert_eq!(keys, ["a", "b"]);
            store.delete("a").unwrap();
            store.delete("never-existed").unwrap();
            assert!(!store.exists("a").unwrap());
        }
        // A fresh host sees the data, in the file named after the label.
        assert!(dir.path().join("kv/default.db").exists());
        let stores = KvStores::new(dir.path().join("kv")).unwrap();
        let store = stores.get("default").unwrap();
        assert_eq!(store.get("b").unwrap().as_deref(), Some(&[0u8, 255][..]));
        assert_eq!(store.get_keys().unwrap(), ["b"]);
    }

    /// Spin's counter encoding (8 bytes, little-endian i64) and arithmetic, from Spin's own
    /// SQLite test: 1, +2 = 3, -10 = -7.
    #[test]
    fn increment_matches_spin() {
        let dir = tempfile::tempdir().unwrap();
        let store = KvStores::new(dir.path().to_owned())
            .unwrap()
            .get("s")
            .unwrap();
        assert_eq!(store.increment("counter", 1).unwrap(), 1);
        assert_eq!(store.increment("counter", 2).unwrap(), 3);
        assert_eq!(store.increment("counter", -10).unwrap(), -7);
        assert_eq!(
            store.get("counter").unwrap().unwrap(),
            [0xf9, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
        );
        store.set("text", b"12").unwrap();
        assert!(matches!(
            store.increment("text", 1),
            Err(AtomicError::NotACounter(_))
        ));
        store.set("max", &i64::MAX.to_le_bytes()).unwrap();
        assert!(matches!(
            store.increment("max", 1),
            Err(AtomicError::Overflow(_))
        ));
    }

    /// Many threads increment one counter: every value from 1 to N is seen exactly once.
    #[test]
    fn concurrent_increments_hand_out_each_value_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = KvStores::new(dir.path().to_owned())
            .unwrap()
            .get("s")
            .unwrap();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                std::thread::spawn(move || {
                    (0..50)
                        .map(|_| store.increment("c", 1).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut seen: Vec<i64> = threads
            .into_iter()
            .flat_map(|thread| thread.join().unwrap())
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (1..=400).collect::<Vec<_>>());
    }

    #[test]
    fn swap_is_conditional_on_an_observed_value_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = KvStores::new(dir.path().to_owned())
            .unwrap()
            .get("s")
            .unwrap();
        store.set("k", b"old").unwrap();
        store.swap("k", Some(b"old"), b"new").unwrap();
        assert_eq!(store.get("k").unwrap().unwrap(), b"new");
        // A stale observation fails and leaves the value alone.
        assert!(matches!(
            store.swap("k", Some(b"old"), b"lost"),
            Err(AtomicError::CasFailed(_))
        ));
        assert_eq!(store.get("k").unwrap().unwrap(), b"new");
        // Observed a value, but the key was deleted since: fails, as in Spin.
        store.delete("k").unwrap();
        assert!(matches!(
            store.swap("k", Some(b"new"), b"x"),
            Err(AtomicError::CasFailed(_))
        ));
        // Observed "absent": Spin writes unconditionally, even over a value written since.
        store.set("k", b"raced").unwrap();
        store.swap("k", None, b"blind").unwrap();
        assert_eq!(store.get("k").unwrap().unwrap(), b"blind");
    }

    #[test]
    fn stores_are_isolated() {
        let dir = tempfile::tempdir().unwrap();
        let stores = KvStores::new(dir.path().to_owned()).unwrap();
        stores.get("one").unwrap().set("k", b"1").unwrap();
        assert_eq!(stores.get("two").unwrap().get("k").unwrap(), None);
    }

    #[test]
    fn unwritable_location_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        assert!(KvStores::new(file.join("kv")).is_err());
    }
}

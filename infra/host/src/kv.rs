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
#[non_exhaustive]
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

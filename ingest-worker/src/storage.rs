//! Opening the object stores named by `--storage` / `--key-storage`.
//!
//! The rest of the worker only sees `Arc<dyn ObjectStore>`, so tests can hand in
//! `object_store::memory::InMemory` or a real S3 server alike. `file://` opens a
//! [`RecyclingFileStore`], which reuses the files of deleted segments ([`recycle`]).
//!
//! Keys live in a store of their own: media is meant to be public or CDN-fronted, and a key
//! next to its segments decrypts them for anyone who can list or guess the path. Sharing the
//! media store is an explicit opt-in ([`StorageConfig::insecure_keys_in_media_store`]). A
//! `file://` key store writes owner-only files and folders (`private`).

mod private;
pub mod recycle;

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

pub use self::recycle::{RecyclePolicy, RecyclingFileStore};
use crate::config::{S3Options, StorageConfig};

/// Per-request timeout against S3. The uploader retries on its own schedule, so a hung request
/// must fail rather than hold up the stream's queue.
const S3_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a storage URL could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Neither `file://` nor `s3://`.
    #[error("storage URL {0:?} must start with file:// or s3://")]
    UnsupportedUrl(String),
    /// `s3://` without a bucket name.
    #[error("storage URL {0:?} names no bucket")]
    MissingBucket(String),
    /// The key store is the media store, or inside it (`s3://b` and `s3://b/keys`), and
    /// sharing was not opted into.
    #[error(
        "key storage {keys:?} is inside media storage {media:?}: keys must not be stored with \
         the media (public or CDN-fronted); pass --insecure-keys-in-media-storage to accept that"
    )]
    KeysInMediaStore {
        /// The key storage URL.
        keys: String,
        /// The media storage URL.
        media: String,
    },
    /// No key store was named and sharing the media store was not opted into.
    #[error(
        "no key storage: keys must not be stored with the media (public or CDN-fronted); name a \
         private location with --key-storage, or accept the risk with \
         --insecure-keys-in-media-storage"
    )]
    NoKeyStore,
    /// The local directory could not be created.
    #[error("cannot create storage directory {path}")]
    CreateDir {
        /// The directory.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// `object_store` refused the configuration.
    #[error("cannot open storage {url:?}")]
    Open {
        /// The URL.
        url: String,
        /// Why.
        #[source]
        source: object_store::Error,
    },
}

/// Where media (playlists, segments) and keys are written. They may be the same store.
#[derive(Clone, Debug)]
pub struct Stores {
    /// Playlists and segments (`live/…`).
    pub media: Arc<dyn ObjectStore>,
    /// Key objects (`keys/…`).
    pub keys: Arc<dyn ObjectStore>,
}

impl Stores {
    /// Opens the stores `config` names: the key store from `keys_url`, or the media store
    /// itself only with `insecure_keys_in_media_store`.
    pub fn open(config: &StorageConfig) -> Result<Self, StorageError> {
        let media = open_url(&config.media_url, &config.s3, Access::Public)?;
        let keys = match &config.keys_url {
            Some(url) if !config.insecure_keys_in_media_store && nested(&config.media_url, url) => {
                return Err(StorageError::KeysInMediaStore {
                    keys: url.clone(),
                    media: config.media_url.clone(),
                });
            }
            Some(url) => open_url(url, &config.s3, Access::Private)?,
            None if config.insecure_keys_in_media_store => Arc::clone(&media),
            None => return Err(StorageError::NoKeyStore),
        };
        Ok(Self { media, keys })
    }

    /// Media and keys in one store.
    pub fn single(store: Arc<dyn ObjectStore>) -> Self {
        Self {
            media: Arc::clone(&store),
            keys: store,
        }
    }
}

/// Whether one storage URL is the other or lies inside it (compared as written, trailing
/// slashes aside).
fn nested(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim_end_matches('/'), b.trim_end_matches('/'));
    let inside = |outer: &str, inner: &str| {
        inner
            .strip_prefix(outer)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    inside(a, b) || inside(b, a)
}

/// Who may read a store's objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Media: whatever serves the store decides.
    Public,
    /// Keys: a `file://` store writes owner-only files (`0600`) and folders (`0700`), and
    /// never pools deleted files.
    Private,
}

/// Opens one `file://DIR` (relative or absolute, created if missing) or `s3://BUCKET[/PREFIX]`.
/// An `s3://` bucket's access is the bucket's policy: keep the key bucket private.
pub fn open_url(
    url: &str,
    s3: &S3Options,
    access: Access,
) -> Result<Arc<dyn ObjectStore>, StorageError> {
    if let Some(dir) = url.strip_prefix("file://") {
        let create_error = |source| StorageError::CreateDir {
            path: dir.to_owned(),
            source,
        };
        match access {
            Access::Public => std::fs::create_dir_all(dir),
            Access::Private => private::create_root(std::path::Path::new(dir)),
        }
        .map_err(create_error)?;
        let store = LocalFileSystem::new_with_prefix(dir).map_err(|source| StorageError::Open {
            url: url.to_owned(),
            source,
        })?;
        let store = match access {
            Access::Public => RecyclingFileStore::new(store, RecyclePolicy::default()),
            Access::Private => RecyclingFileStore::private(store),
        }
        .map_err(create_error)?;
        return Ok(Arc::new(store));
    }
    let Some(rest) = url.strip_prefix("s3://") else {
        return Err(StorageError::UnsupportedUrl(url.to_owned()));
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(StorageError::MissingBucket(url.to_owned()));
    }
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region(&s3.region)
        // Path-style requests work with every S3-compatible server (MinIO, s3s, Garage…).
        .with_virtual_hosted_style_request(false)
        .with_client_options(
            ClientOptions::new()
                .with_timeout(S3_REQUEST_TIMEOUT)
                .with_connect_timeout(Duration::from_secs(3))
                // Plain HTTP is for S3 servers on localhost or a private network.
                .with_allow_http(true),
        )
        .with_retry(RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 0,
            retry_timeout: S3_REQUEST_TIMEOUT,
        });
    if let Some(endpoint) = &s3.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    if let Some(id) = &s3.access_key_id {
        builder = builder.with_access_key_id(id);
    }
    if let Some(secret) = &s3.secret_access_key {
        builder = builder.with_secret_access_key(secret);
    }
    if let Some(token) = &s3.session_token {
        builder = builder.with_token(token);
    }
    let store = builder.build().map_err(|source| StorageError::Open {
        url: url.to_owned(),
        source,
    })?;
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        Ok(Arc::new(store))
    } else {
        Ok(Arc::new(PrefixStore::new(store, prefix)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        let s3 = S3Options {
            region: "us-east-1".into(),
            ..S3Options::default()
        };
        assert!(matches!(
            open_url("ftp://x", &s3, Access::Public),
            Err(StorageError::UnsupportedUrl(_))
        ));
        assert!(matches!(
            open_url("s3://", &s3, Access::Public),
            Err(StorageError::MissingBucket(_))
        ));
        assert!(open_url("s3://bucket/some/prefix", &s3, Access::Private).is_ok());
        let dir = tempfile::tempdir().expect("tempdir");
        let nested = dir.path().join("a/b");
        assert!(open_url(&format!("file://{}", nested.display()), &s3, Access::Public).is_ok());
        assert!(nested.is_dir());
    }

    /// Issue 13 item 11: without a key store of its own the worker does not start, unless told
    /// to share.
    #[test]
    fn keys_need_their_own_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = crate::Config::local(format!("file://{}", dir.path().display())).storage;
        assert!(matches!(
            Stores::open(&config),
            Err(StorageError::NoKeyStore)
        ));
        for inside in [
            config.media_url.clone(),
            format!("{}/", config.media_url),
            format!("{}/keys", config.media_url),
        ] {
            config.keys_url = Some(inside);
            assert!(matches!(
                Stores::open(&config),
                Err(StorageError::KeysInMediaStore { .. })
            ));
        }
        config.insecure_keys_in_media_store = true;
        assert!(Stores::open(&config).is_ok());
        config.keys_url = None;
        assert!(Stores::open(&config).is_ok());
        assert!(!nested("s3://media", "s3://media-keys"));
        assert!(!nested(
            "file://./.gatecast/media",
            "file://./.gatecast/keys"
        ));
    }
}

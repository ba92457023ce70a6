//! The keys file: which secret stream key publishes under which public name.
//!
//! ```toml
//! [[channel]]
//! key = "J42ninLbjl2E2V8ePqy7"
//! name = "benw"
//! active = true
//! ```
//!
//! Only SHA-256 digests of the keys are kept in memory after parsing, and lookups compare every
//! digest in constant time, so neither timing nor a heap dump hands out a key.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use gatecast_core::layout::{NameError, StreamName};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::KeyDigest;

/// Why a keys file could not be loaded. The previous table stays in force on a failed reload.
#[derive(Debug, thiserror::Error)]
pub enum KeysFileError {
    /// The file could not be read.
    #[error("cannot read keys file {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape. The message is TOML's own and may
    /// quote a line of the file, so it is kept out of this error's `Display`.
    #[error("keys file is not valid TOML of the form [[channel]] key/name/active")]
    Syntax(#[source] toml::de::Error),
    /// A channel's public name is invalid.
    #[error("channel #{index} has an invalid name")]
    InvalidName {
        /// Position of the channel in the file, from 1.
        index: usize,
        /// What is wrong with the name.
        #[source]
        source: NameError,
    },
    /// A channel has an empty key, which would let anyone publish.
    #[error("channel #{index} has an empty key")]
    EmptyKey {
        /// Position of the channel in the file, from 1.
        index: usize,
    },
    /// Two channels share a key, so the key's public name would be ambiguous.
    #[error("channel #{index} repeats the key of an earlier channel")]
    DuplicateKey {
        /// Position of the channel in the file, from 1.
        index: usize,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFileToml {
    #[serde(default)]
    channel: Vec<ChannelToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelToml {
    key: String,
    name: String,
    #[serde(default = "default_active")]
    active: bool,
}

fn default_active() -> bool {
    true
}

/// What the keys file says about one stream key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyLookup {
    /// Listed and active: publish under this public name.
    Active(StreamName),
    /// Listed but `active = false`.
    Inactive,
    /// Not listed.
    Unknown,
}

#[derive(Debug)]
struct Channel {
    digest: KeyDigest,
    name: StreamName,
    active: bool,
}

/// A parsed keys file.
#[derive(Debug, Default)]
pub struct KeysTable {
    channels: Vec<Channel>,
}

impl KeysTable {
    /// Parses the TOML text of a keys file.
    pub fn parse(text: &str) -> Result<Self, KeysFileError> {
        let file: KeysFileToml = toml::from_str(text).map_err(KeysFileError::Syntax)?;
        let mut channels: Vec<Channel> = Vec::with_capacity(file.channel.len());
        for (position, channel) in file.channel.into_iter().enumerate() {
            let index = position + 1;
            if channel.key.is_empty() {
                return Err(KeysFileError::EmptyKey { index });
            }
            let name = StreamName::parse(&channel.name)
                .map_err(|source| KeysFileError::InvalidName { index, source })?;
            let digest = KeyDigest::of(&channel.key);
            if channels.iter().any(|c| c.digest == digest) {
                return Err(KeysFileError::DuplicateKey { index });
            }
            channels.push(Channel {
                digest,
                name,
                active: channel.active,
            });
        }
        Ok(Self { channels })
    }

    /// Reads and parses a keys file.
    pub fn load(path: &Path) -> Result<Self, KeysFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeysFileError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Looks up a key by its digest. Every channel is compared (no early exit), each in
    /// constant time ([`KeyDigest`]'s equality).
    pub fn lookup(&self, digest: &KeyDigest) -> KeyLookup {
        let mut found: Option<&Channel> = None;
        for channel in &self.channels {
            if channel.digest == *digest {
                found = Some(channel);
            }
        }
        match found {
            Some(channel) if channel.active => KeyLookup::Active(channel.name.clone()),
            Some(_) => KeyLookup::Inactive,
            None => KeyLookup::Unknown,
        }
    }

    /// Number of channels, for logs.
    pub fn len(&self) -> usize {
        self.channels.len()
    }
}

/// The current keys table, swapped whole on reload.
///
/// A std `RwLock` (not tokio's): it is held only to clone an `Arc`, never across an await.
pub type SharedKeys = Arc<RwLock<Arc<KeysTable>>>;

/// Reloads `path` into `keys` whenever its modification time or size changes (checked every
/// `poll_interval`) or, on Unix, when the process gets SIGHUP. After each successful reload
/// `on_reload` runs with the new table (the worker cuts off streams whose key was revoked).
/// Returns when `cancel` fires.
///
/// A writer that truncates the file and then writes it leaves it empty or cut short for a
/// moment, and a table read then would revoke every key it lacks, cutting live streams off.
/// So a changed file is read only once it has stood still for a whole poll interval (SIGHUP
/// means "done writing" and reads at once), a file that changes while being read is read
/// again later, and a version that is unreadable, unparsable or lists no channel at all keeps
/// the previous table, with one warning per version. Writing to a temporary file and renaming
/// it into place avoids all of it.
///
/// `loaded` is the [`file_stamp`] taken just BEFORE `keys` was loaded, so an edit made between
/// that load and this call is not missed.
pub async fn watch(
    path: PathBuf,
    keys: SharedKeys,
    loaded: Option<FileStamp>,
    poll_interval: Duration,
    on_reload: impl Fn(&KeysTable),
    cancel: CancellationToken,
) {
    let mut last_read = loaded;
    let mut settling: Option<Option<FileStamp>> = None;
    let mut hangup = hangup_signal();
    let mut ticker = tokio::time::interval(poll_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let forced = tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticker.tick() => false,
            () = next_hangup(&mut hangup) => true,
        };
        let stamp = file_stamp(&path);
        if !forced && stamp == last_read {
            settling = None;
            continue;
        }
        if !forced && settling != Some(stamp) {
            settling = Some(stamp);
            continue;
        }
        settling = None;
        let loaded = KeysTable::load(&path);
        if file_stamp(&path) != stamp {
            // Written to while being read: read it again once it stands still.
            continue;
        }
        last_read = stamp;
        match loaded {
            Ok(table) if table.len() == 0 => {
                tracing::warn!(
                    "keys file lists no channel (empty, or read while being rewritten): keeping \
                     the previous keys; write keys files to a temporary file and rename it into \
                     place, and mark channels active = false to revoke them"
                );
            }
            Ok(table) => {
                tracing::info!(channels = table.len(), forced, "keys file reloaded");
                let table = Arc::new(table);
                match keys.write() {
                    Ok(mut current) => *current = Arc::clone(&table),
                    Err(poisoned) => *poisoned.into_inner() = Arc::clone(&table),
                }
                on_reload(&table);
            }
            Err(error) => {
                tracing::warn!(error = %error, "keys file reload failed; keeping the previous keys");
            }
        }
    }
}

/// The current table (cheap: clones an `Arc`).
pub fn current(keys: &SharedKeys) -> Arc<KeysTable> {
    match keys.read() {
        Ok(table) => Arc::clone(&table),
        Err(poisoned) => Arc::clone(&poisoned.into_inner()),
    }
}

/// What identifies a version of the keys file: modification time and size.
pub type FileStamp = (SystemTime, u64);

/// The file's current [`FileStamp`], `None` if it cannot be read.
pub fn file_stamp(path: &Path) -> Option<FileStamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = ();

#[cfg(unix)]
fn hangup_signal() -> Hangup {
    use tokio::signal::unix::{SignalKind, signal};
    signal(SignalKind::hangup())
        .inspect_err(
            |error| tracing::warn!(%error, "cannot listen for SIGHUP; keys reload on change only"),
        )
        .ok()
}

#[cfg(not(unix))]
fn hangup_signal() -> Hangup {}

#[cfg(unix)]
async fn next_hangup(hangup: &mut Hangup) {
    let received = match hangup {
        Some(signal) => signal.recv().await.is_some(),
        None => false,
    };
    if !received {
        // No signal stream (or it closed): never fire again.
        *hangup = None;
        std::future::pending::<()>().await;
    }
}

#[cfg(not(unix))]
async fn next_hangup(_: &mut Hangup) {
    std::future::pending().await
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
        [[channel]]
        key = "J42ninLbjl2E2V8ePqy7"
        name = "benw"
        active = true

        [[channel]]
        key = "banned-key"
        name = "troll"
        active = false

        [[channel]]
        key = "default-active"
        name = "alice"
    "#;

    #[test]
    fn keys_map_to_public_names() {
        let table = KeysTable::parse(FILE).expect("valid file");
        assert_eq!(table.len(), 3);
        let benw = StreamName::parse("benw").expect("valid");
        let alice = StreamName::parse("alice").expect("valid");
        assert_eq!(
            table.lookup(&KeyDigest::of("J42ninLbjl2E2V8ePqy7")),
            KeyLookup::Active(benw)
        );
        assert_eq!(
            table.lookup(&KeyDigest::of("default-active")),
            KeyLookup::Active(alice)
        );
        assert_eq!(
            table.lookup(&KeyDigest::of("banned-key")),
            KeyLookup::Inactive
        );
        assert_eq!(
            table.lookup(&KeyDigest::of("J42ninLbjl2E2V8ePqy")),
            KeyLookup::Unknown
        );
        assert_eq!(table.lookup(&KeyDigest::of("benw")), KeyLookup::Unknown);
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        let bad_name = "[[channel]]\nkey = \"k\"\nname = \"../etc\"\n";
        assert!(matches!(
            KeysTable::parse(bad_name),
            Err(KeysFileError::InvalidName { index: 1, .. })
        ));
        let empty_key = "[[channel]]\nkey = \"\"\nname = \"a\"\n";
        assert!(matches!(
            KeysTable::parse(empty_key),
            Err(KeysFileError::EmptyKey { index: 1 })
        ));
        let duplicate =
            "[[channel]]\nkey = \"k\"\nname = \"a\"\n[[channel]]\nkey = \"k\"\nname = \"b\"\n";
        assert!(matches!(
            KeysTable::parse(duplicate),
            Err(KeysFileError::DuplicateKey { index: 2 })
        ));
        let typo = "[[channel]]\nkey = \"k\"\nname = \"a\"\nactiv = false\n";
        assert!(matches!(
            KeysTable::parse(typo),
            Err(KeysFileError::Syntax(_))
        ));
        assert_eq!(KeysTable::parse("").expect("empty file is valid").len(), 0);
    }

    #[test]
    fn syntax_errors_do_not_print_the_file() {
        let text = "[[channel]]\nkey = \"SECRET-KEY-123\"\nname = 7\n";
        let error = KeysTable::parse(text).expect_err("name must be a string");
        assert!(!error.to_string().contains("SECRET-KEY-123"));
    }

    #[tokio::test]
    async fn edits_are_picked_up_and_bad_edits_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys.toml");
        std::fs::write(&path, FILE).expect("write");
        let loaded = file_stamp(&path);
        let keys: SharedKeys =
            Arc::new(RwLock::new(Arc::new(KeysTable::load(&path).expect("load"))));
        let reloads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let cancel = CancellationToken::new();
        let watcher = tokio::spawn(watch(
            path.clone(),
            Arc::clone(&keys),
            loaded,
            Duration::from_millis(20),
            {
                let reloads = Arc::clone(&reloads);
                move |_: &KeysTable| {
                    reloads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            },
            cancel.clone(),
        ));
        let benw_key = KeyDigest::of("J42ninLbjl2E2V8ePqy7");

        std::fs::write(&path, FILE.replacen("active = true", "active = false", 1)).expect("write");
        wait_until(|| current(&keys).lookup(&benw_key) == KeyLookup::Inactive).await;
        assert_eq!(reloads.load(std::sync::atomic::Ordering::SeqCst), 1);

        std::fs::write(&path, "this is not toml [[[").expect("write");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            current(&keys).lookup(&benw_key),
            KeyLookup::Inactive,
            "bad edit ignored"
        );
        assert_eq!(reloads.load(std::sync::atomic::Ordering::SeqCst), 1);

        // Issue 13 item 10: an empty file (truncated, not yet written) keeps the keys too.
        std::fs::write(&path, "").expect("truncate");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(current(&keys).lookup(&benw_key), KeyLookup::Inactive);
        assert_eq!(reloads.load(std::sync::atomic::Ordering::SeqCst), 1);
        std::fs::write(&path, FILE).expect("write");
        wait_until(|| matches!(current(&keys).lookup(&benw_key), KeyLookup::Active(_))).await;
        assert_eq!(reloads.load(std::sync::atomic::Ordering::SeqCst), 2);

        cancel.cancel();
        watcher.await.expect("watcher ends");
    }

    async fn wait_until(mut condition: impl FnMut() -> bool) {
        for _ in 0..200 {
            if condition() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("condition not reached");
    }
}

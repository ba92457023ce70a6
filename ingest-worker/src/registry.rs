//! Which public names are live right now, and the handle to cut each one off.
//!
//! A name is claimed when its publish is accepted and released when the stream's uploader has
//! written the final playlist, not when the RTMP connection closes: until then the old stream
//! still owns `live/<name>/`, and a second publisher must not interleave its playlist writes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use gatecast_core::layout::StreamName;
use tokio_util::sync::CancellationToken;

use crate::auth::keys_file::KeysTable;
use crate::auth::{AuthSource, Authorizer, KeyDigest};
use crate::metrics::Metrics;

struct LiveStream {
    digest: KeyDigest,
    source: AuthSource,
    cutoff: CancellationToken,
}

/// The live streams of one worker.
///
/// A std `Mutex`: every critical section is a map operation, never an await (mini-redis `db.rs`).
pub struct Registry {
    streams: Mutex<HashMap<StreamName, LiveStream>>,
    metrics: Arc<Metrics>,
}

/// Ownership of a public name; dropping it releases the name.
pub struct StreamLease {
    registry: Arc<Registry>,
    name: StreamName,
}

impl Drop for StreamLease {
    fn drop(&mut self) {
        if self.registry.lock().remove(&self.name).is_some() {
            self.registry.metrics.handle_stream_ended();
        }
    }
}

impl Registry {
    /// An empty registry.
    pub fn new(metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            streams: Mutex::new(HashMap::new()),
            metrics,
        })
    }

    /// Claims `name` for a new stream. `None` if another publisher holds it. The returned token
    /// fires when the stream is cut off.
    pub fn claim(
        self: &Arc<Self>,
        name: &StreamName,
        digest: KeyDigest,
        source: AuthSource,
    ) -> Option<(StreamLease, CancellationToken)> {
        let cutoff = CancellationToken::new();
        {
            let mut streams = self.lock();
            if streams.contains_key(name) {
                return None;
            }
            streams.insert(
                name.clone(),
                LiveStream {
                    digest,
                    source,
                    cutoff: cutoff.clone(),
                },
            );
        }
        self.metrics.handle_stream_started();
        Some((
            StreamLease {
                registry: Arc::clone(self),
                name: name.clone(),
            },
            cutoff,
        ))
    }

    /// Cuts off the stream live under `name`; false if there is none.
    pub fn cut_off(&self, name: &StreamName) -> bool {
        match self.lock().get(name) {
            Some(stream) => {
                stream.cutoff.cancel();
                true
            }
            None => false,
        }
    }

    /// Cuts off every stream the keys file no longer allows; returns their names.
    pub fn cut_off_revoked(&self, table: &KeysTable) -> Vec<StreamName> {
        let streams = self.lock();
        let mut revoked = Vec::new();
        for (name, stream) in streams.iter() {
            if !stream.cutoff.is_cancelled()
                && Authorizer::is_revoked(table, stream.source, &stream.digest, name)
            {
                stream.cutoff.cancel();
                revoked.push(name.clone());
            }
        }
        revoked
    }

    /// Names live right now.
    pub fn live_names(&self) -> Vec<StreamName> {
        self.lock().keys().cloned().collect()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<StreamName, LiveStream>> {
        // A panic while holding the lock cannot leave the map half-updated (single inserts and
        // removes), so a poisoned lock is safe to keep using.
        self.streams
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> StreamName {
        StreamName::parse(text).expect("valid")
    }

    #[test]
    fn one_publisher_per_name_until_the_lease_drops() {
        let metrics = Arc::new(Metrics::default());
        let registry = Registry::new(Arc::clone(&metrics));
        let (lease, _cutoff) = registry
            .claim(&name("benw"), KeyDigest::of("k"), AuthSource::KeysFile)
            .expect("free");
        assert!(
            registry
                .claim(&name("benw"), KeyDigest::of("k2"), AuthSource::Hook)
                .is_none()
        );
        assert!(
            registry
                .claim(&name("alice"), KeyDigest::of("k3"), AuthSource::Hook)
                .is_some_and(|_| true)
        );
        // The alice lease was dropped right away; only benw is live.
        assert_eq!(registry.live_names(), vec![name("benw")]);
        assert_eq!(metrics.streams_live(), 1);
        drop(lease);
        assert_eq!(metrics.streams_live(), 0);
        assert!(
            registry
                .claim(&name("benw"), KeyDigest::of("k2"), AuthSource::Hook)
                .is_some()
        );
    }

    #[test]
    fn cutoff_fires_the_token() {
        let registry = Registry::new(Arc::new(Metrics::default()));
        let (_lease, cutoff) = registry
            .claim(&name("benw"), KeyDigest::of("k"), AuthSource::KeysFile)
            .expect("free");
        assert!(!registry.cut_off(&name("nobody")));
        assert!(registry.cut_off(&name("benw")));
        assert!(cutoff.is_cancelled());
    }

    #[test]
    fn keys_file_revocation_cuts_off_only_its_streams() {
        let registry = Registry::new(Arc::new(Metrics::default()));
        let (_a, file_cutoff) = registry
            .claim(&name("benw"), KeyDigest::of("k"), AuthSource::KeysFile)
            .expect("free");
        let (_b, hook_cutoff) = registry
            .claim(&name("alice"), KeyDigest::of("h"), AuthSource::Hook)
            .expect("free");
        let table = KeysTable::parse("[[channel]]\nkey = \"k\"\nname = \"benw\"\nactive = false\n")
            .expect("valid");
        assert_eq!(registry.cut_off_revoked(&table), vec![name("benw")]);
        assert!(file_cutoff.is_cancelled());
        assert!(!hook_cutoff.is_cancelled());
    }
}

//! Host side of Spin's experimental `wasi:keyvalue@0.2.0-draft2` `store` and `atomics`
//! interfaces, over the same SQLite stores and access rules as `spin:key-value` (Spin maps both
//! to one store manager, so a guest may mix them on one label).
//!
//! Why: `spin:key-value` has no atomic operation, and pay-per-view needs one to charge exactly
//! once. Semantics follow Spin's SQLite backend (see [`KvStore::increment`] and
//! [`KvStore::swap`]). The functions are synchronous in WIT, so the short SQLite calls run on
//! the calling thread, as Spin runs them (`block_in_place`).

use crate::bindings::generated::wasi::keyvalue::{atomics, store};
use crate::bindings::{SpinInterfaces, SpinView};
use crate::kv::{AtomicError, Cas, KvStore};
use wasmtime::component::{Linker, Resource};

/// Adds both interfaces to `linker`.
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    getter: fn(&mut T) -> SpinView<'_>,
) -> wasmtime::Result<()> {
    store::add_to_linker::<T, SpinInterfaces>(linker, getter)?;
    atomics::add_to_linker::<T, SpinInterfaces>(linker, getter)?;
    Ok(())
}

fn other(error: impl std::fmt::Display) -> store::Error {
    store::Error::Other(error.to_string())
}

impl SpinView<'_> {
    fn bucket(&self, handle: &Resource<KvStore>) -> wasmtime::Result<KvStore> {
        Ok(self.table.get(handle)?.clone())
    }
}

impl store::Host for SpinView<'_> {
    fn open(
        &mut self,
        identifier: String,
    ) -> wasmtime::Result<Result<Resource<KvStore>, store::Error>> {
        // Same order as spin:key-value: an unlisted label is access-denied.
        if !self.context.key_value_stores.contains(&identifier) {
            return Ok(Err(store::Error::AccessDenied));
        }
        match self.context.kv.get(&identifier) {
            Ok(bucket) => Ok(Ok(self.table.push(bucket)?)),
            Err(error) => Ok(Err(other(error))),
        }
    }
}

impl store::HostBucket for SpinView<'_> {
    fn get(
        &mut self,
        handle: Resource<KvStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, store::Error>> {
        Ok(self.bucket(&handle)?.get(&key).map_err(other))
    }

    fn set(
        &mut self,
        handle: Resource<KvStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        Ok(self.bucket(&handle)?.set(&key, &value).map_err(other))
    }

    fn delete(
        &mut self,
        handle: Resource<KvStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        Ok(self.bucket(&handle)?.delete(&key).map_err(other))
    }

    fn exists(
        &mut self,
        handle: Resource<KvStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, store::Error>> {
        Ok(self.bucket(&handle)?.exists(&key).map_err(other))
    }

    fn list_keys(
        &mut self,
        handle: Resource<KvStore>,
        // Spin's SQLite backend ignores the cursor and returns every key at once.
        _cursor: Option<String>,
    ) -> wasmtime::Result<Result<store::KeyResponse, store::Error>> {
        Ok(self
            .bucket(&handle)?
            .get_keys()
            .map(|keys| store::KeyResponse { keys, cursor: None })
            .map_err(other))
    }

    fn drop(&mut self, handle: Resource<KvStore>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}

impl atomics::Host for SpinView<'_> {
    fn increment(
        &mut self,
        handle: Resource<KvStore>,
        key: String,
        delta: i64,
    ) -> wasmtime::Result<Result<i64, store::Error>> {
        Ok(self.bucket(&handle)?.increment(&key, delta).map_err(other))
    }

    fn swap(
        &mut self,
        handle: Resource<Cas>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        let cas = self.table.delete(handle)?;
        let observed = cas.observed.flatten();
        Ok(
            match cas.store.swap(&cas.key, observed.as_deref(), &value) {
                Ok(()) => Ok(()),
                Err(AtomicError::CasFailed(_)) => {
                    // The guest gets a fresh handle for the same key to retry with.
                    let retry = self.table.push(Cas {
                        store: cas.store,
                        key: cas.key,
                        observed: None,
                    })?;
                    Err(atomics::CasError::CasFailed(retry))
                }
                Err(error) => Err(atomics::CasError::StoreError(other(error))),
            },
        )
    }
}

impl atomics::HostCas for SpinView<'_> {
    fn new(
        &mut self,
        handle: Resource<KvStore>,
        key: String,
    ) -> wasmtime::Result<Result<Resource<Cas>, store::Error>> {
        let store = self.bucket(&handle)?;
        Ok(Ok(self.table.push(Cas {
            store,
            key,
            observed: None,
        })?))
    }

    fn current(
        &mut self,
        handle: Resource<Cas>,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, store::Error>> {
        let cas = self.table.get_mut(&handle)?;
        match cas.store.get(&cas.key) {
            Ok(value) => {
                cas.observed = Some(value.clone());
                Ok(Ok(value))
            }
            Err(error) => Ok(Err(other(error))),
        }
    }

    fn drop(&mut self, handle: Resource<Cas>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}

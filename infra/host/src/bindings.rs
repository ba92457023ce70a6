//! Host side of `spin:key-value@3.0.0` and `spin:variables@3.0.0` (WASI 0.3 `async func`s).
//!
//! Both interfaces are implemented against a per-component [`ComponentContext`] so that access
//! rules (which stores, which variables) are decided by the manifest, exactly where Spin decides
//! them, and never by the guest.

use crate::context::ComponentContext;
use crate::kv::KvStore;
use crate::variables::VariableError;
use wasmtime::component::{
    Accessor, FutureReader, HasData, Linker, Resource, ResourceTable, StreamReader,
};

pub(crate) mod generated {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "gatecast:host/spin-host",
        // No `tracing` here: generated tracing logs arguments, and values may be secrets.
        imports: { default: trappable },
        with: {
            "spin:key-value/key-value.store": crate::kv::KvStore,
            "wasi:keyvalue/store.bucket": crate::kv::KvStore,
            "wasi:keyvalue/atomics.cas": crate::kv::Cas,
        },
    });
}

use generated::spin::key_value::key_value as kv_wit;
use generated::spin::variables::variables as vars_wit;

/// What the Spin host interfaces see of the store's data.
pub struct SpinView<'a> {
    /// The instance's resource table (shared with WASI), holding opened key-value stores.
    pub table: &'a mut ResourceTable,
    /// The component's manifest-derived permissions.
    pub context: &'a ComponentContext,
}

/// `HasData` marker for the Spin interfaces.
pub struct SpinInterfaces;

impl HasData for SpinInterfaces {
    type Data<'a> = SpinView<'a>;
}

/// Adds `spin:key-value` and `spin:variables` to `linker`; `getter` projects the store data
/// onto a [`SpinView`]. (`wasi_keyvalue.rs` adds `wasi:keyvalue` beside them.)
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    getter: fn(&mut T) -> SpinView<'_>,
) -> wasmtime::Result<()> {
    kv_wit::add_to_linker::<T, SpinInterfaces>(linker, getter)?;
    vars_wit::add_to_linker::<T, SpinInterfaces>(linker, getter)?;
    Ok(())
}

fn other(err: impl std::fmt::Display) -> kv_wit::Error {
    kv_wit::Error::Other(err.to_string())
}

/// Looks up an opened store; a stale handle is a guest bug and traps, as in Spin.
fn store_of<T>(
    accessor: &Accessor<T, SpinInterfaces>,
    handle: &Resource<KvStore>,
) -> wasmtime::Result<KvStore> {
    accessor.with(|mut access| Ok(access.get().table.get(handle)?.clone()))
}

/// Runs a blocking SQLite operation off the async executor.
async fn blocking<R: Send + 'static>(
    op: impl FnOnce() -> Result<R, crate::kv::KvError> + Send + 'static,
) -> Result<R, kv_wit::Error> {
    match tokio::task::spawn_blocking(op).await {
        Ok(result) => result.map_err(other),
        Err(join) => Err(other(join)),
    }
}

impl kv_wit::Host for SpinView<'_> {}

impl kv_wit::HostStore for SpinView<'_> {
    fn drop(&mut self, handle: Resource<KvStore>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}

impl<T: Send> kv_wit::HostStoreWithStore<T> for SpinInterfaces {
    async fn open(
        accessor: &Accessor<T, Self>,
        label: String,
    ) -> wasmtime::Result<Result<Resource<KvStore>, kv_wit::Error>> {
        // Spin's order: a label the component does not list is `access-denied`, whether or not
        // any store by that name exists; only listed labels reach the store manager.
        let opened = accessor.with(|mut access| {
            let view = access.get();
            if !view.context.key_value_stores.contains(&label) {
                return Ok(Err(kv_wit::Error::AccessDenied));
            }
            Ok(view.context.kv.get(&label).map_err(other))
        });
        let store = match opened {
            Ok(Ok(store)) => store,
            Ok(Err(err)) => return Ok(Err(err)),
            Err(trap) => return Err(trap),
        };
        accessor.with(|mut access| Ok(Ok(access.get().table.push(store)?)))
    }

    async fn get(
        accessor: &Accessor<T, Self>,
        handle: Resource<KvStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, kv_wit::Error>> {
        let store = store_of(accessor, &handle)?;
        Ok(blocking(move || store.get(&key)).await)
    }

    async fn set(
        accessor: &Accessor<T, Self>,
        handle: Resource<KvStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), kv_wit::Error>> {
        let store = store_of(accessor, &handle)?;
        Ok(blocking(move || store.set(&key, &value)).await)
    }

    async fn delete(
        accessor: &Accessor<T, Self>,
        handle: Resource<KvStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), kv_wit::Error>> {
        let store = store_of(accessor, &handle)?;
        Ok(blocking(move || store.delete(&key)).await)
    }

    async fn exists(
        accessor: &Accessor<T, Self>,
        handle: Resource<KvStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, kv_wit::Error>> {
        let store = store_of(accessor, &handle)?;
        Ok(blocking(move || store.exists(&key)).await)
    }

    async fn get_keys(
        accessor: &Accessor<T, Self>,
        handle: Resource<KvStore>,
    ) -> wasmtime::Result<(
        StreamReader<String>,
        FutureReader<Result<(), kv_wit::Error>>,
    )> {
        let store = store_of(accessor, &handle)?;
        // Spin's backends list keys eagerly too; the stream only hands them over in chunks.
        let (keys, result) = match blocking(move || store.get_keys()).await {
            Ok(keys) => (keys, Ok(())),
            Err(err) => (Vec::new(), Err(err)),
        };
        accessor.with(|mut access| {
            let stream = StreamReader::new(&mut access, keys)?;
            let future =
                FutureReader::new(&mut access, async move { wasmtime::error::Ok(result) })?;
            Ok((stream, future))
        })
    }
}

impl vars_wit::Host for SpinView<'_> {}

impl<T: Send> vars_wit::HostWithStore<T> for SpinInterfaces {
    async fn get(
        accessor: &Accessor<T, Self>,
        name: String,
    ) -> wasmtime::Result<Result<String, vars_wit::Error>> {
        let value = accessor.with(|mut access| {
            let context = access.get().context;
            context.variables.component_value(&context.id, &name)
        });
        Ok(value.map_err(|err| match err {
            VariableError::InvalidName(msg) => vars_wit::Error::InvalidName(msg),
            VariableError::Undefined(msg) => vars_wit::Error::Undefined(msg),
            VariableError::MissingRequired(_) => vars_wit::Error::Provider(err.to_string()),
            other => vars_wit::Error::Other(other.to_string()),
        }))
    }
}

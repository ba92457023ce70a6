//! The process-wide wasmtime engine, its epoch ticker and its cache of compiled components.
//!
//! Why process-wide: compiled code belongs to an engine, and compiling gatecast's components
//! costs seconds. Sharing one engine lets every `Host` in a process (each e2e test, the dev stack
//! reloading) reuse the compilation, and needs only one epoch ticker thread.

use anyhow::Context as _;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use wasmtime::component::Component;
use wasmtime::{Config, Engine};

/// How often the engine's epoch ticks; request deadlines are counted in these ticks.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Identifies one version of a `.wasm` file, so a rebuilt component is recompiled.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SourceVersion {
    path: PathBuf,
    modified: Option<SystemTime>,
    len: u64,
}

/// The engine every `Host` of the process shares, and the components compiled with it.
pub(crate) struct Runtime {
    pub(crate) engine: Engine,
    compiled: Mutex<HashMap<SourceVersion, Component>>,
}

static RUNTIME: Mutex<Option<Arc<Runtime>>> = Mutex::new(None);

impl Runtime {
    /// The process's runtime, made (with its epoch ticker thread) by the first caller.
    pub(crate) fn shared() -> anyhow::Result<Arc<Self>> {
        let mut slot = RUNTIME
            .lock()
            .map_err(|_| anyhow::anyhow!("wasm runtime initialisation panicked earlier"))?;
        if let Some(runtime) = slot.as_ref() {
            return Ok(Arc::clone(runtime));
        }
        let mut config = Config::new();
        config.wasm_component_model_async(true);
        config.epoch_interruption(true);
        // A fresh instance per request makes instantiation the host's main cost; the pooling
        // allocator reuses pre-reserved memory slots instead of mmap/munmap per request. The
        // request bench measured it at 0.5-1x the time of on-demand allocation (noisy 2-core box).
        // Its default limits (1000 instances/memories) bound concurrent requests per process.
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(
            wasmtime::PoolingAllocationConfig::default(),
        ));
        let engine = Engine::new(&config)?;
        let ticking = engine.clone();
        std::thread::Builder::new()
            .name("gatecast-host-epoch".to_owned())
            .spawn(move || {
                loop {
                    std::thread::sleep(EPOCH_TICK);
                    ticking.increment_epoch();
                }
            })
            .context("cannot start the epoch ticker thread")?;
        let runtime = Arc::new(Self {
            engine,
            compiled: Mutex::new(HashMap::new()),
        });
        *slot = Some(Arc::clone(&runtime));
        Ok(runtime)
    }

    /// Compiles `path`, or returns the compilation of the same file version done earlier.
    pub(crate) fn component(&self, path: &Path) -> anyhow::Result<Component> {
        let metadata = std::fs::metadata(path)?;
        let version = SourceVersion {
            path: path.canonicalize()?,
            modified: metadata.modified().ok(),
            len: metadata.len(),
        };
        if let Some(component) = self
            .compiled
            .lock()
            .ok()
            .and_then(|c| c.get(&version).cloned())
        {
            return Ok(component);
        }
        let started = std::time::Instant::now();
        let component = Component::from_file(&self.engine, path)?;
        tracing::info!(path = %path.display(), elapsed = ?started.elapsed(), "compiled");
        if let Ok(mut compiled) = self.compiled.lock() {
            compiled.retain(|known, _| known.path != version.path);
            compiled.insert(version, component.clone());
        }
        Ok(component)
    }
}

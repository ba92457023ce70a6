//! How to run an app: what `gatecast-host`'s flags and the dev stack choose.

use crate::reuse::ReusePolicy;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How to run an app.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Path of `spin.toml`.
    pub manifest: PathBuf,
    /// Directory for host state; key-value stores live in `<data_dir>/kv/<label>.db`.
    pub data_dir: PathBuf,
    /// Cargo target directory to resolve component sources that start with `target/`
    /// (so builds with a custom `CARGO_TARGET_DIR` run unchanged). `None`: as written.
    pub target_dir: Option<PathBuf>,
    /// Application variable values that win over `SPIN_VARIABLE_*` and defaults
    /// (like `spin up --variable name=value`).
    pub variables: BTreeMap<String, String>,
    /// Spin's environment provider: `SPIN_VARIABLE_<NAME>` → value, as the process
    /// environment holds them ([`crate::variables::ENV_PREFIX`]). The library never reads the
    /// environment itself: the binary passes its own in, an embedder (the dev stack, a test)
    /// leaves it empty so a stray variable of the shell cannot change the app it runs.
    pub env_variables: BTreeMap<String, String>,
    /// Wall-clock and CPU (epoch) limit for one request, including streaming its body.
    pub request_timeout: Duration,
    /// Maximum size of each linear memory of an instance.
    pub max_memory_bytes: usize,
    /// How many requests an instance serves (Spin's WASIp3 defaults unless changed).
    pub reuse: ReusePolicy,
}

impl HostConfig {
    /// Defaults for `manifest`: data in `.gatecast` beside it, 30 s and 256 MiB per request,
    /// no environment variables.
    pub fn new(manifest: impl Into<PathBuf>) -> Self {
        let manifest = manifest.into();
        let data_dir = manifest
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join(".gatecast");
        Self {
            manifest,
            data_dir,
            target_dir: None,
            variables: BTreeMap::new(),
            env_variables: BTreeMap::new(),
            request_timeout: Duration::from_secs(30),
            max_memory_bytes: 256 * 1024 * 1024,
            reuse: ReusePolicy::default(),
        }
    }
}

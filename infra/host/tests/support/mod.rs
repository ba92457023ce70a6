//! Shared by the conformance tests and the benches: building the probe component.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Builds the probe once per test binary, into `<target>/probe` so the nested cargo never waits
/// on the lock of the target dir that is running this test.
pub fn probe_wasm() -> PathBuf {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| {
        let exe = std::env::current_exe().expect("test exe path");
        // <target>/debug/deps/<test-binary>
        let target = exe
            .ancestors()
            .nth(3)
            .expect("test binary lives in <target>/<profile>/deps")
            .to_owned();
        let probe_target = target.join("probe");
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let status = std::process::Command::new(env!("CARGO"))
            .current_dir(&workspace)
            .args([
                "build",
                "-p",
                "gatecast-host-probe",
                "--target",
                "wasm32-wasip2",
                "--profile",
                "wasm",
            ])
            .env("CARGO_TARGET_DIR", &probe_target)
            .status()
            .expect("run cargo");
        assert!(status.success(), "building the probe component failed");
        probe_target.join("wasm32-wasip2/wasm/gatecast_host_probe.wasm")
    })
    .clone()
}

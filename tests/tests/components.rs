//! The built components fit the edge budget: each at most 400 KB (400 000 bytes), and each is
//! a WebAssembly component (not a core module), which is what Spin and the host load.

use gatecast_e2e::stack::target_dir;

const BUDGET_BYTES: u64 = 400_000;
const COMPONENTS: [&str; 5] = ["playlist", "key", "segment", "api", "ppv_sync"];

#[test]
fn each_component_is_a_wasm_component_of_at_most_400_kb() -> anyhow::Result<()> {
    let dir = target_dir().join("wasm32-wasip2").join("wasm");
    let mut report = Vec::new();
    for name in COMPONENTS {
        let path = dir.join(format!("gatecast_fn_{name}.wasm"));
        let bytes = std::fs::read(&path).map_err(|error| {
            anyhow::anyhow!(
                "{}: {error} (build with infra/run-tests.sh)",
                path.display()
            )
        })?;
        // `\0asm`, then version 0x0d and layer 1: the component binary format.
        assert_eq!(&bytes[..4], b"\0asm", "{name} is not WebAssembly");
        assert_eq!(
            &bytes[4..8],
            &[0x0d, 0x00, 0x01, 0x00],
            "{name} is not a component"
        );
        let size = bytes.len() as u64;
        report.push((name, size));
    }
    eprintln!("component sizes: {report:?}");
    let over: Vec<_> = report
        .iter()
        .filter(|(_, size)| *size > BUDGET_BYTES)
        .collect();
    assert!(
        over.is_empty(),
        "over the {BUDGET_BYTES}-byte budget: {over:?}"
    );
    Ok(())
}

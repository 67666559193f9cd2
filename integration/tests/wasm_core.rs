//! The filter's pure core, tested compiled to wasm32-wasip1: the target
//! Envoy runs. Its unit and integration tests (bucketing vectors, config
//! validation, decisions) run under wasmtime (PyPI `wasmtime`, installed
//! into `target/` on first use) through `tools/wasi-run.py`.

use integration::{pyvenv, wasm_cargo, workspace_root};

const WASMTIME: &str = "wasmtime==50.0.1";

#[test]
fn core_tests_pass_compiled_to_wasm32_wasip1() {
    let venv = pyvenv::venv("wasmtime-50.0.1", WASMTIME);
    let runner = format!(
        "{} {}",
        pyvenv::python(&venv).display(),
        workspace_root().join("tools/wasi-run.py").display()
    );
    let out = wasm_cargo()
        .args(["test", "--target", "wasm32-wasip1", "-p", "turnout"])
        .env("CARGO_TARGET_WASM32_WASIP1_RUNNER", runner)
        .output()
        .expect("run cargo test for wasm32-wasip1");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "wasm core tests failed:\n{stdout}\n{stderr}"
    );

    // Count what ran, so a runner that silently runs nothing cannot pass.
    let passed: u32 = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("test result: ok. "))
        .filter_map(|l| l.split(' ').next()?.parse::<u32>().ok())
        .sum();
    assert!(
        passed >= 40,
        "only {passed} core tests ran in wasm:\n{stdout}"
    );
    for suite in [
        "matches_independent_implementation",
        "out_of_range_weight_names_its_path",
        "ramping_up_never_moves_a_user_out_of_the_target",
    ] {
        assert!(
            stdout.contains(&format!("test {suite}"))
                || stdout.contains(&format!("::{suite} ... ok")),
            "{suite} did not run in wasm:\n{stdout}"
        );
    }
}

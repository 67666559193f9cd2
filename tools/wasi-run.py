#!/usr/bin/env python3
"""Cargo runner for wasm32-wasip1: runs a test binary under wasmtime (PyPI `wasmtime`).

Cargo calls it as `wasi-run.py <module.wasm> [args…]`, through
CARGO_TARGET_WASM32_WASIP1_RUNNER. This lets the filter's pure core run its
tests compiled to the same target Envoy executes, so the arithmetic checked is
the arithmetic shipped.
"""
import sys

import wasmtime


def main() -> int:
    module_path, args = sys.argv[1], sys.argv[1:]
    engine = wasmtime.Engine()
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    store = wasmtime.Store(engine)
    wasi = wasmtime.WasiConfig()
    wasi.argv = args
    wasi.inherit_stdout()
    wasi.inherit_stderr()
    store.set_wasi(wasi)
    module = wasmtime.Module.from_file(engine, module_path)
    # Test binaries link the filter's rlib, whose proxy-wasm ABI imports Envoy
    # would provide. No test calls them; if one did, the trap fails it.
    linker.define_unknown_imports_as_traps(module)
    instance = linker.instantiate(store, module)
    try:
        instance.exports(store)["_start"](store)
    except wasmtime.ExitTrap as exit_trap:
        return exit_trap.code
    return 0


if __name__ == "__main__":
    sys.exit(main())

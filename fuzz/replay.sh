#!/usr/bin/env bash
# Replays every committed corpus input through its fuzz target once, with
# all the targets' property assertions, on the pinned stable toolchain and
# without sanitizers: a deterministic regression check that CI runs. It does
# not fuzz (that needs nightly and cargo-fuzz: see fuzz/README.md).
set -euo pipefail
cd "$(dirname "$0")"
cargo build --quiet --release --target-dir target
status=0
for src in fuzz_targets/*.rs; do
    t=$(basename "$src" .rs)
    n=$(find "corpus/$t" -type f | wc -l)
    if target/release/"$t" -runs=0 -artifact_prefix=target/replay- "corpus/$t" \
        >"target/replay-$t.log" 2>&1; then
        echo "fuzz corpus $t: $n inputs replayed, ok"
    else
        echo "fuzz corpus $t: FAILED" >&2
        tail -40 "target/replay-$t.log" >&2
        status=1
    fi
done
exit $status

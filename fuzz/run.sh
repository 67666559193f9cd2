#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 600) each, one after the other,
# at the lowest CPU priority, then minimizes each corpus in place.
#   fuzz/run.sh [SECONDS] [TARGET...]
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# Crashes are written to fuzz/artifacts/<target>/ and stop that target's run.
set -uo pipefail
cd "$(dirname "$0")"
secs=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(config cookie query traceparent wire decide)
status=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    dict=()
    [ -f "dict/$t.dict" ] && dict=("-dict=dict/$t.dict")
    echo "=== $t: ${secs}s"
    nice -n 19 cargo +nightly fuzz run "$t" "corpus/$t" -- \
        -max_total_time="$secs" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 "${dict[@]}" || status=1
done
exit $status

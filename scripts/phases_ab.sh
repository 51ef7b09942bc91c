#!/usr/bin/env bash
# A/B of engine builds: runs `examples/phases` binaries alternately and prints per-phase medians
# and minima (ns per event), because one run of one binary varies by 5-10 % on a shared VM.
#
#   [PHASES_ARGS="early-off skewed"] [PHASES_CPU=1] scripts/phases_ab.sh RUNS KEYS BINARY...
#
# Build each variant with `cargo build --release --example phases` and copy
# $CARGO_TARGET_DIR/release/examples/phases aside under a name of its own first. PHASES_ARGS
# are passed to every run after KEYS (`early` / `early-off`: see examples/phases.rs); with
# PHASES_CPU every run is pinned to that CPU (`taskset -c`).
set -euo pipefail
[[ $# -ge 3 ]] || { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
runs=$1 keys=$2
shift 2
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for ((i = 1; i <= runs; i++)); do
    for bin in "$@"; do
        # shellcheck disable=SC2086 # PHASES_ARGS is a list of words
        if [[ -n ${PHASES_CPU:-} ]]; then
            line=$(taskset -c "$PHASES_CPU" "$bin" "$keys" ${PHASES_ARGS:-} | grep '^per event')
        else
            line=$("$bin" "$keys" ${PHASES_ARGS:-} | grep '^per event')
        fi
        echo "$bin $line" | tee -a "$out" >&2
    done
done
python3 - "$out" <<'PY'
import collections, re, statistics, sys
d = collections.defaultdict(lambda: collections.defaultdict(list))
for line in open(sys.argv[1]):
    name = line.split()[0]
    for k in ("decode", "ingest", "advance", "total"):
        d[name][k].append(int(re.search(k + r" (\d+) ns", line).group(1)))
for name, v in d.items():
    cols = " ".join(f"{k} {statistics.median(x):.0f} (min {min(x)})" for k, x in v.items())
    print(f"{name}: {cols} => {1e6 / statistics.median(v['total']):.0f} k events/s (median)")
PY

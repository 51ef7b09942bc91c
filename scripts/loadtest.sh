#!/usr/bin/env bash
# Load run of the Kafka service against a real broker (tansu): `simulate` produces, `run`
# consumes, /metrics and /proc measure. Not a test: it reports figures (docs/loadtest.md).
#
#   scripts/loadtest.sh [options]
#
# Scenarios:
#   throughput  pre-produce --events records over (--stores + 2 DCs) x --skus keys, then start
#               `stockwatch run` (fresh consumer group) and sample every second until all are
#               consumed: events/s from stockwatch_events_consumed_total (summed over types),
#               peak RSS from VmHWM of /proc/PID/status.
#   live        start `run` on empty topics, wait until it is ready, then produce --events records
#               as fast as simulate can while it consumes (no backlog: every input topic is read
#               near its head, interleaved): events/s as above. simulate, tansu and run share the
#               CPUs, so this is a lower bound of what `run` alone would do.
#   latency     start `run` on empty topics, wait until it is ready, then produce at --rate for
#               --duration seconds: p50/p99 of stockwatch_end_to_end_latency_seconds (producer
#               record timestamp -> alert acknowledged; only records that trigger an alert), of
#               stockwatch_early_alert_latency_seconds (the same for early alerts) and of
#               stockwatch_batch_duration_seconds, from the histogram buckets by linear
#               interpolation inside a bucket (as PromQL's histogram_quantile); the service's
#               own share, stockwatch_service_latency_seconds (record consumed -> alert handed
#               to the producer, and -> acknowledged), by stage; and, in the same run, the bare
#               consumer's floor: examples/drain reading the input topics (record timestamp ->
#               consumed, no engine).
#
# Options:
#   --scenario S        throughput | live | latency | both (throughput + latency) | all
#                       (default both)
#   --events N          throughput, live: records to produce (default 5000000)
#   --stores S          simulated stores (default 100; keys = (S + 2) x SKUs)
#   --skus K            simulated SKUs (default 1000)
#   --partitions P      partitions of every topic (default 8)
#   --rate R            latency: records/s produced (default 50000)
#   --duration SECS     latency: seconds of production (default 60)
#   --repeat N          runs per configuration (default 3)
#   --pin               `run` on CPU 1, everything else (broker, simulate, drain) on CPU 0
#                       (taskset; needs 2 CPUs): the service's latency apart from its neighbours
#   --knob NAME:VAR=VALUE[,VAR=VALUE...]
#                       also measure a configuration: `run` gets these environment overrides
#                       (e.g. poll64k:STOCKWATCH__KAFKA__POLL_MAX_MESSAGES=65536). Repeatable;
#                       the defaults ("default") are always measured first.
#   --no-default        measure only the --knob configurations
#   --perf SECS         perf record -g the first run of each scenario and configuration for SECS s
#                       (needs `perf`); the top functions go to DIR/.../perf-top.txt
#   --out DIR           results (default $CARGO_TARGET_DIR/loadtest/<time>, or target/...)
#   --bin PATH          the stockwatch binary (default: the release build; built if missing)
#   --run-timeout SECS  bound on one run's consumption (default 900)
#   --max-seconds SECS  bound on the whole script (default 7200); then it stops and cleans up
#   -h, --help          this text
#
# Everything listens on 127.0.0.1 on free ports; every process it starts (broker, simulate,
# run, perf) is stopped on exit. Results: DIR/<scenario>/<configuration>/<n>/ holds run.log,
# samples.csv (one row a second), summary.json, summary.metrics.txt (last scrape); DIR/report.md
# is the table of all runs.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
helper=(python3 "$root/scripts/loadtest_metrics.py")

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; }
die() {
    echo "loadtest.sh: $*" >&2
    exit 1
}
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

scenario=both events=5000000 stores=100 skus=1000 partitions=8 rate=50000 duration=60
repeat=3 perf_secs=0 out="" bin="" run_timeout=900 max_seconds=7200 with_default=1 pin=0
knobs=()
while [[ $# -gt 0 ]]; do
    case "$1" in
    -h | --help) usage; exit 0 ;;
    --scenario) scenario="$2"; shift 2 ;;
    --events) events="$2"; shift 2 ;;
    --stores) stores="$2"; shift 2 ;;
    --skus) skus="$2"; shift 2 ;;
    --partitions) partitions="$2"; shift 2 ;;
    --rate) rate="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    --repeat) repeat="$2"; shift 2 ;;
    --knob) knobs+=("$2"); shift 2 ;;
    --no-default) with_default=0; shift ;;
    --pin) pin=1; shift ;;
    --perf) perf_secs="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --bin) bin="$2"; shift 2 ;;
    --run-timeout) run_timeout="$2"; shift 2 ;;
    --max-seconds) max_seconds="$2"; shift 2 ;;
    *) usage >&2; die "unknown option $1" ;;
    esac
done
case "$scenario" in throughput | live | latency | both | all) ;; *) die "--scenario: throughput, live, latency, both or all" ;; esac
want() { # whether scenario $1 is selected
    case "$scenario" in
    all) return 0 ;;
    both) [[ "$1" == throughput || "$1" == latency ]] ;;
    *) [[ "$1" == "$scenario" ]] ;;
    esac
}
for v in events stores skus partitions duration repeat perf_secs run_timeout max_seconds; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || die "--${v//_/-} must be a whole number, got ${!v}"
done
[[ "$rate" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--rate must be a number, got $rate"
for k in "${knobs[@]}"; do
    [[ "$k" =~ ^[A-Za-z0-9_.-]+:[A-Z0-9_]+=.*$ ]] || die "--knob $k: expected NAME:VAR=VALUE[,VAR=VALUE...]"
done
command -v python3 >/dev/null || die "python3 is needed (standard library only)"
((perf_secs == 0)) || command -v perf >/dev/null || die "--perf needs perf"
# --pin: the service on CPU 1, its neighbours on CPU 0 (affinity is inherited by children).
pin_run=() pin_rest=()
if ((pin)); then
    command -v taskset >/dev/null || die "--pin needs taskset (util-linux)"
    (($(nproc) >= 2)) || die "--pin needs 2 CPUs, this machine has $(nproc)"
    pin_run=(taskset -c 1) pin_rest=(taskset -c 0)
fi

# ---- processes we start, stopped on exit (by PID, never by name) ----
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM
forget() { # drops a PID from the cleanup list once it has been reaped
    local keep=() p
    for p in "${pids[@]}"; do [[ "$p" == "$1" ]] || keep+=("$p"); done
    pids=("${keep[@]}")
}
# Runs a command in the background and waits for it, so that a signal is handled at once.
# `bg_wait -o FILE cmd...` sends its output to FILE.
bg_wait() {
    if [[ "$1" == -o ]]; then
        local outf="$2"
        shift 2
        "$@" >>"$outf" 2>&1 &
    else
        "$@" &
    fi
    local p=$! rc=0
    pids+=("$p")
    wait "$p" || rc=$?
    forget "$p"
    return "$rc"
}
started=$SECONDS
left() { echo $((max_seconds - (SECONDS - started))); }
check_deadline() { (($(left) > 0)) || die "--max-seconds $max_seconds reached; stopping"; }

# ---- the binary ----
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
if [[ -z "$bin" ]]; then
    bin="$CARGO_TARGET_DIR/release/stockwatch"
    if [[ ! -x "$bin" ]]; then
        log "building the release binary (cargo build --release)"
        (cd "$root" && cargo build --release --quiet) || die "cargo build --release failed"
    fi
fi
[[ -x "$bin" ]] || die "--bin $bin is not an executable"
# The bare consumer of the latency scenario (the floor), from the same build.
drain_bin="$(dirname "$bin")/examples/drain"
if want latency && [[ ! -x "$drain_bin" ]]; then
    log "building the bare consumer (cargo build --release --example drain)"
    (cd "$root" && cargo build --release --quiet --example drain) || die "cargo build --example drain failed"
    drain_bin="$CARGO_TARGET_DIR/release/examples/drain"
fi
out="${out:-$CARGO_TARGET_DIR/loadtest/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
log "results in $out; binary $bin"

# ---- the broker ----
tansu="$("$root/scripts/broker.sh" install)" || die "scripts/broker.sh install failed"
bport="$("${helper[@]}" port)"
"${pin_rest[@]}" "$root/scripts/broker.sh" run "$bport" >"$out/broker.log" 2>&1 &
broker_pid=$!
pids+=("$broker_pid")
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$bport") 2>/dev/null && break
    kill -0 "$broker_pid" 2>/dev/null || die "the broker exited: $(tail -3 "$out/broker.log")"
    sleep 0.1
done
bootstrap="127.0.0.1:$bport"
log "tansu ($tansu) on $bootstrap, pid $broker_pid"

{
    echo "date: $(date -u +%FT%TZ)"
    echo "host: $(nproc) CPUs, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
    echo "commit: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$root" diff --quiet HEAD -- src 2>/dev/null || echo ' (src modified)')"
    echo "args: --scenario $scenario --events $events --stores $stores --skus $skus --partitions $partitions --rate $rate --duration $duration --repeat $repeat${knobs[*]:+ --knob ${knobs[*]}}"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    if ((pin)); then echo "pinned: run on CPU 1; broker, simulate and drain on CPU 0"; fi
} >"$out/environment.txt"

# The simulate command line for topic prefix $1, in the array `sim` (then add flags). Runs as a
# simple command (not a function) so that `&` gives the PID of simulate itself.
simulate_cmd() {
    sim=("${pin_rest[@]}" "$bin" simulate --bootstrap-servers "$bootstrap" --partitions "$partitions"
        --topic-prefix "$1" --stores "$stores" --skus "$skus")
}

# Starts `run` in the background: run_pid, run_url. Args: prefix, group, logfile, knob spec.
start_run() {
    local prefix="$1" group="$2" logf="$3" spec="$4" hport
    # Each run writes its own output topics: a run of another configuration on the same input
    # must start from no state, not find the previous run's changelog without its offsets
    # (which the service refuses: `offsets_missing`).
    local outp="${prefix}${group}."
    hport="$("${helper[@]}" port)"
    local envs=(
        "STOCKWATCH__KAFKA__BOOTSTRAP_SERVERS=$bootstrap"
        "STOCKWATCH__KAFKA__GROUP_ID=$group"
        "STOCKWATCH__KAFKA__TOPICS__SALES=${prefix}sales"
        "STOCKWATCH__KAFKA__TOPICS__SHIPMENTS=${prefix}shipments"
        "STOCKWATCH__KAFKA__TOPICS__RECEIPTS=${prefix}receipts"
        "STOCKWATCH__KAFKA__TOPICS__AVAILABILITY=${prefix}availability"
        # The v1 stream has no counts or adjustments: their types share the sales topic (a
        # topic may carry several types), so the inputs are the four topics simulate creates.
        "STOCKWATCH__KAFKA__TOPICS__INVENTORY_COUNTS=${prefix}sales"
        "STOCKWATCH__KAFKA__TOPICS__ADJUSTMENTS=${prefix}sales"
        "STOCKWATCH__KAFKA__TOPICS__OPEN_ALERTS=${outp}alerts-open"
        "STOCKWATCH__KAFKA__TOPICS__LOCATIONS=${prefix}locations"
        "STOCKWATCH__KAFKA__TOPICS__ITEMS=${prefix}items"
        "STOCKWATCH__KAFKA__TOPICS__ALERTS=${outp}alerts"
        "STOCKWATCH__KAFKA__TOPICS__EARLY_ALERTS=${outp}alerts-early"
        "STOCKWATCH__KAFKA__TOPICS__DEAD_LETTER=${outp}dead-letter"
        "STOCKWATCH__KAFKA__TOPICS__CHANGELOG=${outp}changelog"
        "STOCKWATCH__HTTP__LISTEN=127.0.0.1:$hport"
        "STOCKWATCH__LOG__LEVEL=info"
    )
    if [[ -n "$spec" ]]; then
        local IFS=,
        local kv
        for kv in ${spec#*:}; do envs+=("$kv"); done
    fi
    printf '%s\n' "${envs[@]}" >"${logf%.log}.env"
    env "${envs[@]}" "${pin_run[@]}" "$bin" run >"$logf" 2>&1 &
    run_pid=$!
    pids+=("$run_pid")
    run_url="http://127.0.0.1:$hport"
}

stop_run() {
    kill -TERM "$run_pid" 2>/dev/null || true
    local i
    for i in $(seq 300); do
        kill -0 "$run_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$run_pid" 2>/dev/null || true
    wait "$run_pid" 2>/dev/null || true
    forget "$run_pid"
}

# perf record of the run for --perf seconds, in the background (perf_pid), starting 2 s after
# the first events are consumed; profile_report waits for it and writes DIR/perf-top.txt.
profile() {
    local pid="$1" dir="$2" url="$3"
    (
        for _ in $(seq 300); do
            (($("${helper[@]}" consumed "$url") > 0)) && break
            sleep 0.2
        done
        sleep 2
        exec perf record -F 999 -g -p "$pid" -o "$dir/perf.data" -- sleep "$perf_secs" >"$dir/perf.log" 2>&1
    ) &
    perf_pid=$!
    pids+=("$perf_pid")
}
profile_report() {
    local dir="$1"
    wait "$perf_pid" 2>/dev/null || true
    forget "$perf_pid"
    [[ -s "$dir/perf.data" ]] || return 0
    {
        echo "# perf record -F 999 -g -p <run> -- sleep $perf_secs: self time by thread, then by function"
        perf report -i "$dir/perf.data" --no-children --sort comm --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -15 || true
        echo
        perf report -i "$dir/perf.data" --no-children --sort dso,sym --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -60 || true
    } >"$dir/perf-top.txt"
}

configs=()
((with_default)) && configs+=("default")
configs+=("${knobs[@]}")
((${#configs[@]} > 0)) || die "nothing to measure (--no-default without --knob)"
cname() { [[ "$1" == default ]] && echo default || echo "${1%%:*}"; }
cspec() { [[ "$1" == default ]] && echo "" || echo "$1"; }

# ---- (a) throughput ----
if want throughput; then
    prefix="lt$$.tp."
    log "throughput: producing $events records over $(((stores + 2) * skus)) keys into ${prefix}* ($partitions partitions)"
    simulate_cmd "$prefix"
    bg_wait -o "$out/produce-throughput.log" "${sim[@]}" --events "$events" ||
        die "simulate failed: $(tail -3 "$out/produce-throughput.log")"
    log "  $(grep -m1 'records/s' "$out/produce-throughput.log" | sed 's/^ *//')"
    # The expected output: the same events (same seed and flags) through `replay --partitions`.
    mkdir -p "$out/throughput"
    bg_wait -o "$out/replay-throughput.log" "$bin" simulate --out "$out/throughput/events.jsonl" \
        --stores "$stores" --skus "$skus" --events "$events" ||
        die "simulate --out failed: $(tail -3 "$out/replay-throughput.log")"
    bg_wait -o "$out/replay-throughput.log" "$bin" replay --input "$out/throughput/events.jsonl" \
        --alerts-out /dev/null --partitions "$partitions" --report-json "$out/throughput/replay.json" ||
        die "replay failed: $(tail -3 "$out/replay-throughput.log")"
    rm -f "$out/throughput/events.jsonl"
    log "  replay --partitions $partitions: $(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["alerts_total"], "alerts,", r["events_applied"], "applied")' "$out/throughput/replay.json")"
    for c in "${configs[@]}"; do
        for i in $(seq "$repeat"); do
            check_deadline
            dir="$out/throughput/$(cname "$c")/$i"
            mkdir -p "$dir"
            log "throughput [$(cname "$c") $i/$repeat] load $(cut -d' ' -f1 /proc/loadavg)"
            start_run "$prefix" "lt$$-tp-$(cname "$c")-$i" "$dir/run.log" "$(cspec "$c")"
            if ((perf_secs > 0 && i == 1)); then profile "$run_pid" "$dir" "$run_url"; fi
            tmo=$((run_timeout < $(left) ? run_timeout : $(left)))
            bg_wait "${helper[@]}" sample --url "$run_url" --pid "$run_pid" --target "$events" \
                --timeout "$tmo" --stall 30 --settle 6 --csv "$dir/samples.csv" --summary "$dir/summary.json" ||
                log "  sampling failed"
            if ((perf_secs > 0 && i == 1)); then profile_report "$dir"; fi
            stop_run
        done
    done
fi

# ---- (b) live and (c) latency: `run` first, then the producer ----
# Args: scenario name, records to produce, then extra simulate flags.
run_with_producer() {
    local sc="$1" n="$2" c i dir prefix
    shift 2
    for c in "${configs[@]}"; do
        for i in $(seq "$repeat"); do
            check_deadline
            dir="$out/$sc/$(cname "$c")/$i"
            mkdir -p "$dir"
            prefix="lt$$.$sc$(cname "$c")$i."
            # Create the topics: one record, a day before the stream, with its own seed (ids
            # differ from the stream's, and it is far behind any watermark that matters).
            simulate_cmd "$prefix"
            "${sim[@]}" --events 1 --seed 1 --start 2026-01-04T00:00:00Z >"$dir/produce-create.log" 2>&1 ||
                die "simulate (topic creation) failed: $(tail -3 "$dir/produce-create.log")"
            log "$sc [$(cname "$c") $i/$repeat] load $(cut -d' ' -f1 /proc/loadavg)"
            start_run "$prefix" "lt$$-$sc-$(cname "$c")-$i" "$dir/run.log" "$(cspec "$c")"
            "${helper[@]}" ready "$run_url" "$partitions" 60 || die "run not ready within 60 s: $(tail -3 "$dir/run.log")"
            # Baseline for the counters and histograms: what the topic-creation record left.
            sleep 1
            "${helper[@]}" metrics "$run_url" >"$dir/base.metrics.txt"
            drain_pid=""
            if [[ "$sc" == latency ]]; then
                # The floor, in the same run: a bare consumer of the same input topics.
                "${pin_rest[@]}" "$drain_bin" "$bootstrap" "$n" "${prefix}sales" "${prefix}shipments" \
                    "${prefix}receipts" "${prefix}availability" >"$dir/drain.log" 2>&1 &
                drain_pid=$!
                pids+=("$drain_pid")
            fi
            "${sim[@]}" --events "$n" "$@" >"$dir/produce.log" 2>&1 &
            sim_pid=$!
            pids+=("$sim_pid")
            if ((perf_secs > 0 && i == 1)); then profile "$run_pid" "$dir" "$run_url"; fi
            tmo=$((run_timeout < $(left) ? run_timeout : $(left)))
            bg_wait "${helper[@]}" sample --url "$run_url" --pid "$run_pid" --target "$n" \
                --timeout "$tmo" --stall 20 --wait-pid "$sim_pid" \
                --base "$dir/base.metrics.txt" --csv "$dir/samples.csv" --summary "$dir/summary.json" ||
                log "  sampling failed"
            wait "$sim_pid" 2>/dev/null || true
            forget "$sim_pid"
            if [[ -n "$drain_pid" ]]; then
                wait "$drain_pid" 2>/dev/null || true
                forget "$drain_pid"
                # "record timestamp -> consumed: p50 A ms, p99 B ms, max C ms (N records ...)"
                sed -nE 's/.*p50 ([0-9]+) ms, p99 ([0-9]+) ms, max ([0-9]+) ms \(([0-9]+) records.*/{"p50_ms": \1, "p99_ms": \2, "max_ms": \3, "records": \4}/p' \
                    "$dir/drain.log" >"$dir/floor.json"
                [[ -s "$dir/floor.json" ]] || { rm -f "$dir/floor.json"; log "  drain: $(tail -2 "$dir/drain.log")"; }
            fi
            grep -E 'records/s' "$dir/produce.log" | sed 's/^ */  producer: /' >&2 || true
            if ((perf_secs > 0 && i == 1)); then profile_report "$dir"; fi
            stop_run
        done
    done
}
if want live; then
    run_with_producer live "$events"
fi
if want latency; then
    run_with_producer latency "$(awk -v r="$rate" -v d="$duration" 'BEGIN{printf "%d", r*d}')" --rate "$rate"
fi

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/environment.txt"
"${helper[@]}" report "$out" >"$out/report.md"
cat "$out/environment.txt" >&2
cat "$out/report.md"
log "done in $((SECONDS - started)) s; results in $out"

#!/usr/bin/env python3
"""Helper of scripts/loadtest.sh (Python 3 standard library only).

  loadtest_metrics.py port
      prints a free TCP port on 127.0.0.1
  loadtest_metrics.py consumed URL
      prints stockwatch_events_consumed_total summed over types (0 if unreachable)
  loadtest_metrics.py metrics URL
      prints the /metrics text
  loadtest_metrics.py ready URL PARTITIONS TIMEOUT_SECS
      waits until /readyz says ready with PARTITIONS partitions assigned; exit 1 on timeout
  loadtest_metrics.py sample --url URL --pid PID --target N --timeout S [--stall S]
                             [--wait-pid PID2] --csv F --summary F [--base METRICS]
      samples /metrics and /proc/PID every second until N events are consumed, the process
      exits, TIMEOUT passes, or nothing is consumed for STALL seconds after the first event
      (or, with --wait-pid, once PID2 has exited and consumption has stalled for 3 s).
      With --base, counters and histograms are taken relative to that earlier scrape.
      Writes one CSV row per sample and a JSON summary (rates, peak RSS, CPU, histograms).
  loadtest_metrics.py report DIR
      prints a Markdown table of every */summary.json under DIR

Quantiles come from the cumulative Prometheus histogram buckets, estimated by linear
interpolation inside the bucket that holds the rank (as PromQL's histogram_quantile does); a
quantile that falls in the +Inf bucket is reported as the last finite bound, flagged with ">".
"""

import json
import math
import os
import socket
import statistics
import sys
import time
import urllib.error
import urllib.request

TYPES = ("sale", "shipment", "receipt", "availability", "unknown")
HISTOGRAMS = (
    "stockwatch_end_to_end_latency_seconds",
    "stockwatch_early_alert_latency_seconds",
    "stockwatch_batch_duration_seconds",
    "stockwatch_batch_messages",
    # The service's own share: record consumed -> alert handed to the producer / acknowledged.
    'stockwatch_service_latency_seconds{stage="early",step="handed"}',
    'stockwatch_service_latency_seconds{stage="early",step="acknowledged"}',
    'stockwatch_service_latency_seconds{stage="confirmed",step="handed"}',
    'stockwatch_service_latency_seconds{stage="confirmed",step="acknowledged"}',
)
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def fetch(url, timeout=2.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, ValueError):
        return None, ""


def parse(text):
    """Prometheus text format -> {(name, frozenset(labels)): value}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        try:
            head, value = line.rsplit(" ", 1)
            v = float(value)
        except ValueError:
            continue
        labels = frozenset()
        name = head
        if "{" in head:
            name, rest = head.split("{", 1)
            pairs = []
            for part in rest.rstrip("}").split(","):
                if "=" in part:
                    k, val = part.split("=", 1)
                    pairs.append((k, val.strip('"')))
            labels = frozenset(pairs)
        out[(name, labels)] = v
    return out


def total(m, name, **want):
    s = 0.0
    for (n, labels), v in m.items():
        if n != name:
            continue
        d = dict(labels)
        if all(d.get(k) == val for k, val in want.items()):
            s += v
    return s


def by_label(m, name, label):
    out = {}
    for (n, labels), v in m.items():
        if n == name:
            out[dict(labels).get(label, "")] = v
    return out


def series(key):
    """'name{a="x",b="y"}' -> ('name', {'a': 'x', 'b': 'y'})."""
    if "{" not in key:
        return key, {}
    name, rest = key.split("{", 1)
    want = {}
    for part in rest.rstrip("}").split(","):
        k, v = part.split("=", 1)
        want[k] = v.strip('"')
    return name, want


def buckets(m, key):
    """Cumulative buckets [(le, count)] of the histogram series `key`, sorted by le (+Inf
    last)."""
    name, want = series(key)
    rows = []
    for (n, labels), v in m.items():
        if n == name + "_bucket":
            d = dict(labels)
            le = d.pop("le", None)
            if d == want:
                rows.append((math.inf if le == "+Inf" else float(le), v))
    rows.sort()
    return rows


def quantile(rows, q):
    """Linear interpolation inside the bucket holding rank q*count (histogram_quantile)."""
    if not rows or rows[-1][1] <= 0:
        return None
    count = rows[-1][1]
    rank = q * count
    prev_le, prev_c = 0.0, 0.0
    for le, c in rows:
        if c >= rank:
            if math.isinf(le):
                return {"value": prev_le, "above_last_bucket": True}
            if c == prev_c:
                return {"value": le, "above_last_bucket": False}
            return {
                "value": prev_le + (le - prev_le) * (rank - prev_c) / (c - prev_c),
                "above_last_bucket": False,
            }
        prev_le, prev_c = le, c
    return None


def hist_summary(m, base, key):
    rows = buckets(m, key)
    if base is not None:
        b = dict(buckets(base, key))
        rows = [(le, c - b.get(le, 0.0)) for le, c in rows]
    count = rows[-1][1] if rows else 0.0
    name, want = series(key)
    sum_key = (name + "_sum", frozenset(want.items()))
    s = m.get(sum_key, 0.0)
    if base is not None:
        s -= base.get(sum_key, 0.0)
    return {
        "count": count,
        "mean": (s / count) if count else None,
        "p50": quantile(rows, 0.50),
        "p90": quantile(rows, 0.90),
        "p99": quantile(rows, 0.99),
        "buckets": [[("+Inf" if math.isinf(le) else le), c] for le, c in rows],
    }


def proc_status(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmHWM:", "VmRSS:")):
                    k, v = line.split(":", 1)
                    out[k] = int(v.split()[0])  # kB
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
            out["cpu_s"] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return None
    return out


def schedstat(pid):
    """(on-CPU s, runqueue-wait s) summed over the threads of PID (/proc/PID/task/*/schedstat).
    Runqueue wait is time a thread was runnable but another process had the CPU: contention."""
    on = wait = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                a, b, _ = f.read().split()
            on += int(a)
            wait += int(b)
        except (OSError, ValueError):
            continue
    return on / 1e9, wait / 1e9


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return f.read().split()[0]
    except OSError:
        return "?"


def alive(pid):
    """Whether PID runs (a zombie, exited but not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def pct(values, p):
    if not values:
        return None
    v = sorted(values)
    k = (len(v) - 1) * p
    lo, hi = math.floor(k), math.ceil(k)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def cmd_sample(args):
    opts = {"--stall": "30", "--wait-pid": None, "--base": None, "--settle": "0"}
    i = 0
    while i < len(args):
        opts[args[i]] = args[i + 1]
        i += 2
    url, pid = opts["--url"], int(opts["--pid"])
    target, timeout, stall = int(opts["--target"]), float(opts["--timeout"]), float(opts["--stall"])
    wait_pid = int(opts["--wait-pid"]) if opts["--wait-pid"] else None
    base = None
    if opts["--base"]:
        with open(opts["--base"]) as f:
            base = parse(f.read())
    base_consumed = total(base, "stockwatch_events_consumed_total") if base else 0.0
    base_late = total(base, "stockwatch_events_rejected_total", reason="late") if base else 0.0
    csv = open(opts["--csv"], "w")
    csv.write(
        "t_s,consumed,rate_per_s," + ",".join(f"consumed_{t}" for t in TYPES)
        + ",applied,rejected,late,dead_letters,alerts,pending,vm_rss_kb,vm_hwm_kb,cpu_s\n"
    )
    t0 = time.monotonic()
    last_t, last_c = t0, None
    rates, samples = [], []
    first_t = None
    last_progress = t0
    peak_hwm, last_text, last_proc, reason = 0, "", None, "timeout"
    cpu_first = None
    sched_first = prev_sched = None
    load_first = None
    next_at = t0
    while True:
        next_at += 1.0
        time.sleep(max(0.0, next_at - time.monotonic()))
        now = time.monotonic()
        proc = proc_status(pid)
        status, text = fetch(url + "/metrics")
        if proc is None:
            reason = "process exited"
            break
        last_proc = proc
        peak_hwm = max(peak_hwm, proc.get("VmHWM", 0))
        if status != 200:
            if now - t0 > timeout:
                break
            continue
        last_text = text
        m = parse(text)
        consumed = total(m, "stockwatch_events_consumed_total") - base_consumed
        row = {
            "t": now - t0,
            "consumed": consumed,
            "types": [total(m, "stockwatch_events_consumed_total", type=t) for t in TYPES],
            "applied": total(m, "stockwatch_events_applied_total"),
            "rejected": total(m, "stockwatch_events_rejected_total"),
            "late": total(m, "stockwatch_events_rejected_total", reason="late"),
            "dead": total(m, "stockwatch_dead_letters_total"),
            "alerts": total(m, "stockwatch_alerts_total"),
            "pending": total(m, "stockwatch_pending_events"),
        }
        rate = None
        if last_c is not None and now > last_t:
            rate = (consumed - last_c) / (now - last_t)
            if first_t is not None:
                rates.append((consumed, rate))
        if consumed > 0 and first_t is None:
            # The interval that saw the first events started at the previous sample.
            first_t = last_t if last_c is not None else now
            cpu_first = proc["cpu_s"]
            sched_first = prev_sched or schedstat(pid)
            load_first = loadavg()
        prev_sched = schedstat(pid) or prev_sched
        if last_c is None or consumed > last_c:
            last_progress = now
        last_t, last_c = now, consumed
        samples.append((now, consumed, row["late"] - base_late))
        csv.write(
            f"{row['t']:.2f},{consumed:.0f},{'' if rate is None else f'{rate:.0f}'},"
            + ",".join(f"{v:.0f}" for v in row["types"])
            + f",{row['applied']:.0f},{row['rejected']:.0f},{row['late']:.0f},{row['dead']:.0f},"
            f"{row['alerts']:.0f},{row['pending']:.0f},{proc.get('VmRSS', 0)},"
            f"{proc.get('VmHWM', 0)},{proc['cpu_s']:.2f}\n"
        )
        csv.flush()
        if consumed >= target:
            reason = "target reached"
            break
        if wait_pid and not alive(wait_pid) and now - last_progress >= 3:
            reason = "producer done, consumption stalled 3 s"
            break
        if first_t is not None and now - last_progress >= stall:
            reason = f"no progress for {stall:.0f} s"
            break
        if now - t0 > timeout:
            break
    # Settle: once everything is consumed, inputs go idle and the watermark releases what the
    # lateness still held; scrape until applied/alerts stop changing for --settle seconds.
    settle = float(opts["--settle"])
    settled = None
    if reason == "target reached" and settle > 0:
        m = parse(last_text)
        prev = (total(m, "stockwatch_events_applied_total"), total(m, "stockwatch_alerts_total"))
        changed = start = time.monotonic()
        while time.monotonic() - changed < settle and time.monotonic() - start < 120:
            time.sleep(1.0)
            status, text = fetch(url + "/metrics")
            if status != 200:
                continue
            last_text = text
            m = parse(text)
            cur = (total(m, "stockwatch_events_applied_total"), total(m, "stockwatch_alerts_total"))
            if cur != prev:
                changed, prev = time.monotonic(), cur
        settled = {"applied": prev[0], "alerts": prev[1],
                   "pending": total(m, "stockwatch_pending_events")}
    csv.close()
    m = parse(last_text)
    end_t = last_t
    consumed = (total(m, "stockwatch_events_consumed_total") - base_consumed) if m else 0
    elapsed = (end_t - first_t) if first_t is not None else None
    # "Sustained": per-second rates while between 5 % and 95 % of the events (ramp-up and
    # tail excluded).
    mid = [r for c, r in rates if 0.05 * target <= c <= 0.95 * target]
    summary = {
        "stop_reason": reason,
        "target_events": target,
        "consumed": consumed,
        "elapsed_s": elapsed,
        "avg_events_per_s": (consumed / elapsed) if elapsed else None,
        "sustained_median_events_per_s": statistics.median(mid) if mid else None,
        "sustained_p10_events_per_s": pct(mid, 0.10),
        "sustained_p90_events_per_s": pct(mid, 0.90),
        "max_1s_events_per_s": max((r for _, r in rates), default=None),
        "peak_rss_kb": peak_hwm,
        "cpu_s": (last_proc["cpu_s"] - cpu_first) if last_proc and cpu_first is not None else None,
        "applied": total(m, "stockwatch_events_applied_total") if m else None,
        "applied_by_type": by_label(m, "stockwatch_events_applied_total", "type") if m else {},
        "consumed_by_type": by_label(m, "stockwatch_events_consumed_total", "type") if m else {},
        "rejected_by_reason": {
            k: v for k, v in by_label(m, "stockwatch_events_rejected_total", "reason").items() if v
        } if m else {},
        "dead_letters": total(m, "stockwatch_dead_letters_total") if m else None,
        "alerts": total(m, "stockwatch_alerts_total") if m else None,
        "pending_events": total(m, "stockwatch_pending_events") if m else None,
        "tracked_keys": total(m, "stockwatch_tracked_keys") if m else None,
        "histograms": {h: hist_summary(m, base, h) for h in HISTOGRAMS} if m else {},
    }
    # Until the first `late` rejection: the engine path without dead-lettering.
    clean = [(t, c) for t, c, late in samples if late == 0 and first_t is not None and t > first_t]
    if clean and clean[-1][1] > 0:
        summary["before_first_late"] = {
            "events": clean[-1][1],
            "seconds": clean[-1][0] - first_t,
            "events_per_s": clean[-1][1] / (clean[-1][0] - first_t),
        }
    if summary["cpu_s"] is not None and elapsed:
        summary["cpu_utilisation"] = summary["cpu_s"] / elapsed
    if sched_first and prev_sched and elapsed:
        summary["threads_on_cpu_s"] = prev_sched[0] - sched_first[0]
        summary["threads_runqueue_wait_s"] = prev_sched[1] - sched_first[1]
        summary["cpu_utilisation"] = summary["threads_on_cpu_s"] / elapsed
    if settled is not None:
        summary["settled"] = settled
    summary["loadavg_1m_at_start"] = load_first
    summary["loadavg_1m_at_end"] = loadavg()
    with open(opts["--summary"], "w") as f:
        json.dump(summary, f, indent=1)
    with open(os.path.splitext(opts["--summary"])[0] + ".metrics.txt", "w") as f:
        f.write(last_text)
    print(
        f"  {reason}: {consumed:.0f} events in {elapsed or 0:.1f} s, avg "
        f"{summary['avg_events_per_s'] or 0:,.0f}/s, sustained median "
        f"{summary['sustained_median_events_per_s'] or 0:,.0f}/s, peak RSS {peak_hwm / 1024:.0f} MiB",
        file=sys.stderr,
    )
    return 0


def fmt_q(q, unit=1.0, suffix=""):
    if not q:
        return "–"
    v = q["value"] * unit
    s = (f"{v:,.0f}" if v >= 100 else f"{v:.3g}") + suffix
    return (">" + s) if q["above_last_bucket"] else s


def cmd_report(root):
    rows = []
    for dirpath, _, files in sorted(os.walk(root)):
        if "summary.json" in files:
            with open(os.path.join(dirpath, "summary.json")) as f:
                rows.append((os.path.relpath(dirpath, root), json.load(f)))
    print(
        "| run | events | avg ev/s | sustained ev/s (median [p10–p90] of 1 s rates) | "
        "alerts settled / replay | late | "
        "dead letters | alerts | e2e p50 / p99 (alerts) | early e2e p50 / p99 (early alerts) | "
        "batch p50 / p99 | batch msgs p50 | "
        "peak RSS | CPU (run) | runq wait | load 1m |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, s in rows:
        h = s.get("histograms", {})
        lat = h.get("stockwatch_end_to_end_latency_seconds", {})
        early = h.get("stockwatch_early_alert_latency_seconds", {})
        bat = h.get("stockwatch_batch_duration_seconds", {})
        msg = h.get("stockwatch_batch_messages", {})

        def n(v):
            return "–" if v is None else f"{v:,.0f}"

        def check(name, s):
            # The alert count once settled against `replay --partitions` on the same events.
            got = (s.get("settled") or {}).get("alerts")
            want = None
            path = os.path.join(root, name.split("/")[0], "replay.json")
            if os.path.exists(path):
                with open(path) as f:
                    want = json.load(f).get("alerts_total")
            if got is None:
                return "–"
            mark = "" if want is None else (" ✓" if got == want else " ✗")
            return f"{n(got)} / {n(want)}{mark}"

        def rq(s):
            w, e = s.get("threads_runqueue_wait_s"), s.get("elapsed_s")
            return "–" if w is None or not e else f"{100 * w / e:.0f} %"

        def cpu(s):
            u = s.get("cpu_utilisation")
            return "–" if u is None else f"{100 * u:.0f} %"

        print(
            f"| {name} | {n(s.get('consumed'))} | {n(s.get('avg_events_per_s'))} | "
            f"{n(s.get('sustained_median_events_per_s'))} [{n(s.get('sustained_p10_events_per_s'))}–"
            f"{n(s.get('sustained_p90_events_per_s'))}] | {check(name, s)} | "
            f"{n(s.get('rejected_by_reason', {}).get('late', 0))} | {n(s.get('dead_letters'))} | "
            f"{n(s.get('alerts'))} | {fmt_q(lat.get('p50'), 1000, ' ms')} / "
            f"{fmt_q(lat.get('p99'), 1000, ' ms')} (n={n(lat.get('count'))}) | "
            f"{fmt_q(early.get('p50'), 1000, ' ms')} / "
            f"{fmt_q(early.get('p99'), 1000, ' ms')} (n={n(early.get('count'))}) | "
            f"{fmt_q(bat.get('p50'), 1000, ' ms')} / {fmt_q(bat.get('p99'), 1000, ' ms')} | "
            f"{fmt_q(msg.get('p50'))} | {s.get('peak_rss_kb', 0) / 1024:.0f} MiB | "
            f"{cpu(s)} | {rq(s)} | {s.get('loadavg_1m_at_start')}→{s.get('loadavg_1m_at_end')} |"
        )
    own = [(name, s) for name, s in rows if name.startswith("latency/")]
    if own:
        # The service's own share (record consumed -> alert handed to the producer, and ->
        # acknowledged / committed), beside the bare consumer's floor measured in the same run
        # (examples/drain: record timestamp -> consumed, no engine).
        print()
        print(
            "| run | early: handed p50 / p99 | early: acknowledged p50 / p99 | "
            "confirmed: handed p50 / p99 | confirmed: acknowledged p50 / p99 | "
            "bare consumer floor p50 / p99 |"
        )
        print("|---|---|---|---|---|---|")
        for name, s in own:
            h = s.get("histograms", {})

            def pq(stage, step):
                x = h.get(
                    f'stockwatch_service_latency_seconds{{stage="{stage}",step="{step}"}}', {}
                )
                count = x.get("count")
                n = "–" if count is None else f"{count:,.0f}"
                return (
                    f"{fmt_q(x.get('p50'), 1000, ' ms')} / {fmt_q(x.get('p99'), 1000, ' ms')}"
                    f" (n={n})"
                )

            floor = "–"
            path = os.path.join(root, name, "floor.json")
            if os.path.exists(path):
                with open(path) as f:
                    fl = json.load(f)
                floor = f"{fl['p50_ms']} ms / {fl['p99_ms']} ms (n={fl['records']:,})"
            print(
                f"| {name} | {pq('early', 'handed')} | {pq('early', 'acknowledged')} | "
                f"{pq('confirmed', 'handed')} | {pq('confirmed', 'acknowledged')} | {floor} |"
            )
    return 0


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0 if len(argv) >= 2 else 2
    cmd = argv[1]
    if cmd == "port":
        print(free_port())
        return 0
    if cmd == "consumed":
        status, text = fetch(argv[2] + "/metrics")
        print(int(total(parse(text), "stockwatch_events_consumed_total")) if status == 200 else 0)
        return 0
    if cmd == "metrics":
        status, text = fetch(argv[2] + "/metrics")
        sys.stdout.write(text)
        return 0 if status == 200 else 1
    if cmd == "ready":
        url, parts, deadline = argv[2], int(argv[3]), time.monotonic() + float(argv[4])
        while time.monotonic() < deadline:
            status, text = fetch(url + "/readyz")
            if status == 200:
                try:
                    r = json.loads(text)
                    if r.get("ready") and r.get("assigned_partitions") == parts:
                        return 0
                except ValueError:
                    pass
            time.sleep(0.2)
        return 1
    if cmd == "sample":
        return cmd_sample(argv[2:])
    if cmd == "report":
        return cmd_report(argv[2])
    print(f"unknown command {cmd!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""An offline model retrained in the stream, simulated: would a GBDT refitted every R hours on
the scored stores' own matured label snapshots (what the service could keep) close the online
model's gap to the offline reference?

Reads the feature rows an `stockwatch evaluate --reference --out DIR` run left in
DIR/features.parquet and takes the scored rows (split 1) in hour order. At each refit time T (a
multiple of R hours) a LightGBM model is trained on the rows matured by then (hour <= T - H):
the last N of them (`--buffer`, 0: all), or a random sample of at most S of them (`--sample`);
it scores the rows with T <= hour < T + R. Before `--min-rows` rows have matured, rows get the
matured rate. `--groups G` trains one model per group of series (a hash of `series`), as the
service trains one model per partition. Prints ROC AUC and Brier of all scored rows and of the
rows from day 14 on, with the CPU seconds of the largest refits. One thread.

    python instream.py --features DIR/features.parquet --horizon-hours 24 \\
        [--leaves 15 --rounds 100 --lr 0.1 | --reference-params] [--buffer N] [--sample S] \\
        [--refit R] [--groups G]
"""

import argparse
import time

import lightgbm as lgb
import numpy as np
import pyarrow.parquet as pq

from depth import roc_auc
from gbdt import KEY_COLUMNS, PARAMS, ROUNDS


def scored_rows(features):
    """The scored rows (split 1) in hour order: (x, label, hour, series)."""
    t = pq.read_table(features)
    names = [c for c in t.column_names if c not in KEY_COLUMNS]
    idx = np.flatnonzero(t.column("split").to_numpy() == 1)
    order = idx[np.argsort(t.column("hour").to_numpy()[idx], kind="stable")]
    x = np.empty((len(order), len(names)), dtype=np.float32)
    for j, c in enumerate(names):
        x[:, j] = t.column(c).to_numpy()[order]
    col = lambda c: t.column(c).to_numpy()[order]  # noqa: E731
    return x, col("label").astype(np.float32), col("hour").astype(np.int64), col("series")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--features", required=True, help="DIR/features.parquet of evaluate --reference")
    ap.add_argument("--horizon-hours", type=int, required=True, help="the run's horizon H")
    ap.add_argument("--reference-params", action="store_true", help="gbdt.py's parameters and rounds")
    ap.add_argument("--leaves", type=int, default=15)
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--buffer", type=int, default=0, help="train on the last N matured rows (0: all)")
    ap.add_argument("--sample", type=int, default=0, help="at most this many of them, sampled (0: all)")
    ap.add_argument("--refit", type=int, default=24, help="hours between refits")
    ap.add_argument("--groups", type=int, default=1, help="one model per group of series")
    ap.add_argument("--min-rows", type=int, default=2000)
    a = ap.parse_args()

    x, y, hour, series = scored_rows(a.features)
    if a.reference_params:
        params, rounds = dict(PARAMS, num_threads=1), ROUNDS
    else:
        params = dict(PARAMS, num_leaves=a.leaves, learning_rate=a.lr, num_threads=1)
        rounds = a.rounds
    h = (series.astype(np.uint64) * np.uint64(2654435761)) & np.uint64(0xFFFFFFFF)
    group = ((h >> np.uint64(16)) % np.uint64(a.groups)).astype(np.int64)
    rng = np.random.default_rng(1)
    p = np.full(len(y), np.nan)
    refits = []  # (training rows, CPU seconds)
    t_all = time.time()
    for g in range(a.groups):
        gi = np.flatnonzero(group == g)
        hg = hour[gi]
        for t in range(0, int(hg.max()) + 1, a.refit):
            s0, s1 = np.searchsorted(hg, t, "left"), np.searchsorted(hg, t + a.refit, "left")
            if s1 == s0:
                continue
            end = np.searchsorted(hg, t - a.horizon_hours, "right")
            rows = gi[max(0, end - a.buffer) if a.buffer else 0 : end]
            if a.sample and len(rows) > a.sample:
                rows = np.sort(rng.choice(rows, a.sample, replace=False))
            if len(rows) < a.min_rows:
                p[gi[s0:s1]] = y[rows].mean() if len(rows) else 0.5
                continue
            c0 = time.process_time()
            booster = lgb.train(params, lgb.Dataset(x[rows], label=y[rows]), num_boost_round=rounds)
            refits.append((len(rows), time.process_time() - c0))
            p[gi[s0:s1]] = booster.predict(x[gi[s0:s1]], num_threads=1)
        print(f"group {g + 1}/{a.groups} done, {time.time() - t_all:.0f} s", flush=True)
    late = hour >= 14 * 24
    r = np.array(refits)
    big = r[r[:, 0] >= 0.9 * r[:, 0].max()]
    print(
        f"all rows: ROC AUC {roc_auc(y, p):.4f} Brier {np.mean((p - y) ** 2):.4f}; "
        f"from day 14: ROC AUC {roc_auc(y[late], p[late]):.4f} Brier {np.mean((p[late] - y[late]) ** 2):.4f}; "
        f"{len(r)} refits, {big[:, 1].mean():.1f} CPU s at {int(r[:, 0].max())} rows",
        flush=True,
    )


if __name__ == "__main__":
    main()

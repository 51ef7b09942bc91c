"""How deep the reference's interactions must go: the reference of `gbdt.py` retrained with
trees of 2, 3, 7 and 63 leaves (2: stumps, an additive model; 63: the reference itself) on the
same feature rows, each scored on the same rows.

Reads the feature rows a `stockwatch evaluate --reference --out DIR` run left in
DIR/features.parquet and prints, for each tree size, ROC AUC and Brier of the scored rows
(split 1). Stumps get 1,000 rounds (one feature per tree needs more of them), the others the
reference's 300; everything else is the reference's (`gbdt.PARAMS`), on one thread.

    python depth.py --features DIR/features.parquet [--leaves 2 3 7 63]
"""

import argparse
import time

import lightgbm as lgb
import numpy as np
from scipy.stats import rankdata

from gbdt import PARAMS, ROUNDS, load


def roc_auc(y, s):
    """ROC AUC with ties counted half (the Mann-Whitney statistic)."""
    r = rankdata(s)
    pos = y == 1
    n1 = pos.sum()
    n0 = len(y) - n1
    return (r[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--features", required=True, help="DIR/features.parquet of evaluate --reference")
    ap.add_argument("--leaves", type=int, nargs="+", default=[2, 3, 7, 63])
    ap.add_argument("--max-train-rows", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    names, x, y, train, score = load(a.features, a.max_train_rows, a.seed)
    print(f"{len(train)} training rows, {len(score)} scored rows, {len(names)} features", flush=True)
    for leaves in a.leaves:
        t0 = time.time()
        params = dict(PARAMS, num_leaves=leaves, num_threads=1)
        rounds = 1000 if leaves == 2 else ROUNDS
        booster = lgb.train(params, lgb.Dataset(x[train], label=y[train]), num_boost_round=rounds)
        p = booster.predict(x[score])
        print(
            f"leaves {leaves:3d} rounds {rounds:4d}: ROC AUC {roc_auc(y[score], p):.4f} "
            f"Brier {np.mean((p - y[score]) ** 2):.4f} ({time.time() - t0:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()

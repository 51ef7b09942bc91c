"""Offline gradient-boosted reference for `stockwatch evaluate --reference`.

Reads the feature rows `evaluate` wrote (Parquet: split, store, series, hour, label and the
online model's features, one column each, in the engine's order), trains LightGBM on the rows of
the training stores (split 0) and writes the probability of every scored row (split 1), in file
order, as the column `score` of a Parquet file that `evaluate` reads back.

The training stores are other stores than the scored ones, over the whole period: the reference
sees every hour of its stores at once (offline), the online model only the past of the scored
ones (prequential). Hyperparameters are fixed, written once, not tuned to any figure.

    python gbdt.py --features FEATURES.parquet --scores SCORES.parquet [--max-train-rows N]
    python gbdt.py --self-test   # a tiny synthetic fixture, no files
"""

import argparse
import sys
import time

import lightgbm as lgb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

KEY_COLUMNS = ("split", "store", "series", "hour", "label")
PARAMS = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 63,
    "min_data_in_leaf": 200,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "verbose": -1,
    "seed": 1,
    "num_threads": 2,
}
ROUNDS = 300


def fit_and_score(x_train, y_train, x_score, names):
    """Trains on (x_train, y_train), returns the probabilities of x_score."""
    data = lgb.Dataset(x_train, label=y_train, feature_name=list(names), free_raw_data=True)
    booster = lgb.train(PARAMS, data, num_boost_round=ROUNDS)
    return booster.predict(x_score).astype(np.float64)


def load(features, max_train_rows, seed):
    """The feature rows: (names, x, label, training row indices, scored row indices), the
    training rows sampled down to max_train_rows (seeded)."""
    table = pq.read_table(features)
    names = [c for c in table.column_names if c not in KEY_COLUMNS]
    missing = [c for c in KEY_COLUMNS if c not in table.column_names]
    if missing:
        sys.exit(f"{features}: no column {missing[0]!r}: not a stockwatch feature file")
    split = table.column("split").to_numpy()
    label = table.column("label").to_numpy().astype(np.float32)
    x = np.column_stack([table.column(c).to_numpy().astype(np.float32) for c in names])
    del table
    train = np.flatnonzero(split == 0)
    score = np.flatnonzero(split == 1)
    if len(train) == 0 or len(score) == 0:
        sys.exit(f"{features}: {len(train)} training rows and {len(score)} scored rows: need both")
    if len(train) > max_train_rows:
        rng = np.random.default_rng(seed)
        train = np.sort(rng.choice(train, size=max_train_rows, replace=False))
    return names, x, label, train, score


def run(features, scores, max_train_rows, seed):
    t0 = time.time()
    names, x, label, train, score = load(features, max_train_rows, seed)
    p = fit_and_score(x[train], label[train], x[score], names)
    pq.write_table(pa.table({"score": pa.array(p, type=pa.float64())}), scores)
    print(
        f"reference_gbdt: trained on {len(train)} rows ({label[train].mean():.3f} positive), "
        f"scored {len(score)} rows, {len(names)} features, {time.time() - t0:.1f} s",
        file=sys.stderr,
    )


def self_test():
    """A tiny fixture: the label depends on two features; the reference must rank it."""
    rng = np.random.default_rng(7)
    n = 4000
    x = rng.random((n, 3)).astype(np.float32)
    y = (rng.random(n) < 0.2 + 0.6 * (x[:, 0] > 0.5) * (x[:, 1] > 0.3)).astype(np.float32)
    params = dict(PARAMS, min_data_in_leaf=20)
    booster = lgb.train(params, lgb.Dataset(x[:3000], label=y[:3000]), num_boost_round=50)
    p = booster.predict(x[3000:])
    pos, neg = p[y[3000:] == 1], p[y[3000:] == 0]
    auc = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    assert auc > 0.75, auc
    assert 0.0 <= p.min() and p.max() <= 1.0
    print(f"self-test ok: AUC {auc:.3f} on the fixture")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--features", help="feature rows written by stockwatch evaluate")
    ap.add_argument("--scores", help="output: the scored rows' probabilities (Parquet)")
    ap.add_argument("--max-train-rows", type=int, default=1_000_000,
                    help="train on a random sample of at most this many rows (default 1,000,000)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--self-test", action="store_true", help="run on a tiny synthetic fixture")
    a = ap.parse_args()
    if a.self_test:
        self_test()
        return
    if not a.features or not a.scores:
        ap.error("--features and --scores are required")
    run(a.features, a.scores, a.max_train_rows, a.seed)


if __name__ == "__main__":
    main()

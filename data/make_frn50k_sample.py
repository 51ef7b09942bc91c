#!/usr/bin/env python3
"""Builds data/frn50k_sample.csv from a flattened CSV of FreshRetailNet-50K (stores 0 and 1;
see data/README.md for the source on Hugging Face).

Python 3 standard library only. Deterministic: the same source gives the same bytes.

    python3 data/make_frn50k_sample.py \
        --source frn50k_dev_sample_2stores.csv \
        --out data/frn50k_sample.csv --series 30

Selection: the source's (store, product) series are ranked by total sales over their 90 days
(ties by store, then product), and `--series` of them are taken at evenly spaced ranks, from the
slowest to the fastest seller, so that the sample spans the range of demand levels. Every day of
every selected series is kept, with the columns the simulator reads; values are copied verbatim.
"""

import argparse
import csv
import hashlib
import sys
from collections import defaultdict

COLUMNS = [
    "store_id",
    "product_id",
    "dt",
    "discount",
    "activity_flag",
    "hours_stock_status",
    "hours_sale",
]
ALLOWED_STORES = {"0", "1"}
DAYS = 90


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, help="frn50k_dev_sample_2stores.csv")
    parser.add_argument("--out", required=True, help="the sample to write")
    parser.add_argument("--series", type=int, default=30, help="series to keep (default 30)")
    args = parser.parse_args()

    with open(args.source, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    series = defaultdict(list)
    with open(args.source, newline="") as f:
        for row in csv.DictReader(f):
            if row["store_id"] not in ALLOWED_STORES:
                sys.exit(f"store {row['store_id']} is not in the test fixture's stores 0 and 1")
            series[(int(row["store_id"]), int(row["product_id"]))].append(row)
    for key, rows in series.items():
        if len(rows) != DAYS:
            sys.exit(f"series {key} has {len(rows)} days, expected {DAYS}")

    def total(key):
        return sum(float(r["hours_sale"].split()[h]) for r in series[key] for h in range(24))

    ranked = sorted(series, key=lambda k: (total(k), k))
    n = min(args.series, len(ranked))
    if n < 1:
        sys.exit("--series must be at least 1")
    if n == 1:
        picked = [ranked[len(ranked) // 2]]
    else:
        picked = [ranked[round(i * (len(ranked) - 1) / (n - 1))] for i in range(n)]

    with open(args.out, "w", newline="") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(COLUMNS)
        for key in sorted(picked):
            for row in sorted(series[key], key=lambda r: r["dt"]):
                out.writerow([row[c] for c in COLUMNS])
    print(
        f"{args.out}: {n} of {len(ranked)} series, {n * DAYS} rows; source sha256 {digest}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

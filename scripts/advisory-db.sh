#!/usr/bin/env bash
# Puts an offline RustSec advisory database where `cargo deny` looks by default
# ($CARGO_HOME/advisory-dbs/advisory-db-3157b0e258782691, the folder it derives from the
# default URL), so `cargo deny --offline check` works with no network. The database comes from
# a git bundle (a snapshot, replaced in place when refreshed): STOCKWATCH_ADVISORY_BUNDLE, else
# ../shared/advisory-db/advisory-db.bundle next to the repository (for a clone in /tmp, also
# /work/shared/advisory-db/advisory-db.bundle). Re-clones when the bundle's commit differs from
# the one in place, and prints the database path.
#
# Without a bundle (a plain clone) it says so on stderr and prints nothing: then run
# `cargo deny check` without `--offline`, and cargo-deny fetches the database itself from
# https://github.com/rustsec/advisory-db (.ci/run does exactly this).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
db_root="${CARGO_HOME:-$HOME/.cargo}/advisory-dbs"
db="$db_root/advisory-db-3157b0e258782691"

bundle=""
for b in "${STOCKWATCH_ADVISORY_BUNDLE:-}" \
    "$root/../shared/advisory-db/advisory-db.bundle" \
    /work/shared/advisory-db/advisory-db.bundle; do
    if [[ -n "$b" && -f "$b" ]]; then
        bundle="$b"
        break
    fi
done
if [[ -z "$bundle" ]]; then
    echo "advisory-db.sh: no offline advisory-db.bundle (STOCKWATCH_ADVISORY_BUNDLE or" \
        "../shared/advisory-db/); cargo deny will fetch the RustSec advisory database itself" \
        "from https://github.com/rustsec/advisory-db (run it without --offline)" >&2
    exit 0
fi

want="$(git bundle list-heads "$bundle" | awk '$2 == "HEAD" {print $1}')"
have="$(git -C "$db" rev-parse HEAD 2>/dev/null || true)"
if [[ -z "$want" || "$want" != "$have" ]]; then
    mkdir -p "$db_root"
    tmp="$(mktemp -d "$db_root/.advisory-db.XXXXXX")"
    git -c init.defaultBranch=main clone --quiet "$bundle" "$tmp/db"
    rm -rf "$db"
    mv "$tmp/db" "$db"
    rmdir "$tmp"
    echo "advisory-db.sh: $db at $(git -C "$db" log -1 --format='%h %s')" >&2
fi
echo "$db"

#!/usr/bin/env bash
# Runs examples/subscriber_test.py: the reference Python subscriber against a real broker
# (tansu on a loopback port) over alerts written by `stockwatch replay`, with redelivered
# copies; its open set must equal the replay's.
#
# Installs confluent-kafka (examples/requirements-subscriber.txt, pinned by hash) into
# .venv-subscriber on first use, builds the stockwatch binary (cargo, $CARGO_TARGET_DIR) and
# the broker (scripts/broker.sh install). Environment: PYTHON (default python3),
# STOCKWATCH_BIN (a stockwatch binary to use instead of building one).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv-subscriber"
python="${PYTHON:-python3}"
req="$root/examples/requirements-subscriber.txt"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"

if [[ ! -x "$venv/bin/python" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input \
        --require-hashes --only-binary=:all: -r "$req"
    echo "$want" >"$stamp"
fi

bin="${STOCKWATCH_BIN:-}"
if [[ -z "$bin" ]]; then
    (cd "$root" && cargo build --quiet --locked --bin stockwatch)
    bin="${CARGO_TARGET_DIR:-$root/target}/debug/stockwatch"
fi
tansu="$(bash "$root/scripts/broker.sh" install)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$venv/bin/python" "$root/examples/subscriber_test.py" \
    --stockwatch "$bin" --tansu "$tansu" --workdir "$work"

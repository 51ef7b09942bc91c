#!/usr/bin/env bash
# Checks the Prometheus rules: syntax and semantics (`promtool check rules`), then the unit
# tests of every alert (`promtool test rules`). promtool comes with Debian's `prometheus`
# package (.ci/run installs it). Metric names are checked against the service's catalogue by
# `cargo test --test observability`, the live /metrics by `cargo test --test prometheus`.
set -euo pipefail
cd "$(dirname "$0")"

promtool="${PROMTOOL:-promtool}"
if ! command -v "$promtool" >/dev/null; then
    echo "promtool not found: apt-get install prometheus (or set PROMTOOL)" >&2
    exit 1
fi
"$promtool" --version 2>&1 | head -n 1
"$promtool" check rules rules.yml
"$promtool" test rules rules_test.yml

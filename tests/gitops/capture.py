"""Writes what gitops/argocd ships besides the scripts (run from the repository root):

    .venv/bin/python -m tests.gitops.capture configmap
        gitops/argocd/resource-customizations.yaml, from the scripts
    .venv/bin/python -m tests.gitops.capture testdata
        that, plus each kind's health_test.yaml and testdata/, captured from real objects (needs the
        local cluster)

``testdata`` runs the real operator against the cluster (scenarios.py), reads every object back
from the API, and stores it (without managedFields) as Argo CD's test runner reads it, next to the
health the script gives it. It refuses to write a result the script gets wrong. The files are
committed; tests/gitops/test_argocd_files.py checks them without a cluster.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from tests.gitops.argo_lua import ARGOCD, KINDS, health, script
from tests.gitops.scenarios import CASES, Case, without_noise

CONFIGMAP = ARGOCD / "resource-customizations.yaml"

_CONFIGMAP_HEAD = """\
# Argo CD health checks for Herald's kinds (docs/gitops.md), as argocd-cm keys. Merge them in:
#   kubectl -n argocd patch configmap argocd-cm --type merge --patch-file gitops/argocd/resource-customizations.yaml
# or add the data keys to the argo-cd Helm chart's configs.cm, or use this as a kustomize patch.
# Generated from gitops/argocd/herald.dev/*/health.lua by `.venv/bin/python -m tests.gitops.capture configmap`:
# edit the scripts, then regenerate.
apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cm
  labels:
    app.kubernetes.io/name: argocd-cm
    app.kubernetes.io/part-of: argocd
data:
"""


def configmap_text() -> str:
    out = [_CONFIGMAP_HEAD]
    for kind in KINDS:
        out.append(f"  resource.customizations.health.herald.dev_{kind}: |\n")
        out.extend(f"    {line}\n" if line else "\n" for line in script(kind).splitlines())
    return "".join(out)


def input_path(case: Case) -> str:
    return f"testdata/{case.argo.lower()}_{case.name}.yaml"


def write_testdata(objects: dict[str, dict]) -> None:
    for kind in KINDS:
        here = ARGOCD / "herald.dev" / kind
        (here / "testdata").mkdir(parents=True, exist_ok=True)
        for old in (here / "testdata").glob("*.yaml"):
            old.unlink()
        tests = []
        for case in CASES.values():
            if case.kind != kind:
                continue
            obj = without_noise(objects[case.name])
            got = health(kind, obj)
            if got["status"] != case.argo:
                raise SystemExit(f"{kind} {case.name}: the script says {got}, the case wants {case.argo}")
            path = input_path(case)
            (here / path).write_text(yaml.safe_dump(obj, sort_keys=False, width=1000))
            tests.append({"healthStatus": {"status": got["status"], "message": got["message"]}, "inputPath": path})
        (here / "health_test.yaml").write_text(yaml.safe_dump({"tests": tests}, sort_keys=False, width=1000))


def capture() -> dict[str, dict]:
    from kubernetes import client

    from tests.gitops.scenarios import produce
    from tests.integration.conftest import crds
    from tests.support.cluster import ROOT, start_cluster, unique_name
    from tests.support.herald import Herald
    from tests.support.operator import OperatorProcess

    tools = subprocess.run([ROOT / "tests/cluster/build-tools.sh", "paths"], capture_output=True, text=True, check=True)
    os.environ["PATH"] = tools.stdout.strip() + os.pathsep + os.environ["PATH"]  # kubectl
    cluster = start_cluster()
    api = cluster.api_client()
    crds.__wrapped__(cluster)  # the integration tests' fixture, as a plain function
    core = client.CoreV1Api(api)
    namespace = unique_name("gitops-testdata")
    core.create_namespace({"metadata": {"name": namespace, "labels": {"herald.dev/test": "true"}}})
    operator = OperatorProcess(cluster.kubeconfig, namespace, Path(tempfile.mkdtemp(prefix="herald-capture-")))
    try:
        operator.start()
        try:
            return produce(Herald(api, namespace), operator)
        except BaseException:
            print(operator.log()[-20000:], file=sys.stderr)
            raise
        finally:
            operator.stop()
    finally:
        core.delete_namespace(namespace, propagation_policy="Background")
        api.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.gitops.capture", description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["configmap", "testdata"])
    args = parser.parse_args()
    if args.what == "testdata":
        write_testdata(capture())
    CONFIGMAP.write_text(configmap_text())


if __name__ == "__main__":
    main()

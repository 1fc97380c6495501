"""Running helm on the chart and reading what it renders."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from tests.support.cluster import ROOT

CHART = ROOT / "helm" / "herald"
# The chart's appVersion: image tags default to it.
APP_VERSION = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
RBAC_KINDS = ("ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")
BUILD_TOOLS = ROOT / "tests" / "cluster" / "build-tools.sh"


def _pinned(name: str) -> str:
    return re.search(rf"^{name}=v?(\S+)$", (ROOT / "tests" / "cluster" / "versions.env").read_text(), re.M).group(1)


# The Kubernetes version `helm template` and `helm lint` render for: the local cluster's. Without a cluster helm
# assumes the version it was built for, and a helm built by `go install` (tests/cluster/build-tools.sh) says 1.20,
# which the chart's kubeVersion (>=1.30) refuses.
KUBE_VERSION = _pinned("K8S_VERSION")


def helm_bin() -> str:
    """helm from PATH, else from the repo's pinned tool builds."""
    found = shutil.which("helm")
    if found:
        return found
    bin_dir = subprocess.run([str(BUILD_TOOLS), "paths"], capture_output=True, text=True, check=True).stdout.strip()
    return str(Path(bin_dir) / "helm")


def helm_docs_bin() -> str:
    """The pinned helm-docs (tests/cluster/helm-docs), built if the cache does not have it yet."""
    bin_dir = subprocess.run(
        [str(BUILD_TOOLS), "helm-docs"], capture_output=True, text=True, check=True, timeout=900
    ).stdout.strip()
    return str(Path(bin_dir) / "helm-docs")


def helm(
    *args: str, check: bool = True, kubeconfig: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """Run helm; `template` and `lint` render for KUBE_VERSION unless the arguments name another version."""
    env = dict(os.environ)
    if kubeconfig:
        env["KUBECONFIG"] = kubeconfig
    if args and args[0] in ("template", "lint") and not any(a.startswith("--kube-version") for a in args):
        args = (*args, "--kube-version", KUBE_VERSION)
    proc = subprocess.run([helm_bin(), *args], capture_output=True, text=True, env=env, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def set_args(values: dict[str, Any] | None = None, sets: Iterable[str] = ()) -> list[str]:
    """Values as --set-json (exact types), plus raw --set strings."""
    import json

    args: list[str] = []
    for key, value in (values or {}).items():
        args += ["--set-json", f"{key}={json.dumps(value)}"]
    for s in sets:
        args += ["--set", s]
    return args


def template_text(
    release: str = "herald",
    namespace: str = "herald-system",
    values: dict[str, Any] | None = None,
    sets: Iterable[str] = (),
    extra: Iterable[str] = (),
) -> str:
    return helm("template", release, str(CHART), "--namespace", namespace, *set_args(values, sets), *extra).stdout


def render(
    release: str = "herald",
    namespace: str = "herald-system",
    values: dict[str, Any] | None = None,
    sets: Iterable[str] = (),
    extra: Iterable[str] = (),
) -> list[dict]:
    """The rendered objects, parsed."""
    text = template_text(release, namespace, values, sets, extra)
    return [d for d in yaml.safe_load_all(text) if d]


class Objects(list):
    """Rendered objects with a few finders."""

    def of(self, kind: str) -> list[dict]:
        return [o for o in self if o["kind"] == kind]

    def one(self, kind: str, name: str | None = None, namespace: str | None = None) -> dict:
        found = [
            o
            for o in self.of(kind)
            if (name is None or o["metadata"]["name"] == name)
            and (namespace is None or o["metadata"].get("namespace") == namespace)
        ]
        assert len(found) == 1, f"{len(found)} {kind} named {name!r} in {namespace!r}: {[o['metadata'] for o in found]}"
        return found[0]

    def deployment(self) -> dict:
        return self.one("Deployment")

    def container(self) -> dict:
        [c] = self.deployment()["spec"]["template"]["spec"]["containers"]
        return c

    def env(self) -> dict[str, Any]:
        return {e["name"]: e.get("value", e.get("valueFrom")) for e in self.container()["env"]}


def objects(**kw) -> Objects:
    return Objects(render(**kw))

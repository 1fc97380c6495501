"""Running helm on the chart and reading what it renders."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from tests.support.cluster import ROOT

CHART = ROOT / "helm" / "herald"
RBAC_KINDS = ("ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")


def helm_bin() -> str:
    """helm from PATH, else from the repo's pinned tool builds."""
    found = shutil.which("helm")
    if found:
        return found
    bin_dir = subprocess.run(
        [str(ROOT / "tests" / "cluster" / "build-tools.sh"), "paths"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return str(Path(bin_dir) / "helm")


def helm(
    *args: str, check: bool = True, kubeconfig: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if kubeconfig:
        env["KUBECONFIG"] = kubeconfig
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
    """The rendered objects (templates only, not crds/), parsed."""
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

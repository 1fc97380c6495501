"""The test cluster: the repo's own local cluster, or an existing one (HERALD_CLUSTER=existing)."""

from __future__ import annotations

import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Cluster:
    kubeconfig: str

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess:
        env = dict(os.environ, KUBECONFIG=self.kubeconfig)
        return subprocess.run(
            ["kubectl", *args], input=input, env=env, capture_output=True, text=True, check=check, timeout=timeout
        )

    def api_client(self):
        from kubernetes import config

        return config.new_client_from_config(config_file=self.kubeconfig)


def start_cluster() -> Cluster:
    if os.environ.get("HERALD_CLUSTER") == "existing":
        path = os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
        return Cluster(kubeconfig=path)
    out = subprocess.run(
        [str(ROOT / "tests" / "cluster" / "cluster.sh"), "up"], check=True, capture_output=True, text=True
    )
    return Cluster(kubeconfig=out.stdout.strip().splitlines()[-1])


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"

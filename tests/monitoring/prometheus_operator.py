"""The Prometheus Operator, for real: the pinned prometheus-operator as a host process, its CRDs, and
what it generates, made runnable on this host.

* :func:`operator_binary` builds (or finds in the cache) the binary of tests/cluster/prometheus-operator, and
  :func:`prometheus_binary` the Prometheus built beside it; :func:`crd_files` are the CRDs of the same module
  version, from Go's module cache.
* :class:`PrometheusOperator` runs it against the cluster (a kubeconfig), scoped to some namespaces.
* :func:`host_prometheus_config` turns the configuration the operator generated for a pod into one for a
  Prometheus on this host: the API server address and credentials (the pod's are in-cluster), the rule
  files' mount path, and the ``$(VAR)`` placeholders the config-reloader sidecar expands.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from pydantic import BaseModel, ConfigDict, Field

from tests.monitoring.servers import free_port, wait_until
from tests.support.cluster import ROOT

BUILD_TOOLS = ROOT / "tests" / "cluster" / "build-tools.sh"
MODULE_DIR = ROOT / "tests" / "cluster" / "prometheus-operator"
MODULE = "github.com/prometheus-operator/prometheus-operator"
# The generated configuration mounts the rule ConfigMaps under this path in the Prometheus pod.
POD_RULES_DIR = "/etc/prometheus/rules/"


def module_version() -> str:
    """The pinned prometheus-operator version (tests/cluster/prometheus-operator/go.mod)."""
    found = re.search(rf"^(?:require)?\s*{re.escape(MODULE)} (v\S+)$", (MODULE_DIR / "go.mod").read_text(), re.M)
    assert found, "tests/cluster/prometheus-operator/go.mod does not require prometheus-operator"
    return found.group(1)


def operator_binary() -> Path:
    """The pinned binary, built into the cache by build-tools.sh when it is not there (about 10 minutes cold)."""
    proc = subprocess.run(
        [str(BUILD_TOOLS), "prometheus-operator"], capture_output=True, text=True, timeout=3000, check=False
    )
    assert proc.returncode == 0, f"build-tools.sh prometheus-operator failed:\n{proc.stderr[-4000:]}"
    return Path(proc.stdout.strip().splitlines()[-1]) / "prometheus-operator"


def prometheus_binary() -> Path:
    """The Prometheus built beside it, of the version prometheus-operator depends on: Debian's has no
    kubernetes_sd, which the generated configuration is made of. Not on PATH (Debian's stays there)."""
    return operator_binary().resolve().parent / "prometheus"


def crd_files() -> list[Path]:
    """The CRDs that ship in the pinned module (example/prometheus-operator-crd), from Go's module cache."""
    env = dict(os.environ, GOTOOLCHAIN="local", GOFLAGS="-mod=mod")
    proc = subprocess.run(
        ["go", "mod", "download", "-json", f"{MODULE}@{module_version()}"],
        cwd=MODULE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, f"go mod download failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
    crds = sorted((Path(json.loads(proc.stdout)["Dir"]) / "example" / "prometheus-operator-crd").glob("*.yaml"))
    assert crds, "no CRDs in the prometheus-operator module"
    return crds


class PrometheusOperator:
    """prometheus-operator as a host process, reconciling only ``namespaces``; stopped by its pid."""

    def __init__(self, binary: Path, kubeconfig: str, namespaces: list[str], workdir: Path) -> None:
        self.binary, self.kubeconfig, self.namespaces = binary, kubeconfig, namespaces
        self.log_path = workdir / "prometheus-operator.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> PrometheusOperator:
        port = free_port()
        argv = [
            str(self.binary),
            f"--namespaces={','.join(self.namespaces)}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
        with open(self.log_path, "wb") as log:  # the child keeps its own descriptor
            self._proc = subprocess.Popen(
                argv,
                env=dict(os.environ, KUBECONFIG=self.kubeconfig),  # read by its pkg/k8s
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

        def ready() -> bool:
            assert self.alive(), f"prometheus-operator exited:\n{self.log()}"
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout=60, what="prometheus-operator /healthz")
        return self

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log(self, chars: int = 8000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=15)


# -- the API server, as the host reaches it ----------------------------------------------------------


class _KubeconfigCluster(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")
    server: str
    ca_data: str | None = Field(None, alias="certificate-authority-data")
    ca_file: str | None = Field(None, alias="certificate-authority")


class _KubeconfigUser(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")
    cert_data: str | None = Field(None, alias="client-certificate-data")
    cert_file: str | None = Field(None, alias="client-certificate")
    key_data: str | None = Field(None, alias="client-key-data")
    key_file: str | None = Field(None, alias="client-key")
    token: str | None = None


@dataclass(frozen=True)
class ApiAccess:
    """The API server's address and the files a Prometheus authenticates with (0600, in a test's directory)."""

    server: str
    ca_file: Path
    cert_file: Path | None = None
    key_file: Path | None = None
    token_file: Path | None = None

    def kubernetes_sd_fields(self) -> dict[str, Any]:
        """What a kubernetes_sd_config needs to reach the API server from outside the cluster."""
        tls: dict[str, Any] = {"ca_file": str(self.ca_file)}
        fields: dict[str, Any] = {"api_server": self.server, "tls_config": tls}
        if self.cert_file and self.key_file:
            tls.update(cert_file=str(self.cert_file), key_file=str(self.key_file))
        if self.token_file:
            fields["authorization"] = {"credentials_file": str(self.token_file)}
        return fields


def api_access(kubeconfig: str, directory: Path) -> ApiAccess:
    """The current context's server and credentials of ``kubeconfig``, as files in ``directory``."""
    doc = yaml.safe_load(Path(kubeconfig).read_text())
    ctx_name = doc["current-context"]
    ctx = next(c["context"] for c in doc["contexts"] if c["name"] == ctx_name)
    cl = _KubeconfigCluster.model_validate(next(c["cluster"] for c in doc["clusters"] if c["name"] == ctx["cluster"]))
    user = _KubeconfigUser.model_validate(next(u["user"] for u in doc["users"] if u["name"] == ctx["user"]))
    base = Path(kubeconfig).parent
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def materialise(name: str, data: str | None, file: str | None, encoded: bool = True) -> Path | None:
        if data is None and file is None:
            return None
        path = directory / name
        content = (base64.b64decode(data) if encoded else data.encode()) if data is not None else None
        path.touch(mode=0o600)
        path.write_bytes(content if content is not None else (base / str(file)).read_bytes())
        return path

    ca = materialise("ca.crt", cl.ca_data, cl.ca_file)
    assert ca, f"{kubeconfig}: the cluster has no certificate authority"
    return ApiAccess(
        server=cl.server,
        ca_file=ca,
        cert_file=materialise("client.crt", user.cert_data, user.cert_file),
        key_file=materialise("client.key", user.key_data, user.key_file),
        token_file=materialise("token", user.token, None, encoded=False),
    )


# -- what the operator generated -----------------------------------------------------------------------


def gunzip_secret(secret: Mapping[str, Any], key: str) -> str:
    """A gzipped key of a Secret as the API returns it (base64), as text."""
    return gzip.decompress(base64.b64decode(secret["data"][key])).decode()


def expand_placeholders(value: Any, env: Mapping[str, str]) -> Any:
    """``$(VAR)`` placeholders in every string of a parsed configuration, expanded from the pod's environment
    as prometheus-config-reloader does (strings stay strings: ``regex: $(SHARD)`` gives ``"0"``)."""

    def sub(m: re.Match[str]) -> str:
        assert m.group(1) in env, f"the generated configuration uses $({m.group(1)}), not in {sorted(env)}"
        return env[m.group(1)]

    if isinstance(value, str):
        return re.sub(r"\$\(([A-Z_][A-Z0-9_]*)\)", sub, value)
    if isinstance(value, list):
        return [expand_placeholders(v, env) for v in value]
    if isinstance(value, dict):
        return {k: expand_placeholders(v, env) for k, v in value.items()}
    return value


def host_prometheus_config(generated: str, api: ApiAccess, rules_dir: Path, env: Mapping[str, str]) -> str:
    """The generated configuration, runnable on this host: every kubernetes_sd_config gets the API server's
    address and credentials (the pod uses in-cluster ones), the rule files are read from ``rules_dir``
    instead of the pod's mount, and the reloader's placeholders are expanded. Nothing else changes."""
    cfg = expand_placeholders(yaml.safe_load(generated), env)

    def each_sd(section: Mapping[str, Any]) -> None:
        for sd in section.get("kubernetes_sd_configs") or []:
            assert "api_server" not in sd, f"the generated configuration names an API server: {sd}"
            sd.update(api.kubernetes_sd_fields())

    for job in cfg.get("scrape_configs") or []:
        each_sd(job)
    for am in (cfg.get("alerting") or {}).get("alertmanagers") or []:
        each_sd(am)
    if "rule_files" in cfg:
        cfg["rule_files"] = [
            str(rules_dir / f[len(POD_RULES_DIR) :]) if f.startswith(POD_RULES_DIR) else f for f in cfg["rule_files"]
        ]
    return yaml.safe_dump(cfg, sort_keys=False)

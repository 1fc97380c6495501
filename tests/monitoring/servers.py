"""Real Prometheus and Alertmanager processes for tests.

Plain classes, no pytest: any test package can use them
(``from tests.monitoring.servers import PrometheusServer``);
:mod:`tests.monitoring.fixtures` wraps them in pytest fixtures.

Each server runs on a free loopback port with its own temporary data
directory, is waited for by polling its readiness endpoint against a
deadline, and is stopped (SIGTERM, then SIGKILL) by :meth:`stop`.
The binaries come from Debian's ``prometheus`` and
``prometheus-alertmanager`` packages (``tests/tools/install-monitoring.sh``).
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO_ROOT / "tests" / "tools" / "install-monitoring.sh"
#: Herald's Prometheus alert rules, for ``prometheus_config(rule_files=[RULES_FILE])``.
RULES_FILE = REPO_ROOT / "alert-rules" / "herald.rules.yml"

T = TypeVar("T")


class ServerError(RuntimeError):
    """A server failed to start or answered an API call with an error."""


def wait_until(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """Poll ``probe`` until it returns a truthy value, or fail after ``timeout`` s.

    Returns the truthy value. Exceptions raised by ``probe`` count as "not yet"
    and the last one is chained to the timeout error.
    """
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            value = probe()
        except Exception as exc:
            last_exc = exc
            value = None
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}") from last_exc
        time.sleep(interval)  # the polling interval, bounded by the deadline


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def find_binary(*names: str) -> str:
    """The first of ``names`` on PATH (or ``/usr/bin``)."""
    for name in names:
        found = shutil.which(name) or shutil.which(name, path="/usr/bin:/usr/local/bin")
        if found:
            return found
    raise ServerError(f"none of {', '.join(names)} is installed; run {INSTALL_SCRIPT.relative_to(REPO_ROOT)}")


def ensure_installed() -> None:
    """Install Prometheus and Alertmanager with the repo's script if missing."""
    try:
        for names in (("prometheus",), ("promtool",), ("alertmanager", "prometheus-alertmanager"), ("amtool",)):
            find_binary(*names)
        return
    except ServerError:
        pass
    proc = subprocess.run(["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=900, check=False)
    if proc.returncode != 0:
        raise ServerError(f"{INSTALL_SCRIPT} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


def promtool() -> str:
    return find_binary("promtool")


def amtool() -> str:
    return find_binary("amtool")


class _Process:
    """A server process with its log file, stopped by pid only."""

    def __init__(self, argv: Sequence[str], log_path: Path, cwd: Path) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            self.argv,
            cwd=cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        self._log.close()


class _Server:
    """Common start/readiness/stop logic for Prometheus and Alertmanager."""

    name = "server"
    ready_path = "/-/ready"
    start_timeout = 30.0

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = "127.0.0.1"
        self.port = 0
        self._proc: _Process | None = None
        self._client = httpx.Client(timeout=10.0, trust_env=False)

    # subclasses: the command line for a port
    def _argv(self, port: int) -> list[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> _Server:
        last = ""
        # A port picked by free_port() can be taken before the server binds
        # it; try a few ports before giving up.
        for _ in range(3):
            port = free_port(self.host)
            proc = _Process(self._argv(port), self.workdir / f"{self.name}.log", self.workdir)
            self.port, self._proc = port, proc
            try:
                wait_until(self._ready_or_dead, timeout=self.start_timeout, what=f"{self.name} ready")
            except TimeoutError:
                last = proc.log_tail()
                proc.stop()
                raise ServerError(f"{self.name} not ready in {self.start_timeout}s:\n{last}") from None
            if proc.alive():
                return self
            last = proc.log_tail()
            proc.stop()
            if "address already in use" not in last:
                break
        raise ServerError(f"{self.name} exited during start-up:\n{last}")

    def _ready_or_dead(self) -> bool:
        assert self._proc is not None
        if not self._proc.alive():
            return True  # start() looks at alive() again
        try:
            return self._client.get(self.url + self.ready_path, timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def alive(self) -> bool:
        return self._proc is not None and self._proc.alive()

    def log_tail(self, chars: int = 3000) -> str:
        return self._proc.log_tail(chars) if self._proc else ""

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.stop()
        self._client.close()

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = self._client.request(method, self.url + path, **kwargs)
        if resp.status_code >= 400:
            raise ServerError(f"{self.name} {method} {path}: HTTP {resp.status_code}: {resp.text[:500]}")
        return resp.json() if resp.content else None


# --- Prometheus ---------------------------------------------------------------


def prometheus_config(
    *,
    scrape_targets: Mapping[str, Iterable[str]] = {},
    rule_files: Iterable[str | Path] = (),
    alertmanagers: Iterable[str] = (),
    scrape_interval: str = "1s",
    evaluation_interval: str = "1s",
    metrics_path: str = "/metrics",
) -> dict[str, Any]:
    """A Prometheus configuration as a dict.

    ``scrape_targets`` maps a job name to ``host:port`` targets (e.g.
    ``{"herald": ["127.0.0.1:8080"]}``); ``alertmanagers`` are ``host:port``
    addresses. The fast default intervals suit tests.
    """
    cfg: dict[str, Any] = {
        "global": {
            "scrape_interval": scrape_interval,
            "scrape_timeout": scrape_interval,
            "evaluation_interval": evaluation_interval,
        },
        "rule_files": [str(Path(p).resolve()) for p in rule_files],
        "scrape_configs": [
            {
                "job_name": job,
                "metrics_path": metrics_path,
                "static_configs": [{"targets": list(targets)}],
            }
            for job, targets in scrape_targets.items()
        ],
    }
    ams = list(alertmanagers)
    if ams:
        cfg["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": ams}]}]}
    return cfg


class PrometheusServer(_Server):
    """A real ``prometheus`` on a free loopback port.

    ``config`` is a dict (see :func:`prometheus_config`) or YAML text.
    """

    name = "prometheus"

    def __init__(self, workdir: Path, config: Mapping[str, Any] | str) -> None:
        super().__init__(workdir)
        self.binary = find_binary("prometheus")
        self.config_path = self.workdir / "prometheus.yml"
        self.write_config(config)

    def write_config(self, config: Mapping[str, Any] | str) -> None:
        text = config if isinstance(config, str) else yaml.safe_dump(dict(config), sort_keys=False)
        self.config_path.write_text(text)

    def _argv(self, port: int) -> list[str]:
        return [
            self.binary,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address={self.host}:{port}",
            "--web.enable-lifecycle",
            "--log.level=warn",
        ]

    def reload(self, config: Mapping[str, Any] | str | None = None) -> None:
        """Rewrite the configuration (if given) and reload it."""
        if config is not None:
            self.write_config(config)
        resp = self._client.post(self.url + "/-/reload")
        if resp.status_code != 200:
            raise ServerError(f"prometheus reload failed: HTTP {resp.status_code}: {resp.text[:500]}")

    def _api(self, path: str, **params: Any) -> Any:
        body = self._json("GET", "/api/v1/" + path, params=params)
        if body.get("status") != "success":
            raise ServerError(f"prometheus {path}: {body}")
        return body["data"]

    def query(self, expr: str, time_: float | None = None) -> list[dict[str, Any]]:
        """Evaluate an instant query; returns the result list (vector/matrix)."""
        params: dict[str, Any] = {"query": expr}
        if time_ is not None:
            params["time"] = time_
        data = self._api("query", **params)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    def query_range(self, expr: str, start: float, end: float, step: str = "1s") -> list[dict[str, Any]]:
        return self._api("query_range", query=expr, start=start, end=end, step=step)["result"]

    def wait_for_query(
        self,
        expr: str,
        predicate: Callable[[list[dict[str, Any]]], bool] = bool,
        *,
        timeout: float = 30.0,
    ) -> list[dict[str, Any]]:
        """Poll ``expr`` until ``predicate(result)`` holds; returns the result."""

        def probe() -> list[dict[str, Any]] | None:
            result = self.query(expr)
            return result if predicate(result) else None

        return wait_until(probe, timeout=timeout, what=f"query {expr!r}")

    def targets(self) -> list[dict[str, Any]]:
        return self._api("targets")["activeTargets"]

    def rules(self) -> list[dict[str, Any]]:
        return self._api("rules")["groups"]

    def alerts(self) -> list[dict[str, Any]]:
        return self._api("alerts")["alerts"]

    def wait_for_alert(
        self, alertname: str, *, state: str = "firing", labels: Mapping[str, str] = {}, timeout: float = 180.0
    ) -> dict[str, Any]:
        """Wait until Prometheus has an alert ``alertname`` in ``state`` (pending/firing)."""

        def probe() -> dict[str, Any] | None:
            for a in self.alerts():
                lbl = a["labels"]
                if (
                    lbl.get("alertname") == alertname
                    and a["state"] == state
                    and all(lbl.get(k) == v for k, v in labels.items())
                ):
                    return a
            return None

        return wait_until(probe, timeout=timeout, interval=0.25, what=f"{state} alert {alertname}")


# --- Alertmanager -------------------------------------------------------------

#: A minimal Alertmanager configuration: one receiver that notifies nobody.
NULL_ALERTMANAGER_CONFIG: dict[str, Any] = {
    "route": {
        "receiver": "null",
        "group_by": ["alertname"],
        "group_wait": "1s",
        "group_interval": "1s",
        "repeat_interval": "1h",
    },
    "receivers": [{"name": "null"}],
}


class AlertmanagerServer(_Server):
    """A real ``alertmanager`` on a free loopback port, clustering disabled.

    ``config`` is a dict or YAML text (default: :data:`NULL_ALERTMANAGER_CONFIG`).
    """

    name = "alertmanager"

    def __init__(self, workdir: Path, config: Mapping[str, Any] | str | None = None) -> None:
        super().__init__(workdir)
        self.binary = find_binary("alertmanager", "prometheus-alertmanager")
        self.config_path = self.workdir / "alertmanager.yml"
        cfg = NULL_ALERTMANAGER_CONFIG if config is None else config
        text = cfg if isinstance(cfg, str) else yaml.safe_dump(dict(cfg), sort_keys=False)
        self.config_path.write_text(text)

    def _argv(self, port: int) -> list[str]:
        return [
            self.binary,
            f"--config.file={self.config_path}",
            f"--storage.path={self.workdir / 'data'}",
            f"--web.listen-address={self.host}:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ]

    def alerts(
        self, *, active: bool = True, silenced: bool = True, inhibited: bool = True, filters: Iterable[str] = ()
    ) -> list[dict[str, Any]]:
        """``GET /api/v2/alerts`` (resolved alerts are not listed by Alertmanager)."""
        params: list[tuple[str, str]] = [
            ("active", json.dumps(active)),
            ("silenced", json.dumps(silenced)),
            ("inhibited", json.dumps(inhibited)),
        ]
        params += [("filter", f) for f in filters]
        return self._json("GET", "/api/v2/alerts", params=params)

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        self._json("POST", "/api/v2/alerts", json=alerts)

    def find_alert(self, alertname: str, labels: Mapping[str, str] = {}) -> dict[str, Any] | None:
        for a in self.alerts():
            lbl = a["labels"]
            if lbl.get("alertname") == alertname and all(lbl.get(k) == v for k, v in labels.items()):
                return a
        return None

    def wait_for_alert(
        self, alertname: str, labels: Mapping[str, str] = {}, *, timeout: float = 20.0
    ) -> dict[str, Any]:
        return wait_until(
            lambda: self.find_alert(alertname, labels), timeout=timeout, what=f"alert {alertname} in Alertmanager"
        )

    def wait_for_no_alert(self, alertname: str, labels: Mapping[str, str] = {}, *, timeout: float = 20.0) -> None:
        wait_until(
            lambda: self.find_alert(alertname, labels) is None,
            timeout=timeout,
            what=f"alert {alertname} gone from Alertmanager",
        )


def binaries() -> dict[str, str]:
    """Paths of the four binaries (installing them first if needed)."""
    ensure_installed()
    return {
        "prometheus": find_binary("prometheus"),
        "promtool": find_binary("promtool"),
        "alertmanager": find_binary("alertmanager", "prometheus-alertmanager"),
        "amtool": find_binary("amtool"),
    }

"""Herald's operator as a real process, scoped to one test namespace (so tests can SIGKILL it).

With ``run_as`` the operator runs as a dedicated non-root system user (created on first use), so a
test can single out its traffic by uid, e.g. to cut it off the API server (tests/support/netcut.py).
"""

from __future__ import annotations

import base64
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import yaml

from tests.support.cluster import ROOT
from tests.support.waiting import wait_until


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


TEST_USER = "herald-test"


def ensure_system_user(name: str = TEST_USER) -> pwd.struct_passwd:
    """The system user ``name`` (no home, no login shell), created if missing. Needs root."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    done = subprocess.run(
        [
            "useradd",
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            name,
        ],
        capture_output=True,
        text=True,
    )
    try:  # a concurrent run may have created it first: that is fine too
        return pwd.getpwnam(name)
    except KeyError:
        raise AssertionError(f"could not create the system user {name}: {done.stderr.strip()}") from None


def flatten_kubeconfig(path: str) -> dict:
    """The kubeconfig with every ``*-file`` reference (CA, client cert and key) inlined as ``*-data``."""
    base = Path(path).resolve().parent
    cfg = yaml.safe_load(Path(path).read_text())
    for section, key in (("clusters", "cluster"), ("users", "user")):
        for entry in cfg.get(section) or []:
            body = entry.get(key) or {}
            for field in ("certificate-authority", "client-certificate", "client-key"):
                if body.get(field):
                    data = (base / body.pop(field)).read_bytes()  # an absolute path stays as it is
                    body[f"{field}-data"] = base64.b64encode(data).decode()
    return cfg


def api_server_port(kubeconfig: str) -> int:
    """The TCP port of the API server the kubeconfig's current context talks to."""
    from urllib.parse import urlsplit

    cfg = yaml.safe_load(Path(kubeconfig).read_text())
    ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == cfg["current-context"])
    server = next(c["cluster"]["server"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
    url = urlsplit(server)
    return url.port or (443 if url.scheme == "https" else 80)


# As the namespace: the operator watches every namespace (sharded operators, for example).
CLUSTER_WIDE = "*"


class OperatorProcess:
    """``run_as``: a user name; the operator then runs with that uid and gid (``setpriv``, no supplementary
    groups) instead of root. It gets a private 0700 directory owned by that user as HOME and TMPDIR, with a
    copy of the kubeconfig (certificates inlined) that only it can read. The log file is opened here and
    handed over as stdout, so the user needs no write access to ``log_dir``.

    The interpreter may live where only root can look (pyenv under /root, mode 0700): the process keeps
    exactly one capability, CAP_DAC_READ_SEARCH (read any file, search any directory), as an ambient
    capability, so it runs the venv's own interpreter and standard library. It cannot write anything it
    does not own, and its network identity (its uid) is what tests rely on."""

    def __init__(
        self,
        kubeconfig: str,
        namespace: str,
        log_dir: Path,
        env: dict[str, str] | None = None,
        run_as: str | None = None,
    ):
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.log_dir = log_dir
        self.extra_env = env or {}
        self.run_as = run_as
        self.proc: subprocess.Popen | None = None
        self.metrics_port = free_port()
        self.health_port = free_port()
        self.starts = 0
        self._home: str | None = None
        self._user = ensure_system_user(run_as) if run_as else None

    @property
    def uid(self) -> int:
        """The uid the operator runs as."""
        return self._user.pw_uid if self._user else os.getuid()

    @property
    def api_port(self) -> int:
        return api_server_port(self.kubeconfig)

    def _private_home(self) -> str:
        """HOME and TMPDIR for ``run_as``: 0700, owned by that user, with its own kubeconfig (0600)."""
        assert self._user is not None
        if self._home is None or not os.path.isdir(self._home):
            home = tempfile.mkdtemp(prefix=f"herald-operator-{self._user.pw_name}-")
            kubeconfig = os.path.join(home, "kubeconfig")
            fd = os.open(kubeconfig, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                yaml.safe_dump(flatten_kubeconfig(self.kubeconfig), f)
            for p in (home, kubeconfig):
                os.chown(p, self._user.pw_uid, self._user.pw_gid)
            self._home = home
        return self._home

    def _command(self) -> tuple[list[str], dict[str, str]]:
        scope = [] if self.namespace == CLUSTER_WIDE else ["-n", self.namespace]
        cmd = [sys.executable, "-m", "herald", *scope, "--health-port", str(self.health_port)]
        if self._user is None:
            return cmd, {"KUBECONFIG": self.kubeconfig}
        home = self._private_home()
        setpriv = [
            "setpriv",
            f"--reuid={self._user.pw_uid}",
            f"--regid={self._user.pw_gid}",
            "--clear-groups",
            "--inh-caps=-all,+dac_read_search",
            "--ambient-caps=-all,+dac_read_search",
        ]
        env = {
            "KUBECONFIG": os.path.join(home, "kubeconfig"),
            "HOME": home,
            "TMPDIR": home,
            "USER": self._user.pw_name,
            "LOGNAME": self._user.pw_name,
        }
        return [*setpriv, "--", *cmd], env

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"operator-{self.starts}.log"

    def start(self) -> OperatorProcess:
        self.starts += 1
        cmd, run_env = self._command()
        env = dict(
            os.environ, HERALD_METRICS_PORT=str(self.metrics_port), PYTHONUNBUFFERED="1", **run_env, **self.extra_env
        )
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            wait_until(self._healthy, timeout=30, what=f"operator health on :{self.health_port}")
            if self._user is not None:
                assert self.process_uid() == self._user.pw_uid, f"the operator runs as uid {self.process_uid()}"
        except BaseException:
            self.stop()  # no operator left running behind a failed start
            raise
        return self

    def process_uid(self) -> int:
        """The real uid of the running operator process, from /proc."""
        assert self.proc is not None
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])

    def _healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"operator exited with {self.proc.returncode}:\n{self.log()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            return r.read().decode()

    def kill(self) -> None:
        """SIGKILL: no cleanup, no goodbye."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._log.close()

    def stop(self) -> None:
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
        finally:
            if self.proc is not None:
                self._log.close()
            if self._home is not None:
                shutil.rmtree(self._home, ignore_errors=True)
                self._home = None

    def log(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.log_dir.glob("operator-*.log")))

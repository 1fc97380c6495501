"""The world the docs' shell blocks run in (docs/testing.md, "Docs that run").

One Helm install for every block, made once for the package:

- the release ``herald`` of helm/herald in the namespace the docs call ``herald-system``, watching
  the namespaces they call ``news`` and ``blog``; the operator a pod on the real node (as
  tests/e2e/test_helm_real_node.py installs it: images ``herald-*:dev``, ``pullPolicy: Never``,
  ``crds.enabled=false`` with ``crds/`` applied first, since the CRDs are shared by everything on the
  cluster);
- in ``news``, the PlatformAdapter ``mastodon-main`` of examples/adapters/mastodon.yaml, with a fake
  Mastodon on this host as its instance (and its token in the Secret), its attempts on the real node;
- the demo: examples/demo-real.sh, run as `make demo` runs it, in the namespace the docs call
  ``herald-demo`` and on a free port instead of 18090 (both rewritten in the blocks), its fake
  Mastodon's PID and log in a temporary directory.

Every namespace has a unique name (other test runs share the cluster): ``Rewrites`` turns the docs'
names into them, and the placeholders (``<ns>``, ``<adapter>``, ...) into real objects. Commands
without ``-n`` act in ``news`` (the kubeconfig's current namespace). Everything is removed afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import urlopen

import pytest
import yaml

from tests.docs.blocks import PLACEHOLDERS, ROOT, Rewrites, all_blocks
from tests.docs.runner import RESULTS, summary

# The real node (brought up, with the images, when it is missing; never skipped).
from tests.e2e.conftest import REAL_NODE_LABEL, REAL_NODE_TAINT, real_node  # noqa: F401
from tests.helm.chart import CHART, helm, set_args
from tests.platforms import MastodonFake
from tests.support.operator import free_port
from tests.support.waiting import Timeout, wait_until, watch_until

DEMO_SCRIPT = ROOT / "examples" / "demo-real.sh"
DEMO_NAMESPACE, DEMO_PORT = "herald-demo", "18090"  # as the docs write them
ON_REAL_NODE = {
    "nodeSelector": {REAL_NODE_LABEL: "real"},
    "tolerations": [{"key": REAL_NODE_TAINT, "operator": "Exists", "effect": "NoSchedule"}],
}
# The first attempt on the real node can wait for containerd to unpack the adapter image.
AVAILABLE_TIMEOUT = 180
DEMO_TIMEOUT = 300
BLOCK_TIMEOUT = 90


def pytest_configure(config):
    config.addinivalue_line("markers", "realnode: runs pods on the real node (containerd + kubelet on this host)")


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    terminalreporter.section("docs: shell blocks of README.md and docs/*.md")
    for line in summary(all_blocks()):
        terminalreporter.write_line(line)


@dataclass
class Demo:
    """examples/demo-real.sh, run in its own namespace, port and state directory."""

    namespace: str
    port: int
    state: Path
    env: dict[str, str]
    output: str = ""

    def run(self, *args: str, timeout: float = DEMO_TIMEOUT) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(DEMO_SCRIPT), *args],
            env=self.env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def fake_pid(self) -> int | None:
        """The PID in the demo's pid file, if that process is alive."""
        pidfile = self.state / "demo-mastodon.pid"
        if not pidfile.exists():
            return None
        pid = int(pidfile.read_text().split()[0])
        return pid if Path(f"/proc/{pid}").exists() else None

    def posts(self) -> list[dict]:
        with urlopen(f"http://127.0.0.1:{self.port}/_herald/posts", timeout=10) as r:
            return json.load(r)


@dataclass
class DocsEnv:
    names: dict[str, str]  # the docs' namespace names -> the test's
    release: str
    kubeconfig: str  # a copy whose current namespace is the docs' "news"
    env: dict[str, str]  # the environment of every block
    demo: Demo
    mastodon: MastodonFake
    placeholders: dict[str, str] = field(default_factory=dict)

    @property
    def rewrites(self) -> Rewrites:
        return Rewrites({**self.names, DEMO_PORT: str(self.demo.port)}, self.placeholders)

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            ["kubectl", *args], input=input, env=self.env, capture_output=True, text=True, timeout=120
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
        return proc

    def diagnostics(self) -> str:
        system = self.names["herald-system"]
        out = [self.kubectl("get", "pods,jobs", "-A", "-o", "wide", check=False).stdout]
        log = self.kubectl("logs", "-n", system, f"deploy/{self.release}", "--tail=60", check=False)
        out.append(f"operator log (tail):\n{log.stdout}{log.stderr}")
        return "\n".join(out)


def _tools_path() -> str:
    tools = subprocess.run(
        [str(ROOT / "tests" / "cluster" / "build-tools.sh"), "paths"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return os.pathsep.join([tools, str(ROOT / ".venv" / "bin"), os.environ.get("PATH", "")])


def _mastodon_main(fake: MastodonFake, gateway: str) -> str:
    """examples/adapters/mastodon.yaml with the fake as its instance, its token, and its attempts on the real node."""
    docs = [d for d in yaml.safe_load_all((ROOT / "examples" / "adapters" / "mastodon.yaml").read_text()) if d]
    for d in docs:
        if d["kind"] == "Secret":
            d["stringData"] = fake.credentials()
        elif d["kind"] == "PlatformAdapter":
            assert d["metadata"]["name"] == "mastodon-main", d["metadata"]
            d["spec"]["endpoint"] = f"http://{gateway}:{urlsplit(fake.url).port}"
            d["spec"]["jobTemplate"] = {**d["spec"].get("jobTemplate", {}), **ON_REAL_NODE}
    return yaml.safe_dump_all(docs)


@pytest.fixture(scope="package")
def docs_env(cluster, api, real_node, tmp_path_factory) -> Iterator[DocsEnv]:  # noqa: F811
    from kubernetes import client

    core = client.CoreV1Api(api)
    apps = client.AppsV1Api(api)
    uid = uuid.uuid4().hex[:8]
    names = {
        "herald-system": f"docs-{uid}-system",
        "news": f"docs-{uid}-news",
        "blog": f"docs-{uid}-blog",
        "herald-demo": f"docs-{uid}-demo",
    }
    system, news = names["herald-system"], names["news"]
    release = "herald"
    state = tmp_path_factory.mktemp("docs")
    kubeconfig = state / "kubeconfig"
    kubeconfig.write_text(Path(cluster.kubeconfig).read_text())
    env = dict(os.environ, KUBECONFIG=str(kubeconfig), PATH=_tools_path())
    subprocess.run(
        ["kubectl", "config", "set-context", "--current", f"--namespace={news}"],
        env=env,
        check=True,
        capture_output=True,
    )
    demo_env = dict(
        env,
        KUBECONFIG=cluster.kubeconfig,
        HERALD_DEMO_NAMESPACE=names["herald-demo"],
        HERALD_DEMO_STATE=str(state / "demo"),
        HERALD_DEMO_PORT=str(free_port()),
        HERALD_POD_GATEWAY=real_node.pod_gateway,
    )
    demo = Demo(names["herald-demo"], int(demo_env["HERALD_DEMO_PORT"]), state / "demo", demo_env)
    # The demo installs its own release meanwhile: as `make demo` does, with its script.
    demo_proc = subprocess.Popen(
        [str(DEMO_SCRIPT)], env=demo_env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    fake = MastodonFake(host="0.0.0.0", port=0).start()
    docs_env = DocsEnv(names, release, str(kubeconfig), env, demo, fake)
    installed = False
    try:
        for name in (system, news, names["blog"]):
            core.create_namespace({"metadata": {"name": name, "labels": {"herald.dev/test": "true"}}})
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
        cluster.kubectl(
            "wait", "--for=condition=Established", "crd/publications.herald.dev", "crd/platformadapters.herald.dev",
            "--timeout=60s",
        )  # fmt: skip
        docs_env.kubectl("apply", "-n", news, "-f", "-", input=_mastodon_main(fake, real_node.pod_gateway))
        values = {
            "watchNamespaces": [news, names["blog"]],
            "crds.enabled": False,  # applied above: shared by everything on the cluster
            "image.repository": "herald-operator",
            "image.tag": "dev",
            "image.pullPolicy": "Never",  # no registry: the image is in the node's containerd
            "adapter.image.repository": "herald-adapter",
            "adapter.image.tag": "dev",
            "nodeSelector": ON_REAL_NODE["nodeSelector"],
            "tolerations": ON_REAL_NODE["tolerations"],
        }
        helm("install", release, str(CHART), "--namespace", system, *set_args(values), kubeconfig=str(kubeconfig))
        installed = True
        try:
            watch_until(
                apps.list_namespaced_deployment,
                lambda d: (
                    d["status"].get("observedGeneration", 0) >= d["metadata"]["generation"]
                    and d["status"].get("availableReplicas") == 1
                ),
                timeout=AVAILABLE_TIMEOUT,
                what=f"deployment {system}/{release} Available",
                namespace=system,
                field_selector=f"metadata.name={release}",
            )
        except Timeout as e:
            raise AssertionError(f"{e}\n{docs_env.diagnostics()}") from None
        operator_pods = core.list_namespaced_pod(
            system, label_selector=f"app.kubernetes.io/instance={release},app.kubernetes.io/component=operator"
        ).items
        docs_env.placeholders = {
            "ns": news,
            "namespace": news,
            "adapter": "mastodon-main",
            "publication": "launch-announcement",
            "secret": "mastodon-main-credentials",
            "release": release,
            "operator-pod": operator_pods[0].metadata.name,
        }
        assert set(docs_env.placeholders) == set(PLACEHOLDERS)
        demo.output, _ = demo_proc.communicate(timeout=DEMO_TIMEOUT)
        assert demo_proc.returncode == 0, f"examples/demo-real.sh exited {demo_proc.returncode}:\n{demo.output}"
        yield docs_env
    finally:
        if demo_proc.poll() is None:
            demo_proc.kill()
            demo_proc.communicate()
        stopped = demo.run("stop", timeout=60)
        for namespace in (demo.namespace, system):
            if namespace == system and not installed:
                continue
            helm("uninstall", release, "--namespace", namespace, kubeconfig=cluster.kubeconfig, check=False)
        for name in names.values():
            try:
                core.delete_namespace(name, propagation_policy="Background")
            except client.ApiException as e:
                if e.status != 404:
                    raise
        fake.stop()
        assert stopped.returncode == 0, f"examples/demo-real.sh stop: {stopped.stdout}{stopped.stderr}"
        wait_until(lambda: demo.fake_pid() is None, timeout=10, what="the demo's fake Mastodon to stop")


@pytest.fixture(scope="package")
def demo(docs_env) -> Demo:
    return docs_env.demo

"""Fixtures for tests that run Herald's operator against the cluster."""

from __future__ import annotations

import pytest

from tests.support.cluster import ROOT
from tests.support.herald import Herald
from tests.support.operator import OperatorProcess
from tests.support.waiting import wait_until


@pytest.fixture(scope="session")
def crds(cluster):
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    for crd in ("publications.herald.dev", "platformadapters.herald.dev"):
        # A just-created CRD may have no status yet, which `kubectl wait` reports as an error: poll.
        wait_until(
            lambda: (
                cluster.kubectl(
                    "wait", "--for=condition=Established", f"crd/{crd}", "--timeout=5s", check=False
                ).returncode
                == 0
            ),
            timeout=60,
            what=f"CRD {crd} Established",
        )


@pytest.fixture
def herald(api, namespace, crds) -> Herald:
    return Herald(api, namespace)


@pytest.fixture
def operator(cluster, namespace, crds, tmp_path, request):
    proc = OperatorProcess(cluster.kubeconfig, namespace, tmp_path)
    proc.start()
    yield proc
    proc.stop()
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        print(proc.log()[-20000:])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)

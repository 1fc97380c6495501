"""Fixtures for tests that run Herald's operator against the cluster."""
from __future__ import annotations

import pytest

from tests.support.cluster import ROOT
from tests.support.herald import Herald
from tests.support.operator import OperatorProcess


@pytest.fixture(scope="session")
def crds(cluster):
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    cluster.kubectl("wait", "--for=condition=Established", "crd/publications.herald.dev",
                    "crd/platformadapters.herald.dev", "--timeout=60s")


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

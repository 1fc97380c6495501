"""One set of real objects for the GitOps health tests: made once, by the real operator, in a namespace
of their own (see scenarios.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.gitops.scenarios import produce
from tests.integration.conftest import crds  # noqa: F401 - the CRDs from crds/, applied and Established
from tests.support.cluster import unique_name
from tests.support.herald import Herald
from tests.support.operator import OperatorProcess


@pytest.fixture(scope="package")
def real_objects(cluster, api, crds, tmp_path_factory) -> Iterator[dict[str, dict]]:  # noqa: F811 - the fixture imported above
    """Each case of scenarios.CASES, as the API server returned it, by case name."""
    from kubernetes import client

    core = client.CoreV1Api(api)
    namespace = unique_name("t-gitops-health")
    core.create_namespace({"metadata": {"name": namespace, "labels": {"herald.dev/test": "true"}}})
    operator = OperatorProcess(cluster.kubeconfig, namespace, tmp_path_factory.mktemp("gitops-operator"))
    try:
        operator.start()
        try:
            objects = produce(Herald(api, namespace), operator)
        except BaseException:
            print(operator.log()[-20000:])
            raise
        finally:
            operator.stop()
        yield objects
    finally:
        core.delete_namespace(namespace, propagation_policy="Background")

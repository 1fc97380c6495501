"""Shared fixtures: one cluster per session, a fresh namespace per test."""

from __future__ import annotations

import os
import re

import pytest
from hypothesis import settings

from tests.support.cluster import ROOT, Cluster, start_cluster, unique_name

# Property tests explore the same examples on every run: a red CI run can be reproduced, never a fluke.
settings.register_profile("herald", derandomize=True, database=None, deadline=None, print_blob=True)
settings.load_profile("herald")


def _tools_on_path() -> None:
    import subprocess

    bin_dir = subprocess.run(
        [str(ROOT / "tests" / "cluster" / "build-tools.sh"), "paths"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if bin_dir and bin_dir not in os.environ.get("PATH", ""):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    _tools_on_path()
    return start_cluster()


@pytest.fixture(scope="session")
def api(cluster):
    client = cluster.api_client()
    yield client
    client.close()


@pytest.fixture
def namespace(cluster, api, request):
    from kubernetes import client

    core = client.CoreV1Api(api)
    base = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-")
    name = unique_name(f"t-{base}")
    core.create_namespace({"metadata": {"name": name, "labels": {"herald.dev/test": "true"}}})
    yield name
    core.delete_namespace(name, propagation_policy="Background")

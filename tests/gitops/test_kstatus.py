"""The real kstatus library (sigs.k8s.io/cli-utils/pkg/kstatus/status, which Flux and kpt use) on real
objects: tests/cluster/kstatus wraps status.Compute in a command, built at the pinned version by
tests/cluster/build-tools.sh; the objects are those of scenarios.py, read back from the API."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from tests.gitops.scenarios import CASES
from tests.support.cluster import ROOT
from tests.support.herald import condition

pytestmark = pytest.mark.cluster


def kstatus(obj: dict) -> dict:
    exe = shutil.which("kstatus")  # the cluster fixture put build-tools.sh's bin directory on PATH
    assert exe, "no kstatus on PATH: tests/cluster/build-tools.sh all builds it"
    done = subprocess.run([exe], input=json.dumps(obj), capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _message(source: str):
    return lambda obj: condition(obj, source)["message"]


# kstatus's message for each case: it copies the condition that decided, or says why it did not need one.
MESSAGE = {
    "healthy": lambda obj: "Resource is Ready",
    "circuit-open": _message("Reconciling"),
    "half-open": _message("Reconciling"),
    "paused": _message("Ready"),  # no Reconciling, no Stalled: kstatus falls back to Ready=False
    "credentials-refused": _message("Stalled"),
    "published": lambda obj: "Resource is Ready",
    "retrying": _message("Reconciling"),
    "stuck-on-credentials": _message("Stalled"),
    "dead-lettered": _message("Stalled"),
    "suspended": _message("Ready"),  # the same fallback as paused
    "not-yet-observed": lambda obj: "Resource is current",  # nothing to go by
    "published-then-edited": lambda obj: "Publication generation is 2, but latest observed generation is 1",
    "healthy-then-edited": lambda obj: "PlatformAdapter generation is 2, but latest observed generation is 1",
}


@pytest.mark.parametrize("name", list(CASES))
def test_kstatus_of_a_real_object(real_objects, name):
    case = CASES[name]
    obj = real_objects[name]
    assert obj["kind"] == case.kind
    assert kstatus(obj) == {"status": case.kstatus, "message": MESSAGE[name](obj)}, case.what


def test_kstatus_is_built_from_the_pinned_cli_utils(cluster):
    go_mod = (ROOT / "tests/cluster/kstatus/go.mod").read_text()
    pinned = re.search(r"^\s*(?:require\s+)?sigs\.k8s\.io/cli-utils\s+(v\S+)$", go_mod, re.M)
    assert pinned, "tests/cluster/kstatus/go.mod requires sigs.k8s.io/cli-utils"
    exe = shutil.which("kstatus")
    assert exe, "no kstatus on PATH: tests/cluster/build-tools.sh all builds it"
    info = subprocess.run(["go", "version", "-m", exe], capture_output=True, text=True, check=True).stdout
    assert re.search(rf"^\s+dep\s+sigs\.k8s\.io/cli-utils\s+{re.escape(pinned[1])}\s", info, re.M), info

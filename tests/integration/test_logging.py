"""The operator's --log-format json: every line its logging writes is one JSON object."""

from __future__ import annotations

import json

import pytest

from tests.support.operator import OperatorProcess

pytestmark = pytest.mark.cluster


def test_the_operator_logs_json_lines(cluster, herald, namespace, crds, tmp_path):
    proc = OperatorProcess(cluster.kubeconfig, namespace, tmp_path, env={"HERALD_LOG_FORMAT": "json"})
    proc.start()
    try:
        herald.adapter("mastodon")
        herald.publication("hello", ["mastodon"])
        herald.wait_phase("hello", "Published")
    finally:
        proc.stop()
    lines = [line for line in proc.log().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # fails on any line that is not JSON
    assert any("Herald engine started" in r["message"] for r in records)
    assert {r["level"] for r in records} <= {"debug", "info", "warning", "error", "critical"}

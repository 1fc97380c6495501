"""The monitoring test tooling itself: install script and server lifecycle."""

from __future__ import annotations

import subprocess

import httpx
import pytest

from .servers import INSTALL_SCRIPT, AlertmanagerServer, PrometheusServer, ServerError, prometheus_config


def test_install_script_is_idempotent_when_installed(monitoring_binaries):
    proc = subprocess.run(["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "already present" in proc.stdout
    for name in ("prometheus", "promtool", "alertmanager", "amtool"):
        assert subprocess.run([monitoring_binaries[name], "--version"], capture_output=True, timeout=30).returncode == 0


def test_alertmanager_lifecycle(monitoring_binaries, tmp_path):
    am = AlertmanagerServer(tmp_path)
    am.start()
    try:
        assert am.alive()
        assert am.url.startswith("http://127.0.0.1:")
        assert am.alerts() == []
    finally:
        am.stop()
    assert not am.alive()
    with pytest.raises(httpx.HTTPError):
        httpx.get(am.url + "/-/ready", timeout=2)


def test_prometheus_lifecycle_and_query(monitoring_binaries, tmp_path):
    with PrometheusServer(tmp_path, prometheus_config()) as prom:
        assert prom.query("vector(42)")[0]["value"][1] == "42"
        assert prom.query("scalar(vector(1))")[0]["value"][1] == "1"
    assert not prom.alive()


def test_a_server_that_cannot_start_reports_its_log(monitoring_binaries, tmp_path):
    prom = PrometheusServer(tmp_path, "global: {scrape_interval: not-a-duration}\n")
    with pytest.raises(ServerError) as err:
        prom.start()
    assert "prometheus" in str(err.value)
    assert "not-a-duration" in str(err.value) or "duration" in str(err.value)
    assert not prom.alive()

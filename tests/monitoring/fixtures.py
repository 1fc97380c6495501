"""Pytest fixtures that start real Prometheus and Alertmanager processes.

Use them from any test directory by importing them into its ``conftest.py``::

    from tests.monitoring.fixtures import (  # noqa: F401
        monitoring_binaries, alertmanager_factory, alertmanager, prometheus_factory,
    )

Every server gets a free loopback port and a temporary data directory, is
waited for by polling its readiness endpoint, and is stopped at teardown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from .servers import AlertmanagerServer, PrometheusServer, binaries


@pytest.fixture(scope="session")
def monitoring_binaries() -> dict[str, str]:
    """Paths of prometheus, promtool, alertmanager and amtool (installed if missing)."""
    return binaries()


@pytest.fixture
def alertmanager_factory(
    monitoring_binaries: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., AlertmanagerServer]]:
    """``start(config=None)`` -> a running :class:`AlertmanagerServer`; all stopped at teardown."""
    started: list[AlertmanagerServer] = []

    def start(config: Mapping[str, Any] | str | None = None) -> AlertmanagerServer:
        server = AlertmanagerServer(tmp_path_factory.mktemp("alertmanager"), config)
        server.start()
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture
def alertmanager(alertmanager_factory: Callable[..., AlertmanagerServer]) -> AlertmanagerServer:
    """A running Alertmanager with a receiver that notifies nobody."""
    return alertmanager_factory()


@pytest.fixture
def prometheus_factory(
    monitoring_binaries: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., PrometheusServer]]:
    """``start(config)`` -> a running :class:`PrometheusServer`; all stopped at teardown.

    ``config`` is a dict (see :func:`tests.monitoring.servers.prometheus_config`) or YAML text.
    """
    started: list[PrometheusServer] = []

    def start(config: Mapping[str, Any] | str) -> PrometheusServer:
        server = PrometheusServer(tmp_path_factory.mktemp("prometheus"), config)
        server.start()
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()


__all__ = [
    "alertmanager",
    "alertmanager_factory",
    "monitoring_binaries",
    "prometheus_factory",
]

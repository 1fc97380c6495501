from __future__ import annotations

import pytest

from tests.monitoring.fixtures import (  # noqa: F401 - real Alertmanager fixtures
    alertmanager,
    alertmanager_factory,
    monitoring_binaries,
)
from tests.monitoring.receivers import RecordingReceiver


@pytest.fixture
def receiver_factory():
    """``make(responses=(), **kw)`` -> a started :class:`RecordingReceiver`; stopped at teardown."""
    started: list[RecordingReceiver] = []

    def make(*args, **kwargs) -> RecordingReceiver:
        r = RecordingReceiver(*args, **kwargs).start()
        started.append(r)
        return r

    yield make
    for r in started:
        r.stop()


@pytest.fixture
def receiver(receiver_factory) -> RecordingReceiver:
    return receiver_factory()

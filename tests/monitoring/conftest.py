from .fixtures import (  # noqa: F401 - fixtures for the tests in this directory
    alertmanager,
    alertmanager_factory,
    monitoring_binaries,
    prometheus_factory,
)

"""kopf's settings for Herald: watches that notice a dead connection, and server-side label
selectors so only Herald's Jobs and Pods are listed and watched."""

from __future__ import annotations

import kopf
from kopf._cogs.structs import references

from herald.handlers import configure


def _resource(group: str, plural: str, kind: str) -> references.Resource:
    return references.Resource(
        group=group,
        version="v1",
        plural=plural,
        kind=kind,
        singular=kind.lower(),
        namespaced=True,
        verbs=["list", "watch"],
    )


def test_jobs_and_pods_are_filtered_by_the_api_server_and_herald_kinds_are_not():
    settings = kopf.OperatorSettings()
    configure(settings)
    selectors = settings.watching.label_selectors
    assert list(selectors.collect(_resource("batch", "jobs", "Job"))) == ["herald.dev/publication"]
    assert list(selectors.collect(_resource("", "pods", "Pod"))) == ["herald.dev/publication"]
    assert list(selectors.collect(_resource("herald.dev", "publications", "Publication"))) == []
    assert list(selectors.collect(_resource("", "secrets", "Secret"))) == []


def test_a_silent_watch_is_reopened_and_api_errors_are_retried_without_end():
    settings = kopf.OperatorSettings()
    configure(settings)
    assert settings.watching.inactivity_timeout <= 15 and settings.watching.server_timeout < 15
    backoffs = list(zip(range(100), settings.networking.error_backoffs, strict=False))
    assert len(backoffs) == 100 and max(b for _, b in backoffs) <= 3

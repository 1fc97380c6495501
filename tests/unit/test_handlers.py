"""kopf's settings for Herald: watches that notice a dead connection; Jobs and Pods are not kopf's."""

from __future__ import annotations

import kopf

from herald.handlers import configure


def test_kopf_watches_only_the_herald_kinds_and_namespaces():
    """Jobs and Pods come through Herald's own informer (server-side label selector), not kopf:
    kopf has no Job or Pod handler, so it neither lists nor watches them."""
    import herald.handlers  # noqa: F401  (registers the handlers)

    watched = {h.selector.any_name for h in kopf.get_default_registry()._watching.get_all_handlers()}
    assert watched == {"namespaces", "publications", "platformadapters"}


def test_a_silent_watch_is_reopened_and_api_errors_are_retried_without_end():
    settings = kopf.OperatorSettings()
    configure(settings)
    assert settings.watching.inactivity_timeout <= 15 and settings.watching.server_timeout < 15
    backoffs = list(zip(range(100), settings.networking.error_backoffs, strict=False))
    assert len(backoffs) == 100 and max(b for _, b in backoffs) <= 3

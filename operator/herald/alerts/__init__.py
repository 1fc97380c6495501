"""Herald's own alerts: the operator notifies Alertmanager, webhooks, Slack, Discord and Telegram
about root causes (a platform down, invalid credentials, an overloaded queue, a long rate limit,
dead letters, repeated failures, a degraded operator), under the Prometheus rules' names.

Public API::

    from herald.alerts import Alerter, AlertEvent, AlertKey, Severity, events

    alerter = Alerter.from_config(config.alerts_config, store=state_store(config))  # None: disabled
    await alerter.start()
    alerter.condition(events.platform_down(namespace="news", adapter="mastodon-main"), True)
    alerter.notify(events.dead_lettered(namespace="news", adapter="mastodon-main", publication="launch"))
    alerter.resolve(AlertKey(events.PLATFORM_DOWN, "news", "mastodon-main"))
    await alerter.stop()

Delivery goes through the adapters' platform code (herald_adapters.slack, discord, telegram,
webhook); redaction and webhook signing are the contract's (herald_contract). See docs/alerting.md.
"""

from . import events
from .alerter import DIGEST_SECONDS, Alerter
from .book import ActiveAlert, AlertBook, Notification
from .config import (
    AlertsConfig,
    ConfigError,
    ConfigProblem,
    ConfigReport,
    check_config,
    load_config,
    parse_config,
    read_config,
)
from .events import AlertEvent, AlertKey, Severity, Timing
from .ratelimit import TokenBucket
from .scrub import Scrubber
from .state import ConfigMapStateStore, MemoryStateStore, StateStore, state_store

__all__ = [
    "DIGEST_SECONDS",
    "ActiveAlert",
    "AlertBook",
    "AlertEvent",
    "AlertKey",
    "Alerter",
    "AlertsConfig",
    "ConfigError",
    "ConfigMapStateStore",
    "ConfigProblem",
    "ConfigReport",
    "MemoryStateStore",
    "Notification",
    "Scrubber",
    "Severity",
    "StateStore",
    "Timing",
    "TokenBucket",
    "check_config",
    "events",
    "load_config",
    "parse_config",
    "read_config",
    "state_store",
]

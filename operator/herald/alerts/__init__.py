"""Herald's own alerts: the operator notifies Alertmanager, webhooks, Slack, Discord and Telegram
about root causes (a platform down, invalid credentials, an overloaded queue, a long rate limit,
dead letters, repeated failures, a degraded operator), under the Prometheus rules' names.

Public API::

    from herald.alerts import Alerter, AlertEvent, AlertKey, Severity, events

    alerter = Alerter.from_config()      # file from HERALD_ALERTS_CONFIG; disabled if unset
    await alerter.start()
    alerter.condition(events.platform_down(namespace="news", adapter="mastodon-main"), True)
    alerter.notify(events.dead_lettered(namespace="news", adapter="mastodon-main", publication="launch"))
    alerter.resolve(AlertKey(events.PLATFORM_DOWN, "news", "mastodon-main"))
    await alerter.stop()

See docs/alerting.md.
"""

from . import events
from .alerter import DIGEST_SECONDS, Alerter
from .book import ActiveAlert, AlertBook, Notification
from .config import CONFIG_ENV, AlertsConfig, ConfigError, config_from_env, load_config, parse_config
from .events import AlertEvent, AlertKey, Severity, Timing
from .formatting import Redactor, sign, verify_signature
from .ratelimit import TokenBucket
from .state import ConfigMapStateStore, MemoryStateStore, StateStore, store_from_env

__all__ = [
    "CONFIG_ENV",
    "DIGEST_SECONDS",
    "ActiveAlert",
    "AlertBook",
    "AlertEvent",
    "AlertKey",
    "Alerter",
    "AlertsConfig",
    "ConfigError",
    "ConfigMapStateStore",
    "MemoryStateStore",
    "Notification",
    "Redactor",
    "Severity",
    "StateStore",
    "Timing",
    "TokenBucket",
    "config_from_env",
    "events",
    "load_config",
    "parse_config",
    "sign",
    "store_from_env",
    "verify_signature",
]

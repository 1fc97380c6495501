"""Herald's own alerts: the operator notifies Alertmanager, webhooks, Slack,
Discord and Telegram about root causes (dead letters, platforms down,
invalid credentials, overloaded queues, exhausted rate limits, repeated
failures, a degraded operator).

Public API::

    from herald.alerts import Alerter, AlertEvent, AlertKey, Severity, events

    alerter = Alerter.from_config()      # file from HERALD_ALERTS_CONFIG; disabled if unset
    await alerter.start()
    alerter.notify(events.circuit_opened(adapter="mastodon-main", platform="mastodon"))
    alerter.resolve(AlertKey(events.ADAPTER_CIRCUIT_OPEN, "mastodon-main"))
    await alerter.stop()

See docs/alerting.md.
"""

from . import events
from .alerter import Alerter
from .config import CONFIG_ENV, AlertsConfig, ConfigError, config_from_env, load_config, parse_config
from .dedup import ActiveAlert, DedupState
from .events import AlertEvent, AlertKey, Severity
from .formatting import Redactor, sign, verify_signature
from .ratelimit import TokenBucket

__all__ = [
    "CONFIG_ENV",
    "ActiveAlert",
    "AlertEvent",
    "AlertKey",
    "Alerter",
    "AlertsConfig",
    "ConfigError",
    "DedupState",
    "Redactor",
    "Severity",
    "TokenBucket",
    "config_from_env",
    "events",
    "load_config",
    "parse_config",
    "sign",
    "verify_signature",
]

"""The alerting configuration: a YAML or JSON file mounted from a Secret.

The file's path comes from ``HERALD_ALERTS_CONFIG``. Keys are camelCase; an
unknown key is an error. See docs/alerting.md for the schema and examples.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import parse_qsl, urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from .events import Severity

__all__ = [
    "CONFIG_ENV",
    "AlertmanagerChannel",
    "AlertsConfig",
    "Channel",
    "ConfigError",
    "DeliveryRetry",
    "DiscordChannel",
    "RateLimit",
    "SlackChannel",
    "TelegramChannel",
    "WebhookChannel",
    "config_from_env",
    "load_config",
    "parse_config",
    "secret_values",
]

#: Environment variable naming the configuration file.
CONFIG_ENV = "HERALD_ALERTS_CONFIG"


class ConfigError(ValueError):
    """The alerting configuration is missing, unreadable or invalid."""


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class RateLimit(_Model):
    """Token bucket per channel: ``burst`` notifications at once, ``perMinute`` on average."""

    per_minute: float = Field(30.0, gt=0)
    burst: int = Field(10, ge=1)


class DeliveryRetry(_Model):
    """Bounded retries with exponential backoff for a failed delivery."""

    attempts: int = Field(3, ge=1, le=10)
    initial_backoff_seconds: float = Field(0.5, ge=0)
    max_backoff_seconds: float = Field(10.0, ge=0)


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        # Never echo the value: it may be a secret webhook URL.
        raise ValueError("must be an http(s) URL")
    return value


class _ChannelBase(_Model):
    name: str | None = Field(None, min_length=1, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    min_severity: Severity = Severity.WARNING
    rate_limit: RateLimit = RateLimit()
    timeout_seconds: float = Field(10.0, gt=0, le=120)
    #: Re-notify a still-firing alert this often; 0 never. Default per type.
    resend_interval_seconds: float | None = Field(None, ge=0)

    #: Default resend interval of the channel type (seconds): 4 hours.
    default_resend_interval: ClassVar[float] = 14400.0

    @field_validator("url", "api_url", check_fields=False)
    @classmethod
    def _check_url(cls, v: str) -> str:
        return _http_url(v)

    @property
    def channel_name(self) -> str:
        return self.name or self.type  # type: ignore[attr-defined]

    @property
    def resend_interval(self) -> float:
        if self.resend_interval_seconds is not None:
            return self.resend_interval_seconds
        return self.default_resend_interval

    def secrets(self) -> list[str]:
        """Values that must never appear in a message."""
        return []


def _url_secrets(url: str) -> list[str]:
    """A URL and its parts that identify it (for redaction)."""
    out = [url, url.rstrip("/")]
    parts = urlsplit(url)
    hostpath = parts.netloc + parts.path
    out.append(hostpath)
    if len(parts.path.strip("/")) >= 8:
        out.append(parts.path)
        out.append(parts.path.strip("/"))
    if parts.query:
        out.append(parts.query)
        out.extend(v for _, v in parse_qsl(parts.query, keep_blank_values=False))
    if parts.password:
        out.append(parts.password)
    return out


class AlertmanagerChannel(_ChannelBase):
    """Alertmanager's API v2: alerts are re-sent while firing and resolved with ``endsAt``."""

    type: Literal["alertmanager"]
    url: str = Field(description="Alertmanager base URL, e.g. http://alertmanager:9093")
    bearer_token: str | None = None
    username: str | None = None
    password: str | None = None
    min_severity: Severity = Severity.INFO
    default_resend_interval: ClassVar[float] = 60.0

    def secrets(self) -> list[str]:
        out = _url_secrets(self.url)
        out += [s for s in (self.bearer_token, self.password) if s]
        return out


class WebhookChannel(_ChannelBase):
    """A generic JSON webhook, HMAC-SHA256 signed over ``timestamp + "." + body``."""

    type: Literal["webhook"]
    url: str
    secret: str = Field(min_length=16)
    signature_header: str = "X-Herald-Signature"
    timestamp_header: str = "X-Herald-Timestamp"
    headers: dict[str, str] = Field(default_factory=dict)

    def secrets(self) -> list[str]:
        return _url_secrets(self.url) + [self.secret] + [v for v in self.headers.values() if v]


class SlackChannel(_ChannelBase):
    """A Slack incoming webhook."""

    type: Literal["slack"]
    url: str

    def secrets(self) -> list[str]:
        return _url_secrets(self.url)


class DiscordChannel(_ChannelBase):
    """A Discord webhook."""

    type: Literal["discord"]
    url: str
    username: str = "Herald"

    def secrets(self) -> list[str]:
        return _url_secrets(self.url)


class TelegramChannel(_ChannelBase):
    """A Telegram bot sending to one chat (``sendMessage``)."""

    type: Literal["telegram"]
    bot_token: str = Field(min_length=8)
    chat_id: str
    api_url: str = "https://api.telegram.org"

    @field_validator("chat_id", mode="before")
    @classmethod
    def _chat_id_str(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) else v

    @property
    def send_url(self) -> str:
        return f"{self.api_url.rstrip('/')}/bot{self.bot_token}/sendMessage"

    def secrets(self) -> list[str]:
        return [self.bot_token, f"bot{self.bot_token}", self.send_url]


Channel = Annotated[
    AlertmanagerChannel | WebhookChannel | SlackChannel | DiscordChannel | TelegramChannel,
    Field(discriminator="type"),
]


class AlertsConfig(_Model):
    """The whole file."""

    enabled: bool = True
    channels: list[Channel] = Field(default_factory=list)
    #: The most alerts kept at once (pending, firing or resolving); past it new info and warning
    #: alerts are refused (logged, counted as suppressed "overload"); critical ones always kept.
    queue_size: int = Field(1000, ge=1, le=1_000_000)
    retry: DeliveryRetry = DeliveryRetry()
    #: Labels added to every alert (e.g. ``cluster: prod-eu``).
    extra_labels: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _unique_names(self) -> AlertsConfig:
        seen: set[str] = set()
        for ch in self.channels:
            name = ch.channel_name
            if name in seen:
                raise ValueError(f"two channels are named {name!r}; give each channel a unique 'name'")
            seen.add(name)
        return self

    def secrets(self) -> list[str]:
        out: list[str] = []
        for ch in self.channels:
            out.extend(ch.secrets())
        return [s for s in dict.fromkeys(out) if s]


def secret_values(config: AlertsConfig) -> list[str]:
    """Every configured value that must never appear in a message."""
    return config.secrets()


def _validation_message(exc: ValidationError) -> str:
    # Locations and messages only: pydantic's default text includes the input
    # values, which may be secrets.
    lines = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(p) for p in err.get("loc", ()))
        lines.append(f"{loc}: {err.get('msg')}")
    return "; ".join(lines)


def parse_config(data: Mapping[str, Any] | None) -> AlertsConfig:
    try:
        return AlertsConfig.model_validate(dict(data or {}))
    except ValidationError as exc:
        raise ConfigError(f"invalid alerting configuration: {_validation_message(exc)}") from None


def load_config(path: str | os.PathLike[str]) -> AlertsConfig:
    """Read and validate a YAML (or JSON) configuration file."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read alerting configuration {p}: {exc.strerror}") from None
    try:
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "lineno", None)
        raise ConfigError(f"alerting configuration {p} is not valid YAML/JSON (at {mark})") from None
    if data is not None and not isinstance(data, Mapping):
        raise ConfigError(f"alerting configuration {p} must be a mapping")
    return parse_config(data)


def config_from_env(env: Mapping[str, str] | None = None) -> AlertsConfig | None:
    """The configuration named by ``HERALD_ALERTS_CONFIG``, or ``None`` if unset."""
    env = os.environ if env is None else env
    path = env.get(CONFIG_ENV, "").strip()
    if not path:
        return None
    return load_config(path)

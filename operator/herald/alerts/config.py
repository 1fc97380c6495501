"""The alerting configuration: a YAML or JSON file mounted from a Secret.

The operator gets the file's path from ``HERALD_ALERTS_CONFIG`` (``OperatorConfig.alerts_config``).
Keys are camelCase; an unknown key is an error. See docs/alerting.md for the schema and examples.

``parse_config``/``load_config`` are strict: any error raises :class:`ConfigError`. The operator
reads the file with :func:`read_config` instead, which never raises: an invalid channel is left
out (the others run), an invalid top-level key falls back to its default, and an unreadable file
gives no channels; each problem is returned as a :class:`ConfigProblem`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import parse_qsl, urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from .events import Severity

__all__ = [
    "WHOLE_FILE",
    "AlertmanagerChannel",
    "AlertsConfig",
    "AnyChannel",
    "Channel",
    "ConfigError",
    "ConfigProblem",
    "ConfigReport",
    "DeliveryRetry",
    "DiscordChannel",
    "RateLimit",
    "SlackChannel",
    "TelegramChannel",
    "WebhookChannel",
    "check_config",
    "load_config",
    "parse_config",
    "read_config",
    "secret_values",
]

#: The ``channel`` of a problem with the file itself or a top-level key.
WHOLE_FILE = "*"


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


AnyChannel = AlertmanagerChannel | WebhookChannel | SlackChannel | DiscordChannel | TelegramChannel
Channel = Annotated[AnyChannel, Field(discriminator="type")]
CHANNEL_TYPES: dict[str, type[_ChannelBase]] = {
    "alertmanager": AlertmanagerChannel,
    "webhook": WebhookChannel,
    "slack": SlackChannel,
    "discord": DiscordChannel,
    "telegram": TelegramChannel,
}


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


def _errors(exc: ValidationError) -> list[tuple[str, str]]:
    # Locations and messages only: pydantic's default text includes the input
    # values, which may be secrets.
    return [
        (".".join(str(p) for p in err.get("loc", ())), str(err.get("msg")))
        for err in exc.errors(include_input=False, include_url=False)
    ]


def _validation_message(exc: ValidationError) -> str:
    return "; ".join(f"{loc}: {msg}" for loc, msg in _errors(exc))


def parse_config(data: Mapping[str, Any] | None) -> AlertsConfig:
    try:
        return AlertsConfig.model_validate(dict(data or {}))
    except ValidationError as exc:
        raise ConfigError(f"invalid alerting configuration: {_validation_message(exc)}") from None


def _read(path: str | os.PathLike[str]) -> Mapping[str, Any]:
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
    return data or {}


def load_config(path: str | os.PathLike[str]) -> AlertsConfig:
    """Read and validate a YAML (or JSON) configuration file (strict)."""
    return parse_config(_read(path))


# --- the operator's reading: never fails ---------------------------------------------


@dataclass(frozen=True)
class ConfigProblem:
    """One part of the configuration left out: a channel (its name, else its type, else
    ``channels[i]``) or :data:`WHOLE_FILE`, the fields at fault and why (never a value)."""

    channel: str
    fields: tuple[str, ...]
    message: str


@dataclass(frozen=True)
class ConfigReport:
    config: AlertsConfig
    problems: tuple[ConfigProblem, ...] = ()


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def _label(item: object, index: int) -> str:
    """What to call a channel in logs and metrics, from what it says of itself."""
    if isinstance(item, Mapping):
        for key in ("name", "type"):
            value = item.get(key)
            if isinstance(value, str) and _NAME.match(value):
                return value
    return f"channels[{index}]"


def _problem(channel: str, exc: ValidationError) -> ConfigProblem:
    errors = _errors(exc)
    return ConfigProblem(channel, tuple(dict.fromkeys(loc for loc, _ in errors)), _validation_message(exc))


def _channels(raw: object) -> tuple[list[AnyChannel], list[ConfigProblem]]:
    if not isinstance(raw, list):
        return [], [ConfigProblem(WHOLE_FILE, ("channels",), "channels: must be a list")]
    channels: list[AnyChannel] = []
    problems: list[ConfigProblem] = []
    names: set[str] = set()
    for index, item in enumerate(raw):
        label = _label(item, index)
        kind = item.get("type") if isinstance(item, Mapping) else None
        model = CHANNEL_TYPES.get(kind) if isinstance(kind, str) else None
        if model is None:
            allowed = ", ".join(CHANNEL_TYPES)
            problems.append(ConfigProblem(label, ("type",), f"type: must be one of {allowed}"))
            continue
        try:
            channel = model.model_validate(item)
        except ValidationError as exc:
            problems.append(_problem(label, exc))
            continue
        if channel.channel_name in names:
            problems.append(  # named by position: the name is the other channel's
                ConfigProblem(
                    f"channels[{index}]", ("name",), "name: another channel has this name; give each a unique 'name'"
                )
            )
            continue
        names.add(channel.channel_name)
        channels.append(channel)  # type: ignore[arg-type]
    return channels, problems


def _top_level(data: Mapping[str, Any]) -> tuple[dict[str, Any], list[ConfigProblem]]:
    """The top-level keys that are valid; each invalid one is a problem (its default is used)."""
    kept: dict[str, Any] = {}
    problems: list[ConfigProblem] = []
    for key, value in data.items():
        if key == "channels":
            continue
        try:
            AlertsConfig.model_validate({key: value})
        except ValidationError as exc:
            problems.append(_problem(WHOLE_FILE, exc))
            continue
        kept[key] = value
    return kept, problems


def read_config(path: str | os.PathLike[str]) -> ConfigReport:
    """The configuration in ``path`` as far as it is valid, and what was left out."""
    try:
        data = _read(path)
    except ConfigError as exc:
        return ConfigReport(AlertsConfig(enabled=False), (ConfigProblem(WHOLE_FILE, (), str(exc)),))
    return check_config(data)


def check_config(data: Mapping[str, Any]) -> ConfigReport:
    """The configuration ``data`` as far as it is valid, and what was left out."""
    kept, problems = _top_level(data)
    channels, channel_problems = _channels(data.get("channels", []))
    config = AlertsConfig.model_validate(kept).model_copy(update={"channels": channels})
    return ConfigReport(config, (*problems, *channel_problems))


def secret_values(config: AlertsConfig) -> list[str]:
    """Every configured value that must never appear in a message."""
    return config.secrets()

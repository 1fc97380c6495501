"""The adapter contract (docs/adapter-contract.md): input payload, settings, result.

The settings: every one in ``Settings``, read once from the environment by ``Settings.from_env``
(a value is trimmed; an empty one is unset), then passed on in the ``Context``.

| setting (env) | default | meaning |
| --- | --- | --- |
| ``HERALD_PLATFORM`` | required | ``PlatformAdapter.spec.platform``, e.g. ``mastodon`` (any case) |
| ``HERALD_ENDPOINT`` | the platform's public default | ``spec.endpoint``; a trailing ``/`` is dropped |
| ``HERALD_ATTEMPT`` | 1 | the attempt number, 1 or more |
| ``HERALD_MODE`` | publish | ``publish``, or ``verify`` after an attempt whose outcome was unknown |
| ``HERALD_IDEMPOTENCY_KEY`` | required | 32 lowercase hex characters, the same for every attempt of a target |
| ``HERALD_PUBLICATION`` | empty | ``namespace/name`` of the Publication |
| ``HERALD_TARGET`` | empty | the PlatformAdapter's name |
| ``HERALD_PAYLOAD_FILE`` | /etc/herald/payload/publication.json | the publication (JSON) |
| ``HERALD_CREDENTIALS_DIR`` | /etc/herald/credentials | the Secret, one file per key |
| ``HERALD_RESULT_FILE`` | /dev/termination-log | where the result goes (also when the rest is invalid) |
| ``HERALD_TIMEOUT_SECONDS`` | 10 | one platform call's timeout, in (0, 600] |
| ``HERALD_LOG_LEVEL`` | INFO | ``DEBUG``, ``INFO``, ``WARNING`` or ``ERROR``; anything else is ``INFO`` |
| ``HERALD_TOKEN_STORE_FILE`` | none | X tokens and Bluesky sessions in this JSON file instead (local runs) |
| ``HERALD_KUBE_API_URL`` | from ``KUBERNETES_SERVICE_HOST`` | the API server the token store writes the Secret to |
| ``HERALD_KUBE_SERVICEACCOUNT_DIR`` | /var/run/secrets/kubernetes.io/serviceaccount | its token and ``ca.crt`` |

An invalid value ends the attempt with a ``rejected`` result naming each wrong variable and
what it must be (never the value). The token store (``_token_store.open_store``) is
documented in docs/adapters-x-linkedin.md.
"""

from __future__ import annotations

import enum
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from herald_contract.errors import ErrorClass
from herald_contract.result import RateLimitInfo, ResultModel

# Kubernetes keeps at most 4096 bytes of a termination message.
MAX_RESULT_BYTES = 4096
MAX_MESSAGE_CHARS = 400

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class Mode(enum.StrEnum):
    PUBLISH = "publish"
    VERIFY = "verify"


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


class Media(_Model):
    url: str
    alt_text: str | None = Field(default=None, alias="altText")


class Content(_Model):
    text: str
    title: str | None = None
    link: str | None = None
    media: list[Media] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    # Platform options of this target (its `overrides.options`), e.g. {"visibility": "unlisted"}.
    options: dict[str, Any] = Field(default_factory=dict)


class PublicationRef(_Model):
    namespace: str
    name: str
    uid: str | None = None


class Payload(_Model):
    publication: PublicationRef
    target: str
    content: Content
    truncate: bool = False
    # Also accepted here; merged over content.options.
    options: dict[str, Any] = Field(default_factory=dict)

    @property
    def platform_options(self) -> dict[str, Any]:
        return {**self.content.options, **self.options}


def rfc3339(value: datetime) -> str:
    value = value.astimezone(UTC).replace(microsecond=0)
    return value.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class RateLimit:
    remaining: int
    reset_at: datetime | None = None

    def to_json(self) -> dict:
        out: dict = {"remaining": self.remaining}
        if self.reset_at is not None:
            out["resetAt"] = rfc3339(self.reset_at)
        return out


@dataclass(frozen=True)
class Result:
    outcome: Literal["published", "failed"]
    error_class: ErrorClass | None = None
    retry_after_seconds: float | None = None
    post_id: str | None = None
    url: str | None = None
    rate_limit: RateLimit | None = None
    response_seconds: float | None = None
    message: str | None = None
    verified: bool | None = None

    @property
    def exit_code(self) -> int:
        return 0 if self.outcome == "published" else 1

    def to_json(self) -> dict:
        """The wire form, through the contract's model (herald_contract.result), which the
        operator reads with the same model."""
        rate_limit = None
        if self.rate_limit is not None:
            rate_limit = RateLimitInfo(remaining=self.rate_limit.remaining, resetAt=self.rate_limit.reset_at)
        return ResultModel(
            outcome=self.outcome,
            errorClass=self.error_class,
            message=_shorten(self.message, MAX_MESSAGE_CHARS) if self.message else None,
            retryAfterSeconds=self.retry_after_seconds,
            postId=self.post_id,
            url=self.url,
            rateLimit=rate_limit,
            responseSeconds=self.response_seconds,
            verified=self.verified,
        ).to_wire()

    def dumps(self) -> str:
        """The termination message: one JSON object, at most 4096 bytes."""
        out = self.to_json()
        text = json.dumps(out, ensure_ascii=False, separators=(",", ":"))
        for limit in (200, 60, 0):  # shorten the message, then the URL, until it fits
            if len(text.encode()) <= MAX_RESULT_BYTES:
                break
            if limit:
                out["message"] = _shorten(out.get("message", ""), limit)
            else:
                out.pop("message", None)
                out.pop("url", None)
            text = json.dumps(out, ensure_ascii=False, separators=(",", ":"))
        return text


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def published(**kw) -> Result:
    return Result(outcome="published", **kw)


def failed(error_class: ErrorClass, message: str, **kw) -> Result:
    return Result(outcome="failed", error_class=error_class, message=message, **kw)


class AdapterError(Exception):
    """Ends the attempt with a failed result. Raised anywhere inside an adapter."""

    def __init__(self, result: Result):
        super().__init__(result.message or (result.error_class.value if result.error_class else "failed"))
        self.result = result


def fail(error_class: ErrorClass, message: str, **kw) -> AdapterError:
    return AdapterError(failed(error_class, message, **kw))


class ReportSettings(BaseSettings):
    """What the adapter needs to report a result, even when the rest of its environment is
    invalid: where the result goes and how much it logs."""

    model_config = SettingsConfigDict(env_prefix="HERALD_", extra="ignore", frozen=True)

    result_file: Path = Field(default=Path("/dev/termination-log"), description="a path")
    log_level: LogLevel = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only what is passed in: `from_env` is the one place that reads the environment.
        return (init_settings,)

    @field_validator("log_level", mode="before")
    @classmethod
    def _known_level(cls, value: object) -> object:
        level = str(value).upper()
        return level if level in ("DEBUG", "INFO", "WARNING", "ERROR") else "INFO"

    @field_validator("result_file", "payload_file", "credentials_dir", mode="before", check_fields=False)
    @classmethod
    def _a_path(cls, value: object) -> object:
        if isinstance(value, str) and "\0" in value:
            raise ValueError("a path has no NUL character")
        return value


class Settings(ReportSettings):
    """The HERALD_* environment of the Job's container (the table above)."""

    platform: str = Field(min_length=1, description="a platform name")
    endpoint: str = Field(default="", description="a URL")
    attempt: int = Field(default=1, ge=1, description="a whole number, 1 or more")
    mode: Mode = Field(default=Mode.PUBLISH, description="publish or verify")
    idempotency_key: str = Field(pattern=r"^[0-9a-f]{32}$", description="32 lowercase hex characters")
    publication: str = Field(default="", description="namespace/name")
    target: str = Field(default="", description="a name")
    payload_file: Path = Field(default=Path("/etc/herald/payload/publication.json"), description="a path")
    credentials_dir: Path = Field(default=Path("/etc/herald/credentials"), description="a path")
    timeout_seconds: float = Field(
        default=10.0, gt=0, le=600, allow_inf_nan=False, description="a number of seconds in (0, 600]"
    )
    token_store_file: Path | None = Field(default=None, description="a path")
    kube_api_url: str = Field(default="", pattern=r"^(https?://\S+)?$", description="an http(s) URL")
    kube_serviceaccount_dir: Path | None = Field(default=None, description="a path")

    @field_validator("platform", "mode", mode="before")
    @classmethod
    def _lower_case(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("endpoint")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings from ``env`` (default: the process environment); ``SettingsError``
        names every variable that is wrong, and what it must be."""
        values = _Environment(cls, os.environ if env is None else env)()
        try:
            return cls(**values)
        except ValidationError as exc:
            wrong = {str(error["loc"][0]) for error in exc.errors() if error["loc"]}
            report = ReportSettings(**{k: v for k, v in values.items() if k not in wrong})
            raise SettingsError(_explain(exc), report) from None


class _Environment(EnvSettingsSource):
    """The HERALD_* variables of a given mapping, by their upper-case names only. A value is
    trimmed; an empty one is unset."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]):
        self._env = env
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {name.lower(): v for name, value in self._env.items() if name.isupper() and (v := value.strip())}


def _explain(exc: ValidationError) -> str:
    """One clause per wrong variable, from the field's description; never the value itself."""
    problems: list[str] = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        name = f"HERALD_{field.upper()}"
        if error["type"] == "missing":
            problems.append(f"{name} is not set")
        else:
            info = Settings.model_fields.get(field)
            problems.append(f"{name} must be {info.description if info else 'valid'}")
    return "; ".join(dict.fromkeys(problems))


class SettingsError(Exception):
    """The environment is invalid; ``report`` says where the result still goes."""

    def __init__(self, message: str, report: ReportSettings):
        super().__init__(message)
        self.report = report


def load_payload(path: Path) -> Payload:
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise fail(ErrorClass.REJECTED, f"cannot read the payload file {path}: {exc.strerror}") from None
    try:
        return Payload.model_validate_json(raw)
    except ValueError as exc:
        first = exc.errors()[0] if hasattr(exc, "errors") and exc.errors() else None
        where = ".".join(str(p) for p in first["loc"]) if first else ""
        why = first["msg"] if first else str(exc)
        raise fail(ErrorClass.REJECTED, f"invalid payload file: {where} {why}".strip()) from None

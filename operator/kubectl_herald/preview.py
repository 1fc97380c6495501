"""``kubectl herald preview``: each target's text exactly as its adapter would send it, offline.

The payload is built by the operator's own code (``herald.jobs.build_payload``: the content with the
target's overrides), and the text by the adapter's own code for that platform (``herald_adapters``),
with no network and no credentials:

- for most platforms the function that composes and fits the text is called directly (Mastodon's
  status text, Bluesky's post or thread parts, Slack's escaped text, Telegram's message or caption);
- for the others, the platform's ``publish`` runs until it has fitted its text, and stops there
  (before any request, credential check or token store).

Either way the adapters' ``compose`` and ``fit`` (``herald_adapters._text``) are observed while
they run, so the limit, the unit it is counted in and the truncation come from the adapter itself.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from types import ModuleType
from typing import Any, ClassVar
from unittest import mock

from herald.jobs import build_payload
from herald.naming import idempotency_key

from .kube import CliError


class _Offline(BaseException):
    """An adapter tried to reach the network (or something else preview does not provide).

    A BaseException so that no adapter's ``except Exception`` can swallow it."""


class _Fitted(BaseException):
    """Stops ``publish`` right after its text was fitted."""


@dataclass
class FitCall:
    """One call of the adapter's ``fit``: the text before and after, measured by the adapter's own limit."""

    what: str
    platform: str
    limit: int
    unit: str
    composed: str  # the text with link and tags appended, before fitting
    size: int  # ``composed`` measured the platform's way
    truncate: bool
    text: str | None = None  # what fit returned
    sent_size: int | None = None
    truncated: bool = False
    error: str | None = None


@dataclass
class TargetPreview:
    adapter: str
    platform: str | None
    outcome: str  # fits, truncated, rejected, unlimited (no limit known), unknown (cannot tell offline)
    texts: list[str] = field(default_factory=list)  # what is sent; a Bluesky thread has several
    sizes: list[int] = field(default_factory=list)  # of each text, counted as the platform counts
    limit: int | None = None
    unit: str | None = None
    size: int | None = None  # the composed text's size, before any truncation
    composed: str | None = None
    error: str | None = None
    links: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# -- the offline Context ----------------------------------------------------------------------


class _OfflineHttp:
    """An Http that refuses every request: preview never reaches a platform."""

    last_seconds: float | None = None

    def now(self) -> datetime:
        return datetime.now(UTC)

    def request(self, *args: Any, **kwargs: Any) -> Any:
        raise _Offline("a request to the platform")

    def __getattr__(self, name: str) -> Any:
        raise _Offline(f"Http.{name}")


class _PlaceholderCredentials:
    """Credentials with a placeholder for every required key and nothing for the optional ones."""

    KNOWN: ClassVar[dict[str, str]] = {"author": "urn:li:person:preview"}  # LinkedIn checks its author URN

    def keys(self) -> list[str]:
        return []

    def get(self, key: str) -> str | None:
        return None

    def require(self, key: str) -> str:
        return self.KNOWN.get(key, "preview-placeholder")

    def require_url(self, key: str) -> str:
        return "https://preview.invalid/placeholder/token"


def _context(platform: str, endpoint: str, payload_json: Mapping[str, Any]) -> Any:
    from herald_adapters import Payload, Redactor, Settings
    from herald_adapters._base import Context

    ref = payload_json["publication"]
    env = {
        "HERALD_PLATFORM": platform,
        "HERALD_ENDPOINT": endpoint,
        "HERALD_ATTEMPT": "1",
        "HERALD_MODE": "publish",
        "HERALD_IDEMPOTENCY_KEY": idempotency_key(ref["uid"], payload_json["target"]),
        "HERALD_PUBLICATION": f"{ref['namespace']}/{ref['name']}",
        "HERALD_TARGET": payload_json["target"],
    }
    return Context(
        settings=Settings.from_env(env),
        payload=Payload.model_validate(payload_json),
        credentials=_PlaceholderCredentials(),  # type: ignore[arg-type]
        http=_OfflineHttp(),  # type: ignore[arg-type]
        redact=Redactor(),
    )


# -- observing compose() and fit() ------------------------------------------------------------


@dataclass
class _Observed:
    fits: list[FitCall] = field(default_factory=list)
    hashtags: bool | None = None  # compose(hashtags=...): whether the platform appends #tags
    composed: str | None = None  # compose's body + suffix


@contextlib.contextmanager
def _observe(module: ModuleType, *, stop_after_fit: bool) -> Iterator[_Observed]:
    from herald_adapters import _text
    from herald_adapters._contract import AdapterError

    seen = _Observed()
    real_fit, real_compose = _text.fit, _text.compose

    def compose(content: Any, *, hashtags: bool) -> tuple[str, str]:
        seen.hashtags = bool(seen.hashtags) or hashtags
        body, suffix = real_compose(content, hashtags=hashtags)
        seen.composed = body + suffix
        return body, suffix

    def fit(body: str, suffix: str, limit: Any, *, truncate: bool) -> tuple[str, bool]:
        call = FitCall(
            what=limit.what,
            platform=limit.platform,
            limit=limit.limit,
            unit=limit.unit,
            composed=body + suffix,
            size=limit.measure(body + suffix),
            truncate=truncate,
        )
        seen.fits.append(call)
        try:
            text, truncated = real_fit(body, suffix, limit, truncate=truncate)
        except AdapterError as exc:
            call.error = exc.result.message or str(exc)
            raise
        call.text, call.truncated, call.sent_size = text, truncated, limit.measure(text)
        if stop_after_fit:
            raise _Fitted()
        return text, truncated

    with contextlib.ExitStack() as stack:
        for target in {id(m): m for m in (module, _text)}.values():
            if hasattr(target, "fit"):
                stack.enter_context(mock.patch.object(target, "fit", fit))
            if hasattr(target, "compose"):
                stack.enter_context(mock.patch.object(target, "compose", compose))
        yield seen


# -- per platform -----------------------------------------------------------------------------


def _adapter_module(name: str) -> ModuleType:
    return importlib.import_module(f"herald_adapters.{name}")


def _mastodon(ctx: Any) -> tuple[ModuleType, Callable[[], list[str]], list[str]]:
    m = _adapter_module("mastodon")
    instance = m.Instance()
    notes = [
        f"limit: {instance.max_characters}, Mastodon's default; the adapter asks the instance for its own limit "
        "(GET /api/v2/instance) before posting, so an instance that allows more gets more",
        f"every link counts as {instance.url_length} characters",
    ]
    return m, lambda: [m._status_text(ctx, instance, ctx.options(m.MastodonOptions))], notes


def _bluesky(ctx: Any) -> tuple[ModuleType, Callable[[], list[str]], list[str]]:
    m = _adapter_module("bluesky")
    notes = []
    content = ctx.payload.content
    if content.link and not content.media:
        notes.append(f"link card (embed) for {content.link}" + (f", title {content.title!r}" if content.title else ""))
    return m, lambda: list(m._parts(ctx, ctx.options(m.BlueskyOptions))), notes


def _slack(ctx: Any) -> tuple[ModuleType, Callable[[], list[str]], list[str]]:
    m = _adapter_module("slack")
    notes = ["sent with &, < and > escaped (&amp; &lt; &gt;), as Slack asks; Slack shows them unescaped"]
    if ctx.payload.content.media:
        notes.append("media: uploaded with a bot token; an incoming webhook cannot send them")
    return m, lambda: [m._text(ctx)], notes


def _telegram(ctx: Any) -> tuple[ModuleType, Callable[[], list[str]], list[str]]:
    m = _adapter_module("telegram")

    def run() -> list[str]:
        _method, params = m.build_request(ctx, ctx.options(m.TelegramOptions), "preview")
        if "text" in params:
            return [params["text"]]
        if "caption" in params:
            return [params["caption"]]
        return [params["media"][0].get("caption", "")]

    notes = []
    if ctx.payload.content.media:
        notes.append("with media the text is the caption, whose limit is lower than a message's")
    return m, run, notes


def _until_fitted(platform: str, publish: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Run ``publish`` until its text is fitted; the text it would send is fit's result (see ``_transform``)."""

    def recipe(ctx: Any) -> tuple[ModuleType, Callable[[], list[str]], list[str]]:
        module = inspect.getmodule(publish)
        if module is None:  # pragma: no cover - every function has a module
            raise CliError(f"cannot find the module of the {platform} adapter")

        def run() -> list[str]:
            with contextlib.suppress(_Fitted):
                publish(ctx)
            return []  # the texts come from the recorded fit call

        return module, run, []

    return recipe


def _platforms() -> dict[str, Callable[[Any], Any]]:
    from herald_adapters.cli import PLATFORMS

    return dict(PLATFORMS)


DIRECT = {"mastodon": _mastodon, "bluesky": _bluesky, "slack": _slack, "telegram": _telegram}


def _transform(platform: str) -> Callable[[str], str] | None:
    if platform == "linkedin":
        little_text: Callable[[str], str] = _adapter_module("linkedin").little_text
        return little_text
    return None


NOTES = {
    "linkedin": ["sent as LinkedIn 'little text': reserved characters are escaped with a backslash"],
    "discord": ["mentions in the text never ping (allowed_mentions is empty)"],
}


def preview_target(
    adapter: str, platform: str | None, payload_json: Mapping[str, Any], endpoint: str = ""
) -> TargetPreview:
    """The preview of one target whose payload (``build_payload``) is ``payload_json``."""
    from herald_adapters import _text
    from herald_adapters._contract import AdapterError

    content = payload_json.get("content") or {}
    if not platform:
        return TargetPreview(
            adapter, None, "unknown", error="unknown platform: pass --platform, or preview from the cluster"
        )
    builtin = _platforms()
    if platform not in builtin:
        return TargetPreview(
            adapter,
            platform,
            "unlimited",
            texts=[str(content.get("text", ""))],
            notes=[
                f"{platform!r} is not a built-in platform ({', '.join(sorted(builtin))}): a custom adapter image "
                "decides how to compose and limit the text; this is the content.text it receives"
            ],
        )
    try:
        ctx = _context(platform, endpoint, payload_json)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        return TargetPreview(adapter, platform, "rejected", error=f"the adapter would refuse the payload: {exc}")
    if platform == "webhook":
        return TargetPreview(
            adapter,
            platform,
            "unlimited",
            texts=[ctx.payload.content.text],
            links=[ctx.payload.content.link] if ctx.payload.content.link else [],
            tags=list(ctx.payload.content.tags),
            notes=["no limit: the whole content (text, title, link, media, tags) is sent as JSON, unchanged"],
        )

    recipe = DIRECT.get(platform) or _until_fitted(platform, builtin[platform])
    module, run, notes = recipe(ctx)
    notes = [*notes, *NOTES.get(platform, [])]
    out = TargetPreview(adapter, platform, "fits", notes=notes)
    with _observe(module, stop_after_fit=platform not in DIRECT) as seen:
        try:
            texts = run()
        except AdapterError as exc:
            out.outcome, out.error = "rejected", exc.result.message or str(exc)
            texts = []
        except _Offline as exc:
            out.outcome = "unknown"
            out.error = f"the {platform} adapter needs the network before it composes its text ({exc})"
            texts = []
        except Exception as exc:  # the adapter code changed under us: say so, with what broke
            raise CliError(f"cannot preview {adapter} ({platform}): {type(exc).__name__}: {exc}") from exc
    if len(texts) > 1:  # a Bluesky thread: parts cut at sentence or word ends, each within the limit
        out.texts, out.sizes = texts, [_text.count_graphemes(t) for t in texts]
        out.limit, out.unit = getattr(module, "TEXT_LIMIT", None), "graphemes"
        out.composed = seen.composed
        out.size = _text.count_graphemes(seen.composed) if seen.composed else sum(out.sizes)
        out.outcome = "truncated" if any(c.truncated for c in seen.fits) else "fits"
        out.notes.append(f"a thread of {len(texts)} posts (option thread), each at most {out.limit} {out.unit}")
    elif seen.fits:
        call = seen.fits[-1]
        out.limit, out.unit, out.size, out.composed = call.limit, call.unit, call.size, call.composed
        if call.error is None and call.text is not None:
            transform = _transform(platform)
            out.texts = texts or [transform(call.text) if transform else call.text]
            out.sizes = [call.sent_size] if call.sent_size is not None else []
            out.outcome = "truncated" if call.truncated else "fits"
    elif texts:  # composed without a limit
        out.texts, out.outcome = texts, "unlimited"
    shown = out.texts or ([out.composed] if out.composed else [])
    for text in shown:
        spans = _text.find_mastodon_urls(text) if platform == "mastodon" else _text.find_urls(text)
        out.links += [text[s:e] for s, e in spans if text[s:e] not in out.links]
        if seen.hashtags:
            out.tags += [f"#{tag}" for _s, _e, tag in _text.find_hashtags(text) if f"#{tag}" not in out.tags]
    if content.get("tags") and seen.hashtags is False:
        out.notes.append(f"content.tags are not sent: {platform} posts have no hashtags")
    if getattr(_text, "_regex", True) is None:
        out.notes.append("graphemes are approximated here: the regex package is not installed (pip install regex)")
    return out


# -- reading the publication and the platforms --------------------------------------------------


def payloads(pub: Mapping[str, Any], target: str | None) -> list[tuple[str, dict[str, Any]]]:
    """(adapter, payload) for each target (or only ``target``), built as the operator builds them."""
    meta = pub.get("metadata") or {}
    spec = pub.get("spec") or {}
    names = [str(t["adapter"]) for t in spec.get("targets") or [] if isinstance(t, Mapping) and t.get("adapter")]
    if target is not None:
        if target not in names:
            raise CliError(f"publication {meta.get('name')} has no target {target!r} (targets: {', '.join(names)})")
        names = [target]
    if not names:
        raise CliError(f"publication {meta.get('name')} has no targets")
    ref = {
        "namespace": meta.get("namespace") or "default",
        "name": meta.get("name") or "preview",
        "uid": meta.get("uid") or "preview",
    }
    return [(name, build_payload(ref, spec, name)) for name in names]


def parse_platform_flags(values: list[str]) -> tuple[str | None, dict[str, str]]:
    """``--platform mastodon`` (every target) and ``--platform ADAPTER=mastodon`` (one target)."""
    default: str | None = None
    per_target: dict[str, str] = {}
    for value in values:
        adapter, sep, platform = value.partition("=")
        if sep:
            if not adapter or not platform:
                raise CliError(f"--platform {value!r}: use PLATFORM or ADAPTER=PLATFORM")
            per_target[adapter] = platform
        else:
            default = value
    return default, per_target


def documents(text: str) -> list[dict[str, Any]]:
    """The objects in a YAML or JSON file (several documents, and kind: List, are flattened)."""
    import yaml

    try:
        docs = [d for d in yaml.safe_load_all(text) if d]
    except yaml.YAMLError as exc:
        raise CliError(f"cannot parse the file: {exc}") from None
    out: list[dict[str, Any]] = []
    for doc in docs:
        if not isinstance(doc, dict):
            continue
        if doc.get("kind", "").endswith("List") and isinstance(doc.get("items"), list):
            out += [i for i in doc["items"] if isinstance(i, dict)]
        else:
            out.append(doc)
    return out


def pick_publication(objects: list[dict[str, Any]], name: str | None) -> dict[str, Any]:
    pubs = [o for o in objects if o.get("kind") == "Publication"]
    if name is not None:
        pubs = [p for p in pubs if (p.get("metadata") or {}).get("name") == name]
        if not pubs:
            raise CliError(f"the file holds no Publication named {name!r}")
    if not pubs:
        raise CliError("the file holds no Publication")
    if len(pubs) > 1:
        names = ", ".join(str((p.get("metadata") or {}).get("name")) for p in pubs)
        raise CliError(f"the file holds several Publications ({names}): name one")
    return pubs[0]


# -- output -----------------------------------------------------------------------------------


def render(previews: list[TargetPreview]) -> str:
    out: list[str] = []
    for p in previews:
        out.append(f"{p.adapter} (platform {p.platform or 'unknown'})")
        rows: list[tuple[str, str]] = []
        if p.limit is not None and p.size is not None:
            length = f"{p.size} of {p.limit} {p.unit}"
            if p.outcome == "truncated" and p.sizes:
                length += f", truncated to {p.sizes[0]}"
            elif len(p.sizes) > 1:
                length += f", split into {len(p.sizes)} posts of " + ", ".join(str(s) for s in p.sizes)
            rows.append(("length", length))
        elif p.sizes:
            rows.append(("length", ", ".join(str(s) for s in p.sizes) + " characters (no limit)"))
        if p.outcome == "fits":
            rows.append(("result", "fits"))
        elif p.outcome == "truncated":
            rows.append(("result", "TRUNCATED (spec.truncate: true): cut at a grapheme boundary, ending in …"))
        elif p.outcome == "rejected":
            rows.append(("result", f"REJECTED: {p.error}"))
        elif p.outcome == "unlimited":
            rows.append(("result", "no limit"))
        else:
            rows.append(("result", f"cannot tell: {p.error}"))
        rows.append(("links", "  ".join(p.links) if p.links else "-"))
        rows.append(("tags", " ".join(p.tags) if p.tags else "-"))
        rows += [("note", n) for n in p.notes]
        out += [f"  {k + ':':<8}{v}" for k, v in rows]
        texts = p.texts or ([p.composed] if p.composed else [])
        label = "text" if p.texts else "text (as composed, not sent)"
        for i, text in enumerate(texts):
            part = f" (post {i + 1} of {len(texts)})" if len(texts) > 1 else ""
            out.append(f"  {label}{part}:")
            out += [f"    | {line}" if line else "    |" for line in text.split("\n")]
        out.append("")
    return "\n".join(out)

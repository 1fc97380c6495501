"""Message formatting, redaction and webhook signing (pure: no I/O).

Every payload builder takes an event whose text was already redacted; the
:class:`Redactor` is applied again to the finished payload as a safety net.
"""

from __future__ import annotations

import hmac
import json
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from herald_contract.redact import redact as _redact_patterns
from herald_contract.signing import sign

from .events import AlertEvent, Severity

__all__ = [
    "REDACTED",
    "Redactor",
    "alert_annotations",
    "alert_labels",
    "alertmanager_alert",
    "canonical_json",
    "digest_title",
    "discord_payload",
    "iso8601",
    "plain_text",
    "sign",
    "slack_payload",
    "telegram_payload",
    "title_line",
    "truncate",
    "verify_signature",
    "webhook_digest",
    "webhook_payload",
    "who",
]

REDACTED = "[REDACTED]"
#: Shorter configured values are not redacted (they would mangle ordinary text).
MIN_SECRET_LENGTH = 4


class Redactor:
    """Removes configured secret values (tokens, webhook URLs, …) from text.

    Guarantees that no configured secret of at least ``MIN_SECRET_LENGTH``
    characters occurs in the output, and leaves text that contains none of
    them unchanged apart from credential-looking patterns (``token=…``,
    ``Bearer …``, bot tokens, Slack/Discord webhook paths), which are masked
    too.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        uniq = {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}
        # Longest first, so a URL is replaced whole rather than piecemeal.
        self.secrets: tuple[str, ...] = tuple(sorted(uniq, key=lambda s: (-len(s), s)))

    def _mask_secrets(self, text: str) -> str:
        if not self.secrets or not text:
            return text
        # Mark every character covered by any occurrence (overlaps included),
        # then replace each covered run with one marker.
        covered = bytearray(len(text))
        found = False
        for secret in self.secrets:
            start = text.find(secret)
            while start != -1:
                found = True
                covered[start : start + len(secret)] = b"\x01" * len(secret)
                start = text.find(secret, start + 1)
        if not found:
            return text
        out: list[str] = []
        i = 0
        n = len(text)
        while i < n:
            if covered[i]:
                while i < n and covered[i]:
                    i += 1
                out.append(REDACTED)
            else:
                j = i
                while j < n and not covered[j]:
                    j += 1
                out.append(text[i:j])
                i = j
        result = "".join(out)
        # A secret that contains pieces of the marker could re-form around it;
        # remove such occurrences outright (each pass shortens the text, so
        # this ends).
        while any(s in result for s in self.secrets):
            for s in self.secrets:
                result = result.replace(s, "")
        return result

    def redact(self, text: str) -> str:
        text = self._mask_secrets(str(text))
        if not text:
            return text
        # herald.redact's credential patterns, line by line (it turns line breaks into spaces,
        # and alert texts keep theirs); no length limit here (callers truncate per channel).
        patterned = "\n".join(_redact_patterns(line, (), limit=sys.maxsize) for line in text.split("\n"))
        if patterned != text:
            patterned = self._mask_secrets(patterned)
        return patterned

    def redact_obj(self, obj: Any) -> Any:
        """``obj`` (JSON-like) with every string, keys included, redacted."""
        if isinstance(obj, str):
            return self.redact(obj)
        if isinstance(obj, Mapping):
            return {self.redact_obj(k): self.redact_obj(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [self.redact_obj(v) for v in obj]
        return obj

    def redact_event(self, event: AlertEvent) -> AlertEvent:
        return replace(
            event,
            summary=self.redact(event.summary),
            description=self.redact(event.description),
            adapter=self.redact(event.adapter) if event.adapter else event.adapter,
            namespace=self.redact(event.namespace) if event.namespace else event.namespace,
            labels=self.redact_obj(dict(event.labels)),
            annotations=self.redact_obj(dict(event.annotations)),
        )


def truncate(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, marked with an ellipsis."""
    if limit <= 0:
        return ""
    if len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def iso8601(ts: float) -> str:
    """RFC 3339 UTC timestamp with milliseconds (``2026-01-02T03:04:05.678Z``)."""
    dt = datetime.fromtimestamp(ts, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


_SEVERITY_COLOURS = {
    Severity.INFO: "#439FE0",
    Severity.WARNING: "#DAA038",
    Severity.CRITICAL: "#D00000",
}
_RESOLVED_COLOUR = "#2EB886"
SLACK_MAX_ATTACHMENTS = 20
DISCORD_MAX_EMBEDS = 10


def alert_labels(event: AlertEvent, extra_labels: Mapping[str, str] = {}) -> dict[str, str]:
    """The alert's identifying labels: those of the Prometheus rule of the same name (alertname,
    severity, namespace, adapter), the event's own and the configuration's ``extraLabels``."""
    labels: dict[str, str] = {**extra_labels, **event.labels}
    labels["alertname"] = event.name
    labels["severity"] = event.severity.value
    if event.adapter:
        labels["adapter"] = event.adapter
    if event.namespace:
        labels["namespace"] = event.namespace
    return labels


def alert_annotations(event: AlertEvent) -> dict[str, str]:
    ann = dict(event.annotations)
    ann["summary"] = event.summary
    if event.description:
        ann["description"] = event.description
    ann["runbook_url"] = event.runbook_url
    return ann


def who(event: AlertEvent) -> str:
    """``news/mastodon-main``, or the adapter or namespace alone, or nothing."""
    return "/".join(p for p in (event.namespace, event.adapter) if p)


def title_line(event: AlertEvent) -> str:
    """``[FIRING:critical] HeraldPlatformDown (news/mastodon-main)`` / ``[RESOLVED] …``."""
    head = f"[FIRING:{event.severity.value}]" if event.firing else "[RESOLVED]"
    w = who(event)
    return f"{head} {event.name}" + (f" ({w})" if w else "")


def _detail_pairs(event: AlertEvent, extra_labels: Mapping[str, str]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    if event.namespace:
        pairs.append(("namespace", event.namespace))
    if event.adapter:
        pairs.append(("adapter", event.adapter))
    for k, v in sorted({**extra_labels, **event.labels}.items()):
        pairs.append((k, v))
    for k, v in sorted(event.annotations.items()):
        if k not in ("summary", "description", "runbook_url"):
            pairs.append((k, v))
    return pairs


def plain_text(event: AlertEvent, extra_labels: Mapping[str, str] = {}, limit: int = 4096) -> str:
    """A plain-text rendering of the alert (Telegram, logs)."""
    lines = [title_line(event), event.summary]
    if event.description:
        lines.append(event.description)
    details = _detail_pairs(event, extra_labels)
    if details:
        lines.append("")
        lines += [f"{k}: {v}" for k, v in details]
    lines.append(f"Runbook: {event.runbook_url}")
    return truncate("\n".join(lines), limit)


def digest_title(events: Sequence[AlertEvent]) -> str:
    firing = sum(1 for e in events if e.firing)
    return f"Herald digest: {len(events)} alert notifications ({firing} firing, {len(events) - firing} resolved)"


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_attachment(event: AlertEvent, extra_labels: Mapping[str, str]) -> dict[str, Any]:
    colour = _SEVERITY_COLOURS[event.severity] if event.firing else _RESOLVED_COLOUR
    fields = [
        {"title": k, "value": _slack_escape(truncate(v, 300)), "short": True}
        for k, v in _detail_pairs(event, extra_labels)
    ][:10]
    return {
        "color": colour,
        "title": _slack_escape(truncate(title_line(event), 150)),
        "title_link": event.runbook_url,
        "text": _slack_escape(truncate(event.description or event.summary, 3000)),
        "fields": fields,
        "footer": "Herald",
        "mrkdwn_in": ["text"],
    }


def slack_payload(events: Sequence[AlertEvent], extra_labels: Mapping[str, str] = {}) -> dict[str, Any]:
    """A Slack incoming-webhook message: one coloured attachment per alert (a digest has several)."""
    if len(events) == 1:
        (event,) = events
        text = f"{_slack_escape(truncate(title_line(event), 150))}: {_slack_escape(truncate(event.summary, 500))}"
    else:
        text = digest_title(events)
    attachments = [_slack_attachment(e, extra_labels) for e in events[:SLACK_MAX_ATTACHMENTS]]
    if len(events) > SLACK_MAX_ATTACHMENTS:
        rest = events[SLACK_MAX_ATTACHMENTS - 1 :]
        attachments[-1] = {"title": f"… and {len(rest)} more", "text": truncate("\n".join(map(title_line, rest)), 3000)}
    return {"text": text, "attachments": attachments}


def _discord_embed(event: AlertEvent, extra_labels: Mapping[str, str], now: float) -> dict[str, Any]:
    colour = _SEVERITY_COLOURS[event.severity] if event.firing else _RESOLVED_COLOUR
    return {
        "title": truncate(title_line(event), 256),
        "url": event.runbook_url,
        "description": truncate(event.summary + ("\n\n" + event.description if event.description else ""), 4000),
        "color": int(colour.lstrip("#"), 16),
        "fields": [
            {"name": truncate(k, 256), "value": truncate(v, 1024) or "-", "inline": True}
            for k, v in _detail_pairs(event, extra_labels)
        ][:25],
        "footer": {"text": "Herald"},
        "timestamp": iso8601(now),
    }


def discord_payload(
    events: Sequence[AlertEvent],
    extra_labels: Mapping[str, str] = {},
    *,
    username: str = "Herald",
    now: float | None = None,
) -> dict[str, Any]:
    """A Discord webhook message: one embed per alert (at most 10); mentions are disabled."""
    at = time.time() if now is None else now
    embeds = [_discord_embed(e, extra_labels, at) for e in events[:DISCORD_MAX_EMBEDS]]
    if len(events) > DISCORD_MAX_EMBEDS:
        rest = events[DISCORD_MAX_EMBEDS - 1 :]
        embeds[-1] = {
            "title": f"… and {len(rest)} more",
            "description": truncate("\n".join(map(title_line, rest)), 4000),
        }
    content = title_line(events[0]) if len(events) == 1 else digest_title(events)
    return {
        "username": username,
        "content": truncate(content, 2000),
        "embeds": embeds,
        "allowed_mentions": {"parse": []},
    }


def telegram_payload(
    events: Sequence[AlertEvent], chat_id: str, extra_labels: Mapping[str, str] = {}
) -> dict[str, Any]:
    """Arguments of Telegram's ``sendMessage`` (plain text, no parse mode, at most 4096 characters)."""
    if len(events) == 1:
        text = plain_text(events[0], extra_labels, limit=4096)
    else:
        parts = [digest_title(events)] + [plain_text(e, extra_labels, limit=1000) for e in events]
        text = truncate("\n\n".join(parts), 4096)
    return {"chat_id": chat_id, "text": text, "disable_web_page_preview": True}


def webhook_payload(
    event: AlertEvent,
    *,
    started_at: float,
    now: float,
    ends_at: float | None = None,
    extra_labels: Mapping[str, str] = {},
) -> dict[str, Any]:
    """The generic webhook's JSON document for one alert (version 1)."""
    return {
        "version": "1",
        "source": "herald",
        "status": event.status,
        "alertname": event.name,
        "severity": event.severity.value,
        "adapter": event.adapter,
        "namespace": event.namespace,
        "summary": event.summary,
        "description": event.description,
        "labels": alert_labels(event, extra_labels),
        "annotations": alert_annotations(event),
        "startsAt": iso8601(started_at),
        "endsAt": iso8601(ends_at if ends_at is not None else now) if not event.firing else None,
        "sentAt": iso8601(now),
        "dedupKey": "/".join(event.key),
    }


def webhook_digest(documents: Sequence[Mapping[str, Any]], *, now: float) -> dict[str, Any]:
    """Several webhook documents in one request (a rate-limited channel's digest)."""
    return {"version": "1", "source": "herald", "digest": True, "sentAt": iso8601(now), "alerts": list(documents)}


def alertmanager_alert(
    event: AlertEvent,
    *,
    started_at: float,
    ends_at: float,
    extra_labels: Mapping[str, str] = {},
    generator_url: str | None = None,
) -> dict[str, Any]:
    """One element of Alertmanager's ``POST /api/v2/alerts`` body.

    A firing alert carries an ``endsAt`` in the future (it expires unless
    re-sent); a resolved one carries the time it was resolved.
    """
    alert: dict[str, Any] = {
        "labels": alert_labels(event, extra_labels),
        "annotations": alert_annotations(event),
        "startsAt": iso8601(started_at),
        "endsAt": iso8601(ends_at),
    }
    if generator_url:
        alert["generatorURL"] = generator_url
    return alert


def canonical_json(obj: Any) -> bytes:
    """The exact bytes Herald sends (and signs) for a JSON body."""
    return json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def verify_signature(
    secret: str,
    timestamp: str,
    body: bytes,
    signature: str,
    *,
    now: float | None = None,
    tolerance_seconds: float = 300.0,
) -> bool:
    """Receiver side: the signature matches and the timestamp is recent."""
    try:
        ts = float(timestamp)
    except (TypeError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance_seconds:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature or "")

"""Message formatting: the alert texts and payloads of each channel (pure: no I/O).

Every payload builder takes an event whose text was already scrubbed (``scrub.Scrubber``); the
channel scrubs the finished payload again. Platform limits and escaping come from the adapters'
platform modules, which also deliver the payloads (``channels``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from herald_adapters import discord, slack, telegram

from .events import AlertEvent, Severity

__all__ = [
    "alert_annotations",
    "alert_labels",
    "alertmanager_alert",
    "canonical_json",
    "digest_title",
    "discord_payload",
    "iso8601",
    "plain_text",
    "slack_payload",
    "telegram_text",
    "title_line",
    "truncate",
    "webhook_digest",
    "webhook_payload",
    "who",
]


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
DISCORD_MAX_EMBEDS = discord.MAX_EMBEDS


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


def _slack_attachment(event: AlertEvent, extra_labels: Mapping[str, str]) -> dict[str, Any]:
    colour = _SEVERITY_COLOURS[event.severity] if event.firing else _RESOLVED_COLOUR
    fields = [
        {"title": k, "value": slack.escape(truncate(v, 300)), "short": True}
        for k, v in _detail_pairs(event, extra_labels)
    ][:10]
    return {
        "color": colour,
        "title": slack.escape(truncate(title_line(event), 150)),
        "title_link": event.runbook_url,
        "text": slack.escape(truncate(event.description or event.summary, 3000)),
        "fields": fields,
        "footer": "Herald",
        "mrkdwn_in": ["text"],
    }


def slack_payload(events: Sequence[AlertEvent], extra_labels: Mapping[str, str] = {}) -> dict[str, Any]:
    """A Slack incoming-webhook message: one coloured attachment per alert (a digest has several)."""
    if len(events) == 1:
        (event,) = events
        text = f"{slack.escape(truncate(title_line(event), 150))}: {slack.escape(truncate(event.summary, 500))}"
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
        "content": truncate(content, discord.CONTENT_LIMIT),
        "embeds": embeds,
        "allowed_mentions": {"parse": []},
    }


def telegram_text(events: Sequence[AlertEvent], extra_labels: Mapping[str, str] = {}) -> str:
    """The text of Telegram's ``sendMessage``: plain (no parse mode), at most 4096 characters."""
    if len(events) == 1:
        return plain_text(events[0], extra_labels, limit=telegram.TEXT_LIMIT)
    parts = [digest_title(events)] + [plain_text(e, extra_labels, limit=1000) for e in events]
    return truncate("\n\n".join(parts), telegram.TEXT_LIMIT)


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

"""The book of Herald's own alerts: which fire, since when, and what each channel has been told.

Pure (the caller passes the time), so the alerter and the tests drive it alike, and the whole book
round-trips through a JSON document (:meth:`AlertBook.document`) that the alerter persists: a
restarted operator re-fires nothing and keeps each alert's ``startsAt``.

An alert is raised two ways:

* :meth:`condition` reports a level (a circuit open, credentials invalid, …). The alert is
  ``pending`` until the condition has held for the alert's ``for_seconds``, then ``firing``. When
  the condition goes false the alert is ``clearing`` (nothing is re-sent) and resolves only once it
  has stayed false for ``hold_seconds``; a condition that returns sooner changes nothing (the
  hysteresis: a limit that toggles every 45 s is one alert, not one per toggle).
* :meth:`occur` reports an occurrence (a target dead-lettered): the alert fires at once, repeats
  only refresh its text, and it resolves ``expire_seconds`` after the last one.

Per channel, :meth:`due` lists what to send now: the first notification of a firing alert (again
after a failed delivery, with backoff, until it is delivered: nothing is ever dropped), a reminder
every resend interval while firing, and the resolution for channels that were told it fired.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .events import AlertEvent, AlertKey, Severity, Timing

__all__ = ["CLEARING", "FIRING", "PENDING", "RESOLVED", "ActiveAlert", "AlertBook", "Delivery", "Notification"]

PENDING, FIRING, CLEARING, RESOLVED = "pending", "firing", "clearing", "resolved"
#: A resolved alert whose resolution cannot be delivered is given up after this long.
GIVE_UP_SECONDS = 86400.0
#: Descriptions are kept (and saved) up to this length.
MAX_TEXT = 1024


@dataclass(frozen=True)
class Notification:
    """One thing to tell a channel: an alert firing (first time or reminder) or resolved."""

    event: AlertEvent
    started_at: float
    ends_at: float | None = None


@dataclass
class Delivery:
    """What one channel was told about one alert."""

    sent_at: float | None = None  # the firing alert was last delivered then
    tried_at: float | None = None  # the last delivery failed then
    failures: int = 0
    resolved: bool = False  # its resolution was delivered
    busy: bool = field(default=False, compare=False)  # queued or in flight (not persisted)


@dataclass
class ActiveAlert:
    event: AlertEvent
    state: str
    since: float  # the condition holds since (pending), or the first occurrence
    starts_at: float | None = None
    ends_at: float | None = None
    condition: bool | None = None  # the last reported level (None: an occurrence alert)
    false_since: float | None = None
    last_seen: float = 0.0
    deliveries: dict[str, Delivery] = field(default_factory=dict)

    @property
    def key(self) -> AlertKey:
        return self.event.key


@dataclass(frozen=True)
class ChannelPolicy:
    min_severity: Severity = Severity.WARNING
    resend_interval: float = 14400.0


def _bounded(event: AlertEvent) -> AlertEvent:
    if len(event.description) <= MAX_TEXT:
        return event
    return replace(event, description=event.description[: MAX_TEXT - 1] + "…")


def retry_delay(failures: int, base: float = 15.0) -> float:
    """Seconds before delivering again after ``failures`` failed deliveries: 15 s doubling to 5 min."""
    return min(20 * base, base * 2 ** max(0, failures - 1))


class AlertBook:
    def __init__(
        self,
        channels: Mapping[str, ChannelPolicy],
        timings: Mapping[str, Timing] | None = None,
        max_alerts: int = 1000,
        retry_base: float = 15.0,
    ) -> None:
        self.channels = dict(channels)
        self.retry_base = retry_base
        self.timings = dict(timings or {})
        self.max_alerts = max_alerts
        self.alerts: dict[AlertKey, ActiveAlert] = {}
        #: (reason, event, channel) of every notification not sent as it came; the alerter logs and counts them.
        self.suppressed: list[tuple[str, AlertEvent, str]] = []

    def timing(self, event: AlertEvent) -> Timing:
        return self.timings.get(event.name) or event.timing

    def _accepting(self, event: AlertEvent) -> list[str]:
        return [n for n, p in self.channels.items() if event.severity.rank >= p.min_severity.rank]

    def _suppress(self, reason: str, event: AlertEvent) -> None:
        self.suppressed.extend((reason, event, ch) for ch in self._accepting(event))

    def firing(self) -> list[ActiveAlert]:
        return [a for a in self.alerts.values() if a.state in (FIRING, CLEARING)]

    # --- what the operator reports ------------------------------------------------------------

    def _refresh(self, a: ActiveAlert, event: AlertEvent) -> None:
        """Newer text; a higher severity is told again. The identifying labels stay the first event's."""
        escalated = event.severity.rank > a.event.severity.rank
        a.event = replace(
            a.event,
            severity=event.severity if escalated else a.event.severity,
            summary=event.summary or a.event.summary,
            description=event.description or a.event.description,
            annotations={**a.event.annotations, **event.annotations},
        )
        if escalated:
            a.deliveries.clear()

    def _admit(self, event: AlertEvent) -> bool:
        """Room for a new alert: below ``max_alerts``, or critical (never refused)."""
        if len(self.alerts) < self.max_alerts or event.severity is Severity.CRITICAL:
            return True
        self._suppress("overload", event)
        return False

    def occur(self, event: AlertEvent, now: float) -> bool:
        """An occurrence: fires a new alert (True) or refreshes a firing one (a duplicate, False)."""
        event = _bounded(event)
        a = self.alerts.get(event.key)
        if a is None or a.state == RESOLVED:
            if not self._admit(event):
                return False
            self.alerts[event.key] = ActiveAlert(event, FIRING, now, starts_at=now, last_seen=now)
            return True
        a.last_seen = now
        if a.state == PENDING:
            a.state, a.starts_at = FIRING, now
            self._refresh(a, event)
            return True
        if a.state == CLEARING:
            a.state, a.false_since = FIRING, None
        self._refresh(a, event)
        self._suppress("duplicate", a.event)
        return False

    def condition(self, event: AlertEvent, active: bool | None, now: float) -> None:
        """The level of a condition: True (holds), False (does not), None (no change: keep the state)."""
        event = _bounded(event)
        a = self.alerts.get(event.key)
        if active is None:
            if a is not None and a.state != RESOLVED:
                a.last_seen = now
                self._refresh(a, event)
            return
        if active:
            if a is None or a.state == RESOLVED:
                if not self._admit(event):
                    return
                a = self.alerts[event.key] = ActiveAlert(event, PENDING, now, condition=True, last_seen=now)
            else:
                self._refresh(a, event)
            if a.state == CLEARING:
                a.state = FIRING
                self._suppress("flapping", a.event)
            a.condition, a.false_since, a.last_seen = True, None, now
        else:
            if a is None or a.state == RESOLVED:
                return
            if a.condition is not False:
                a.false_since = now
            a.condition, a.last_seen = False, now
            if a.state == FIRING:
                a.state = CLEARING
        self.advance(now)

    def resolve(self, key: AlertKey, now: float, event: AlertEvent | None = None) -> None:
        a = self.alerts.get(key)
        if a is None or a.state == RESOLVED:
            return
        if a.state == PENDING:
            del self.alerts[key]
            return
        if event is not None and event.description:
            a.event = replace(a.event, description=event.description)
        a.state, a.ends_at = RESOLVED, now

    def resolve_where(self, keep: Iterable[tuple[str, str]], now: float) -> None:
        """Resolve the adapter alerts of every adapter not in ``keep`` ((namespace, name) pairs)."""
        present = set(keep)
        for key in [k for k in self.alerts if k.adapter and (k.namespace, k.adapter) not in present]:
            self.resolve(key, now)

    # --- time ---------------------------------------------------------------------------------

    def advance(self, now: float) -> None:
        """Apply what time decides: pending -> firing, clearing -> resolved, occurrences expiring."""
        for key, a in list(self.alerts.items()):
            t = self.timing(a.event)
            recently = a.condition or (a.false_since is not None and now - a.false_since < t.hold_seconds)
            if a.state == PENDING:
                if not recently:
                    del self.alerts[key]
                elif now - a.since >= t.for_seconds:
                    a.state, a.starts_at = (FIRING if a.condition else CLEARING), now
            else:
                cleared = a.state == CLEARING and not recently
                expired = a.state == FIRING and a.condition is None and 0 < t.expire_seconds <= now - a.last_seen
                if cleared or expired:
                    a.state, a.ends_at = RESOLVED, now
            if a.state == RESOLVED and self._finished(a, now):
                del self.alerts[key]

    def _owes_resolution(self, a: ActiveAlert, channel: str) -> bool:
        """The channel must hear that ``a`` resolved: it was told (or tried) that it fired, or the
        alert is critical (one that fired and resolved before any delivery is still told, once)."""
        d = a.deliveries.get(channel)
        if d is not None and (d.sent_at is not None or d.tried_at is not None or d.busy):
            return True
        return a.event.severity is Severity.CRITICAL and channel in self._accepting(a.event)

    def _finished(self, a: ActiveAlert, now: float) -> bool:
        owed = [c for c in self.channels if self._owes_resolution(a, c)]
        done = all((d := a.deliveries.get(c)) is not None and d.resolved for c in owed)
        return done or now - (a.ends_at or now) >= GIVE_UP_SECONDS

    def next_deadline(self, now: float) -> float | None:
        """When :meth:`advance` or :meth:`due` will next have something to do (None: only on a report)."""
        times: list[float] = []
        for a in self.alerts.values():
            t = self.timing(a.event)
            if a.false_since is not None and a.state in (PENDING, CLEARING):
                times.append(a.false_since + t.hold_seconds)
            if a.state == PENDING:
                times.append(a.since + t.for_seconds)
            if a.state == FIRING and a.condition is None and t.expire_seconds:
                times.append(a.last_seen + t.expire_seconds)
            for name, d in a.deliveries.items():
                if d.busy:
                    continue
                if d.tried_at is not None:
                    times.append(d.tried_at + retry_delay(d.failures, self.retry_base))
                policy = self.channels.get(name)
                if a.state == FIRING and d.sent_at is not None and policy and policy.resend_interval > 0:
                    times.append(d.sent_at + policy.resend_interval)
        return min(times) if times else None

    # --- delivery -------------------------------------------------------------------------------

    def due(self, channel: str, now: float) -> list[Notification]:
        """What ``channel`` should be sent now; marks it busy until :meth:`delivered`."""
        policy = self.channels[channel]
        out: list[Notification] = []
        for a in self.alerts.values():
            if a.state == PENDING or a.event.severity.rank < policy.min_severity.rank:
                continue
            if a.state == RESOLVED and not self._owes_resolution(a, channel):
                continue
            d = a.deliveries.setdefault(channel, Delivery())
            if d.busy:
                continue
            retry_ok = d.tried_at is None or now >= d.tried_at + retry_delay(d.failures, self.retry_base)
            start = a.starts_at if a.starts_at is not None else a.since
            if a.state in (FIRING, CLEARING):
                first = d.sent_at is None and retry_ok
                reminder = (
                    a.state == FIRING
                    and d.sent_at is not None
                    and policy.resend_interval > 0
                    and now - d.sent_at >= policy.resend_interval
                )
                if not (first or reminder):
                    continue
                out.append(Notification(a.event, start))
            elif not d.resolved and retry_ok:
                out.append(Notification(a.event.resolved(), start, a.ends_at or now))
            else:
                continue
            d.busy = True
        return out

    def delivered(self, channel: str, batch: Iterable[Notification], ok: bool, now: float) -> None:
        for n in batch:
            a = self.alerts.get(n.event.key)
            d = a.deliveries.get(channel) if a is not None else None
            if a is None or d is None:
                continue
            d.busy = False
            if not ok:
                d.tried_at, d.failures = now, d.failures + 1
            elif n.event.firing:
                d.sent_at, d.tried_at, d.failures = now, None, 0
            else:
                d.resolved, d.tried_at, d.failures = True, None, 0
        self.advance(now)

    # --- persistence ----------------------------------------------------------------------------

    def document(self) -> dict[str, Any]:
        alerts = []
        for a in self.alerts.values():
            e = a.event
            alerts.append(
                {
                    "event": {
                        "name": e.name,
                        "severity": e.severity.value,
                        "summary": e.summary,
                        "description": e.description,
                        "namespace": e.namespace,
                        "adapter": e.adapter,
                        "labels": dict(e.labels),
                        "annotations": dict(e.annotations),
                    },
                    "state": a.state,
                    "since": a.since,
                    "startsAt": a.starts_at,
                    "endsAt": a.ends_at,
                    "condition": a.condition,
                    "falseSince": a.false_since,
                    "lastSeen": a.last_seen,
                    "deliveries": {
                        ch: {k: v for k, v in dataclasses.asdict(d).items() if k != "busy"}
                        for ch, d in a.deliveries.items()
                    },
                }
            )
        return {"version": 1, "alerts": alerts}

    def load(self, document: Mapping[str, Any] | None) -> int:
        """Take the alerts of a saved document (malformed entries are skipped); returns how many."""
        if not document or document.get("version") != 1:
            return 0
        for item in document.get("alerts") or []:
            try:
                event = AlertEvent(**item["event"])
                a = ActiveAlert(
                    event,
                    item["state"],
                    float(item["since"]),
                    starts_at=item.get("startsAt"),
                    ends_at=item.get("endsAt"),
                    condition=item.get("condition"),
                    false_since=item.get("falseSince"),
                    last_seen=float(item.get("lastSeen") or 0.0),
                    deliveries={ch: Delivery(**d) for ch, d in (item.get("deliveries") or {}).items()},
                )
            except (KeyError, TypeError, ValueError):
                continue
            if a.state in (PENDING, FIRING, CLEARING, RESOLVED):
                self.alerts[a.key] = a
        return len(self.alerts)

"""Which alerts are firing, and which channel was told about them when (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .events import AlertEvent, AlertKey

__all__ = ["ActiveAlert", "DedupState"]


@dataclass
class ActiveAlert:
    """A firing alert: the event that started it (updated text), when, and who was told."""

    event: AlertEvent
    started_at: float
    occurrences: int = 1
    last_sent: dict[str, float] = field(default_factory=dict)

    @property
    def key(self) -> AlertKey:
        return self.event.key


class DedupState:
    """Firing alerts by root cause (:class:`AlertKey`).

    * :meth:`fire` returns ``True`` for a new root cause (or a severity
      escalation) and ``False`` for a duplicate, which only refreshes the text
      (description and annotations; labels stay those of the first event, so
      receivers keep seeing the same alert).
    * :meth:`resolve` ends it and returns it if it was firing.
    * :meth:`due` lists the alerts a channel should be reminded of.
    """

    def __init__(self) -> None:
        self._active: dict[AlertKey, ActiveAlert] = {}

    def __len__(self) -> int:
        return len(self._active)

    def __contains__(self, key: object) -> bool:
        return key in self._active

    def get(self, key: AlertKey) -> ActiveAlert | None:
        return self._active.get(key)

    def active(self) -> list[ActiveAlert]:
        return list(self._active.values())

    def fire(self, event: AlertEvent, now: float) -> bool:
        if not event.firing:
            raise ValueError("fire() takes a firing event; use resolve()")
        current = self._active.get(event.key)
        if current is None:
            self._active[event.key] = ActiveAlert(event=event, started_at=now)
            return True
        current.occurrences += 1
        escalated = event.severity.rank > current.event.severity.rank
        current.event = replace(
            current.event,
            severity=event.severity if escalated else current.event.severity,
            summary=event.summary or current.event.summary,
            description=event.description or current.event.description,
            annotations={**current.event.annotations, **event.annotations},
        )
        if escalated:
            current.last_sent.clear()
        return escalated

    def resolve(self, key: AlertKey) -> ActiveAlert | None:
        return self._active.pop(key, None)

    def mark_sent(self, key: AlertKey, channel: str, now: float) -> None:
        alert = self._active.get(key)
        if alert is not None:
            alert.last_sent[channel] = now

    def was_sent(self, key: AlertKey, channel: str) -> bool:
        alert = self._active.get(key)
        return alert is not None and channel in alert.last_sent

    def due(self, channel: str, interval: float, now: float) -> list[ActiveAlert]:
        """Alerts told to ``channel`` at least ``interval`` seconds ago (``interval`` > 0)."""
        if interval <= 0:
            return []
        return [a for a in self._active.values() if channel in a.last_sent and now - a.last_sent[channel] >= interval]

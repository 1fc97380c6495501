"""One adapter's waiting targets, kept in admission order. Pure.

The store keeps an ``AdapterQueue`` per adapter, updated as Publications change, so that a
decision takes only the head of an adapter's queue (``head``) and learns how many targets wait
ahead of any other one (``rank``), instead of deciding the whole queue each time: its cost is
then bounded by what changed, not by how many Publications wait.

An entry is a target as its stored status leaves it: its admission order (``Candidate.order``)
and the time it becomes due. Entries not due yet wait in a heap and join the ordered list once
their time has come (``promote``).
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import UTC, datetime

# The due time of a target that is due "now" but whose status records no time: after every
# known due time (of the same priority), so that its place does not depend on the clock.
LATEST = datetime.max.replace(tzinfo=UTC)

Order = tuple  # Candidate.order(): (-priority, due, created, key)


@dataclass(frozen=True)
class QueueEntry:
    order: Order
    due_from: datetime | None  # None: due already


class AdapterQueue:
    """Targets of one adapter that wait for admission, in admission order."""

    def __init__(self) -> None:
        self._entries: dict[Hashable, QueueEntry] = {}
        self._ready: list[tuple[Order, Hashable]] = []  # sorted: the due entries
        self._is_ready: set[Hashable] = set()
        self._future: list[tuple[datetime, Order, Hashable]] = []  # a heap; stale items are skipped
        self._now: datetime | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, key: Hashable, entry: QueueEntry | None) -> None:
        """Record (or with None, drop) the entry of one Publication's target."""
        old = self._entries.get(key)
        if old == entry:
            return
        if old is not None:
            self.discard(key)
        if entry is None:
            return
        self._entries[key] = entry
        if entry.due_from is None or (self._now is not None and entry.due_from <= self._now):
            self._insert(key, entry)
        else:
            heapq.heappush(self._future, (entry.due_from, entry.order, key))
            if len(self._future) > 64 + 2 * len(self._entries):  # many stale items: rebuild
                self._future = [
                    (e.due_from, e.order, k)
                    for k, e in self._entries.items()
                    if k not in self._is_ready and e.due_from is not None
                ]
                heapq.heapify(self._future)

    def discard(self, key: Hashable) -> None:
        old = self._entries.pop(key, None)
        if old is not None and key in self._is_ready:
            self._is_ready.discard(key)
            del self._ready[bisect.bisect_left(self._ready, (old.order, key))]

    def promote(self, now: datetime) -> None:
        """Entries due at ``now`` join the ordered list (time is taken to move forward)."""
        if self._now is None or now > self._now:
            self._now = now
        while self._future and self._future[0][0] <= now:
            due_from, order, key = heapq.heappop(self._future)
            entry = self._entries.get(key)
            if entry is not None and entry.due_from == due_from and entry.order == order and key not in self._is_ready:
                self._insert(key, entry)

    def _insert(self, key: Hashable, entry: QueueEntry) -> None:
        bisect.insort(self._ready, (entry.order, key))
        self._is_ready.add(key)

    def head(self, n: int) -> list[Hashable]:
        """The first ``n`` due entries, in admission order."""
        return [key for _, key in self._ready[:n]]

    def due(self) -> int:
        """How many entries are due."""
        return len(self._ready)

    def rank(self, order: Order) -> int:
        """How many due entries come before ``order`` in admission order."""
        return bisect.bisect_left(self._ready, (order,))

    def order_of(self, key: Hashable) -> Order | None:
        """A due entry's order (None when it is not due, or not in the queue)."""
        return self._entries[key].order if key in self._is_ready else None

"""Leader election on a coordination.k8s.io Lease, as client-go and controller-runtime do it.

Several replicas may run; only the one holding the Lease decides and writes. The others keep
their watches warm (kopf feeds their stores) and make no write of any kind until they hold it.
A holder renews every ``retry_period``; one that cannot renew for ``renew_deadline`` stops acting
and exits (Kubernetes restarts it as a standby), so two replicas never act at once for longer
than the clock skew allows. A replica that stops cleanly releases the Lease, so a rolling update
hands over at once; one that is killed is replaced when its Lease expires (``lease_duration``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .durations import safe_time
from .kube import ApiError, Kube

log = logging.getLogger("herald.leader")


@dataclass(frozen=True)
class LeaseSettings:
    name: str = "herald-operator"
    namespace: str = "default"
    lease_duration: float = 10.0
    renew_deadline: float = 7.0
    retry_period: float = 2.0


@dataclass(frozen=True)
class LeaseRecord:
    holder: str | None
    acquired: datetime | None
    renewed: datetime | None
    duration: float
    transitions: int

    def held_by_other(self, me: str, now: datetime) -> bool:
        """Whether someone else holds it and it has not expired."""
        if not self.holder or self.holder == me or self.renewed is None:
            return False
        return now < self.renewed + timedelta(seconds=self.duration)

    @classmethod
    def from_lease(cls, lease: dict[str, Any]) -> LeaseRecord:
        spec = lease.get("spec") or {}
        duration = spec.get("leaseDurationSeconds")
        transitions = spec.get("leaseTransitions")
        return cls(
            holder=spec.get("holderIdentity") or None,
            acquired=safe_time(spec.get("acquireTime")),
            renewed=safe_time(spec.get("renewTime")),
            duration=float(duration) if isinstance(duration, int) and duration > 0 else 15.0,
            transitions=transitions if isinstance(transitions, int) and transitions >= 0 else 0,
        )


def _micro(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def identity() -> str:
    """This replica: the pod's name when in a pod, and a random part so a restart is a new holder."""
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4().hex[:8]}"


class LeaderElector:
    def __init__(
        self,
        kube: Kube,
        settings: LeaseSettings,
        me: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.me = me or identity()
        self.clock = clock
        self.leading = asyncio.Event()
        self.lost = asyncio.Event()
        self._path = f"/apis/coordination.k8s.io/v1/namespaces/{settings.namespace}/leases/{settings.name}"

    def _spec(self, now: datetime, record: LeaseRecord | None) -> dict[str, Any]:
        taking = record is None or record.holder != self.me
        return {
            "holderIdentity": self.me,
            "leaseDurationSeconds": int(self.settings.lease_duration),
            "acquireTime": _micro(now)
            if taking or record is None or record.acquired is None
            else _micro(record.acquired),
            "renewTime": _micro(now),
            "leaseTransitions": (
                record.transitions + 1 if record and taking and record.holder else (record.transitions if record else 0)
            ),
        }

    async def try_acquire_or_renew(self) -> bool:
        """One round: True when this replica holds the Lease afterwards."""
        now = self.clock()
        try:
            lease = await self.kube.get(self._path)
        except ApiError as e:
            if not e.not_found:
                log.warning("cannot read Lease %s: %s", self.settings.name, e.status)
                return False
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.settings.name, "namespace": self.settings.namespace},
                "spec": self._spec(now, None),
            }
            try:
                await self.kube.create(self._path.rsplit("/", 1)[0], body)
                return True
            except ApiError as err:
                if not err.already_exists:
                    log.warning("cannot create Lease %s: %s", self.settings.name, err.status)
                return False
        record = LeaseRecord.from_lease(lease)
        if record.held_by_other(self.me, now):
            return False
        lease["spec"] = self._spec(now, record)
        try:
            await self.kube.replace(self._path, lease)  # conditional on the resourceVersion read
            return True
        except ApiError as e:
            if not e.conflict:
                log.warning("cannot renew Lease %s: %s", self.settings.name, e.status)
            return False

    async def run(self, on_started_leading: Callable[[], Awaitable[None]]) -> None:
        """Acquire, then renew until the Lease is lost (``lost`` is set and this returns)."""
        while not await self.try_acquire_or_renew():
            await asyncio.sleep(self.settings.retry_period)
        log.info("leading as %s (Lease %s/%s)", self.me, self.settings.namespace, self.settings.name)
        self.leading.set()
        await on_started_leading()
        last_renew = asyncio.get_running_loop().time()
        while True:
            await asyncio.sleep(self.settings.retry_period)
            if await self.try_acquire_or_renew():
                last_renew = asyncio.get_running_loop().time()
            elif asyncio.get_running_loop().time() - last_renew > self.settings.renew_deadline:
                log.error(
                    "lost the Lease %s: could not renew it for %.0fs", self.settings.name, self.settings.renew_deadline
                )
                self.leading.clear()
                self.lost.set()
                return

    async def release(self) -> None:
        """Give the Lease up (on a clean stop), so a standby takes over at once. What the API server
        says decides, not ``leading``: a stop that comes while the answer to a successful acquire
        is still on its way must release that Lease too (or the standby waits for it to expire)."""
        try:
            lease = await self.kube.get(self._path)
            if LeaseRecord.from_lease(lease).holder != self.me:
                return
            past = self.clock() - timedelta(seconds=self.settings.lease_duration + 1)
            lease["spec"].update(holderIdentity="", renewTime=_micro(past))
            await self.kube.replace(self._path, lease)
            log.info("released the Lease %s", self.settings.name)
        except ApiError as e:
            if not e.not_found:
                log.warning("cannot release the Lease %s: %s", self.settings.name, e.status)


__all__ = ["LeaderElector", "LeaseRecord", "LeaseSettings", "identity"]

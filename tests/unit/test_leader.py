"""Leader election on a Lease: one holder at a time, renewals, expiry, release; conditional writes."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from herald.kube import ApiError
from herald.leader import LeaderElector, LeaseRecord, LeaseSettings

T0 = datetime(2030, 6, 1, 9, 0, 0, tzinfo=UTC)
PATH = "/apis/coordination.k8s.io/v1/namespaces/herald/leases/herald-operator"


class LeaseServer:
    """Holds one Lease and answers as the API server does: PUT is conditional on resourceVersion."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.rv = 0

    async def get(self, path: str, metadata_only: bool = False) -> dict[str, Any]:
        if self.lease is None:
            raise ApiError(404, '{"reason": "NotFound"}', "GET")
        return copy.deepcopy(self.lease)

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if self.lease is not None:
            raise ApiError(409, '{"reason": "AlreadyExists"}', "POST")
        self.rv += 1
        self.lease = copy.deepcopy(body)
        self.lease["metadata"]["resourceVersion"] = str(self.rv)
        return copy.deepcopy(self.lease)

    async def replace(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        assert self.lease is not None
        if body["metadata"].get("resourceVersion") != self.lease["metadata"]["resourceVersion"]:
            raise ApiError(409, '{"reason": "Conflict"}', "PUT")
        self.rv += 1
        self.lease = copy.deepcopy(body)
        self.lease["metadata"]["resourceVersion"] = str(self.rv)
        return copy.deepcopy(self.lease)

    @property
    def holder(self) -> str | None:
        return (self.lease or {}).get("spec", {}).get("holderIdentity") or None


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def electors(server: LeaseServer, clock: Clock) -> tuple[LeaderElector, LeaderElector]:
    settings = LeaseSettings(namespace="herald", lease_duration=10)
    return (LeaderElector(server, settings, "a", clock), LeaderElector(server, settings, "b", clock))  # type: ignore[arg-type]


async def test_one_holder_until_its_lease_expires():
    server, clock = LeaseServer(), Clock()
    a, b = electors(server, clock)
    assert await a.try_acquire_or_renew() is True and server.holder == "a"
    assert await b.try_acquire_or_renew() is False
    clock.now += timedelta(seconds=5)
    assert await a.try_acquire_or_renew() is True  # renewed
    clock.now += timedelta(seconds=9)
    assert await b.try_acquire_or_renew() is False  # 9 s after the renewal: not expired
    clock.now += timedelta(seconds=2)
    assert await b.try_acquire_or_renew() is True and server.holder == "b"  # a stopped renewing
    assert LeaseRecord.from_lease(server.lease).transitions == 1
    assert await a.try_acquire_or_renew() is False


async def test_a_race_for_an_expired_lease_has_one_winner():
    server, clock = LeaseServer(), Clock()
    a, b = electors(server, clock)
    await a.try_acquire_or_renew()
    clock.now += timedelta(seconds=30)
    stale = await server.get(PATH)

    async def read_stale(path: str, metadata_only: bool = False) -> dict[str, Any]:
        return copy.deepcopy(stale)

    b.kube = type("K", (), {"get": staticmethod(read_stale), "replace": server.replace})()  # type: ignore[assignment]
    assert await a.try_acquire_or_renew() is True  # a renews first...
    assert await b.try_acquire_or_renew() is False  # ...b's write, from the stale read, conflicts
    assert server.holder == "a"


async def test_release_lets_a_standby_take_over_at_once():
    server, clock = LeaseServer(), Clock()
    a, b = electors(server, clock)
    await a.try_acquire_or_renew()
    a.leading.set()
    await a.release()
    assert server.holder is None
    assert await b.try_acquire_or_renew() is True


async def test_a_stop_releases_a_lease_acquired_while_its_answer_was_on_its_way():
    server, clock = LeaseServer(), Clock()
    a, b = electors(server, clock)
    await a.try_acquire_or_renew()  # the API server has a as the holder...
    assert not a.leading.is_set()  # ...but a was stopped before it learnt so
    await b.release()  # a standby's stop releases nothing
    assert server.holder == "a"
    await a.release()
    assert server.holder is None and await b.try_acquire_or_renew() is True


async def test_a_stop_before_any_lease_exists_releases_nothing():
    server, clock = LeaseServer(), Clock()
    a, _ = electors(server, clock)
    await a.release()
    assert server.lease is None


def test_a_damaged_lease_reads_as_expired():
    record = LeaseRecord.from_lease({"spec": {"holderIdentity": "x", "renewTime": "yesterday"}})
    assert record.held_by_other("me", T0) is False

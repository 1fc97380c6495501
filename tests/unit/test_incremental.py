"""A tick decides only what changed: the store closes the changed keys over the adapters they
compete for, settled Publications stay out, and deciding a unit gives the same result as deciding
the whole world."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from datetime import datetime

from hypothesis import given
from hypothesis import strategies as st

from herald.reconciler import reconcile
from herald.store import Store

from .builders import DETERMINISTIC, NS, T0, Sim, adapter_body, at, failed, job_body, publication_body, published

A, B, C = "mastodon-main", "bluesky-main", "slack-main"


def store_of(s: Sim) -> Store:
    store = Store()
    for body in s.adapters.values():
        store.apply("platformadapters", "ADDED", body)
    for body in s.publications.values():
        store.apply("publications", "ADDED", body)
    for body in s.jobs.values():
        store.apply("jobs", "ADDED", body)
    for body in s.pods.values():
        store.apply("pods", "ADDED", body)
    store.job_starts.update(s.job_starts)
    return store


def settle(s: Sim, name: str, adapter: str = A, now: datetime = T0) -> None:
    """Publish ``name`` through its whole life."""
    s.step(now)
    s.finish(name, adapter, published(f"post-{name}"), now=now)
    s.step(now)


def test_settled_publications_are_not_in_the_unit_of_a_new_one():
    s = Sim()
    s.add_adapter(A, concurrency=100)
    for i in range(50):
        s.add_publication(f"old-{i}")
    s.step(T0)
    for i in range(50):
        s.finish(f"old-{i}", A, published(), now=at(1))
    s.step(at(1))
    assert all(s.status(f"old-{i}")["phase"] == "Published" for i in range(50))
    s.add_publication("new")
    store = store_of(s)
    assert store.active == {(NS, "new")}
    store.take_dirty()
    store.apply(
        "publications",
        "MODIFIED",
        {**s.publications["new"], "metadata": {**s.publications["new"]["metadata"], "resourceVersion": "99999"}},
    )
    pubs, adapters = store.close(store.take_dirty())
    assert pubs == {(NS, "new")} and adapters == {(NS, A)}
    # A settled one that changes (or is looked at after a restart) is decided alone: it competes
    # for nothing, so a unit of it never waits on its adapter's unit, nor the other way round.
    assert store.close([("p", NS, "old-7")]) == ({(NS, "old-7")}, set())


def test_a_unit_spans_the_adapters_its_publications_share():
    s = Sim()
    for name in (A, B, C):
        s.add_adapter(name)
    s.add_publication("ab", targets=[A, B])
    s.add_publication("b", targets=[B])
    s.add_publication("c", targets=[C])
    store = store_of(s)
    pubs, adapters = store.close([("p", NS, "ab")])
    assert pubs == {(NS, "ab"), (NS, "b")} and adapters == {(NS, A), (NS, B)}
    pubs, adapters = store.close([("a", NS, C)])
    assert pubs == {(NS, "c")} and adapters == {(NS, C)}


def test_a_publication_whose_job_runs_competes_for_nothing_until_the_job_ends():
    store = Store()
    store.apply("platformadapters", "ADDED", adapter_body(A, concurrency=5))
    store.apply("publications", "ADDED", publication_body("running", targets=[A, B], uid="uid-pub-running"))
    store.apply("publications", "ADDED", publication_body("queued", targets=[A], uid="uid-pub-queued"))
    store.apply("jobs", "ADDED", job_body("running-a-1", target=A, owner_uid="uid-pub-running", rv=2))
    pubs, _ = store.close([("a", NS, A)])
    assert pubs == {(NS, "queued")}  # the running one is counted in A's load, not decided with it
    # Its other target still waits for B, and ties the units together through it.
    assert store.close([("a", NS, B)]) == ({(NS, "running"), (NS, "queued")}, {(NS, A), (NS, B)})
    assert store.world_for(pubs, {(NS, A)}, T0).loads[(NS, A)].running == 1
    store.apply("jobs", "MODIFIED", job_body("running-a-1", target=A, owner_uid="uid-pub-running", rv=3, complete=True))
    assert store.close([("a", NS, A)])[0] == {(NS, "running"), (NS, "queued")}  # its outcome is decided


def test_rate_window_and_running_count_include_settled_publications_jobs():
    """A Publication published a moment ago is settled, but its Job still counts against the
    adapter's rate limit window."""
    s = Sim()
    s.add_adapter(A, rateLimit={"limit": 1, "period": "60s"}, concurrency=5)
    s.add_publication("first")
    settle(s, "first", now=T0)
    s.add_publication("second")
    store = store_of(s)
    pubs, adapters = store.close([("p", NS, "second")])
    assert pubs == {(NS, "second")}
    plan = reconcile(store.world_for(pubs, adapters, at(10)), at(10))
    assert plan.creates == []
    (t,) = plan.publication_status[(NS, "second")]["targets"]
    assert t["reason"] == "RateLimitWindow"
    assert plan.wake_at is not None and plan.wake_at > at(59)


def test_dead_letter_count_comes_from_the_index_not_the_unit():
    s = Sim()
    s.add_adapter(A, concurrency=5)
    s.add_publication("dead")
    s.step(T0)
    s.finish("dead", A, failed("rejected"), now=at(1))
    s.step(at(1))
    s.add_publication("new")
    store = store_of(s)
    pubs, adapters = store.close([("p", NS, "new")])
    assert (NS, "dead") not in pubs
    plan = reconcile(store.world_for(pubs, adapters, at(2)), at(2))
    assert plan.gauges[(NS, A)]["dead_letter"] == 1


scenario = st.lists(
    st.tuples(
        st.sampled_from(["new", "ok", "fail", "reject"]), st.sampled_from([A, B]), st.integers(min_value=0, max_value=3)
    ),
    min_size=1,
    max_size=12,
)


def happen(s: Sim, step: tuple[str, str, int], now: datetime) -> None:
    """One step of a scenario: a new Publication, or the first running Job of an adapter ends."""
    what, adapter, prio = step
    if what == "new":
        s.add_publication(f"p{len(s.publications) + 1}", targets=[adapter], priority=prio)
        return
    running = [
        b
        for b in s.jobs.values()
        if b["status"].get("active") and b["metadata"]["annotations"]["herald.dev/target"] == adapter
    ]
    if running:
        owner = running[0]["metadata"]["ownerReferences"][0]["uid"].removeprefix("uid-pub-")
        result = {"ok": published(), "fail": failed("server_error"), "reject": failed("rejected")}[what]
        s.finish(owner, adapter, result, now=now)


@DETERMINISTIC
@given(scenario)
def test_deciding_a_unit_equals_deciding_the_whole_world(steps):
    """Drive a namespace through random events; at every step, the decision for the unit of each
    changed key equals the whole-world decision for the objects in that unit."""
    s = Sim()
    s.add_adapter(A, concurrency=2, rateLimit={"limit": 3, "period": "30s"})
    s.add_adapter(B, concurrency=1)
    for i, step in enumerate(steps):
        now = at(i * 7)
        happen(s, step, now)
        whole = reconcile(s.world(), now)
        store = store_of(s)
        for seed in sorted(store.take_dirty()):
            key = (seed[1], seed[2])
            if seed[0] == "p" and store.runs_only(key):
                # Decided alone (the engine does so when its adapters have no unit in the tick):
                # unless that records an outcome or starts something (then the engine decides it
                # with its adapters), its own writes are the whole world's.
                world = replace(store.world_for({key}, set(store.adapters_of(key)), now), adapters_read_only=True)
                alone = reconcile(world, now)
                assert not alone.adapter_status and not alone.gauges  # its adapters are only read
                if not alone.adapter_effects and not alone.creates:
                    assert json.dumps(alone.publication_status.get(key), sort_keys=True, default=str) == json.dumps(
                        whole.publication_status.get(key), sort_keys=True, default=str
                    ), key
                    assert alone.deletes == [d for d in whole.deletes if d in alone.deletes]
            pubs, adapters = store.close([seed])
            unit = reconcile(store.world_for(pubs, adapters, now), now)
            for key in pubs:
                assert json.dumps(unit.publication_status.get(key), sort_keys=True, default=str) == json.dumps(
                    whole.publication_status.get(key), sort_keys=True, default=str
                ), key
            assert sorted(c.manifest["metadata"]["name"] for c in unit.creates) == sorted(
                c.manifest["metadata"]["name"] for c in whole.creates if c.publication in pubs
            )
            for key in adapters:
                assert unit.adapter_status.get(key) == whole.adapter_status.get(key), key
                assert unit.gauges.get(key) == whole.gauges.get(key), key
        s.apply(whole, now)


bounded_scenario = st.lists(
    st.tuples(
        st.sampled_from(["new", "new", "ok", "fail", "reject"]),
        st.sampled_from([A, B]),
        st.integers(min_value=0, max_value=3),
    ),
    min_size=1,
    max_size=20,
)


def sync(store: Store, s: Sim) -> None:
    """What the watches bring: every object as the Sim has it now (an unchanged one is a no-op)."""
    for kind, objects in (("platformadapters", s.adapters), ("publications", s.publications), ("jobs", s.jobs)):
        for body in objects.values():
            store.apply(kind, "MODIFIED", copy.deepcopy(body))
        for key in [k for k in store.objects[kind] if k[1] not in objects]:
            store.apply(kind, "DELETED", {"metadata": {"namespace": key[0], "name": key[1]}})
    for body in s.pods.values():
        store.apply("pods", "MODIFIED", copy.deepcopy(body))
    store.job_starts.update(s.job_starts)


@DETERMINISTIC
@given(bounded_scenario)
def test_a_unit_bounded_to_its_queues_heads_decides_as_the_whole_world_does(steps):
    """With queues, a unit holds what changed and the first target of each adapter's queue (as the
    engine's, with a head of 1). Whatever it decides, the whole world decides the same: the
    Publications it does not postpone get the same status (a waiting one the same reason: the
    targets ahead of it that it did not see count), its Jobs are the first ones in admission order
    of those the whole world starts, it starts one when the whole world does, and an adapter's
    status and gauges are the whole world's when it postponed nothing of that adapter."""
    s = Sim()
    s.add_adapter(A, concurrency=5, rateLimit={"limit": 2, "period": "30s"})
    s.add_adapter(B, concurrency=1)
    store = Store()
    for i, step in enumerate(steps):
        now = at(i * 11)
        happen(s, step, now)
        whole = reconcile(s.world(), now)
        sync(store, s)
        whole_starts: dict[str, set[str]] = {}
        for c in whole.creates:
            whole_starts.setdefault(c.target, set()).add(c.publication[1])
        # What changed in this step, decided together as the engine groups it (those decided
        # alone are covered by the test above); the adapters always, as their timers would.
        seeds = [k for k in store.take_dirty() if not (k[0] == "p" and store.runs_only((k[1], k[2])))]
        pubs, adapters = store.close([*seeds, ("a", NS, A), ("a", NS, B)], now, head=1)
        unit = reconcile(store.world_for(pubs, adapters, now), now)
        for key in pubs - unit.postponed:
            assert json.dumps(unit.publication_status.get(key), sort_keys=True, default=str) == json.dumps(
                whole.publication_status.get(key), sort_keys=True, default=str
            ), key
        for _, name in adapters:
            queue = store.queues[(NS, name)]
            expected = whole_starts.get(name, set())
            started = {c.publication[1] for c in unit.creates if c.target == name}
            assert started <= expected
            if expected:
                assert started, f"nothing of {name}'s queue started"
                ahead = sorted(expected, key=lambda p: queue.order_of((NS, p)))
                assert sorted(started, key=lambda p: queue.order_of((NS, p))) == ahead[: len(started)]
            if started == expected:
                assert unit.adapter_status.get((NS, name)) == whole.adapter_status.get((NS, name)), name
                assert unit.gauges.get((NS, name)) == whole.gauges.get((NS, name)), name
        s.apply(whole, now)


def test_a_changed_publication_never_starts_before_the_queue_it_did_not_see():
    """Three starts a window, five waiting: when the window frees three slots, a unit that sees
    the queue's head and a new Publication starts the head, and the new one waits its turn behind
    the one it did not see (the whole world starts those two first)."""
    s = Sim()
    s.add_adapter(A, concurrency=10, rateLimit={"limit": 3, "period": "30s"})
    store = Store()
    for i in range(1, 6):
        s.add_publication(f"p{i}", targets=[A])
    s.step(T0)
    assert sorted(b["metadata"]["labels"]["herald.dev/publication"] for b in s.jobs.values()) == ["p1", "p2", "p3"]
    assert s.status("p4")["targets"][0]["reason"] == "RateLimitWindow"
    sync(store, s)
    store.take_dirty()
    s.add_publication("p6", targets=[A])
    sync(store, s)
    now = at(31)
    whole = reconcile(s.world(), now)
    assert sorted(c.publication[1] for c in whole.creates) == ["p4", "p5", "p6"]
    pubs, adapters = store.close(store.take_dirty(), now, head=1)
    assert pubs == {(NS, "p4"), (NS, "p6")}  # the head, and what changed; p5 waits unseen
    unit = reconcile(store.world_for(pubs, adapters, now), now)
    assert [c.publication[1] for c in unit.creates] == ["p4"]
    assert unit.postponed == {(NS, "p6")}  # admitted, but p5 is ahead of it: it starts after p5
    assert unit.adapter_status[(NS, A)]["queue"] == {"pending": 2, "running": 4}

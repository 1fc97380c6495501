"""A tick decides only what changed: the store closes the changed keys over the adapters they
compete for, settled Publications stay out, and deciding a unit gives the same result as deciding
the whole world."""

from __future__ import annotations

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


@DETERMINISTIC
@given(scenario)
def test_deciding_a_unit_equals_deciding_the_whole_world(steps):
    """Drive a namespace through random events; at every step, the decision for the unit of each
    changed key equals the whole-world decision for the objects in that unit."""
    s = Sim()
    s.add_adapter(A, concurrency=2, rateLimit={"limit": 3, "period": "30s"})
    s.add_adapter(B, concurrency=1)
    now = T0
    n = 0
    for i, (what, adapter, prio) in enumerate(steps):
        now = at(i * 7)
        if what == "new":
            n += 1
            s.add_publication(f"p{n}", targets=[adapter], priority=prio)
        else:
            running = [
                b
                for b in s.jobs.values()
                if b["status"].get("active") and b["metadata"]["annotations"]["herald.dev/target"] == adapter
            ]
            if running:
                job = running[0]
                owner = job["metadata"]["ownerReferences"][0]["uid"].removeprefix("uid-pub-")
                result = {"ok": published(), "fail": failed("server_error"), "reject": failed("rejected")}[what]
                s.finish(owner, adapter, result, now=now)
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

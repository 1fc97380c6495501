"""The store: watch events and lists in any order; the newest resourceVersion wins."""

from __future__ import annotations

import copy

from hypothesis import given
from hypothesis import strategies as st

from herald import store as store_module
from herald.reconciler import World
from herald.store import Store

from .builders import DETERMINISTIC, T0, adapter_body, job_body, pod_body, publication_body


def pub(rv: int, text: str = "v", name: str = "launch") -> dict:
    return publication_body(name, rv=rv, content={"text": text})


def test_newer_resource_version_replaces():
    s = Store()
    assert s.apply("publications", "ADDED", pub(5, "first"))
    assert s.apply("publications", "MODIFIED", pub(7, "second"))
    assert s.objects["publications"][("news", "launch")].spec["content"]["text"] == "second"


def test_older_resource_version_is_ignored():
    s = Store()
    s.apply("publications", "MODIFIED", pub(9, "new"))
    assert s.apply("publications", "MODIFIED", pub(8, "old")) is False
    assert s.objects["publications"][("news", "launch")].spec["content"]["text"] == "new"


def test_same_resource_version_is_not_a_change():
    s = Store()
    s.apply("publications", "ADDED", pub(9))
    s.changed.clear()
    assert s.apply("publications", "MODIFIED", pub(9)) is False
    assert not s.changed.is_set()


def test_changes_are_signalled():
    s = Store()
    assert not s.changed.is_set()
    s.apply("platformadapters", "ADDED", adapter_body(rv=3))
    assert s.changed.is_set()


def test_resource_versions_compare_as_numbers():
    s = Store()
    s.apply("publications", "ADDED", pub(9, "nine"))
    s.apply("publications", "MODIFIED", pub(10, "ten"))  # "10" < "9" as text
    assert s.objects["publications"][("news", "launch")].spec["content"]["text"] == "ten"


def test_deleted_leaves_a_tombstone_so_a_late_older_copy_cannot_resurrect():
    s = Store()
    s.apply("publications", "ADDED", pub(5))
    assert s.apply("publications", "DELETED", pub(8))
    assert ("news", "launch") not in s.objects["publications"]
    # a late event from before the deletion (e.g. from a slow list) must not bring it back
    assert s.apply("publications", "ADDED", pub(6)) is False
    assert s.apply("publications", "MODIFIED", pub(8)) is False
    assert ("news", "launch") not in s.objects["publications"]


def test_an_older_deleted_event_does_not_weaken_the_tombstone():
    """Deleted at rv 8; a late DELETED of an earlier incarnation (rv 3) arrives, then a late copy
    at rv 6 (older than the deletion at rv 8): it must stay deleted."""
    s = Store()
    s.apply("publications", "ADDED", pub(5))
    s.apply("publications", "DELETED", pub(8))
    s.apply("publications", "DELETED", pub(3))
    assert s.apply("publications", "MODIFIED", pub(6)) is False
    assert ("news", "launch") not in s.objects["publications"]


def test_a_recreated_object_with_a_newer_version_comes_back():
    s = Store()
    s.apply("publications", "ADDED", pub(5))
    s.apply("publications", "DELETED", pub(8))
    assert s.apply("publications", "ADDED", pub(20, "again"))
    assert s.objects["publications"][("news", "launch")].spec["content"]["text"] == "again"


def test_deleting_something_never_seen_still_blocks_its_older_copies():
    s = Store()
    s.apply("jobs", "DELETED", job_body(rv=10))
    assert s.apply("jobs", "ADDED", job_body(rv=4)) is False
    assert not s.objects["jobs"]


def test_deleting_a_job_forgets_its_exact_start():
    s = Store()
    body = job_body(rv=3)
    s.apply("jobs", "ADDED", body)
    s.job_starts[("news", body["metadata"]["name"])] = object()
    s.apply("jobs", "DELETED", job_body(rv=4))
    assert not s.job_starts


def test_objects_herald_does_not_understand_are_skipped():
    s = Store()
    foreign = job_body(rv=3)
    foreign["metadata"]["annotations"] = {}
    assert s.apply("jobs", "ADDED", foreign) is False
    pod = pod_body("x")
    pod["metadata"]["labels"] = {}
    assert s.apply("pods", "ADDED", pod) is False


def test_forget_missing_drops_what_a_full_list_no_longer_has():
    s = Store()
    s.apply("publications", "ADDED", pub(5, name="gone"))
    s.apply("publications", "ADDED", pub(6, name="kept"))
    s.apply("publications", "ADDED", pub(50, name="newer-than-list"))
    s.forget_missing("publications", {("news", "kept")}, list_rv=40)
    assert set(s.objects["publications"]) == {("news", "kept"), ("news", "newer-than-list")}


def test_an_object_dropped_by_a_relist_is_not_resurrected_by_a_late_older_event():
    """A full list at rv 40 no longer has the Job (it was deleted while the watch was down); a
    watch event from before the list (rv 12) arriving afterwards must not bring it back."""
    s = Store()
    s.apply("jobs", "ADDED", job_body(rv=10))
    s.forget_missing("jobs", set(), list_rv=40)
    assert not s.objects["jobs"]
    assert s.apply("jobs", "MODIFIED", job_body(rv=12)) is False
    assert not s.objects["jobs"]


def test_tombstones_expire(monkeypatch):
    s = Store()
    s.apply("publications", "DELETED", pub(8))
    clock = [store_module.time.monotonic() + store_module.TOMBSTONE_SECONDS + 1]
    monkeypatch.setattr(store_module.time, "monotonic", lambda: clock[0])
    s.gc_tombstones()
    assert s.apply("publications", "ADDED", pub(6))


def test_snapshot_is_a_world_and_later_changes_do_not_leak_into_it():
    s = Store()
    s.apply("publications", "ADDED", pub(5))
    s.secrets[("news", "creds")] = "17"
    w = s.snapshot()
    assert isinstance(w, World)
    s.apply("publications", "DELETED", pub(6))
    s.secrets[("news", "creds")] = "18"
    assert ("news", "launch") in w.publications
    assert w.secrets[("news", "creds")] == "17"


# Each event carries its own resourceVersion (they are unique per change of an object).
events_st = st.lists(
    st.tuples(st.sampled_from(["ADDED", "MODIFIED", "DELETED"]), st.integers(min_value=1, max_value=60)),
    min_size=1,
    max_size=25,
    unique_by=lambda e: e[1],
)


@DETERMINISTIC
@given(events_st)
def test_any_delivery_order_ends_at_the_newest_state(events):
    """Events of one object delivered in any order: the store ends where the newest event says,
    and a deletion is never undone by an older event."""
    s = Store()
    for kind, rv in events:
        s.apply("publications", kind, pub(rv, f"text-{rv}"))
    newest_kind, newest_rv = max(events, key=lambda e: e[1])
    current = s.objects["publications"].get(("news", "launch"))
    if newest_kind == "DELETED":
        assert current is None
    else:
        assert current is not None and current.rv == newest_rv


@DETERMINISTIC
@given(events_st, st.randoms(use_true_random=False))
def test_result_does_not_depend_on_the_order_of_distinct_versions(events, rnd):
    """Resource versions are unique per object state: with distinct versions, any shuffle of the same
    events gives the same final state."""
    distinct = events
    shuffled = copy.copy(distinct)
    rnd.shuffle(shuffled)
    a, b = Store(), Store()
    for kind, rv in distinct:
        a.apply("publications", kind, pub(rv, f"t{rv}"))
    for kind, rv in shuffled:
        b.apply("publications", kind, pub(rv, f"t{rv}"))
    va, vb = a.objects["publications"].get(("news", "launch")), b.objects["publications"].get(("news", "launch"))
    assert (va.rv if va else None) == (vb.rv if vb else None)


# -- sharding: a store keeps only its shard's namespaces ------------------------------------------------


def ns_body(name: str, shard: str | None = None) -> dict:
    return {"metadata": {"name": name, "labels": {"herald.dev/shard": shard} if shard else {}}}


def test_a_sharded_store_keeps_only_its_namespaces_and_unlabelled_ones_are_the_default_shard():
    a, default = Store(shard="a"), Store(shard="default")
    for s in (a, default):
        s.apply_namespace(None, ns_body("news", "a"))
        s.apply_namespace(None, ns_body("blog"))
        assert s.apply("publications", "ADDED", publication_body("p", ns="news", rv=2)) is (s is a)
        assert s.apply("publications", "ADDED", publication_body("q", ns="blog", rv=3)) is (s is default)
    assert set(a.objects["publications"]) == {("news", "p")}
    assert set(default.objects["publications"]) == {("blog", "q")}


def test_moving_a_namespace_hands_its_objects_over():
    a, b = Store(shard="a"), Store(shard="b")
    for s in (a, b):
        s.apply_namespace(None, ns_body("news", "a"))
    a.apply("publications", "ADDED", publication_body("p", ns="news", rv=2))
    assert a.apply_namespace("MODIFIED", ns_body("news", "b")) == "lost"
    assert b.apply_namespace("MODIFIED", ns_body("news", "b")) == "gained"
    assert a.objects["publications"] == {} and not a.active
    assert b.apply("publications", "ADDED", publication_body("p", ns="news", rv=2))


def test_an_unsharded_store_keeps_everything():
    s = Store()
    assert s.apply_namespace(None, ns_body("news", "a")) is None
    assert s.apply("publications", "ADDED", publication_body("p", ns="news", rv=2))


# -- expectations: a Job being created counts before the watch shows it ----------------------------
def _expected(name: str = "launch-mastodon-main-abcdef-1") -> dict:
    body = job_body(name)
    body["metadata"].pop("uid"), body["metadata"].pop("resourceVersion"), body.pop("status", None)
    return body


def test_an_expected_job_counts_for_its_adapter_and_publication_at_once():
    s = Store()
    s.apply("publications", "ADDED", publication_body("launch", uid="uid-pub-launch"))
    s.expect_job(_expected(), T0)
    world = s.world_for({("news", "launch")}, {("news", "mastodon-main")}, T0)
    assert list(world.jobs) == [("news", "launch-mastodon-main-abcdef-1")]
    assert world.loads[("news", "mastodon-main")].running == 1
    assert world.job_starts == {("news", "launch-mastodon-main-abcdef-1"): T0}  # for rate limits


def test_the_created_job_replaces_its_expectation_and_a_failed_create_forgets_it():
    s = Store()
    s.expect_job(_expected("a-1"), T0)
    s.expect_job(_expected("b-1"), T0)
    s.apply("jobs", "ADDED", job_body("a-1", rv=7))
    s.unexpect_job(("news", "a-1"))  # too late: the Job exists, and stays
    s.unexpect_job(("news", "b-1"))
    assert set(s.objects["jobs"]) == {("news", "a-1")}
    assert s.objects["jobs"][("news", "a-1")].rv == 7
    assert s.world_for(set(), {("news", "mastodon-main")}, T0).loads[("news", "mastodon-main")].running == 1


def test_a_full_list_older_than_a_create_in_flight_keeps_its_expectation_until_it_is_stale(monkeypatch):
    s = Store()
    s.expect_job(_expected("a-1"), T0)
    s.forget_missing("jobs", set(), list_rv=40)
    assert ("news", "a-1") in s.objects["jobs"]
    later = store_module.time.monotonic() + store_module.EXPECTATION_SECONDS + 1
    monkeypatch.setattr(store_module.time, "monotonic", lambda: later)
    s.forget_missing("jobs", set(), list_rv=40)
    assert not s.objects["jobs"] and not s.expected


def test_expecting_a_job_the_store_already_has_changes_nothing():
    s = Store()
    s.apply("jobs", "ADDED", job_body("a-1", rv=7))
    s.expect_job(_expected("a-1"), T0)
    assert s.objects["jobs"][("news", "a-1")].rv == 7 and not s.expected


def test_a_job_or_pod_event_that_changes_nothing_herald_reads_decides_nothing_again():
    s = Store()
    s.apply("publications", "ADDED", publication_body("launch", uid="uid-pub-launch"))
    s.apply("jobs", "ADDED", job_body(rv=2))
    s.apply("pods", "ADDED", pod_body("launch-mastodon-main-abcdef-1", name="launch-pod", rv=3))
    s.take_dirty()
    bound = pod_body("launch-mastodon-main-abcdef-1", name="launch-pod", rv=4)
    bound["spec"] = {"nodeName": "kwok-node-0"}  # scheduled: nothing Herald reads
    labelled = job_body(rv=5)
    labelled["metadata"]["labels"] = {"team": "news"}
    assert s.apply("pods", "MODIFIED", bound) is False
    assert s.apply("jobs", "MODIFIED", labelled) is False
    assert not s.take_dirty()
    assert s.objects["pods"][("news", "launch-pod")].rv == 4  # the newest version is kept
    assert s.objects["jobs"][("news", "launch-mastodon-main-abcdef-1")].rv == 5
    # A change Herald reads (the Job finished) marks its publication at once.
    assert s.apply("jobs", "MODIFIED", job_body(rv=6, complete=True)) is True
    assert ("p", "news", "launch") in s.take_dirty()

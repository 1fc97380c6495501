"""An adapter's queue (herald.queues) against a plain model: the sorted list of due entries."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from herald.queues import LATEST, AdapterQueue, QueueEntry

from .builders import DETERMINISTIC, T0, at

keys = st.sampled_from([("ns", f"p{i}") for i in range(8)])
times = st.integers(min_value=0, max_value=20).map(at)
orders = st.tuples(st.integers(-2, 2), st.one_of(times, st.just(LATEST)), times, st.text("abc", max_size=2))
entries = st.one_of(st.none(), st.builds(QueueEntry, orders, st.one_of(st.none(), times)))
ops = st.lists(
    st.one_of(
        st.tuples(st.just("put"), keys, entries),
        st.tuples(st.just("discard"), keys, st.none()),
        st.tuples(st.just("promote"), st.integers(0, 20), st.none()),
    ),
    max_size=40,
)


@DETERMINISTIC
@given(ops, orders)
def test_the_queue_orders_the_due_entries_as_a_sorted_list_does(steps, probe):
    queue = AdapterQueue()
    model: dict = {}
    now = None
    for op, arg, entry in steps:
        if op == "put":
            # Orders are unique per target (the key is in the order, see Candidate.order).
            if entry is not None:
                entry = QueueEntry((*entry.order, arg), entry.due_from)
            queue.put(arg, entry)
            if entry is None:
                model.pop(arg, None)
            else:
                model[arg] = entry
        elif op == "discard":
            queue.discard(arg)
            model.pop(arg, None)
        else:
            moment = at(arg)
            now = moment if now is None else max(now, moment)
            queue.promote(moment)
        due = sorted(
            (e.order, k) for k, e in model.items() if e.due_from is None or (now is not None and e.due_from <= now)
        )
        assert queue.due() == len(due) and len(queue) == len(model)
        assert queue.head(3) == [k for _, k in due[:3]]
        assert queue.rank(probe) == sum(1 for o, _ in due if o < probe)
        for k in model:
            assert queue.order_of(k) == (model[k].order if (model[k].order, k) in due else None)


def test_an_entry_waits_until_its_time_and_stale_heap_items_do_not_grow_without_bound():
    queue = AdapterQueue()
    later = QueueEntry((0, T0, T0, "x"), T0 + timedelta(seconds=60))
    queue.put("x", later)
    queue.promote(T0)
    assert queue.due() == 0 and queue.order_of("x") is None
    queue.promote(T0 + timedelta(seconds=60))
    assert queue.head(5) == ["x"]
    for i in range(1000):  # a Publication rescheduled again and again (each leaves a heap item)
        queue.put("y", QueueEntry((0, T0, T0, "y"), T0 + timedelta(days=1, seconds=i)))
    assert len(queue._future) <= 64 + 2 * len(queue)
    assert queue.head(5) == ["x"]


def test_a_publication_stalled_by_an_error_is_not_queued_until_it_changes():
    """One whose decision raised is retried with backoff (its own timer); meanwhile it must not
    hold a place at the head of its adapter's queue (32 of them would block it)."""
    from herald.reconciler import RECONCILE_ERROR, queue_entry
    from herald.views import PublicationView

    from .builders import publication_body

    body = publication_body("p", targets=["a"], status={"reason": RECONCILE_ERROR, "observedGeneration": 1})
    assert queue_entry(PublicationView.from_body(body), "a") is None
    body["metadata"]["generation"] = 2  # edited since: decided, and queued, again
    assert queue_entry(PublicationView.from_body(body), "a") is not None
    assert queue_entry(PublicationView.from_body(publication_body("q", targets=["a"])), "a") is not None

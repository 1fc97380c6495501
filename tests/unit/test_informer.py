"""The watch stream's parsing (herald.kube.LineSplitter, herald.informer.parse_event): any bytes
the API server or a hostile proxy sends give events or are skipped, never an exception, and
events are never lost or merged whatever the chunk boundaries."""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from herald import metrics
from herald.informer import BACKOFFS, JOBS, Informer, parse_event
from herald.kube import Kube, LineSplitter
from tests.support.kubeconfig import write_kubeconfig
from tests.support.recording_server import RecordedRequest, RecordingServer, Response

names = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=40)
objects = st.builds(
    lambda name, rv, labels: {"metadata": {"name": name, "namespace": "ns", "resourceVersion": rv, "labels": labels}},
    names,
    st.integers(1, 2**62).map(str),
    st.dictionaries(names, names, max_size=3),
)
events = st.builds(lambda t, o: {"type": t, "object": o}, st.sampled_from(["ADDED", "MODIFIED", "DELETED"]), objects)


@given(st.lists(events, max_size=20), st.lists(st.integers(1, 200), max_size=40))
def test_lines_survive_any_chunking(evs, cuts):
    stream = b"".join(json.dumps(e).encode() + b"\n" for e in evs)
    splitter, lines, at = LineSplitter(), [], 0
    for size in [*cuts, len(stream)]:
        lines += splitter.feed(stream[at : at + size])
        at += size
    lines += splitter.end()
    assert [parse_event(line) for line in lines] == [parse_event(json.dumps(e)) for e in evs]
    assert [parse_event(line).object for line in lines] == [e["object"] for e in evs]


def test_a_line_without_its_newline_at_the_end_is_kept_and_blank_lines_are_not_events():
    splitter = LineSplitter()
    assert splitter.feed(b'{"a":1}\n\n  \n{"b"') == [b'{"a":1}']
    assert splitter.feed(b":2}") == []
    assert splitter.end() == [b'{"b":2}']
    assert splitter.end() == []


def test_a_line_longer_than_the_limit_is_refused_however_it_arrives():
    with pytest.raises(ValueError):
        LineSplitter(limit=10).feed(b"x" * 11 + b"\n")
    splitter = LineSplitter(limit=10)
    splitter.feed(b"x" * 6)
    with pytest.raises(ValueError):
        splitter.feed(b"x" * 6)


@given(st.binary(max_size=300))
def test_any_bytes_parse_to_an_event_or_nothing(line):
    event = parse_event(line)
    assert event is None or event.type in {"ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"}


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda c: st.lists(c) | st.dictionaries(st.text(max_size=5), c),
        max_leaves=20,
    )
)
def test_any_json_parses_to_an_event_or_nothing(value):
    event = parse_event(json.dumps({"type": "MODIFIED", "object": value}))
    if event is not None:  # only an object with metadata, a name and a resourceVersion is an event
        assert isinstance(event.object["metadata"]["name"], str) and event.resource_version


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"null",
        b"[]",
        b'"ADDED"',
        b'{"type": "ADDED"}',
        b'{"type": "ADDED", "object": []}',
        b'{"type": "ADDED", "object": {"metadata": {"name": "a"}}}',  # no resourceVersion
        b'{"type": "ADDED", "object": {"metadata": {"name": "a", "resourceVersion": 5}}}',  # not a string
        b'{"type": "ADDED", "object": {"metadata": {"resourceVersion": "5"}}}',  # no name
        b'{"type": "RENAMED", "object": {"metadata": {"name": "a", "resourceVersion": "5"}}}',
        b'{"type": 1, "object": {"metadata": {"name": "a", "resourceVersion": "5"}}}',
        b"[" * 100_000,  # nesting deeper than any parser's stack
    ],
)
def test_unusable_lines_are_skipped(line):
    assert parse_event(line) is None


def test_a_bookmark_moves_the_resource_version_and_an_expired_watch_says_410():
    bookmark = parse_event(b'{"type":"BOOKMARK","object":{"kind":"Pod","metadata":{"resourceVersion":"77"}}}')
    assert bookmark is not None and (bookmark.type, bookmark.resource_version) == ("BOOKMARK", "77")
    gone = parse_event(
        b'{"type":"ERROR","object":{"kind":"Status","status":"Failure","reason":"Expired","code":410,'
        b'"message":"too old resource version: 1 (4242)"}}'
    )
    assert gone is not None and (gone.type, gone.code) == ("ERROR", 410)
    odd = parse_event(b'{"type":"ERROR","object":{"code":true}}')
    assert odd is not None and odd.code == 0


@dataclass
class _Timed(RecordedRequest):
    at: float = field(default_factory=time.monotonic)


class _EmptyStreams(RecordingServer[_Timed]):
    """Lists no Jobs; answers every watch with 200 and an empty stream that ends at once."""

    def __init__(self) -> None:
        super().__init__(request_type=_Timed)

    def is_recorded(self, request: _Timed) -> bool:
        return request.param("watch") == "true"

    def respond(self, request: _Timed) -> Response:
        if request.path.rstrip("/") == "/version":  # the client checks the server's version first
            return Response(body={"major": "1", "minor": "34", "gitVersion": "v1.34.4"})
        if request.param("watch") == "true":
            return Response(body=b"", content_type="application/json")
        return Response(body={"kind": "JobList", "metadata": {"resourceVersion": "5"}, "items": []})


async def test_a_watch_that_ends_at_once_without_events_is_reopened_after_a_backoff(tmp_path):
    """A broken API server or proxy that ends every watch at once, with 200 and nothing in it, must
    not turn the informer into a busy loop: the reopenings are spaced as after failures (never
    sooner than the backoffs), and counted as restarts of a silent stream."""
    server = _EmptyStreams().start()
    config = tmp_path / "kubeconfig"
    write_kubeconfig(config, server.url, "t")
    kube = Kube(kubeconfig=str(config))
    restarts = metrics.REGISTRY.get_sample_value(
        "herald_watch_restarts_total", {"resource": "jobs", "reason": "inactive"}
    )
    informer = Informer(kube, JOBS, ["ns"], "herald.dev/publication", lambda *a: None, lambda *a: None)
    try:
        informer.start()
        watches = await server.await_requests(4, timeout=30)
    finally:
        await informer.stop()
        await kube.close()
        server.stop()
    gaps = [b.at - a.at for a, b in itertools.pairwise(watches)][:3]
    assert all(gap >= backoff * 0.9 for gap, backoff in zip(gaps, BACKOFFS, strict=False)), gaps
    after = metrics.REGISTRY.get_sample_value("herald_watch_restarts_total", {"resource": "jobs", "reason": "inactive"})
    assert (after or 0) - (restarts or 0) >= 3

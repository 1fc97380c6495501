"""Mastodon against data Herald didn't write: responses a real Mastodon (4.5) recorded for
Mastodon.py's test suite (vcrpy cassettes from the Mastodon.py 2.3.3 sdist, vendored in
fidelity/mastodon_py/), its status-length ground truth (characters remaining as reported
by a real instance), and Mastodon.py's own length function."""

from __future__ import annotations

import ast
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mastodon import Mastodon

from herald_adapters import mastodon
from herald_adapters._text import count_graphemes, count_mastodon

from ._replay import FIDELITY, Recorded, Replay, cassette, recorded, run
from ._support import payload

DATA = FIDELITY / "mastodon_py"
TOKEN = {"accessToken": "recorded-mastodon-token-0000"}
INSTANCE = recorded(cassette(DATA / "test_instance.yaml")[0])


def _cases() -> list[tuple[str, int]]:
    """TEST_CASES of Mastodon.py's tests/test_status_length.py: (text, length) where the
    length was read from a real instance (max_characters 1000 minus what it said remained)."""
    module = ast.parse((DATA / "status_length_cases.py.txt").read_text(encoding="utf-8"))
    for node in module.body:
        if isinstance(node, ast.Assign) and node.targets[0].id == "TEST_CASES":
            return eval(compile(ast.Expression(node.value), "cases", "eval"), {"__builtins__": {}})
    raise AssertionError("TEST_CASES not found")


CASES = _cases()


def test_there_are_ground_truth_cases():
    assert len(CASES) >= 30


@pytest.mark.parametrize("text,expected", CASES, ids=[repr(t)[:40] for t, _ in CASES])
def test_length_matches_what_a_real_instance_counted(text, expected):
    assert count_mastodon(text) == expected
    # with a content warning, counted with the text (Mastodon.py's test: spoiler "what" adds 4)
    assert count_mastodon(text) + count_graphemes("what") == expected + 4


_FRAGMENTS = st.sampled_from(
    [
        "https://example.org/a-b_c~d?e=f#g",
        "http://example.com",
        "https://sub.example.co.uk/path/(x)",
        "https://ja.wikipedia.org/wiki/日本",
        "https://e.org/?q=日本",
        "http://localhost:3000/x",
        "http://127.0.0.1/",
        "https://example.invalidtld/x",
        "ftp://example.org/f",
        "#https://example.org",
        "@alice",
        "@bob@example.social",
        "hello",
        "#tag",
        "👩🏽‍💻",
        "e\u0301",
        "(",
        ")",
        ".",
        ",",
        "!",
    ]
)


@settings(deadline=None, max_examples=300)
@given(st.lists(st.tuples(_FRAGMENTS, st.sampled_from(["", " ", "\n"])), max_size=8))
def test_length_agrees_with_mastodon_py(parts):
    # (No flags here: Mastodon.py's grapheme library counts a flag after a line break as 2;
    # UAX #29, Ruby and Herald as 1. The ground truth above covers flags.)
    text = "".join(fragment + gap for fragment, gap in parts)
    assert count_mastodon(text) == Mastodon.get_status_length(text)


def _instance_run(tmp_path, text: str, **kw):
    transport = Replay({"GET /api/v2/instance": INSTANCE, "POST /api/v1/statuses": Recorded.json(200, {"id": "1"})})
    return run(
        mastodon.publish, transport, tmp_path, platform="mastodon", credentials=TOKEN, document=payload(text), **kw
    ), transport


def test_a_real_instance_document_sets_the_limits(tmp_path):
    configuration = json.loads(INSTANCE.body)["configuration"]
    assert configuration["statuses"]["max_characters"] == 500
    ok, _ = _instance_run(tmp_path, "a" * 500)
    assert ok.outcome == "published"
    too_long, transport = _instance_run(tmp_path, "a" * 501)
    assert too_long.error_class.value == "rejected" and "at most 500" in too_long.message
    assert transport.sent("POST", "/api/v1/statuses") == []


def test_the_media_limits_of_a_real_instance_document():
    data = json.loads(INSTANCE.body)
    media = data["configuration"]["media_attachments"]
    assert (media["image_size_limit"], media["video_size_limit"]) == (mastodon.MAX_IMAGE_BYTES, 103809024)
    assert data["configuration"]["statuses"]["max_media_attachments"] == mastodon.MAX_MEDIA


def test_status_options_are_the_parameters_mastodon_py_sent(tmp_path):
    interaction = cassette(DATA / "test_status_post[Content warning-unlisted].yaml")[0]
    sent_by_mastodon_py = {k: v[0] for k, v in parse_qs(interaction["request_body"], keep_blank_values=True).items()}
    transport = Replay({"GET /api/v2/instance": INSTANCE, "POST /api/v1/statuses": recorded(interaction)})
    options = {"visibility": "unlisted", "spoilerText": "Content warning", "sensitive": False}
    result = run(
        mastodon.publish,
        transport,
        tmp_path,
        platform="mastodon",
        credentials=TOKEN,
        document=payload(sent_by_mastodon_py["status"], options=options),
    )
    assert result.outcome == "published", result
    [request] = transport.sent("POST", "/api/v1/statuses")
    sent_by_herald = json.loads(request.content)
    assert set(sent_by_herald) == set(sent_by_mastodon_py)
    assert sent_by_herald == {**sent_by_mastodon_py, "sensitive": False}
    assert sent_by_mastodon_py["sensitive"] == "0"
    # The recorded answer, read as Herald reads it.
    status = json.loads(interaction["body"])
    assert (result.post_id, result.url) == (status["id"], status["url"])
    assert result.rate_limit.remaining == int(interaction["headers"]["x-ratelimit-remaining"])
    reset = datetime.fromisoformat(interaction["headers"]["x-ratelimit-reset"].replace("Z", "+00:00"))
    assert abs(result.rate_limit.reset_at - reset) < timedelta(seconds=1)


def test_a_recorded_asynchronous_video_upload(tmp_path):
    upload, processed, status, _delete = cassette(DATA / "test_media_post[True].yaml")
    assert upload["status"] == 202 and json.loads(upload["body"])["url"] is None  # still processing
    transport = Replay(
        {
            "GET /api/v2/instance": INSTANCE,
            "POST /api/v2/media": recorded(upload),
            r"GET /api/v1/media/\d+": recorded(processed),
            "POST /api/v1/statuses": recorded(status),
            r"GET /clip\.mp4": Recorded(200, b"\x00\x00\x00\x18ftypmp42" + b"\0" * 100, {"content-type": "video/mp4"}),
        }
    )
    document = payload(
        "LOL check this out", media=[{"url": "https://media.test/clip.mp4"}], options={"sensitive": True}
    )
    result = run(mastodon.publish, transport, tmp_path, platform="mastodon", credentials=TOKEN, document=document)
    assert result.outcome == "published", result
    media_id = json.loads(upload["body"])["id"]
    assert [urlsplit(str(r.url)).path for r in transport.sent("GET", r"/api/v1/media/\d+")] == [
        f"/api/v1/media/{media_id}"
    ]
    assert json.loads(transport.sent("POST", "/api/v1/statuses")[0].content)["media_ids"] == [media_id]
    assert "media_ids[]" in status["request_body"].replace("%5B%5D", "[]")  # what Mastodon.py sent: the same ids


@pytest.mark.parametrize(
    "name,index,error_class",
    [
        ("test_home_tl_anonymous_throws.yaml", 0, "auth"),  # 401 The access token is invalid
        ("test_status_empty.yaml", 0, "rejected"),  # 422 (a Japanese instance's validation message)
        ("test_status_missing.yaml", 0, "rejected"),  # 404 Not Found
    ],
)
def test_recorded_errors_are_classified(tmp_path, name, index, error_class):
    interaction = cassette(DATA / name)[index]
    transport = Replay({"GET /api/v2/instance": INSTANCE, "POST /api/v1/statuses": recorded(interaction)})
    result = run(mastodon.publish, transport, tmp_path, platform="mastodon", credentials=TOKEN)
    assert result.error_class.value == error_class
    assert str(interaction["status"]) in result.message
    assert json.loads(interaction["body"])["error"] in result.message


def test_verify_finds_a_recorded_status_by_its_text(tmp_path):
    interactions = cassette(DATA / "test_account_statuses_exclude_direct.yaml")
    posted, account, statuses = interactions[0], interactions[3], interactions[4]
    text = parse_qs(posted["request_body"])["status"][0]
    created = json.loads(posted["body"])
    transport = Replay(
        {
            "GET /api/v2/instance": INSTANCE,
            "GET /api/v1/accounts/verify_credentials": recorded(account),
            r"GET /api/v1/accounts/\d+/statuses": recorded(statuses),
        }
    )
    now = datetime.fromisoformat(created["created_at"].replace("Z", "+00:00")) + timedelta(hours=1)
    result = run(
        mastodon.publish,
        transport,
        tmp_path,
        platform="mastodon",
        credentials=TOKEN,
        document=payload(text),
        mode="verify",
        now=now,
    )
    assert result.verified is True and result.post_id == created["id"] and result.url == created["url"]


def test_verify_matches_a_recorded_status_with_a_mention(tmp_path):
    interactions = cassette(DATA / "test_status_reply.yaml")
    reply, account = interactions[2], interactions[1]
    text = parse_qs(reply["request_body"])["status"][0]  # "@mastodonpy_test_2 same!"
    status = json.loads(reply["body"])
    assert 'class="u-url mention">@<span>' in status["content"]
    transport = Replay(
        {
            "GET /api/v2/instance": INSTANCE,
            "GET /api/v1/accounts/verify_credentials": recorded(account),
            r"GET /api/v1/accounts/\d+/statuses": Recorded.json(200, [status]),
        }
    )
    now = datetime.fromisoformat(status["created_at"].replace("Z", "+00:00")) + timedelta(minutes=5)
    result = run(
        mastodon.publish,
        transport,
        tmp_path,
        platform="mastodon",
        credentials=TOKEN,
        document=payload(text),
        mode="verify",
        now=now.astimezone(UTC),
    )
    assert result.verified is True and result.post_id == status["id"]

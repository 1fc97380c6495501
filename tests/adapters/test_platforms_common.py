"""What every platform adapter must do, checked against each platform's fake:
publish, classify every documented error, survive unknown outcomes, respect limits,
and never leak a credential."""

from __future__ import annotations

import time

import pytest

from tests.platforms import Script

from ._platforms import ALL, IDS, LOADED_AT, ErrorCase, Profile
from ._support import assert_no_secrets, closed_port_url, payload

LINK = "https://example.org/blog/herald-1-0"


def posted_text(post: dict) -> str:
    for key in ("text", "content", "caption"):
        if isinstance(post.get(key), str):
            return post[key]
    return post["document"]["content"]["text"]  # generic webhook: the publication itself


def run_against(run_adapter, profile: Profile, fake, **kw):
    kw.setdefault("credentials", profile.credentials(fake))
    kw.setdefault("endpoint", profile.endpoint(fake))
    return run_adapter(profile.name, **kw)


@pytest.mark.parametrize("profile", ALL, ids=IDS)
def test_publishes_once_and_reports_the_post(profile, run_adapter):
    with profile.make() as fake:
        run = run_against(run_adapter, profile, fake, document=payload("Herald 1.0 is out", link=LINK))
        assert run.exit_code == 0, run.output
        assert run.result["outcome"] == "published"
        assert "errorClass" not in run.result
        assert len(fake.posts) == 1
        assert posted_text(fake.posts[0]).startswith("Herald 1.0 is out")
        if profile.name != "webhook":
            assert LINK in posted_text(fake.posts[0])
        assert 0 < run.result["responseSeconds"] < 5
        # stdout repeats the result for `kubectl logs`
        assert run.raw_result in run.stdout
        assert_no_secrets(run, *profile.credentials(fake).values())


def _error_cases():
    for profile, profile_id in zip(ALL, IDS, strict=False):
        for case in profile.errors:
            yield pytest.param(profile, case, id=f"{profile_id}-{case.id}")


@pytest.mark.parametrize("profile,case", list(_error_cases()))
def test_documented_error_response_is_classified(profile: Profile, case: ErrorCase, run_adapter):
    with profile.make() as fake:
        fake.fail(profile.post_route, case.status, case.body, case.headers)
        run = run_against(run_adapter, profile, fake)
        assert run.exit_code == 1, run.output
        assert run.result["outcome"] == "failed"
        assert run.result["errorClass"] == case.error_class, run.result
        assert fake.posts == []
        if case.retry_after is not None and case.retry_after > 60:
            # A reset time (absolute, set at import) comes nearer as the suite runs.
            elapsed = time.monotonic() - LOADED_AT
            assert case.retry_after - elapsed - 30 <= run.result["retryAfterSeconds"] <= case.retry_after + 30
        elif case.retry_after is not None:
            assert run.result["retryAfterSeconds"] == pytest.approx(case.retry_after, abs=0.5)
        if case.status == 429 and any(k.lower().endswith("ratelimit-remaining") for k in case.headers):
            assert run.result["rateLimit"]["remaining"] == 0
        assert str(case.status) in run.result["message"] or case.status == 200
        assert "responseSeconds" in run.result
        assert_no_secrets(run, *profile.credentials(fake).values())


@pytest.mark.parametrize("profile", ALL, ids=IDS)
def test_unreachable_platform_is_a_network_error(profile, run_adapter):
    with profile.make() as fake:
        closed = closed_port_url()
        endpoint = profile.endpoint(fake).replace(fake.url, closed)
        started = time.monotonic()
        run = run_against(
            run_adapter, profile, fake, endpoint=endpoint, credentials=profile.closed_credentials(fake, closed)
        )
        assert run.exit_code == 1, run.output
        assert run.result["errorClass"] == "network"
        # connect errors are retried in-process, but only briefly
        assert time.monotonic() - started < 3
        assert_no_secrets(run, *profile.credentials(fake).values())


@pytest.mark.parametrize("profile", ALL, ids=IDS)
def test_read_timeout_after_sending_is_unknown_outcome_and_verify_does_not_post_twice(profile, run_adapter):
    with profile.make() as fake:
        # The platform makes the post, then answers too late.
        fake.script(profile.post_route, Script(process=True, delay=5))
        first = run_against(run_adapter, profile, fake, timeout=0.3)
        assert first.exit_code == 1, first.output
        assert first.result["errorClass"] == "unknown_outcome"
        assert first.result["responseSeconds"] >= 0.3
        assert len(fake.posts) == 1

        second = run_against(run_adapter, profile, fake, mode="verify", attempt=2)
        assert second.exit_code == 0, second.output
        assert second.result["outcome"] == "published"
        if profile.verify_finds_post:
            assert len(fake.posts) == 1, "verify mode posted a second time"
            assert second.result.get("verified") is True
            assert second.result.get("postId") in (
                None,
                *[p.get("id") or p.get("ts") or p.get("uri") for p in fake.posts],
            )
        else:
            # Documented: this platform offers no way to find the earlier post.
            assert len(fake.posts) == 2
            assert "verified" not in second.result
            assert "no lookup; posted again" in second.result["message"]
        assert_no_secrets(second, *profile.credentials(fake).values())


@pytest.mark.parametrize("profile", ALL, ids=IDS)
def test_connection_dropped_after_sending_is_unknown_outcome(profile, run_adapter):
    with profile.make() as fake:
        fake.script(profile.post_route, Script(process=True, drop=True))
        run = run_against(run_adapter, profile, fake)
        assert run.exit_code == 1, run.output
        assert run.result["errorClass"] == "unknown_outcome"


LIMITED = [(p, i) for p, i in zip(ALL, IDS, strict=False) if p.text_limit]


@pytest.mark.parametrize("profile", [p for p, _ in LIMITED], ids=[i for _, i in LIMITED])
def test_text_over_the_limit_is_rejected_before_calling_the_platform(profile, run_adapter):
    with profile.make() as fake:
        run = run_against(run_adapter, profile, fake, document=payload("a" * (profile.text_limit + 1)))
        assert run.exit_code == 1
        assert run.result["errorClass"] == "rejected"
        assert str(profile.text_limit) in run.result["message"]
        assert "truncate" in run.result["message"]
        assert [r.path for r in fake.requests if r.match.get("_route") not in profile.preflight_routes] == []


@pytest.mark.parametrize("profile", [p for p, _ in LIMITED], ids=[i for _, i in LIMITED])
def test_text_at_the_limit_is_posted_whole(profile, run_adapter):
    with profile.make() as fake:
        run = run_against(run_adapter, profile, fake, document=payload("a" * profile.text_limit))
        assert run.exit_code == 0, run.output
        assert posted_text(fake.posts[0]) == "a" * profile.text_limit


@pytest.mark.parametrize("profile", [p for p, _ in LIMITED], ids=[i for _, i in LIMITED])
def test_truncate_true_shortens_the_text_and_keeps_the_link(profile, run_adapter):
    with profile.make() as fake:
        text = "word " * profile.text_limit
        run = run_against(run_adapter, profile, fake, document=payload(text, link=LINK, truncate=True))
        assert run.exit_code == 0, run.output
        posted = posted_text(fake.posts[0])
        assert posted.endswith(LINK)
        assert "…" in posted
        assert posted.startswith("word word")
        length = len(posted) - len(LINK) + 23 if profile.name == "mastodon" else len(posted)
        assert profile.text_limit - 10 <= length <= profile.text_limit


def test_error_body_echoing_a_credential_is_redacted(run_adapter):
    from ._platforms import MASTODON

    with MASTODON.make() as fake:
        token = fake.access_token
        fake.fail("statuses", 401, {"error": f"The access token {token} is invalid"})
        run = run_against(run_adapter, MASTODON, fake)
        assert run.result["errorClass"] == "auth"
        assert "[REDACTED]" in run.result["message"]
        assert_no_secrets(run, token)

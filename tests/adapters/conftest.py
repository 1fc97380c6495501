"""Fixtures: the adapter run in-process the way the Job runs it, and one fake per platform."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator

import pytest

from herald_adapters.cli import main
from tests.platforms import BlueskyFake, DiscordFake, MastodonFake, SlackFake, TelegramFake, WebhookFake
from tests.platforms.linkedin import LinkedInFake
from tests.platforms.x import KubeSecretsFake, XFake

from ._support import IDEMPOTENCY_KEY, Run, job_env, lay_out, payload


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """These tests talk to fakes on 127.0.0.1 only: resolving any other host fails."""
    real = socket.getaddrinfo

    def guarded(host, *args, **kwargs):
        if host not in ("127.0.0.1", "localhost", "::1", None):
            raise socket.gaierror(f"test guard: refusing to resolve non-loopback host {host!r}")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)


TOKEN_STORE_ENV = ("HERALD_TOKEN_STORE_FILE", "HERALD_KUBE_API_URL", "HERALD_KUBE_SERVICEACCOUNT_DIR")


@pytest.fixture
def run_adapter(tmp_path, capsys):
    """Run the adapter in-process, once per call, each in a fresh mount layout."""
    counter = iter(range(1000))

    def run(
        platform: str,
        *,
        credentials: dict[str, str],
        document: dict | None = None,
        endpoint: str = "",
        mode: str = "publish",
        attempt: int = 1,
        key: str = IDEMPOTENCY_KEY,
        timeout: float = 5.0,
        extra_env: dict[str, str] | None = None,
    ) -> Run:
        paths = lay_out(tmp_path / f"run{next(counter)}", credentials=credentials, document=document or payload())
        env = job_env(paths, platform=platform, endpoint=endpoint, mode=mode, attempt=attempt, key=key, timeout=timeout)
        # The token store's variables a test sets for the process (monkeypatch) reach the run too.
        env.update({k: v for k, v in os.environ.items() if k in TOKEN_STORE_ENV})
        env.update(extra_env or {})
        capsys.readouterr()
        code = main([], env)
        out = capsys.readouterr()
        raw = paths["result"].read_text(encoding="utf-8")
        return Run(code, json.loads(raw) if raw else None, raw, out.out, out.err)

    return run


def _serve(fake) -> Iterator:
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def webhook_fake():
    yield from _serve(WebhookFake())


@pytest.fixture
def slack_fake():
    yield from _serve(SlackFake())


@pytest.fixture
def discord_fake():
    yield from _serve(DiscordFake())


@pytest.fixture
def telegram_fake():
    yield from _serve(TelegramFake())


@pytest.fixture
def mastodon_fake():
    yield from _serve(MastodonFake())


@pytest.fixture
def bluesky_fake():
    yield from _serve(BlueskyFake())


@pytest.fixture
def x_fake():
    yield from _serve(XFake())


@pytest.fixture
def linkedin_fake():
    yield from _serve(LinkedInFake())


@pytest.fixture
def kube_fake():
    yield from _serve(KubeSecretsFake())

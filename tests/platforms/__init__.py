"""Fake social platforms for testing Herald's adapters: each implements the documented
subset of one platform's API on a loopback (or given) address, records what it
received, and can be scripted to fail. Run one standalone with

    python -m tests.platforms --platform mastodon --host 0.0.0.0 --port 8090
"""

from __future__ import annotations

from ._server import PNG, FakePlatform, Request, Response, Script
from .bluesky import BlueskyFake
from .discord import DiscordFake
from .mastodon import MastodonFake
from .slack import SlackFake
from .telegram import TelegramFake
from .webhook import WebhookFake

FAKES: dict[str, type[FakePlatform]] = {
    "webhook": WebhookFake,
    "slack": SlackFake,
    "discord": DiscordFake,
    "telegram": TelegramFake,
    "mastodon": MastodonFake,
    "bluesky": BlueskyFake,
}

__all__ = [
    "FAKES",
    "PNG",
    "BlueskyFake",
    "DiscordFake",
    "FakePlatform",
    "MastodonFake",
    "Request",
    "Response",
    "Script",
    "SlackFake",
    "TelegramFake",
    "WebhookFake",
]

"""Serve one fake platform until killed:

    python -m tests.platforms --platform mastodon --host 0.0.0.0 --port 8090

It prints one JSON line on stdout: the URL, the HERALD_ENDPOINT to use, and the
Secret keys (credentials) the fake accepts. GET /_herald/posts lists the posts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys

from . import FAKES as BUILT_IN
from .linkedin import LinkedInFake
from .x import XFake

FAKES = {**BUILT_IN, "x": XFake, "linkedin": LinkedInFake}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.platforms", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--platform", required=True, choices=sorted(FAKES))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--public-url",
        default=None,
        help="the base URL adapters reach this server at (for the printed endpoint and credentials)",
    )
    args = parser.parse_args(argv)
    fake = FAKES[args.platform](args.host, args.port)
    base = (args.public_url or fake.url).rstrip("/")
    info = {"platform": args.platform, "url": fake.url, **_settings(args.platform, fake, base)}
    print(json.dumps(info), flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with contextlib.suppress(KeyboardInterrupt):
        fake.serve_forever()
    return 0


def _settings(platform: str, fake, base: str) -> dict:
    """The PlatformAdapter endpoint and Secret data that work against this fake."""
    creds = {k: v.replace(fake.url, base) for k, v in fake.credentials().items()}
    endpoint = {
        "webhook": f"{base}/hook",
        "slack": f"{base}/api",
        "discord": "",
        "telegram": base,
        "mastodon": base,
        "bluesky": base,
        "x": base,
        "linkedin": base,
    }[platform]
    return {"endpoint": endpoint, "credentials": creds}


if __name__ == "__main__":
    raise SystemExit(main())

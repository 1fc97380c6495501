"""``python -m herald``: run the operator (kopf) with Herald's handlers."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random

import kopf


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="herald", description="Run the Herald operator.")
    parser.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=None,
        help="watch this namespace (repeatable); default: HERALD_NAMESPACES or all",
    )
    parser.add_argument("--health-port", type=int, default=int(os.environ.get("HERALD_HEALTH_PORT", "8081")))
    parser.add_argument(
        "--peering",
        default=os.environ.get("HERALD_PEERING") or None,
        help="a kopf peering name for standby replicas (default: standalone)",
    )
    parser.add_argument(
        "--priority",
        type=int,
        default=int(os.environ.get("HERALD_PEERING_PRIORITY", "0")) or None,
        help="kopf peering priority; default: random, so one of several peered replicas is active",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.namespace:
        os.environ["HERALD_NAMESPACES"] = ",".join(args.namespace)
    namespaces = [n for n in os.environ.get("HERALD_NAMESPACES", "").split(",") if n]
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("kopf.objects", "kopf.activities.probe", "httpx", "kopf._core.engines.peering", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from . import handlers  # noqa: F401  (registers the handlers)

    asyncio.run(
        kopf.operator(
            clusterwide=not namespaces,
            namespaces=namespaces,
            standalone=args.peering is None,
            peering_name=args.peering,
            priority=args.priority if args.priority is not None else random.randint(1, 2**31 - 1),
            liveness_endpoint=f"http://0.0.0.0:{args.health_port}/healthz",
        )
    )


if __name__ == "__main__":
    main()

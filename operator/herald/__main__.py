"""``python -m herald``: run the operator (kopf) with Herald's handlers."""

from __future__ import annotations

import argparse
import asyncio
import gc
import random

import kopf

from .config import OperatorConfig
from .logs import setup_logging
from .tracing import setup as setup_tracing


def tune_gc(threshold: int) -> None:
    """With ``threshold`` > 0, collect young garbage every ``threshold`` allocations instead of
    Python's 700, and the older generations 20 and 100 times less often. Measured over a run of
    the burst benchmark (docs/performance.md): the collector takes 18% of the operator's CPU with
    Python's thresholds (about 2,100 young, 190 middle and 18 full collections) and 4% with 50,000,
    but each young collection then pauses the event loop for about 0.1 s (Event lag p99 3.7 s
    in two runs of three, against one run in eight with Python's), RSS grows by 10 MiB, and the
    burst was not faster. So the default (0) keeps Python's own; a very large store may want it."""
    if threshold > 0:
        gc.set_threshold(threshold, 20, 100)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="herald", description="Run the Herald operator (settings: herald.config).")
    parser.add_argument(
        "-n", "--namespace", action="append", default=None, help="watch this namespace (repeatable; HERALD_NAMESPACES)"
    )
    parser.add_argument("--health-port", type=int, default=None, help="/healthz port (HERALD_HEALTH_PORT)")
    parser.add_argument("--peering", default=None, help="a kopf peering name for standby replicas (HERALD_PEERING)")
    parser.add_argument(
        "--priority", type=int, default=None, help="kopf peering priority (HERALD_PEERING_PRIORITY; default random)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", default=None, help="debug logging (HERALD_VERBOSE)")
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=None,
        help="text or one JSON object per line (HERALD_LOG_FORMAT)",
    )
    args = parser.parse_args(argv)
    overrides = {
        "namespaces": args.namespace,
        "health_port": args.health_port,
        "peering": args.peering,
        "peering_priority": args.priority,
        "verbose": args.verbose,
        "log_format": args.log_format,
    }
    config = OperatorConfig(**{k: v for k, v in overrides.items() if v is not None})
    setup_logging(config.log_format, config.verbose)
    tune_gc(config.gc_threshold)
    setup_tracing()  # OpenTelemetry over OTLP when OTEL_EXPORTER_OTLP_*ENDPOINT is set; else nothing
    from . import handlers  # noqa: F401  (registers the handlers)

    priority = config.peering_priority if config.peering_priority is not None else random.randint(1, 2**31 - 1)
    asyncio.run(
        kopf.operator(
            clusterwide=not config.namespaces,
            namespaces=config.namespaces,
            standalone=config.peering is None,
            peering_name=config.peering,
            priority=priority,
            liveness_endpoint=f"http://0.0.0.0:{config.health_port}/healthz",
            memo=kopf.Memo(config=config),
        )
    )


if __name__ == "__main__":
    main()

"""A sampler to run next to a benchmark: where the machine's CPU and the API server's writes go.

    .venv/bin/python bench/sample.py --out /tmp/run.jsonl &      # then run a benchmark; Ctrl-C it
    .venv/bin/python bench/sample.py --summary /tmp/run.jsonl    # a table, one row per 2 s

Each sample (every --interval seconds, one JSON line): the CPU seconds so far of the control
plane's processes, kwok, the operator and the benchmark (from /proc, by program name), and the API
server's `apiserver_request_total` for writes by verb and resource. docs/performance.md ("Third
round") reads its table: the cluster's own work for each Job, and the operator's share of the cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))

from herald.kube import Kube

WRITES = {"POST", "PATCH", "PUT", "DELETE"}
PROGRAMS = ("kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler", "kwok")


def process_group(argv: list[str]) -> str | None:
    """Which group a process's CPU counts in: a program by its name, the operator, the benchmark."""
    if not argv:
        return None
    program = os.path.basename(argv[0])
    if program in PROGRAMS:
        return program
    if "-m" in argv and "herald" in argv[argv.index("-m") + 1 :][:1]:
        return "operator"
    script = argv[1] if len(argv) > 1 else ""
    if script.startswith("bench/") or "/bench/" in script:
        return "bench:" + os.path.basename(script).removesuffix(".py")  # bench:publications, bench:sample
    return None


def cpu_seconds() -> dict[str, float]:
    """CPU seconds (user + system) so far, summed per group."""
    tick = os.sysconf("SC_CLK_TCK")
    groups: dict[str, float] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        group = process_group([a for a in argv if a])
        if group is not None:
            groups[group] = groups.get(group, 0.0) + (int(stat[11]) + int(stat[12])) / tick
    return groups


def apiserver_writes(text: str) -> dict[str, float]:
    """``VERB resource`` -> requests so far, from the API server's metrics text."""
    writes: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "apiserver_request":
            continue
        for sample in family.samples:
            verb = sample.labels.get("verb", "")
            if sample.name == "apiserver_request_total" and verb in WRITES:
                key = f"{verb} {sample.labels.get('resource', '')}"
                writes[key] = writes.get(key, 0.0) + sample.value
    return writes


async def record(out: Path, interval: float) -> None:
    kube = Kube()
    try:
        with out.open("w") as f:
            while True:
                started = time.monotonic()
                text = await kube.text("/metrics")
                row = {"t": time.time(), "cpu": cpu_seconds(), "writes": apiserver_writes(text)}
                f.write(json.dumps(row) + "\n")
                f.flush()
                await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))
    finally:
        await kube.close()


def summary(path: Path, every: float = 2.0) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not rows:
        return
    print("   t  writes/s  top writes/s                                    CPU (cores)")
    last = rows[0]
    for row in rows[1:]:
        dt = row["t"] - last["t"]
        if dt < every:
            continue
        writes = {k: (v - last["writes"].get(k, 0.0)) / dt for k, v in row["writes"].items()}
        cpu = {k: (v - last["cpu"].get(k, 0.0)) / dt for k, v in row["cpu"].items()}
        top = sorted(((v, k) for k, v in writes.items() if v >= 1), reverse=True)[:5]
        print(
            f"{row['t'] - rows[0]['t']:5.0f} {sum(writes.values()):8.0f}  "
            + ", ".join(f"{k} {v:.0f}" for v, k in top).ljust(48)
            + "  "
            + " ".join(f"{k} {v:.2f}" for k, v in sorted(cpu.items()) if v >= 0.01)
        )
        last = row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="record samples into this file until interrupted")
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--summary", type=Path, help="print a recorded file as a table")
    args = parser.parse_args()
    if args.summary:
        summary(args.summary)
    elif args.out:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(record(args.out, args.interval))
    else:
        parser.error("--out or --summary")


if __name__ == "__main__":
    main()

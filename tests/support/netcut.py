"""A silent network cut between one uid's processes and one TCP port (the API server), with nftables.

    with network_cut(operator.uid, api_port) as cut:
        ...                      # the operator's packets to and from the API server are dropped
    # the rules are gone here, also after an exception

What is dropped (DROP, never REJECT: no RST, no ICMP, the peer learns nothing, like a broken network):

- every TCP packet a socket of ``uid`` sends to ``port`` (``meta skuid``, OUTPUT hook). That covers new
  connections (their SYN) and the uid's side of the connections it already has;
- both directions of the connections the uid had to ``port`` when the cut started (their local ports
  are read from /proc/net/tcp{,6}, which shows each socket's uid). The packets the API server sends on
  them belong to the server's socket, not to ``uid``, so without this an open watch would still
  receive events during the cut, and the TCP control packets the kernel sends for no socket would pass.

Anything else is untouched, in particular the test's own client (root) talking to the same API server.
The rules live in their own table, ``inet herald_netcut_<uid>_<port>``; leaving the context deletes it.
Needs root and the ``nft`` command (Debian package nftables, tests/tools/install-debs.sh).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

_LISTEN, _TIME_WAIT = 0x0A, 0x06


def _nft(*args: str, script: str | None = None) -> str:
    nft = shutil.which("nft")
    if nft is None:
        raise AssertionError("nft is not installed: run tests/tools/install-debs.sh (Debian package nftables)")
    done = subprocess.run([nft, *args], input=script, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise AssertionError(f"nft {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}\n{script or ''}")
    return done.stdout


def local_ports(uid: int, port: int) -> set[int]:
    """Local ports of the TCP sockets owned by ``uid`` that are connected (or connecting) to ``port``."""
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            f = line.split()
            local, remote, state, owner = f[1], f[2], int(f[3], 16), int(f[7])
            if owner == uid and state not in (_LISTEN, _TIME_WAIT) and int(remote.rsplit(":", 1)[1], 16) == port:
                ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


@dataclass
class Cut:
    uid: int
    port: int
    table: str
    started: float = 0.0  # time.time() when the rules took effect
    ended: float = 0.0  # time.time() when they were removed
    connections: set[int] = field(default_factory=set)  # local ports of the uid's connections cut mid-stream

    def counters(self) -> dict[str, tuple[int, int]]:
        """Packets and bytes dropped so far, per rule comment."""
        ruleset = json.loads(_nft("-j", "list", "table", "inet", self.table))
        out = {}
        for item in ruleset["nftables"]:
            rule = item.get("rule")
            if not rule:
                continue
            counter = next((e["counter"] for e in rule["expr"] if "counter" in e), None)
            if counter is not None:
                out[rule.get("comment", str(rule["handle"]))] = (counter["packets"], counter["bytes"])
        return out

    def dropped_from_uid(self) -> int:
        """Packets the uid's sockets sent to the port, dropped."""
        return self.counters()["uid-out"][0]


def clear_cuts(uid: int) -> list[str]:
    """Delete the cut tables of ``uid`` a killed run may have left behind; their names."""
    tables = json.loads(_nft("-j", "list", "tables", "inet"))["nftables"]
    stale = [
        t["table"]["name"] for t in tables if "table" in t and t["table"]["name"].startswith(f"herald_netcut_{uid}_")
    ]
    for name in stale:
        _nft("delete", "table", "inet", name)
    return stale


@contextmanager
def network_cut(uid: int, port: int) -> Iterator[Cut]:
    table = f"herald_netcut_{uid}_{port}"
    cut = Cut(uid, port, table)
    # One atomic transaction: drop a table left behind by a killed run, then create the rules.
    _nft(
        "-f",
        "-",
        script=f"""
table inet {table} {{}}
delete table inet {table}
table inet {table} {{
  set conns {{ type inet_service; }}
  chain out {{
    type filter hook output priority filter; policy accept;
    meta l4proto tcp meta skuid {uid} tcp dport {port} counter drop comment "uid-out"
    tcp dport {port} tcp sport @conns counter drop comment "conns-out"
  }}
  chain in {{
    type filter hook input priority filter; policy accept;
    tcp sport {port} tcp dport @conns counter drop comment "conns-in"
  }}
}}
""",
    )
    try:
        cut.started = time.time()
        # After the rule above no new connection of the uid can complete, so this snapshot is complete.
        cut.connections = local_ports(uid, port)
        if cut.connections:
            _nft("add", "element", "inet", table, "conns", "{ " + ", ".join(map(str, sorted(cut.connections))) + " }")
        yield cut
    finally:
        _nft("delete", "table", "inet", table)
        cut.ended = time.time()

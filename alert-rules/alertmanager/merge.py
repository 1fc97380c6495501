"""Merge Herald's Alertmanager routes (herald.yml beside this file) into an existing configuration.

    python alert-rules/alertmanager/merge.py existing.yml [herald.yml] > merged.yml

Herald's route becomes the first child of the root route (it matches Herald's alerts only, so every
other alert is routed as before); its inhibit rules and receivers are appended. Earlier copies of
Herald's route, inhibit rules and receivers are replaced, so merging twice gives the same result.
Comments of the existing file are not kept (PyYAML); check the result with ``amtool check-config``.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import yaml

HERALD = Path(__file__).with_name("herald.yml")


def merge(existing: dict[str, Any], herald: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(existing)
    route = out.setdefault("route", {})
    ours = copy.deepcopy(herald["route"])
    routes = [r for r in route.get("routes") or [] if r.get("matchers") != ours.get("matchers")]
    route["routes"] = [ours, *routes]
    rules = [r for r in out.get("inhibit_rules") or [] if r not in herald.get("inhibit_rules", [])]
    out["inhibit_rules"] = rules + copy.deepcopy(herald.get("inhibit_rules", []))
    names = {r["name"] for r in herald.get("receivers", [])}
    receivers = [r for r in out.get("receivers") or [] if r.get("name") not in names]
    out["receivers"] = receivers + copy.deepcopy(herald.get("receivers", []))
    return out


def main(argv: list[str]) -> int:
    if not 1 <= len(argv) <= 2:
        print(__doc__, file=sys.stderr)
        return 2
    existing = yaml.safe_load(Path(argv[0]).read_text()) or {}
    herald = yaml.safe_load(Path(argv[1] if len(argv) > 1 else HERALD).read_text())
    sys.stdout.write(yaml.safe_dump(merge(existing, herald), sort_keys=False, width=200))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

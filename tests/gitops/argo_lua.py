"""Runs an Argo CD health script the way Argo CD does, with lupa's Lua 5.1 (Argo CD's gopher-lua is 5.1).

Argo CD (util/lua in argoproj/argo-cd) opens only the base, table and package libraries (plus a safe
``os``) unless ``resource.customizations.useOpenLibs.<group>_<kind>`` is set; sets the global ``obj``
to the live object (JSON numbers become Lua numbers, arrays 1-based tables, null nil); runs the script
as a chunk and takes the table it returns; and turns a status outside its health codes into
``Unknown`` with the message ``Lua returned an invalid health status``. This module does the same, and
removes the string library, so a script that needs more than Argo CD gives it fails here too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lupa import lua51

from tests.support.cluster import ROOT

HEALTH_CODES = frozenset({"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"})
ARGOCD = ROOT / "gitops" / "argocd"
KINDS = ("Publication", "PlatformAdapter")


def script_path(kind: str) -> Path:
    return ARGOCD / "herald.dev" / kind / "health.lua"


def script(kind: str) -> str:
    return script_path(kind).read_text()


# What Argo CD leaves out by default: everything but base, table and package (and its own safe os,
# which these scripts do not use). The string metatable goes too, so ("x"):sub(1) fails as in Argo CD.
_SANDBOX = """
debug.setmetatable("", nil)
string, math, io, os, debug, coroutine = nil, nil, nil, nil, nil, nil
"""


def _to_lua(runtime: Any, value: Any) -> Any:
    if isinstance(value, dict):
        return runtime.table_from({k: _to_lua(runtime, v) for k, v in value.items() if v is not None})
    if isinstance(value, list):
        return runtime.table(*(_to_lua(runtime, v) for v in value))
    return value


def health(kind: str, obj: dict) -> dict[str, str]:
    """Argo CD's HealthStatus for ``obj`` from the shipped script of ``kind``: {"status", "message"}."""
    return run(script(kind), obj)


def run(source: str, obj: dict) -> dict[str, str]:
    """Argo CD's HealthStatus for ``obj`` from the health script ``source``."""
    runtime = lua51.LuaRuntime(register_eval=False, register_builtins=False, unpack_returned_tuples=False)
    runtime.execute(_SANDBOX)
    runtime.globals().obj = _to_lua(runtime, obj)
    hs = runtime.execute(source)
    assert lua51.lua_type(hs) == "table", f"the script returned {hs!r}, not a table"
    status, message = hs["status"], hs["message"]
    if status not in HEALTH_CODES:
        return {"status": "Unknown", "message": "Lua returned an invalid health status"}
    return {"status": status, "message": message or ""}

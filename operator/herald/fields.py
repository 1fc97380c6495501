"""Reading numbers out of API objects, which may hold anything: bounded, and never raising
anything but ``InvalidValue`` (with the field's path) — or, with ``clamp``, never raising."""

from __future__ import annotations

import math
from typing import Any

from .durations import InvalidValue


def whole(value: Any, default: int, *, low: int, high: int, path: str = "", clamp: bool = False) -> int:
    """An integer in [low, high]; ``default`` when unset."""
    if value is None:
        return default
    ok = isinstance(value, int) and not isinstance(value, bool)
    if not ok and isinstance(value, float) and value.is_integer():
        value, ok = int(value), True
    if ok and low <= value <= high:
        return int(value)
    if clamp:
        return min(max(int(value), low), high) if ok else default
    raise InvalidValue(f"{path}: must be a whole number from {low} to {high}".lstrip(": "))


def number(value: Any, default: float, *, low: float, high: float, path: str = "") -> float:
    """A finite number in [low, high]; ``default`` when unset."""
    if value is None:
        return default
    if (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and low <= value <= high
    ):
        return float(value)
    raise InvalidValue(f"{path}: must be a number from {low:g} to {high:g}".lstrip(": "))

"""Tolerant readers of stored JSON: a value of an unexpected type reads as None, never an exception.

What the database holds came from clients (or an earlier version) and may have any JSON type; the
API reads it through these, skips and counts what does not fit, and the page still renders.
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["loads", "mapping", "number", "integer", "text", "histogram"]


def _finite(raw: str) -> float | None:
    value = float(raw)
    return value if math.isfinite(value) else None


def loads(raw: str | None) -> Any:
    """JSON text as Python, non-finite numbers (`1e999`, `NaN`, `Infinity`) as None, invalid text as None:
    an answer must stay valid JSON."""
    if raw is None:
        return None
    try:
        return json.loads(raw, parse_float=_finite, parse_constant=lambda _: None)
    except (ValueError, RecursionError):
        return None


def mapping(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def number(value: Any) -> float | int | None:
    """A finite number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value if isinstance(value, int) or math.isfinite(value) else None


def integer(value: Any) -> int | None:
    """An int (not a bool), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def text(value: Any) -> str | None:
    """A string, else None."""
    return value if isinstance(value, str) else None


def histogram(value: Any) -> dict[str, Any] | None:
    """An explicit-bucket histogram `{"count", "bounds", "counts", "max"}` with one more count than
    bounds, every number finite (`max` None if absent or not a number), else None."""
    if not isinstance(value, dict):
        return None
    count, bounds, counts = integer(value.get("count")), value.get("bounds"), value.get("counts")
    if count is None or count < 0 or not isinstance(bounds, list) or not isinstance(counts, list):
        return None
    if len(counts) != len(bounds) + 1 or any(number(b) is None for b in bounds) or any(integer(c) is None for c in counts):
        return None
    return {"count": count, "bounds": bounds, "counts": counts, "max": number(value.get("max"))}

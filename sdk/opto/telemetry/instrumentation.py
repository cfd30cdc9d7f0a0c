"""What the asyncio instrumentation (in `opto._core`) offers the layer below: its switch, its snapshot
and its answer to an await-stack request.

It registers them here when imported, so `configure()` and the live exporter reach it without
importing upward (the same way queues register with `sources`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Instrumentation", "register", "switch", "snapshot", "answer"]

logger = logging.getLogger("opto")


@dataclass(frozen=True, slots=True)
class Instrumentation:
    """`switch(asyncio, introspection)` turns it on or off (None leaves a setting as it is);
    `snapshot()` is what the dashboard gets every second (None when off); `answer(request)`
    answers the dashboard's await-stack request."""

    switch: Callable[[bool | None, bool | None], None]
    snapshot: Callable[[], dict[str, Any] | None]
    answer: Callable[[dict[str, Any]], dict[str, Any]]


_registered: list[Instrumentation] = []


def register(instrumentation: Instrumentation) -> None:
    _registered[:] = [instrumentation]


def switch(asyncio: bool | None, introspection: bool | None) -> None:
    if not _registered:
        raise RuntimeError("the asyncio instrumentation is not loaded: import opto, not only opto.telemetry")
    _registered[0].switch(asyncio, introspection)


def snapshot() -> dict[str, Any] | None:
    """The instrumentation's snapshot now; None when it is off or failed (logged)."""
    try:
        return _registered[0].snapshot() if _registered else None
    except Exception:
        logger.debug("opto: reading the asyncio snapshot failed", exc_info=True)
        return None


def answer(request: dict[str, Any]) -> dict[str, Any]:
    """The answer to one await-stack request, never raising: a failure is an answer too."""
    rid = request.get("id")
    if not _registered:
        return {"type": "stack", "id": rid, "error": "refused", "detail": "this process has no asyncio instrumentation loaded"}
    try:
        return _registered[0].answer(request)
    except Exception as exc:
        logger.debug("opto: answering an await-stack request failed", exc_info=True)
        return {"type": "stack", "id": rid, "error": "failed", "detail": f"{type(exc).__name__}: {exc}"[:300]}

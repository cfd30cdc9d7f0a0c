"""The asyncio picture of each SDK process: tasks by creation site and each loop's health.

An instrumented process (`opto.instrument_asyncio()`) sends an `asyncio` frame every second on
its `/ws/ingest` connection. It is checked field by field and copied (known fields only) into
memory, the latest per process: nothing of it goes to the database. Blocked-loop incidents are
stored anyway, as the `opto.loop.blocked` spans the SDK sends with its other spans.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from .records import MAX_NAME, ProcessInfo, RecordError, check_id, int_field, list_field, object_field, text_field

__all__ = ["TaskBoard", "check_asyncio", "MAX_PROCESSES"]

MAX_PROCESSES = 100  # processes whose latest picture is kept; the one heard from longest ago goes first
MAX_SITES = 201  # the SDK's 200 creation sites and "(other)"
MAX_LOOPS = 8
MAX_INCIDENTS = 20  # per loop
MAX_STACK = 50  # frames of an incident's stack
MAX_OLDEST = 5  # live tasks listed per site
MAX_PARENTS = 8
MAX_RECENT = 20  # exceptions never retrieved and tasks destroyed pending
_PATH = 4096  # characters of a file path
_COUNTS = ("created", "live", "ok", "error", "cancelled", "destroyed_pending", "never_retrieved", "never_finished")


def _seconds(obj: dict[str, Any], key: str, path: str, *, optional: bool = True) -> float | None:
    value = obj.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise RecordError(f"{path}.{key}", f"expected a non-negative number of seconds, got {str(value)[:40]}")
    return float(value)


def _items(value: Any, path: str, limit: int) -> list[Any]:
    items = list_field(value, path)
    if len(items) > limit:
        raise RecordError(path, f"more than {limit} items")
    return items


def _where(obj: Any, path: str) -> dict[str, Any]:
    obj = object_field(obj, path)
    return {"file": text_field(obj, "file", path, limit=_PATH), "line": int_field(obj, "line", path),
            "function": text_field(obj, "function", path)}


def _optional_text(obj: dict[str, Any], key: str, path: str) -> str | None:
    return None if obj.get(key) is None else text_field(obj, key, path)


def _site(obj: Any, path: str) -> dict[str, Any]:
    obj = object_field(obj, path)
    out: dict[str, Any] = {"site": text_field(obj, "site", path, limit=_PATH + MAX_NAME), **_where(obj, path)}
    for key in _COUNTS:
        out[key] = int_field(obj, key, path)
    out["oldest_s"] = _seconds(obj, "oldest_s", path)
    out["oldest"] = []
    for i, task in enumerate(_items(obj.get("oldest", []), f"{path}.oldest", MAX_OLDEST)):
        where = f"{path}.oldest[{i}]"
        task = object_field(task, where)
        out["oldest"].append({"id": int_field(task, "id", where), "name": text_field(task, "name", where),
                              "age_s": _seconds(task, "age_s", where, optional=False)})
    parents = object_field(obj.get("parents", {}), f"{path}.parents")
    if len(parents) > MAX_PARENTS:
        raise RecordError(f"{path}.parents", f"more than {MAX_PARENTS} parents")
    out["parents"] = {text_field({"k": k}, "k", f"{path}.parents", limit=_PATH + MAX_NAME): int_field(parents, k, f"{path}.parents") for k in parents}
    return out


def _recent(obj: Any, path: str) -> dict[str, Any]:
    obj = object_field(obj, path)
    kind = text_field(obj, "kind", path)
    if kind not in ("never_retrieved", "destroyed_pending"):
        raise RecordError(f"{path}.kind", "expected never_retrieved or destroyed_pending")
    return {"kind": kind, "time_ns": int_field(obj, "time_ns", path), "site": text_field(obj, "site", path, limit=_PATH + MAX_NAME),
            "task": text_field(obj, "task", path), "exception": _optional_text(obj, "exception", path)}


def _incident(obj: Any, path: str) -> dict[str, Any]:
    obj = object_field(obj, path)
    return {
        "start_ns": int_field(obj, "start_ns", path), "seen_after_s": _seconds(obj, "seen_after_s", path, optional=False),
        "duration_s": _seconds(obj, "duration_s", path), "threshold_s": _seconds(obj, "threshold_s", path, optional=False),
        **_where(obj, path),
        "stack": [_where(w, f"{path}.stack[{i}]") for i, w in enumerate(_items(obj.get("stack", []), f"{path}.stack", MAX_STACK))],
        "task": _optional_text(obj, "task", path), "task_site": _optional_text(obj, "task_site", path),
        # hex ids, as a span's: the page links to the span with them
        "trace_id": check_id(obj.get("trace_id"), 32, f"{path}.trace_id"), "span_id": check_id(obj.get("span_id"), 16, f"{path}.span_id"),
    }


def _loop(obj: Any, path: str) -> dict[str, Any]:
    obj = object_field(obj, path)
    return {
        "loop": int_field(obj, "loop", path), "threshold_s": _seconds(obj, "threshold_s", path, optional=False),
        "samples": int_field(obj, "samples", path), "blocked": int_field(obj, "blocked", path),
        **{key: _seconds(obj, key, path) for key in ("lag_p50_s", "lag_p99_s", "lag_max_s")},
        "incidents": [_incident(x, f"{path}.incidents[{i}]") for i, x in enumerate(_items(obj.get("incidents", []), f"{path}.incidents", MAX_INCIDENTS))],
    }


def check_asyncio(frame: dict[str, Any]) -> dict[str, Any]:
    """An `asyncio` frame's content, checked and copied (known fields only); RecordError naming the
    first bad field."""
    tasks = frame.get("tasks")
    checked_tasks = None
    if tasks is not None:
        tasks = object_field(tasks, "tasks")
        checked_tasks = {
            "live": int_field(tasks, "live", "tasks"),
            "sites": [_site(s, f"tasks.sites[{i}]") for i, s in enumerate(_items(tasks.get("sites", []), "tasks.sites", MAX_SITES))],
            "recent": [_recent(r, f"tasks.recent[{i}]") for i, r in enumerate(_items(tasks.get("recent", []), "tasks.recent", MAX_RECENT))],
        }
    loops = [_loop(x, f"loops[{i}]") for i, x in enumerate(_items(frame.get("loops", []), "loops", MAX_LOOPS))]
    return {"tasks": checked_tasks, "loops": loops, "threshold_s": _seconds(frame, "threshold_s", "frame")}


@dataclass(slots=True)
class _Picture:
    process: ProcessInfo
    received_ns: int
    content: dict[str, Any]


class TaskBoard:
    """The latest asyncio picture of each process (at most MAX_PROCESSES)."""

    def __init__(self) -> None:
        self.pictures: OrderedDict[str, _Picture] = OrderedDict()

    def take(self, process: ProcessInfo, frame: dict[str, Any]) -> None:
        """Keep `frame` as the process's picture; RecordError (nothing kept) if it is malformed."""
        content = check_asyncio(frame)
        self.pictures.pop(process.id, None)
        self.pictures[process.id] = _Picture(process, time.time_ns(), content)
        while len(self.pictures) > MAX_PROCESSES:
            self.pictures.popitem(last=False)

    def tasks(self) -> dict[str, Any]:
        """`GET /api/tasks`: per process, its tasks by creation site and recent reports."""
        return {"processes": [
            {"process": p.process.to_json(), "received_ns": p.received_ns, **(p.content["tasks"] or {"live": 0, "sites": [], "recent": []})}
            for p in reversed(self.pictures.values())
        ]}

    def loop(self) -> dict[str, Any]:
        """`GET /api/loop`: per process, each loop's lag and its blocked-loop incidents."""
        return {"processes": [
            {"process": p.process.to_json(), "received_ns": p.received_ns, "loops": p.content["loops"]}
            for p in reversed(self.pictures.values())
        ]}

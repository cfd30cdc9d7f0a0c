"""Metric points offered by the parts above telemetry (queues, AsyncMetrics), read by exporters.

Those parts register a source here when they are imported, so telemetry never imports them: the
live exporter asks `read(QUEUES)` and `read(METRIC_SUMMARIES)` on each export.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

__all__ = ["Point", "Source", "QUEUES", "METRIC_SUMMARIES", "register", "read"]

Point = dict[str, Any]  # {"name", "time_ns", "attributes", and "value" or "summary"}
Source = Callable[[], list[Point]]
QUEUES = "queues"  # depth, producers and consumers of every live AsyncQueue
METRIC_SUMMARIES = "metric_summaries"  # AsyncMetrics summaries

logger = logging.getLogger("opto")
_sources: dict[str, Source] = {}  # one per kind: a fixed, SDK-defined set of keys


def register(kind: str, source: Source) -> None:
    """Make `source` the one that `read(kind)` calls."""
    _sources[kind] = source


def read(kind: str) -> list[Point]:
    """The points of `kind` now: none when nothing registered it, or when its source failed (logged)."""
    source = _sources.get(kind)
    if source is None:
        return []
    try:
        return source()
    except Exception:
        logger.debug("opto: reading %s for export failed", kind, exc_info=True)
        return []

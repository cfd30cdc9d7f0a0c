"""The live figures behind `/api/live` and `/ws/live`, kept in memory as writes are committed."""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from opto.telemetry import semconv

from .records import ProcessInfo
from .store import Store, Write

__all__ = ["Stats"]

_WINDOW_S = 60  # throughput and rates cover the last minute
_SAMPLES = 240  # concurrency samples kept (a minute at the hub's tick)
_MAX_IN_FLIGHT = 100_000  # in-flight spans tracked; more are stored but not listed live
_SPANS_PER_NAME = 20  # in-flight spans listed per function


@dataclass(slots=True)
class _Second:
    """Counts for one wall-clock second."""

    t: int
    spans: int = 0
    calls: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    retried: int = 0


@dataclass(slots=True)
class _Process:
    info: ProcessInfo
    connections: int = 0
    last_seen_ns: int = 0
    drops: dict[str, int] = field(default_factory=lambda: {"spans": 0, "metrics": 0})


class Stats:
    """In-flight spans, per-second counts, concurrency samples, processes and ingest counters."""

    def __init__(self) -> None:
        self.in_flight: dict[tuple[str, str], tuple[str, int, str | None]] = {}
        self.processes: dict[str, _Process] = {}
        self.frames = 0
        self.bad_frames = 0
        self.spans_stored = 0
        self.version = 0  # bumped by every change the live view shows
        self._seconds: deque[_Second] = deque(maxlen=_WINDOW_S)
        self._samples: deque[dict[str, Any]] = deque(maxlen=_SAMPLES)

    async def load(self, store: Store) -> None:
        """Start from what the database holds: its in-flight spans and known processes."""
        for trace_id, span_id, name, start_ns, process_id in await store.fetch(
            "SELECT trace_id, span_id, name, start_ns, process_id FROM spans WHERE state = 'started' "
            f"ORDER BY start_ns DESC LIMIT {_MAX_IN_FLIGHT}"
        ):
            self.in_flight[(trace_id, span_id)] = (name, start_ns, process_id)
        for pid, service, os_pid, host, sdk, started_ns, last_seen, drop_spans, drop_metrics in await store.fetch(
            "SELECT id, service, pid, host, sdk, started_ns, last_seen_ns, drop_spans, drop_metrics FROM processes"
        ):
            info = ProcessInfo(pid, service or "", os_pid or 0, host or "", sdk or "", started_ns or 0)
            self.processes[pid] = _Process(info, 0, last_seen or 0, {"spans": drop_spans, "metrics": drop_metrics})

    def connected(self, info: ProcessInfo) -> None:
        proc = self.processes.get(info.id)
        if proc is None:
            proc = self.processes[info.id] = _Process(info)
        proc.connections += 1
        proc.last_seen_ns = time.time_ns()
        self.version += 1

    def disconnected(self, process_id: str) -> None:
        proc = self.processes.get(process_id)
        if proc is not None:
            proc.connections = max(proc.connections - 1, 0)
            proc.last_seen_ns = time.time_ns()
            self.version += 1

    def _second(self) -> _Second:
        now = int(time.time())
        if not self._seconds or self._seconds[-1].t != now:
            self._seconds.append(_Second(now))
        return self._seconds[-1]

    def stored(self, writes: Sequence[Write]) -> None:
        """Pipeline listener: fold committed writes into the live figures."""
        sec = self._second()
        for w in writes:
            if w.process is not None:
                proc = self.processes.get(w.process.id)
                if proc is not None:
                    proc.last_seen_ns = time.time_ns()
                    if w.drops is not None:
                        proc.drops = {"spans": w.drops.get("spans", 0), "metrics": w.drops.get("metrics", 0)}
            for r in w.spans:
                key = (r.trace_id, r.span_id)
                if r.state == "started":
                    if len(self.in_flight) < _MAX_IN_FLIGHT:
                        self.in_flight[key] = (r.name, r.start_ns, r.process_id)
                    continue
                self.in_flight.pop(key, None)
                sec.calls += 1
                sec.outcomes[r.outcome or semconv.OUTCOME_OK] += 1
                attempts = r.attributes.get(semconv.ATTEMPTS)
                if isinstance(attempts, int) and attempts > 1:
                    sec.retried += 1
            sec.spans += len(w.spans)
            self.spans_stored += len(w.spans)
        self.version += 1

    def _live_spans(self) -> list[tuple[str, str, str, int, str | None]]:
        """In-flight spans of connected processes (and of processes that never said hello)."""
        live = {pid for pid, p in self.processes.items() if p.connections}
        return [
            (trace_id, span_id, name, start_ns, pid)
            for (trace_id, span_id), (name, start_ns, pid) in self.in_flight.items()
            if pid is None or pid in live
        ]

    def sample(self) -> None:
        """Record the current concurrency; the hub calls this on each tick."""
        by_name = Counter(name for _, _, name, _, _ in self._live_spans())
        self._samples.append({"t_ns": time.time_ns(), "total": sum(by_name.values()), "by_name": dict(by_name)})

    def snapshot(self) -> dict[str, Any]:
        """The `/api/live` document."""
        now = time.time_ns()
        groups: dict[str, list[tuple[str, str, str, int, str | None]]] = {}
        for span in self._live_spans():
            groups.setdefault(span[2], []).append(span)
        in_flight = []
        for name, spans in sorted(groups.items(), key=lambda kv: -len(kv[1])):
            spans.sort(key=lambda s: s[3])
            in_flight.append({
                "name": name,
                "count": len(spans),
                "oldest_start_ns": spans[0][3],
                "spans": [{"trace_id": t, "span_id": s, "start_ns": st, "process_id": p} for t, s, _, st, p in spans[:_SPANS_PER_NAME]],
            })
        cutoff = int(time.time()) - _WINDOW_S
        seconds = [s for s in self._seconds if s.t > cutoff]
        span_count = sum(s.spans for s in seconds)
        calls = sum(s.calls for s in seconds)
        outcomes: Counter[str] = Counter()
        for s in seconds:
            outcomes.update(s.outcomes)
        elapsed = max(1, int(time.time()) - seconds[0].t + 1) if seconds else 1

        def rate(n: int) -> float:
            return n / calls if calls else 0.0

        return {
            "now_ns": now,
            "in_flight": in_flight,
            "concurrency": list(self._samples),
            "throughput": {"spans_per_s": span_count / elapsed, "calls_per_s": calls / elapsed},
            "rates": {
                "error": rate(outcomes[semconv.OUTCOME_ERROR]),
                "retry": rate(sum(s.retried for s in seconds)),
                "timeout": rate(outcomes[semconv.OUTCOME_TIMEOUT]),
                "cancelled": rate(outcomes[semconv.OUTCOME_CANCELLED]),
            },
            "processes": [
                {"id": pid, "service": p.info.service, "pid": p.info.pid, "host": p.info.host,
                 "connected": p.connections > 0, "last_seen_ns": p.last_seen_ns}
                for pid, p in self.processes.items()
            ],
            "drops": {pid: dict(p.drops) for pid, p in self.processes.items()},
            "ingest": {"frames": self.frames, "bad_frames": self.bad_frames, "spans_stored": self.spans_stored},
        }

"""The live figures behind `/api/live` and `/ws/live`, kept in memory as writes are committed."""

from __future__ import annotations

import heapq
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from opto.telemetry import semconv

from .pipeline import WriteHealth
from .records import ProcessInfo
from .refusals import Refusals
from .store import SPAN_TABLES, Store, Write

__all__ = ["Stats"]

_WINDOW_S = 60  # throughput and rates cover the last minute
_SAMPLES = 240  # concurrency samples kept (a minute at the hub's tick)
_MAX_IN_FLIGHT = 50_000  # in-flight spans tracked; more are stored but only counted live
_MAX_IN_FLIGHT_PER_PROCESS = 10_000  # so that one process cannot take them all
_SPANS_PER_NAME = 20  # in-flight spans listed per function
_NAMES = 50  # functions listed in flight, and named in each concurrency sample; the rest are summed
_OTHERS = "(other functions)"
PROCESS_IDLE_S = 15 * 60  # a process gone this long leaves the live view (it stays in the database)
_PROCESSES = 100  # processes listed live: connected or seen last first (and as many that lost spans)
MAX_PROCESSES = 10_000  # processes kept in memory: past it, those gone longest are forgotten early
_PRUNE_EVERY_S = 10


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
    drops: dict[str, Any] = field(default_factory=lambda: {"spans": 0, "metrics": 0})
    in_flight: int = 0  # of its spans tracked in `Stats.in_flight`


@dataclass(frozen=True, slots=True)
class _InFlight:
    """A started span not yet ended. A slot wait (`opto.slot.wait`) is named after its call."""

    name: str
    start_ns: int
    process_id: str | None
    parent_span_id: str | None
    slot_wait: bool


def _in_flight(name: str, start_ns: int, process_id: str | None, parent: str | None, attributes: dict[str, Any]) -> _InFlight:
    if attributes.get(semconv.SPAN_KIND) == semconv.KIND_SLOT_WAIT:
        return _InFlight(str(attributes.get(semconv.FUNCTION, name)), start_ns, process_id, parent, True)
    return _InFlight(name, start_ns, process_id, parent, False)


class Stats:
    """In-flight spans, per-second counts, concurrency samples, processes and ingest counters.

    Concurrency counts calls running; a call whose `opto.slot.wait` child is in flight is waiting
    for a concurrency slot and is counted apart, so a limited function plateaus at its limit.
    """

    def __init__(self, health: WriteHealth | None = None, refused: Refusals | None = None) -> None:
        self.refusals = refused or Refusals()  # clients turned away at the door (Host, Origin, token, busy)
        self.in_flight: dict[tuple[str, str], _InFlight] = {}
        self.in_flight_untracked = 0  # started spans past the caps: stored, counted, not listed
        self.processes: dict[str, _Process] = {}
        self.health = health or WriteHealth()
        self.frames = 0
        self.bad_frames = 0
        self.behind_frames = 0  # `behind` frames: an SDK about to lose spans, so ingest went first
        self.spans_stored = 0
        self.spans_refused = 0
        self.metrics_refused = 0
        self.version = 0  # bumped by every change the live view shows
        self._seconds: deque[_Second] = deque(maxlen=_WINDOW_S)
        self._samples: deque[dict[str, Any]] = deque(maxlen=_SAMPLES)
        self._pruned_at = time.monotonic()

    async def load(self, store: Store) -> None:
        """Start from what the database holds: processes seen lately and their in-flight spans."""
        for pid, service, os_pid, host, sdk, started_ns, last_seen, drop_spans, drop_metrics in await store.fetch(
            "SELECT id, service, pid, host, sdk, started_ns, last_seen_ns, drop_spans, drop_metrics FROM processes "
            "WHERE last_seen_ns >= ?", (time.time_ns() - int(PROCESS_IDLE_S * 1e9),)
        ):
            info = ProcessInfo(pid, service or "", os_pid or 0, host or "", sdk or "", started_ns or 0)
            self.processes[pid] = _Process(info, 0, last_seen or 0, {"spans": drop_spans, "metrics": drop_metrics})
        for trace_id, span_id, name, start_ns, process_id, parent, kind, function in await store.fetch(
            "SELECT lower(hex(t.trace_id)), lower(hex(s.span_id)), s.name, s.start_ns, r.process_id, "
            "CASE WHEN s.parent_span_id IS NOT NULL THEN lower(hex(s.parent_span_id)) END, "
            f"opto_attributes(s.attributes, k.keys) ->> '$.\"{semconv.SPAN_KIND}\"', opto_attributes(s.attributes, k.keys) ->> '$.\"{semconv.FUNCTION}\"' "
            f"FROM {SPAN_TABLES} WHERE s.state = 'started' ORDER BY s.start_ns DESC LIMIT {_MAX_IN_FLIGHT}"
        ):
            if process_id is None or process_id in self.processes:
                attrs = {semconv.SPAN_KIND: kind, semconv.FUNCTION: function or name}
                self._track((trace_id, span_id), _in_flight(name, start_ns, process_id, parent, attrs))

    def _track(self, key: tuple[str, str], span: _InFlight) -> None:
        """List a started span as in flight, unless past the caps (then it is only counted)."""
        proc = self.processes.get(span.process_id) if span.process_id is not None else None
        if len(self.in_flight) >= _MAX_IN_FLIGHT or (proc is not None and proc.in_flight >= _MAX_IN_FLIGHT_PER_PROCESS):
            self.in_flight_untracked += 1
            return
        if key not in self.in_flight and proc is not None:
            proc.in_flight += 1
        self.in_flight[key] = span

    def _untrack(self, key: tuple[str, str]) -> None:
        span = self.in_flight.pop(key, None)
        if span is not None and span.process_id is not None and (proc := self.processes.get(span.process_id)) is not None:
            proc.in_flight -= 1

    def refused(self, spans: int, metrics: int) -> None:
        """Count spans and metric points refused one by one (or whole writes refused for good)."""
        self.spans_refused += spans
        self.metrics_refused += metrics
        self.version += 1

    def _prune_processes(self) -> None:
        """Forget processes gone for PROCESS_IDLE_S, and the in-flight spans they never ended."""
        if time.monotonic() - self._pruned_at < _PRUNE_EVERY_S:
            return
        self._pruned_at = time.monotonic()
        cutoff = time.time_ns() - int(PROCESS_IDLE_S * 1e9)
        gone = {pid for pid, p in self.processes.items() if not p.connections and p.last_seen_ns < cutoff}
        if not gone:
            return
        for pid in gone:
            del self.processes[pid]
        for key in [k for k, span in self.in_flight.items() if span.process_id in gone]:
            del self.in_flight[key]
        self.version += 1

    def _forget_oldest(self) -> None:
        """Forget the tenth of the processes not connected that were seen longest ago, and their
        in-flight spans: many distinct OTLP resources must not grow memory, nor every snapshot's work."""
        idle = [(p.last_seen_ns, pid) for pid, p in self.processes.items() if not p.connections]
        gone = {pid for _, pid in heapq.nsmallest(max(MAX_PROCESSES // 10, 1), idle)}
        for pid in gone:
            del self.processes[pid]
        for key in [k for k, span in self.in_flight.items() if span.process_id in gone]:
            del self.in_flight[key]
        self.version += 1

    def live_process_ids(self) -> frozenset[str]:
        """Processes connected now or seen within PROCESS_IDLE_S: whose figures still count."""
        cutoff = time.time_ns() - int(PROCESS_IDLE_S * 1e9)
        return frozenset(pid for pid, p in self.processes.items() if p.connections or p.last_seen_ns >= cutoff)

    def connected(self, info: ProcessInfo) -> None:
        proc = self.processes.get(info.id)
        if proc is None:
            if len(self.processes) >= MAX_PROCESSES:
                self._forget_oldest()
            proc = self.processes[info.id] = _Process(info)
        proc.connections += 1
        proc.last_seen_ns = time.time_ns()
        self.version += 1

    def behind(self) -> None:
        """An SDK said it is about to lose spans (ingest goes first for a while)."""
        self.behind_frames += 1
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
                        proc.drops = w.drops
            for r in w.spans:
                key = (r.trace_id, r.span_id)
                if r.state == "started":
                    self._track(key, _in_flight(r.name, r.start_ns, r.process_id, r.parent_span_id, r.attributes))
                    continue
                self._untrack(key)
                if semconv.OUTCOME not in r.attributes:
                    continue  # not a traced call (a third-party HTTP or database span): not in the call rates
                sec.calls += 1
                sec.outcomes[r.outcome or semconv.OUTCOME_OK] += 1
                attempts = r.attributes.get(semconv.ATTEMPTS)
                if isinstance(attempts, int) and attempts > 1:
                    sec.retried += 1
            sec.spans += len(w.spans)
            self.spans_stored += len(w.spans)
        self.version += 1

    def _live_spans(self) -> tuple[list[tuple[str, str, _InFlight]], set[tuple[str, str]]]:
        """In-flight calls of connected processes (and of processes that never said hello), and
        the (trace id, span id) of those waiting for a concurrency slot."""
        live = {pid for pid, p in self.processes.items() if p.connections}
        calls: list[tuple[str, str, _InFlight]] = []
        waiting: set[tuple[str, str]] = set()
        for (trace_id, span_id), span in self.in_flight.items():
            if span.process_id is not None and span.process_id not in live:
                continue
            if span.slot_wait:
                if span.parent_span_id is not None:
                    waiting.add((trace_id, span.parent_span_id))
            else:
                calls.append((trace_id, span_id, span))
        return calls, waiting

    def sample(self) -> None:
        """Record the current concurrency, running and waiting; the hub calls this on each tick."""
        self._prune_processes()
        calls, waiting = self._live_spans()
        by_name: Counter[str] = Counter()
        waiting_by_name: Counter[str] = Counter()
        for trace_id, span_id, span in calls:
            (waiting_by_name if (trace_id, span_id) in waiting else by_name)[span.name] += 1
        self._samples.append({
            "t_ns": time.time_ns(), "total": sum(by_name.values()), "by_name": _top(by_name),
            "waiting": sum(waiting_by_name.values()), "waiting_by_name": _top(waiting_by_name),
        })

    def snapshot(self) -> dict[str, Any]:
        """The `/api/live` document."""
        now = time.time_ns()
        calls, waiting = self._live_spans()
        groups: dict[str, list[tuple[str, str, _InFlight]]] = {}
        for call in calls:
            groups.setdefault(call[2].name, []).append(call)
        in_flight = []
        ranked = sorted(groups.items(), key=lambda kv: -len(kv[1]))
        if len(ranked) > _NAMES:  # past the cap, the least busy functions are summed in one row
            rest = [call for _, spans in ranked[_NAMES - 1:] for call in spans]
            ranked = [*ranked[:_NAMES - 1], (_OTHERS, rest)]
        for name, spans in ranked:
            spans.sort(key=lambda c: c[2].start_ns)
            in_flight.append({
                "name": name,
                "count": len(spans),
                "waiting": sum((t, s) in waiting for t, s, _ in spans),
                "oldest_start_ns": spans[0][2].start_ns,
                "spans": [
                    {"trace_id": t, "span_id": s, "start_ns": c.start_ns, "process_id": c.process_id,
                     "waiting": (t, s) in waiting}
                    for t, s, c in spans[:_SPANS_PER_NAME]
                ],
            })
        # The processes connected or seen last, and those that lost the most spans, to a bound each.
        listed = heapq.nsmallest(_PROCESSES, self.processes.items(), key=lambda kv: (-kv[1].connections, -kv[1].last_seen_ns))
        shown = {pid for pid, _ in listed}
        lossy = heapq.nlargest(
            _PROCESSES, ((pid, p) for pid, p in self.processes.items() if p.drops.get("spans") and pid not in shown),
            key=lambda kv: kv[1].drops["spans"],
        )
        cutoff = int(time.time()) - _WINDOW_S
        seconds = [s for s in self._seconds if s.t > cutoff]
        span_count = sum(s.spans for s in seconds)
        call_count = sum(s.calls for s in seconds)
        outcomes: Counter[str] = Counter()
        for s in seconds:
            outcomes.update(s.outcomes)
        elapsed = max(1, int(time.time()) - seconds[0].t + 1) if seconds else 1

        def rate(n: int) -> float:
            return n / call_count if call_count else 0.0

        return {
            "now_ns": now,
            "in_flight": in_flight,
            "concurrency": list(self._samples),
            "throughput": {"spans_per_s": span_count / elapsed, "calls_per_s": call_count / elapsed},
            "rates": {
                "error": rate(outcomes[semconv.OUTCOME_ERROR]),
                "retry": rate(sum(s.retried for s in seconds)),
                "timeout": rate(outcomes[semconv.OUTCOME_TIMEOUT]),
                "cancelled": rate(outcomes[semconv.OUTCOME_CANCELLED]),
            },
            "processes": [
                {"id": pid, "service": p.info.service, "pid": p.info.pid, "host": p.info.host,
                 "connected": p.connections > 0, "last_seen_ns": p.last_seen_ns}
                for pid, p in listed
            ],
            "process_counts": {"total": len(self.processes), "connected": sum(p.connections > 0 for p in self.processes.values())},
            "drops": {pid: dict(p.drops) for pid, p in [*listed, *lossy]},
            "ingest": {
                "frames": self.frames, "bad_frames": self.bad_frames, "spans_stored": self.spans_stored,
                "spans_refused": self.spans_refused, "metrics_refused": self.metrics_refused,
                "in_flight_untracked": self.in_flight_untracked, "behind": self.behind_frames,
            },
            "writes": self.health.to_json(),
            "refused": self.refusals.as_dict(),
        }


def _top(counts: Counter[str]) -> dict[str, int]:
    """The `_NAMES` largest counts by name, the rest summed under `_OTHERS`."""
    if len(counts) <= _NAMES:
        return dict(counts)
    top = dict(counts.most_common(_NAMES - 1))
    top[_OTHERS] = sum(counts.values()) - sum(top.values())
    return top

"""The live figures stay bounded whatever clients send: idle processes go, in-flight spans are capped."""

from __future__ import annotations

import os
import secrets
import time

import pytest

from dashboard_server import span_record
from opto_dashboard import stats as stats_module
from opto_dashboard.records import ProcessInfo, SpanRecord
from opto_dashboard.stats import Stats
from opto_dashboard.store import Write


def process() -> ProcessInfo:
    return ProcessInfo(secrets.token_hex(16), "svc", os.getpid(), "host", "test", time.time_ns())


def started(proc: ProcessInfo, name: str) -> SpanRecord:
    record = SpanRecord.from_json(span_record(secrets.token_hex(16), secrets.token_hex(8), name, ended=False))
    record.process_id = proc.id
    return record


def test_a_process_idle_past_the_limit_leaves_the_live_view_with_its_spans(monkeypatch: pytest.MonkeyPatch) -> None:
    """Disconnected processes (and the spans they never ended) are pruned; connected ones stay."""
    monkeypatch.setattr(stats_module, "PROCESS_IDLE_S", 0)
    monkeypatch.setattr(stats_module, "_PRUNE_EVERY_S", 0)
    stats = Stats()
    gone, alive = process(), process()
    for proc in (gone, alive):
        stats.connected(proc)
        stats.stored([Write([started(proc, "call")], proc)])
    stats.disconnected(gone.id)
    stats.sample()
    live = stats.snapshot()
    assert [p["id"] for p in live["processes"]] == [alive.id] and list(live["drops"]) == [alive.id]
    assert len(stats.in_flight) == 1


def test_in_flight_spans_are_capped_per_process_and_counted_past_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    """One process holding many started spans cannot take every in-flight slot: the rest are counted."""
    monkeypatch.setattr(stats_module, "_MAX_IN_FLIGHT_PER_PROCESS", 100)
    stats = Stats()
    greedy, other = process(), process()
    for proc in (greedy, other):
        stats.connected(proc)
    stats.stored([Write([started(greedy, f"f{i}") for i in range(150)], greedy)])
    stats.stored([Write([started(other, "g")], other)])
    assert len(stats.in_flight) == 101
    assert stats.snapshot()["ingest"]["in_flight_untracked"] == 50


def test_the_live_view_lists_the_busiest_functions_and_sums_the_rest() -> None:
    """Thousands of started spans under distinct names make a small /api/live, not megabytes."""
    stats = Stats()
    proc = process()
    stats.connected(proc)
    spans = [started(proc, f"name{i}") for i in range(5000)] + [started(proc, "busy") for _ in range(10)]
    stats.stored([Write(spans, proc)])
    stats.sample()
    live = stats.snapshot()
    groups = {g["name"]: g for g in live["in_flight"]}
    assert len(groups) == stats_module._NAMES and groups["busy"]["count"] == 10
    assert groups[stats_module._OTHERS]["count"] == 5010 - 10 - (stats_module._NAMES - 2)
    assert sum(g["count"] for g in live["in_flight"]) == 5010
    assert len(live["concurrency"][-1]["by_name"]) == stats_module._NAMES
    assert sum(len(g["spans"]) for g in live["in_flight"]) <= stats_module._NAMES * stats_module._SPANS_PER_NAME


def test_thousands_of_past_processes_make_a_small_live_view(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every browser gets the live view several times a second: it lists a bounded number of processes."""
    monkeypatch.setattr(stats_module, "_PROCESSES", 10)
    stats = Stats()
    lossy = process()  # long gone, but it lost spans: its drops stay in view
    stats.connected(lossy)
    stats.stored([Write([], lossy, drops={"spans": 7, "metrics": 0})])
    stats.disconnected(lossy.id)
    procs = [process() for _ in range(1000)]
    for proc in procs:
        stats.connected(proc)
        stats.disconnected(proc.id)
    stats.connected(procs[0])  # connected again: listed first
    live = stats.snapshot()
    assert len(live["processes"]) == 10 and live["processes"][0]["id"] == procs[0].id
    assert lossy.id not in {p["id"] for p in live["processes"]}
    assert live["process_counts"] == {"total": 1001, "connected": 1}
    assert len(live["drops"]) == 11 and live["drops"][lossy.id]["spans"] == 7


def test_past_max_processes_those_gone_longest_are_forgotten_never_a_connected_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each distinct OTLP resource is a process: a flood of them must not grow memory without bound."""
    monkeypatch.setattr(stats_module, "MAX_PROCESSES", 100)
    stats = Stats()
    connected = process()
    stats.connected(connected)
    stats.stored([Write([started(connected, "call")], connected)])
    flood = [process() for _ in range(1000)]
    for proc in flood:
        stats.connected(proc)
        stats.stored([Write([started(proc, "call")], proc)])
        stats.disconnected(proc.id)
    assert len(stats.processes) <= 100
    assert connected.id in stats.processes and flood[-1].id in stats.processes
    assert {s.process_id for s in stats.in_flight.values()} <= set(stats.processes)

"""The loop-lag monitor and the blocked-loop watchdog, on real asyncio and uvloop loops: a blocked loop
is reported with the line that blocked it, on its own span and on the traced call it blocked, and no
watchdog thread outlives its loop."""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from typing import Any

import uvloop

import opto
from opto._core import instrument
from opto.telemetry import semconv

from conftest import Spans

HERE = __file__


def _line_of(text: str, fn: Any) -> int:
    lines, start = inspect.getsourcelines(fn)
    return start + next(i for i, line in enumerate(lines) if text in line)


async def _blocks() -> None:
    time.sleep(0.3)  # blocks the loop


def _watchdogs() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "opto-loop-watchdog"]


async def _wait_for_the_monitor() -> None:
    """Until the monitor's first beat ran, so the watchdog knows the loop's thread."""
    while not _beat_seen():
        await asyncio.sleep(0)


def _beat_seen() -> bool:
    return any(a.health is not None and a.health.thread_id is not None for a in instrument._loops.values())


async def test_time_sleep_in_an_untraced_coroutine_is_reported_with_its_file_and_line(spans: Spans) -> None:
    opto.instrument_asyncio()
    await _wait_for_the_monitor()
    await asyncio.create_task(_blocks(), name="the-blocker")
    opto.uninstrument_asyncio()  # waits for the watchdog, which has ended the span
    span = spans.one(semconv.SPAN_LOOP_BLOCKED)
    attrs = dict(span.attributes or {})
    assert attrs[semconv.CODE_FILE_PATH] == HERE
    assert attrs[semconv.CODE_LINE_NUMBER] == _line_of("# blocks the loop", _blocks)
    assert attrs[semconv.TASK_NAME] == "the-blocker"
    assert attrs[semconv.TASK_SITE].startswith(f"{HERE}:")
    assert attrs[semconv.LOOP_BLOCKED_S] > attrs[semconv.LOOP_THRESHOLD_S] == 0.1
    assert f'File "{HERE}", line {_line_of("# blocks the loop", _blocks)}, in _blocks' in str(attrs[semconv.LOOP_STACK])
    assert span.parent is None and span.end_time is not None and span.start_time is not None


async def test_the_traced_call_that_blocked_the_loop_gets_an_event(spans: Spans) -> None:
    @opto.trace.async_trace
    async def handler() -> None:
        time.sleep(0.3)  # blocks inside a traced call

    opto.instrument_asyncio()
    await _wait_for_the_monitor()
    await handler()
    opto.uninstrument_asyncio()
    (call,) = spans.of("handler")
    (event,) = [e for e in call.events if e.name == semconv.EVENT_LOOP_BLOCKED]
    attrs = dict(event.attributes or {})
    assert attrs[semconv.CODE_LINE_NUMBER] == _line_of("# blocks inside a traced call", handler)
    assert attrs[semconv.LOOP_BLOCKED_S] > 0.1


async def test_the_lag_is_sampled_and_incidents_are_listed() -> None:
    opto.instrument_asyncio(threshold_s=0.05)
    await _wait_for_the_monitor()
    await _blocks()
    while not (loop := instrument.asyncio_snapshot()["loops"][0])["incidents"] or loop["incidents"][0]["duration_s"] is None:  # type: ignore[index]
        await asyncio.sleep(0)  # the watchdog ends the incident on its next tick
    assert loop["blocked"] == 1 and loop["samples"] >= 1 and loop["lag_max_s"] >= loop["lag_p99_s"] >= loop["lag_p50_s"] >= 0
    (incident,) = loop["incidents"]
    assert (incident["file"], incident["line"], incident["function"]) == (HERE, _line_of("# blocks the loop", _blocks), "_blocks")
    assert incident["duration_s"] > 0.05


def test_the_watchdog_stops_when_its_loop_closes() -> None:
    async def main() -> threading.Thread:
        opto.instrument_asyncio()
        await _wait_for_the_monitor()
        (thread,) = _watchdogs()
        return thread

    thread = asyncio.run(main())
    thread.join(10)
    assert not thread.is_alive()


def test_uvloop_a_blocked_loop_is_reported(spans: Spans) -> None:
    async def main() -> None:
        opto.instrument_asyncio()
        await _wait_for_the_monitor()
        await _blocks()
        opto.uninstrument_asyncio()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())
    span = spans.one(semconv.SPAN_LOOP_BLOCKED)
    assert (span.attributes or {})[semconv.CODE_LINE_NUMBER] == _line_of("# blocks the loop", _blocks)
    assert not _watchdogs()


async def test_lag_and_live_tasks_are_opentelemetry_gauges(metric_points: Any) -> None:
    opto.instrument_asyncio(threshold_s=0.05)
    await _wait_for_the_monitor()
    release = asyncio.Event()
    parked = asyncio.create_task(release.wait())  # a live task
    await _blocks()
    while not any(a.health is not None and max(a.health.lags, default=0) > 0.05 for a in instrument._loops.values()):
        await asyncio.sleep(0)  # the monitor's overdue beat runs, and records the lag
    (p99,) = metric_points(semconv.METRIC_LOOP_LAG, {semconv.LOOP_QUANTILE: "p99"})
    assert p99.value > 0.05
    (live,) = [p for p in metric_points(semconv.METRIC_TASKS_LIVE, {}) if p.value == 1]
    assert str(live.attributes[semconv.TASK_SITE]).endswith("test_lag_and_live_tasks_are_opentelemetry_gauges")
    release.set()
    await parked

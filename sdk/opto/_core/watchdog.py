"""Loop health: a lag monitor on the loop and a watchdog thread that reports a blocked loop.

The monitor is a callback the loop runs every `threshold / 2`: how late it runs is the loop's
scheduling delay (lag). The watchdog thread waits until the callback would be a threshold late.
Each callback wakes it and waits, the GIL released, until the watchdog has looked (a handoff of
a few microseconds): a thread that wakes on its own timer while a busy loop holds the GIL spins
for up to the switch interval, woken at each of the loop's system calls, which cost a busy app
3% of a core. When the callback is later than the threshold, the loop's thread is stuck in
something that does not await, and the watchdog samples that thread's Python stack (`sys._current_frames`, read-only),
starts an `opto.loop.blocked` span from when the loop stopped answering, adds an event to the
traced call that was running, if any, and ends the span when the loop comes back. The thread
ends when the loop closes (or on `stop()`).
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from opentelemetry.context import Context
from opentelemetry.trace import Span

from .. import telemetry
from ..telemetry import semconv
from .frames import span_in, stack_of

__all__ = ["DEFAULT_THRESHOLD_S", "LoopHealth"]

DEFAULT_THRESHOLD_S = 0.1
_LAG_WINDOW_S = 60.0  # lag samples kept: the last minute
_INCIDENTS = 20  # blocked-loop incidents kept per loop for the dashboard
_HANDOFF_S = 0.002  # the most a beat waits for the watchdog's turn (it takes microseconds)
_STACK_CHARS = 8000  # of the stack text on the span (the shared limits cut any attribute further)


class _Incident:
    """One blocked spell: its span and the record the dashboard gets."""

    def __init__(self, span: Span, beats: int, record: dict[str, Any]) -> None:
        self.span = span
        self.beats = beats
        self.record = record


class LoopHealth:
    """The lag monitor and the watchdog of one loop; `task_of(task)` labels the running task."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, threshold_s: float, task_of: Callable[[asyncio.Task[Any]], str],
        closed: Callable[[asyncio.AbstractEventLoop], None],
    ) -> None:
        self.loop = loop
        self.threshold_s = threshold_s
        self.tick = threshold_s / 2  # a spell is reported within threshold + tick of its start (1.5x)
        self.lags: deque[float] = deque(maxlen=int(_LAG_WINDOW_S / self.tick))
        self.incidents: deque[dict[str, Any]] = deque(maxlen=_INCIDENTS)
        self.blocked = 0
        self._task_of = task_of
        self._closed = closed
        self._beats = 0
        self._last = 0.0
        self._due: float | None = None  # when the next beat should run (monotonic)
        self._paused = False  # the loop stopped running since the last beat: its next lag means nothing
        self._thread_id: int | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._stop = threading.Event()
        self._wake = threading.Lock()  # released by a beat: the watchdog's turn
        self._turn = threading.Lock()  # released by the watchdog when it has looked: the beat goes on
        self._wake.acquire()
        self._turn.acquire()
        self._thread = threading.Thread(target=self._watch, name="opto-loop-watchdog", daemon=True)
        loop.call_soon_threadsafe(self._beat)
        self._thread.start()

    # -- on the loop ----------------------------------------------------------------------------

    def _beat(self) -> None:
        if self._stop.is_set():
            return
        now = time.monotonic()
        if self._due is not None and not self._paused:
            self.lags.append(max(0.0, now - self._due))
        self._paused = False
        self._thread_id = threading.get_ident()
        self._last = now
        self._beats += 1
        self._due = now + self.tick
        self._handle = self.loop.call_later(self.tick, self._beat)
        if self._wake.locked():  # the watchdog waits: its turn now, while this thread waits without the GIL
            self._turn.acquire(blocking=False)  # a turn given too late for its beat: this beat waits for its own
            self._wake_watchdog()
            self._turn.acquire(timeout=_HANDOFF_S)

    def _wake_watchdog(self) -> None:
        try:
            self._wake.release()
        except RuntimeError:  # `stop()` (or a beat) on another thread released it first
            pass

    # -- the watchdog thread --------------------------------------------------------------------

    def _watch(self) -> None:
        incident: _Incident | None = None
        running = False
        wait = self.tick
        while True:
            if self._wake.acquire(timeout=wait) and self._turn.locked():
                self._turn.release()  # the beat that woke it goes on
            if self._stop.is_set() or self.loop.is_closed():
                break
            wait = self.tick  # while the loop is not running, or is blocked: to see it come back
            was_running, running = running, self.loop.is_running()
            if not running or not was_running or self._due is None:
                self._paused = self._paused or not running
                if incident is not None:
                    self._end(incident, time.monotonic())
                    incident = None
                continue
            if incident is None:
                late = time.monotonic() - self._due
                if late > self.threshold_s and self._thread_id is not None:
                    incident = self._start(self._due, late, self._beats)
                else:  # until the beat due would be a threshold late (just past it)
                    wait = max(self.threshold_s - late, 0.0) + 0.001
            elif self._beats != incident.beats:
                self._end(incident, self._last)
                incident = None
        if incident is not None:
            self._end(incident, time.monotonic())
        if self.loop.is_closed():
            self._closed(self.loop)

    def _start(self, since: float, late: float, beats: int) -> _Incident:
        """The loop has not run its beat for `late` seconds: sample its thread, start the span."""
        frame = sys._current_frames().get(self._thread_id or 0)
        stack = stack_of(frame)
        task = asyncio.current_task(self.loop)  # from this thread: a read of asyncio's running-task table
        start_ns = time.time_ns() - int((time.monotonic() - since) * 1e9)
        text = "\n".join(f'  File "{w.file}", line {w.line}, in {w.function}' for w in stack)[-_STACK_CHARS:]
        innermost: dict[str, Any] = stack[-1].json() if stack else {"file": "", "line": 0, "function": ""}
        attrs: dict[str, Any] = {
            semconv.SPAN_KIND: semconv.KIND_LOOP_BLOCKED, semconv.LOOP_THRESHOLD_S: self.threshold_s,
            semconv.LOOP_STACK: text, semconv.CODE_FILE_PATH: innermost["file"],
            semconv.CODE_LINE_NUMBER: innermost["line"], semconv.CODE_FUNCTION_NAME: innermost["function"],
        }
        if task is not None:
            attrs[semconv.TASK_NAME] = task.get_name()
            attrs[semconv.TASK_SITE] = self._task_of(task)
        span = telemetry.tracer().start_span(semconv.SPAN_LOOP_BLOCKED, context=Context(), start_time=start_ns, attributes=attrs)
        call = None
        while frame is not None and call is None:
            call = span_in(frame)
            frame = frame.f_back
        if call is not None:
            call.add_event(semconv.EVENT_LOOP_BLOCKED, {
                semconv.LOOP_BLOCKED_S: late, semconv.LOOP_STACK: text,
                semconv.CODE_FILE_PATH: innermost["file"], semconv.CODE_LINE_NUMBER: innermost["line"],
            })
        self.blocked += 1
        record = {
            "start_ns": start_ns, "seen_after_s": round(late, 6), "duration_s": None, "threshold_s": self.threshold_s,
            **innermost, "stack": [w.json() for w in stack], "task": attrs.get(semconv.TASK_NAME),
            "task_site": attrs.get(semconv.TASK_SITE), "trace_id": f"{span.get_span_context().trace_id:032x}",
            "span_id": f"{span.get_span_context().span_id:016x}",
        }
        self.incidents.append(record)
        return _Incident(span, beats, record)

    def _end(self, incident: _Incident, back: float) -> None:
        """The loop came back at `back` (monotonic): the span ends then."""
        end_ns = time.time_ns() - int((time.monotonic() - back) * 1e9)
        duration = (end_ns - incident.record["start_ns"]) / 1e9
        incident.record["duration_s"] = round(duration, 6)
        incident.span.set_attribute(semconv.LOOP_BLOCKED_S, duration)
        incident.span.end(end_time=end_ns)

    # -- control and reading ----------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the watchdog thread and wait for it; the monitor's next beat does nothing."""
        self._stop.set()
        if self._wake.locked():
            self._wake_watchdog()
        if self._thread is not threading.current_thread():
            self._thread.join()
        if self._handle is not None:
            try:
                self.loop.call_soon_threadsafe(self._handle.cancel)
            except RuntimeError:  # the loop is closed: nothing of it runs any more
                pass

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def thread_id(self) -> int | None:
        """The loop's thread, once the loop has run the monitor's first beat."""
        return self._thread_id

    def snapshot(self) -> dict[str, Any]:
        lags = sorted(list(self.lags))
        n = len(lags)
        return {
            "loop": id(self.loop), "threshold_s": self.threshold_s, "samples": n, "blocked": self.blocked,
            "lag_p50_s": lags[n // 2] if n else None, "lag_p99_s": lags[min(n - 1, int(n * 0.99))] if n else None,
            "lag_max_s": lags[-1] if n else None, "incidents": list(self.incidents),
        }

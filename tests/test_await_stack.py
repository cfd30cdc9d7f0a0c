"""Await stacks: where a task or a traced call is awaiting now, answered read-only and only with consent;
and the asyncio frame and the answer carry the fields docs/api.md shows."""

from __future__ import annotations

import asyncio
import gc
import inspect
import time
from typing import Any

import uvloop

import opto
from opto._core import instrument
from test_docs import ROOT, json_values

HERE = __file__


def _line_of(text: str, fn: Any) -> int:
    lines, start = inspect.getsourcelines(fn)
    return start + next(i for i, line in enumerate(lines) if text in line)


@opto.trace.async_trace
async def _stuck(event: asyncio.Event, started: asyncio.Event) -> None:
    started.set()
    await event.wait()  # stuck here


async def _ask(request: dict[str, Any]) -> dict[str, Any]:
    """Asked from another thread, as the live exporter's thread asks."""
    return await asyncio.to_thread(instrument.answer_stack_request, request)


async def _stuck_call() -> tuple[asyncio.Task[None], asyncio.Event, str]:
    event, started = asyncio.Event(), asyncio.Event()
    spans: list[Any] = []
    task = asyncio.create_task(_stuck(event, started))
    await started.wait()
    for frame_holder in [task.get_coro()]:
        frame = frame_holder.cr_frame  # type: ignore[union-attr]
        spans.append(frame.f_locals["call"].span)
    return task, event, f"{spans[0].get_span_context().span_id:016x}"


async def test_the_await_stack_of_a_call_stuck_on_an_event_names_the_line_that_awaits_it() -> None:
    opto.instrument_asyncio()
    task, event, span_id = await _stuck_call()
    answer = await _ask({"id": 7, "span_id": span_id})
    assert answer["id"] == 7 and answer["type"] == "stack" and answer["running"] is False
    assert {"file": HERE, "line": _line_of("# stuck here", _stuck), "function": "_stuck"} in answer["frames"]
    assert answer["frames"][-1]["function"] == "Event.wait" and answer["awaiting"] == "Future"
    assert answer["task"] == task.get_name()
    event.set()
    await task


async def test_a_task_is_found_by_the_id_its_snapshot_gives() -> None:
    opto.instrument_asyncio()
    task, event, _ = await _stuck_call()
    (site,) = [s for s in instrument.asyncio_snapshot()["tasks"]["sites"] if s["function"] == "_stuck_call"]  # type: ignore[index]
    answer = await _ask({"id": 1, "task": site["oldest"][0]["id"]})
    assert answer["frames"][0]["function"] == "_stuck" and "error" not in answer
    event.set()
    await task


async def test_introspection_alone_answers_and_nothing_else_is_installed() -> None:
    opto.configure(introspection=True)
    assert asyncio.get_running_loop().get_task_factory() is None
    task, event, span_id = await _stuck_call()
    assert (await _ask({"id": 2, "span_id": span_id}))["frames"]
    event.set()
    await task


async def test_without_consent_the_request_is_refused_and_a_gone_task_is_not_found() -> None:
    task, event, span_id = await _stuck_call()
    refused = await _ask({"id": 3, "span_id": span_id})
    assert refused["error"] == "refused" and "introspection=True" in refused["detail"]
    opto.instrument_asyncio()
    event.set()
    await task
    gone = await _ask({"id": 4, "span_id": span_id})
    assert gone["error"] == "not found" and span_id in gone["detail"]
    invalid = await _ask({"id": 5, "span_id": "zz"})
    assert invalid["error"] == "invalid"


def test_uvloop_the_await_stack_names_the_line() -> None:
    async def main() -> dict[str, Any]:
        opto.instrument_asyncio()
        task, event, span_id = await _stuck_call()
        answer = await _ask({"id": 1, "span_id": span_id})
        event.set()
        await task
        return answer

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        answer = runner.run(main())
    assert {"file": HERE, "line": _line_of("# stuck here", _stuck), "function": "_stuck"} in answer["frames"]


def _same_shape(documented: Any, real: Any, path: str = "$") -> None:
    """`real` has the fields `documented` has, at every level (a list: its first items; `parents`
    maps the parents' names, which differ, to counts)."""
    if isinstance(documented, dict):
        assert isinstance(real, dict), path
        if path.endswith(".parents"):
            return
        assert set(real) == set(documented), (path, sorted(real), sorted(documented))
        for key, value in documented.items():
            _same_shape(value, real[key], f"{path}.{key}")
    elif isinstance(documented, list) and documented:
        assert isinstance(real, list) and real, path
        _same_shape(documented[0], real[0], f"{path}[0]")


async def test_the_asyncio_frame_and_the_stack_answer_have_the_fields_docs_api_md_shows() -> None:
    documented = {
        v["type"]: v for v in json_values(ROOT / "docs" / "api.md") if isinstance(v, dict) and ("frames" in v or v.get("type") == "asyncio")
    }
    opto.instrument_asyncio()
    task, event, span_id = await _stuck_call()  # a live task, and a traced call in flight

    async def fails() -> None:
        raise KeyError("x")

    failed: Any = asyncio.create_task(fails())
    await asyncio.wait([failed])
    del failed
    instrument.asyncio_snapshot()  # the loop's sweep lets it go: asyncio reports it never retrieved
    gc.collect()
    while not any(a.health is not None and a.health.thread_id is not None for a in instrument._loops.values()):
        await asyncio.sleep(0)  # until the monitor's first beat, so the watchdog knows the loop's thread
    time.sleep(0.3)  # blocks the loop: an incident
    await asyncio.sleep(0)
    snapshot = instrument.asyncio_snapshot()
    assert snapshot is not None and snapshot["tasks"]["recent"] and snapshot["loops"][0]["incidents"]
    _same_shape({k: v for k, v in documented["asyncio"].items() if k != "type"}, snapshot)
    _same_shape(documented["stack"], await _ask({"id": 12, "span_id": span_id}))
    event.set()
    await task

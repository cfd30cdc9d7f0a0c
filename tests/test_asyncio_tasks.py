"""opto.instrument_asyncio(): every task counted under its creation site, on asyncio and uvloop loops,
composed with the loop's own task factory and exception handler, and given back on uninstrument."""

from __future__ import annotations

import asyncio
import gc
import inspect
import weakref
from typing import Any

import pytest
import uvloop

import opto
from opto._core import instrument, tasks
from opto.telemetry import semconv

from conftest import Spans

HERE = __file__


def _sites() -> dict[str, dict[str, Any]]:
    snap = instrument.asyncio_snapshot()
    assert snap is not None and snap["tasks"] is not None
    return {s["site"]: s for s in snap["tasks"]["sites"]}


def _line_of(text: str, fn: Any) -> int:
    lines, start = inspect.getsourcelines(fn)
    return start + next(i for i, line in enumerate(lines) if text in line)


async def _work() -> int:
    await asyncio.sleep(0)
    return 1


async def _spawn_untraced() -> None:
    await asyncio.get_running_loop().create_task(_work())  # the site


async def test_an_untraced_create_task_is_counted_under_its_creation_site() -> None:
    opto.instrument_asyncio()
    for _ in range(3):
        await _spawn_untraced()
    site = _sites()[f"{HERE}:{_line_of('# the site', _spawn_untraced)} _spawn_untraced"]
    assert (site["created"], site["ok"], site["live"], site["function"]) == (3, 3, 0, "_spawn_untraced")


async def test_outcomes_live_tasks_and_parents_are_counted() -> None:
    opto.instrument_asyncio()
    release = asyncio.Event()

    async def fails() -> None:
        raise ValueError("no")

    async def waits() -> None:
        await release.wait()

    async def parent() -> None:
        child = asyncio.create_task(waits())  # child site
        await child

    boom = asyncio.create_task(fails())
    with pytest.raises(ValueError):
        await boom
    hung = asyncio.create_task(waits())
    stopped = asyncio.create_task(waits())
    outer = asyncio.create_task(parent())  # parent site
    await asyncio.sleep(0)
    stopped.cancel()
    await asyncio.gather(stopped, return_exceptions=True)
    here = [s for s in _sites().values() if s["function"] == "test_outcomes_live_tasks_and_parents_are_counted"]
    assert (sum(s["error"] for s in here), sum(s["cancelled"] for s in here), sum(s["live"] for s in here)) == (1, 1, 2)
    assert {t["name"] for s in here for t in s["oldest"]} == {hung.get_name(), outer.get_name()}
    assert all(s["oldest_s"] is not None for s in here if s["live"])
    me = asyncio.current_task()
    assert me is not None  # made before instrumenting: named as the parent, not counted
    assert [s["parents"] for s in here if s["live"]] == [{me.get_name(): 1}] * 2
    child = next(s for s in _sites().values() if s["function"].endswith("<locals>.parent"))
    parent_site = f"{HERE}:{_line_of('# parent site', test_outcomes_live_tasks_and_parents_are_counted)} test_outcomes_live_tasks_and_parents_are_counted"
    assert child["parents"] == {parent_site: 1}
    release.set()
    await asyncio.gather(hung, outer)
    assert (_sites()[parent_site]["ok"], _sites()[parent_site]["live"]) == (1, 0)


async def test_an_exception_never_retrieved_and_a_task_destroyed_pending_are_reported() -> None:
    reports: list[str] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: reports.append(context["message"]))
    opto.instrument_asyncio()

    async def fails() -> None:
        raise KeyError("lost")

    async def stuck() -> None:
        await asyncio.get_running_loop().create_future()

    task: Any = asyncio.create_task(fails())
    await asyncio.wait([task])
    pending: Any = asyncio.create_task(stuck())
    await asyncio.sleep(0)
    del task, pending
    instrument.asyncio_snapshot()  # its loop's fresh tasks are counted and let go of (as every 50 ms)
    gc.collect()
    recent = instrument.asyncio_snapshot()["tasks"]["recent"]  # type: ignore[index]
    assert [r["kind"] for r in recent] == ["never_retrieved", "destroyed_pending"]
    assert recent[0]["exception"] == "KeyError: 'lost'"
    assert sorted(reports) == ["Task exception was never retrieved", "Task was destroyed but it is pending!"]  # passed on
    opto.uninstrument_asyncio()
    assert loop.get_exception_handler() is not None and not isinstance(loop.get_exception_handler(), tasks.ExceptionHandler)
    loop.set_exception_handler(None)


async def test_the_loops_own_task_factory_still_makes_the_tasks_and_is_given_back() -> None:
    loop = asyncio.get_running_loop()
    made: list[str] = []

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        made.append(coro.__name__)
        return asyncio.Task(coro, loop=loop, **kwargs)

    loop.set_task_factory(factory)
    try:
        opto.instrument_asyncio()
        assert await asyncio.create_task(_work()) == 1
        assert made == ["_work"]
        assert sum(s["created"] for s in _sites().values()) == 1
        opto.uninstrument_asyncio()
        assert loop.get_task_factory() is factory
    finally:
        loop.set_task_factory(None)


def test_loops_made_after_instrumenting_are_instrumented_and_the_policy_given_back() -> None:
    policy = asyncio.get_event_loop_policy()
    opto.instrument_asyncio()
    assert asyncio.run(_spawn_untraced_and_read()) == 1
    opto.uninstrument_asyncio()
    assert "new_event_loop" not in vars(policy)


async def _spawn_untraced_and_read() -> int:
    await _spawn_untraced()
    return sum(s["created"] for s in _sites().values() if s["function"] == "_spawn_untraced")


def test_uvloop_tasks_are_counted_under_their_creation_site() -> None:
    async def main() -> dict[str, Any]:
        opto.instrument_asyncio()
        await _spawn_untraced()
        await _spawn_untraced()
        return _sites()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        sites = runner.run(main())
    site = sites[f"{HERE}:{_line_of('# the site', _spawn_untraced)} _spawn_untraced"]
    assert (site["created"], site["ok"]) == (2, 2)


async def test_creation_sites_are_bounded_and_the_rest_folded_into_other() -> None:
    opto.instrument_asyncio()
    lines = "\n".join("    tasks.append(loop.create_task(work()))" for _ in range(tasks.MAX_SITES + 10))
    scope: dict[str, Any] = {}
    exec(compile(f"def spawn(loop, work, tasks):\n{lines}\n", "<many sites>", "exec"), scope)
    made: list[asyncio.Task[int]] = []
    scope["spawn"](asyncio.get_running_loop(), _work, made)
    await asyncio.gather(*made)
    sites = _sites()
    assert len(sites) == tasks.MAX_SITES + 1
    assert sites[tasks.OTHER]["created"] == 10 and sites[tasks.OTHER]["ok"] == 10


async def test_task_spans_are_made_only_when_asked(spans: Spans) -> None:
    opto.instrument_asyncio()
    await asyncio.create_task(_work())
    assert spans.named(semconv.SPAN_TASK) == []
    opto.instrument_asyncio(task_spans=True)
    await _spawn_untraced()
    span = spans.one(semconv.SPAN_TASK)
    assert span.attributes is not None
    assert span.attributes[semconv.OUTCOME] == semconv.OUTCOME_OK
    assert span.attributes[semconv.TASK_SITE] == f"{HERE}:{_line_of('# the site', _spawn_untraced)} _spawn_untraced"


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"threshold_s": 0}, ValueError), ({"threshold_s": "1"}, ValueError), ({"threshold_s": True}, ValueError),
    ({"task_spans": 1}, TypeError),
], ids=["zero", "text", "bool", "task_spans-int"])
def test_bad_options_are_refused_with_the_rule(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error, match=next(iter(kwargs))):
        opto.instrument_asyncio(**kwargs)


def test_off_by_default_nothing_is_installed() -> None:
    policy = asyncio.get_event_loop_policy()
    assert instrument.asyncio_snapshot() is None
    assert "new_event_loop" not in vars(policy)
    loop = asyncio.new_event_loop()
    try:
        assert loop.get_task_factory() is None
    finally:
        loop.close()


def test_configure_switches_it_on_and_off() -> None:
    with pytest.raises(TypeError, match="asyncio must be True, False or None"):
        opto.configure(asyncio="yes")  # type: ignore[arg-type]
    opto.configure(asyncio=True)
    assert instrument.asyncio_snapshot() is not None
    opto.configure(asyncio=False)
    assert instrument.asyncio_snapshot() is None


def test_tasks_still_pending_when_their_loop_closes_are_counted_as_never_finished() -> None:
    loop = asyncio.new_event_loop()
    try:
        async def forever() -> None:
            await asyncio.get_running_loop().create_future()

        async def start() -> asyncio.Task[None]:
            opto.instrument_asyncio()
            task = asyncio.create_task(forever())  # never finishes
            await asyncio.sleep(0)
            return task

        task = loop.run_until_complete(start())
        (attached,) = instrument._loops.values()
        watchdog = attached.health
        assert watchdog is not None
    finally:
        loop.close()
    watchdog.stop()  # it notices the closed loop on its next check; stop() waits for it
    (site,) = [s for s in _sites().values() if s["function"].endswith("start")]
    assert (site["never_finished"], site["live"]) == (1, 0)
    assert not task.done()


async def test_a_task_of_an_earlier_instrumenting_is_not_counted_again() -> None:
    opto.instrument_asyncio()
    release = asyncio.Event()
    earlier = asyncio.create_task(release.wait())
    await asyncio.sleep(0)
    opto.instrument_asyncio()  # starts over: the pending task belongs to the earlier board
    later = asyncio.create_task(release.wait())
    await asyncio.sleep(0)
    here = [s for s in _sites().values() if s["function"] == "test_a_task_of_an_earlier_instrumenting_is_not_counted_again"]
    assert (sum(s["created"] for s in here), sum(s["live"] for s in here)) == (1, 1)
    release.set()
    await asyncio.gather(earlier, later)
    here = [s for s in _sites().values() if s["function"] == "test_a_task_of_an_earlier_instrumenting_is_not_counted_again"]
    assert (sum(s["ok"] for s in here), sum(s["live"] for s in here)) == (1, 0)


async def test_a_done_task_is_let_go_of_by_its_loops_next_sweep() -> None:
    opto.instrument_asyncio()

    class Result:
        pass

    async def make() -> Result:
        return Result()

    first = asyncio.create_task(make())
    result = weakref.ref(await first)
    del first
    assert result() is not None  # held, with its task, in the loop's fresh tasks
    for _ in range(tasks._SWEEP_AT):  # the factory sweeps once that many are fresh
        await asyncio.create_task(_work())
    assert result() is None
    here = [s for s in _sites().values() if s["function"] == "test_a_done_task_is_let_go_of_by_its_loops_next_sweep"]
    assert (sum(s["created"] for s in here), sum(s["ok"] for s in here), sum(s["live"] for s in here)) == (tasks._SWEEP_AT + 1,) * 2 + (0,)


async def test_a_failure_looked_at_after_the_sweep_is_not_reported() -> None:
    opto.instrument_asyncio()
    board = instrument._state.board
    assert board is not None

    async def fails() -> None:
        raise KeyError("seen")

    task = asyncio.create_task(fails())
    await asyncio.wait([task])
    instrument.asyncio_snapshot()  # the sweep counts the error; nobody has looked at it yet
    assert len(board.unretrieved) == 1
    assert isinstance(task.exception(), KeyError)
    del task
    gc.collect()
    snap = instrument.asyncio_snapshot()
    assert snap is not None and snap["tasks"]["recent"] == [] and board.unretrieved == {}
    (site,) = [s for s in snap["tasks"]["sites"] if s["function"] == "test_a_failure_looked_at_after_the_sweep_is_not_reported"]
    assert (site["error"], site["never_retrieved"]) == (1, 0)

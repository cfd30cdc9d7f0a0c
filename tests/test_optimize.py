"""`@trace.optimize` and `trace.param`: beam search over ContextVar-bound parameters, traced."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace import SpanProcessor

import opto
from opto import trace
from opto.telemetry import semconv
from opto.trace import Evaluation, OptimizeResult

SPEC = Path(__file__).parent / "spec" / "asynchronous-execution.md"

# A small discrete space with one best point: x=5, style="terse" scores 0, everything else less.
X = trace.param(0, name="x", description="a number", choices=list(range(8)))
STYLE = trace.param("verbose", name="style", choices=["verbose", "plain", "terse"])


def distance(example: int, output: int) -> float:
    return -abs(output - (5 * example + 100))


def make_workflow(**options: Any) -> trace.Workflow[[int], int]:
    """A fresh workflow over X and STYLE, so no test sees values another one adopted."""

    async def linear(n: int) -> int:
        await asyncio.sleep(0)
        return X.value * n + (100 if STYLE.value == "terse" else 0)

    return trace.optimize(**{"beam_width": 2, "num_proposals": 4, "max_depth": 4, **options})(linear)


def _depth_of(span: Any) -> int:
    return span.attributes[semconv.OPTIMIZE_DEPTH]


def _candidates(spans: Any, depth: int | None = None) -> list[Any]:
    found = spans.named(semconv.SPAN_OPTIMIZE_CANDIDATE)
    return [s for s in found if depth is None or _depth_of(s) == depth]


# --- the search -------------------------------------------------------------------------------


class StartedCandidates(SpanProcessor):
    """Records the attributes candidate spans carry when they start, while `on` is set."""

    def __init__(self) -> None:
        self.on = False
        self.started: list[dict[str, Any]] = []

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        if self.on and span.name == semconv.SPAN_OPTIMIZE_CANDIDATE:
            self.started.append(dict(span.attributes))


async def test_a_candidate_span_names_its_values_when_it_starts() -> None:
    """A live view can show what a running candidate evaluates, before its score exists."""
    recorder = StartedCandidates()
    otel_trace.get_tracer_provider().add_span_processor(recorder)  # type: ignore[attr-defined]
    recorder.on = True
    try:
        await make_workflow(max_depth=1).optimize([1], guide=distance)
    finally:
        recorder.on = False
    proposed = [a for a in recorder.started if a[semconv.OPTIMIZE_DEPTH] == 1]
    assert proposed and all(f"{semconv.OPTIMIZE_PARAM_PREFIX}x" in a for a in proposed)
    assert not any(semconv.OPTIMIZE_SCORE in a for a in proposed)


@pytest.mark.parametrize("strategy", ["async_beam_search", "beam_search"])
async def test_search_finds_the_best_point_of_a_discrete_space(strategy: str) -> None:
    """Both strategies reach the one point scoring 0, and the workflow then runs with it."""

    workflow = make_workflow(strategy=strategy)
    assert await workflow(1) == 0  # declared values before any search
    result = await workflow.optimize([1, 2], guide=distance)

    assert isinstance(result, OptimizeResult)
    assert dict(result.best_params) == {"x": 5, "style": "terse"}
    assert result.best_score == 0.0
    assert result.history[0] == -107.5 and result.history[-1] == 0.0
    assert list(result.history) == sorted(result.history)  # the beam keeps its parents: never worse
    assert result.best is workflow.best
    assert await asyncio.gather(workflow(1), workflow(3)) == [105, 115]
    assert X.value == 0 and STYLE.value == "verbose"  # outside the workflow: the declared values


async def test_every_candidate_is_recorded_with_its_score_and_feedback() -> None:
    """The result lists each candidate once, its runs on every example and the guide's feedback."""
    result = await make_workflow().optimize([1, 2], guide=lambda n, out: (distance(n, out), f"off by {distance(n, out)}"))
    ids = [c.id for c in result.candidates]
    assert ids == list(range(len(ids)))
    assert len({tuple(sorted(c.params.items())) for c in result.candidates}) == len(ids)  # no set twice
    start = next(c for c in result.candidates if c.id == 0)
    assert start.depth == 0 and start.parent is None
    assert [(e.input, e.score, e.feedback) for e in start.evaluations] == [(1, -105.0, "off by -105"), (2, -110.0, "off by -110")]
    for candidate in result.candidates:
        assert candidate.score == sum(e.score for e in candidate.evaluations) / 2
        for e in candidate.evaluations:  # each run saw its own candidate's values, never a neighbour's
            assert e.output == candidate.params["x"] * e.input + (100 if candidate.params["style"] == "terse" else 0)


async def test_a_second_search_starts_from_the_best_found() -> None:
    """Calling optimize again begins at the adopted values, not the declared ones."""

    @trace.optimize(beam_width=1, num_proposals=1, max_depth=1)
    async def workflow(n: int) -> int:
        return X.value * n

    def step(params: dict[str, Any], feedback: Any) -> list[dict[str, Any]]:
        return [{"x": params["x"] + 1}]

    first = await workflow.optimize([1], guide=lambda n, out: out, proposer=step)
    second = await workflow.optimize([1], guide=lambda n, out: out, proposer=step)
    assert first.best_params == {"x": 1}
    assert second.candidates[0].params == {"x": 1} and second.best_params == {"x": 2}


async def test_a_custom_async_proposer_gets_params_and_feedback() -> None:
    """An async proposer sees the beam member's values and its feedback; partial sets keep the rest."""
    prompt = trace.param("Answer.", name="prompt")
    temperature = trace.param(1.0, name="temperature")
    seen: list[tuple[dict[str, Any], list[Any]]] = []

    @trace.optimize(beam_width=1, num_proposals=2, max_depth=2)
    async def answer(question: str) -> str:
        return f"{prompt.value} {question}"[: int(temperature.value * 1000)]

    async def propose(params: dict[str, Any], feedback: tuple[Evaluation, ...]) -> list[dict[str, Any]]:
        await asyncio.sleep(0)
        seen.append((params, [e.feedback for e in feedback]))
        return [{"prompt": params["prompt"] + " Be brief."}, {"prompt": params["prompt"] + "!"}]

    def guide(question: str, output: str) -> tuple[float, str]:
        return output.count("Be brief."), f"{len(output)} chars"

    result = await answer.optimize(["q1", "q2"], guide=guide, proposer=propose)
    assert seen[0] == ({"prompt": "Answer.", "temperature": 1.0}, ["10 chars", "10 chars"])
    assert result.best_params == {"prompt": "Answer. Be brief. Be brief.", "temperature": 1.0}
    assert result.history == (0.0, 1.0, 2.0)
    assert temperature.value == 1.0


async def test_a_sync_proposer_may_return_a_generator_and_only_new_sets_count() -> None:
    """Duplicates of sets already evaluated are skipped; a depth with nothing new ends the search."""
    calls = 0

    @trace.optimize(beam_width=2, num_proposals=3, max_depth=5)
    async def workflow(n: int) -> int:
        nonlocal calls
        calls += 1
        return X.value

    def propose(params: dict[str, Any], feedback: Any) -> Iterator[dict[str, Any]]:
        yield from ({"x": v} for v in (0, 1, 1, 2))  # 0 is the start; 1 twice

    result = await workflow.optimize([7], guide=lambda n, out: out, proposer=propose)
    assert sorted(c.params["x"] for c in result.candidates) == [0, 1, 2]
    assert calls == 3
    assert len(result.history) == 3  # start, depth 1 (x=1, x=2), depth 2 found nothing new


async def test_explicit_params_limit_the_search() -> None:
    """With params=[...], only those are varied; other params keep their values."""

    @trace.optimize(params=[STYLE], beam_width=3, max_depth=2)
    async def workflow(n: int) -> int:
        return X.value * n + (100 if STYLE.value == "terse" else 0)

    result = await workflow.optimize([1], guide=distance)
    assert result.best_params == {"style": "terse"}
    assert all(list(c.params) == ["style"] for c in result.candidates)


async def test_validate_examples_set_the_score_while_train_gives_feedback() -> None:
    """With validate=, candidates are scored on it; the proposer's feedback comes from train."""
    feedback_inputs: list[list[Any]] = []

    @trace.optimize(beam_width=1, num_proposals=7, max_depth=1)
    async def workflow(n: int) -> int:
        return X.value * n

    def propose(params: dict[str, Any], feedback: tuple[Evaluation, ...]) -> list[dict[str, Any]]:
        feedback_inputs.append([e.input for e in feedback])
        return [{"x": v} for v in range(1, 8)]

    # On train (n=1) larger x is better; on validate (n=-1) smaller is: validation decides.
    result = await workflow.optimize([1], validate=[-1], guide=lambda n, out: out, proposer=propose)
    assert feedback_inputs == [[1]]
    assert result.best_params == {"x": 0}
    best = result.best
    assert [e.input for e in best.evaluations] == [1] and [e.input for e in best.validation] == [-1]


# --- concurrency and isolation -----------------------------------------------------------------


async def test_candidates_of_one_depth_overlap_in_time(spans: Any) -> None:
    """async_beam_search evaluates a depth's candidates side by side (span timestamps overlap)."""

    @trace.optimize(beam_width=1, num_proposals=4, max_depth=1)
    async def workflow(n: int) -> int:
        await asyncio.sleep(0.01)
        return X.value

    await workflow.optimize([1], guide=lambda n, out: out)
    depth1 = _candidates(spans, 1)
    assert len(depth1) == 4
    assert max(s.start_time for s in depth1) < min(s.end_time for s in depth1)


async def test_beam_search_evaluates_one_candidate_after_another(spans: Any) -> None:
    """The sequential strategy's candidate spans never overlap."""

    @trace.optimize(strategy="beam_search", beam_width=1, num_proposals=4, max_depth=1)
    async def workflow(n: int) -> int:
        await asyncio.sleep(0)
        return X.value

    await workflow.optimize([1, 2], guide=lambda n, out: out)
    runs = sorted(spans.named(workflow.name), key=lambda s: s.start_time)
    assert len(runs) == 10
    assert all(a.end_time <= b.start_time for a, b in zip(runs, runs[1:]))


async def test_max_concurrent_bounds_the_runs_in_flight() -> None:
    """No more than max_concurrent workflow runs (with their guide) are in flight at once."""
    in_flight = peak = 0

    @trace.optimize(beam_width=2, num_proposals=4, max_depth=2, max_concurrent=3)
    async def workflow(n: int) -> int:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.001)
        return X.value

    async def guide(n: int, out: int) -> int:
        await asyncio.sleep(0)
        nonlocal in_flight
        in_flight -= 1
        return out

    await workflow.optimize([1, 2, 3], guide=guide)
    assert peak == 3


async def test_concurrent_candidates_read_their_own_values_across_awaits() -> None:
    """A value read before and after other candidates ran in between is still the run's own."""
    started = 0
    all_started = asyncio.Event()

    @trace.optimize(beam_width=1, num_proposals=7, max_depth=1, max_concurrent=8)
    async def workflow(n: int) -> tuple[int, int]:
        nonlocal started
        before = X.value
        if before == 0:  # the starting values run alone, at depth 0
            return 0, 0
        started += 1
        if started == 7:
            all_started.set()
        async with asyncio.timeout(5):
            await all_started.wait()  # every candidate is mid-run here, each with its own binding
        return before, X.value

    result = await workflow.optimize([1], guide=lambda n, out: float(out[0] == out[1]))
    assert started == 7
    assert all(c.score == 1.0 and c.evaluations[0].output == (c.params["x"],) * 2 for c in result.candidates)


async def test_calls_run_concurrently_with_a_search_use_the_best_so_far() -> None:
    """While a search runs, a plain call sees the values adopted after the last finished depth."""
    seen: list[int] = []

    @trace.optimize(beam_width=1, num_proposals=1, max_depth=2)
    async def workflow(n: int) -> int:
        return X.value

    async def propose(params: dict[str, Any], feedback: Any) -> list[dict[str, Any]]:
        if params["x"] == 1:  # depth 1 is over and x=1 adopted: call the workflow before depth 2
            seen.append(await workflow(0))
        return [{"x": params["x"] + 1}]

    await workflow.optimize([1], guide=lambda n, out: out, proposer=propose)
    assert seen == [1]
    assert await workflow(0) == 2


async def test_candidate_values_win_over_an_inner_workflows_best() -> None:
    """A search over an outer workflow binds values that inner optimized workflows do not override."""

    @trace.optimize(beam_width=1, num_proposals=1, max_depth=1)
    async def inner(n: int) -> int:
        return X.value

    await inner.optimize([1], guide=lambda n, out: -abs(out - 3), proposer=lambda p, f: [{"x": 3}])
    assert await inner(0) == 3

    @trace.optimize(beam_width=1, num_proposals=1, max_depth=1)
    async def outer(n: int) -> int:
        return await inner(n)

    result = await outer.optimize([1], guide=lambda n, out: out, proposer=lambda p, f: [{"x": 7}])
    assert [c.evaluations[0].output for c in result.candidates] == [3, 7]  # start: inner's best; then 7
    assert await outer(0) == 7 and await inner(0) == 3


# --- failures, timeouts, retries ----------------------------------------------------------------


async def test_a_failing_evaluation_scores_the_minimum_and_the_search_goes_on(spans: Any) -> None:
    """A candidate whose run raises scores FAILED, keeps its error, and the search still finds the best."""

    @trace.optimize(beam_width=2, num_proposals=8, max_depth=2)
    async def workflow(n: int) -> int:
        if X.value == 6:
            raise RuntimeError("model overloaded")
        return -abs(X.value - 5)

    result = await workflow.optimize([1], guide=lambda n, out: out)
    assert result.best_params == {"x": 5}
    failed = [c for c in result.candidates if c.params["x"] == 6]
    assert len(failed) == 1
    assert failed[0].score == float("-inf") == opto.trace._optimize.FAILED
    assert isinstance(failed[0].error, RuntimeError) and str(failed[0].error) == "model overloaded"
    (span,) = [s for s in _candidates(spans) if s.attributes[semconv.OPTIMIZE_PARAM_PREFIX + "x"] == "6"]
    assert span.attributes[semconv.OUTCOME] == semconv.OUTCOME_ERROR
    assert span.attributes[semconv.ERROR_TYPE] == "RuntimeError"
    assert semconv.OPTIMIZE_SCORE not in span.attributes
    assert spans.one(semconv.SPAN_OPTIMIZE).attributes[semconv.OUTCOME] == semconv.OUTCOME_OK


async def test_a_failing_guide_fails_only_that_evaluation() -> None:
    """An exception from the guide is the evaluation's error, like one from the workflow."""

    @trace.optimize(beam_width=1, num_proposals=2, max_depth=1)
    async def workflow(n: int) -> int:
        return X.value

    async def guide(n: int, out: int) -> float:
        if out == 1:
            raise ValueError("judge refused")
        return out

    result = await workflow.optimize([1], guide=guide)
    by_x = {c.params["x"]: c for c in result.candidates}
    assert isinstance(by_x[1].error, ValueError) and by_x[1].evaluations[0].output == 1
    assert result.best_params == {"x": 2}


async def test_evaluations_time_out_per_run(spans: Any) -> None:
    """The workflow's timeout applies to each evaluation; a run that hangs fails only its candidate."""
    never = asyncio.Event()

    @trace.optimize(beam_width=1, num_proposals=3, max_depth=1, timeout=0.05)
    async def workflow(n: int) -> int:
        if X.value == 2:
            await never.wait()
        return X.value

    result = await workflow.optimize([1], guide=lambda n, out: out)
    by_x = {c.params["x"]: c for c in result.candidates}
    assert isinstance(by_x[2].error, TimeoutError)
    assert result.best_params == {"x": 3}
    timed_out = [s for s in spans.all() if s.attributes.get(semconv.OUTCOME) == semconv.OUTCOME_TIMEOUT]
    assert len(timed_out) == 1 and timed_out[0].name.endswith("workflow")


async def test_evaluations_retry_through_the_shared_policy(spans: Any) -> None:
    """retry_attempts= retries a run that raised RetryableError, recorded on the workflow's span."""
    trace.set_testing(True)
    tries: dict[int, int] = {}

    @trace.optimize(beam_width=1, num_proposals=2, max_depth=1, retry_attempts=2)
    async def flaky(n: int) -> int:
        tries[X.value] = tries.get(X.value, 0) + 1
        if tries[X.value] == 1:
            raise opto.RetryableError("try again")
        return X.value

    result = await flaky.optimize([1], guide=lambda n, out: out)
    assert all(c.error is None for c in result.candidates)
    assert tries == {0: 2, 1: 2, 2: 2}
    runs = spans.named(flaky.name)
    assert [s.attributes[semconv.ATTEMPTS] for s in runs] == [2, 2, 2]
    assert all(e.name == semconv.EVENT_RETRY for s in runs for e in s.events)


async def test_a_proposer_error_ends_the_search_keeping_the_best_so_far(spans: Any) -> None:
    """The proposer's own exception propagates; values adopted at earlier depths stay."""

    @trace.optimize(beam_width=1, num_proposals=1, max_depth=3)
    async def workflow(n: int) -> int:
        return X.value

    def propose(params: dict[str, Any], feedback: Any) -> list[dict[str, Any]]:
        if params["x"] == 1:
            raise ConnectionError("proposer LLM unreachable")
        return [{"x": 1}]

    with pytest.raises(ConnectionError, match="unreachable"):
        await workflow.optimize([1], guide=lambda n, out: out, proposer=propose)
    assert await workflow(0) == 1
    search = spans.one(semconv.SPAN_OPTIMIZE)
    assert search.attributes[semconv.OUTCOME] == semconv.OUTCOME_ERROR
    assert search.attributes[semconv.ERROR_TYPE] == "ConnectionError"


async def test_cancelling_a_search_ends_every_span_and_leaves_no_task(spans: Any) -> None:
    """Cancelled mid-depth: runs, candidates, depth and search spans end as cancelled; nothing leaks."""
    running = 0
    all_running = asyncio.Event()

    @trace.optimize(beam_width=1, num_proposals=3, max_depth=2)
    async def workflow(n: int) -> int:
        nonlocal running
        if X.value == 0:
            return 0
        running += 1
        if running == 3:
            all_running.set()
        await asyncio.Event().wait()
        return 1

    before = asyncio.all_tasks()
    search = asyncio.create_task(workflow.optimize([1], guide=lambda n, out: out))
    async with asyncio.timeout(5):
        await all_running.wait()
    search.cancel()
    with pytest.raises(asyncio.CancelledError):
        await search
    assert asyncio.all_tasks() == before
    assert otel_trace.get_current_span() is otel_trace.INVALID_SPAN
    cancelled = [s for s in spans.all() if s.attributes.get(semconv.OUTCOME) == semconv.OUTCOME_CANCELLED]
    names = sorted(s.name for s in cancelled)
    assert names == sorted([semconv.SPAN_OPTIMIZE, semconv.SPAN_OPTIMIZE_DEPTH] + [semconv.SPAN_OPTIMIZE_CANDIDATE] * 3 + [workflow.name] * 3)
    assert workflow.best is None


# --- telemetry ----------------------------------------------------------------------------------


async def test_spans_nest_search_depth_candidate_run(spans: Any) -> None:
    """One search span; depths under it; candidates under their depth (the start under the search); runs under candidates."""
    workflow = make_workflow()
    result = await workflow.optimize([1, 2], guide=distance)
    search = spans.one(semconv.SPAN_OPTIMIZE)
    assert search.parent is None
    assert search.attributes[semconv.SPAN_KIND] == semconv.KIND_OPTIMIZE
    assert search.attributes[semconv.FUNCTION] == workflow.name
    assert search.attributes[semconv.OPTIMIZE_STRATEGY] == "async_beam_search"
    assert (search.attributes[semconv.OPTIMIZE_BEAM_WIDTH], search.attributes[semconv.OPTIMIZE_NUM_PROPOSALS]) == (2, 4)
    assert (search.attributes[semconv.OPTIMIZE_MAX_DEPTH], search.attributes[semconv.OPTIMIZE_MAX_CONCURRENT]) == (4, 10)
    assert search.attributes[semconv.OPTIMIZE_BEST_SCORE] == 0.0
    assert search.attributes[semconv.OPTIMIZE_BEST_ID] == result.best.id
    assert search.attributes[semconv.OPTIMIZE_CANDIDATES] == len(result.candidates)
    assert search.attributes[semconv.OPTIMIZE_PARAM_PREFIX + "x"] == "5"
    assert search.attributes[semconv.OPTIMIZE_PARAM_PREFIX + "style"] == "'terse'"

    depths = {s.attributes[semconv.OPTIMIZE_DEPTH]: s for s in spans.named(semconv.SPAN_OPTIMIZE_DEPTH)}
    assert sorted(depths) == list(range(1, len(result.history)))
    for depth, span in depths.items():
        assert span.parent.span_id == search.context.span_id
        assert span.attributes[semconv.SPAN_KIND] == semconv.KIND_OPTIMIZE_DEPTH
        assert span.attributes[semconv.OPTIMIZE_BEST_SCORE] == result.history[depth]
        assert len(span.attributes[semconv.OPTIMIZE_BEAM]) <= 2
        assert span.attributes[semconv.OPTIMIZE_CANDIDATES] == sum(c.depth == depth for c in result.candidates)

    by_id = {c.id: c for c in result.candidates}
    candidate_spans = _candidates(spans)
    assert len(candidate_spans) == len(result.candidates)
    for span in candidate_spans:
        c = by_id[span.attributes[semconv.OPTIMIZE_CANDIDATE_ID]]
        parent = search if c.depth == 0 else depths[c.depth]
        assert span.parent.span_id == parent.context.span_id
        assert span.attributes[semconv.OPTIMIZE_SCORE] == c.score
        assert span.attributes[semconv.OPTIMIZE_PARAM_PREFIX + "x"] == repr(c.params["x"])
        assert span.attributes.get(semconv.OPTIMIZE_PARENT_ID) == c.parent
        assert span.attributes[semconv.OUTCOME] == semconv.OUTCOME_OK
    candidate_ids = {s.context.span_id for s in candidate_spans}
    runs = spans.named(workflow.name)
    assert len(runs) == 2 * len(result.candidates)
    assert all(r.parent.span_id in candidate_ids for r in runs)


async def test_secret_looking_param_names_are_masked_in_spans(spans: Any) -> None:
    """A parameter named like a credential is recorded as [masked], as call arguments are."""
    api_key = trace.param("k1", name="api_key", choices=["k1", "k2"])

    @trace.optimize(beam_width=1, num_proposals=1, max_depth=1)
    async def workflow(n: int) -> str:
        return api_key.value

    await workflow.optimize([1], guide=lambda n, out: 1.0)
    values = {s.attributes[semconv.OPTIMIZE_PARAM_PREFIX + "api_key"] for s in _candidates(spans)}
    assert values == {"[masked]"}


async def test_the_decorated_workflow_is_traced_like_async_trace(spans: Any) -> None:
    """A plain call makes one call span with arguments and result, under the caller's span."""
    workflow = make_workflow()
    assert await workflow(2) == 0
    span = spans.one(workflow.name)
    assert span.attributes[semconv.SPAN_KIND] == "call"
    assert span.attributes[semconv.OUTCOME] == semconv.OUTCOME_OK
    assert span.attributes[semconv.ARG_PREFIX + "n"] == "2"
    assert workflow.__name__ == "linear" and workflow.__wrapped__.__name__ == "linear"


# --- the spec page ------------------------------------------------------------------------------


def _spec_block(marker: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", SPEC.read_text(), re.S)
    (block,) = [b for b in blocks if marker in b]
    return block


async def test_the_spec_parallel_optimization_snippet_runs_as_written() -> None:
    """The page's `@trace.optimize(strategy="async_beam_search")` + `asyncio.gather` block runs unchanged."""
    code = _spec_block('@trace.optimize(strategy="async_beam_search")')

    async def process_async(data: str) -> str:
        await asyncio.sleep(0)
        return data.upper()

    namespace: dict[str, Any] = {"process_async": process_async, "data1": "a", "data2": "b", "data3": "c"}
    exec(compile(code, str(SPEC), "exec"), namespace)
    assert await namespace["optimize_multiple"]() == ["A", "B", "C"]
    assert isinstance(namespace["my_workflow"], trace.Workflow)


# --- misuse -------------------------------------------------------------------------------------


async def _noop(n: int) -> int:
    return n


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"strategy": "genetic"}, ValueError, r"unknown optimize strategy 'genetic'; known: 'async_beam_search', 'beam_search'"),
        ({"beam_width": 0}, ValueError, r"beam_width must be >= 1, got 0"),
        ({"num_proposals": "4"}, TypeError, r"num_proposals must be an int, got '4'"),
        ({"max_depth": True}, TypeError, r"max_depth must be an int"),
        ({"max_concurrent": -1}, ValueError, r"max_concurrent must be >= 1"),
        ({"beam_widht": 2}, TypeError, r"unknown option\(s\) beam_widht; known: strategy, beam_width"),
        ({"timeout": 0}, ValueError, r"timeout must be > 0 seconds"),
        ({"params": X}, TypeError, r"params must be a list of opto.trace.param"),
        ({"params": ["x"]}, TypeError, r"params must hold opto.trace.param\(...\) objects, got 'x'"),
        ({"params": []}, ValueError, r"params is empty"),
        ({"params": [X, trace.param(1, name="x")]}, ValueError, r"two parameters are named 'x'"),
    ],
    ids=["strategy", "beam_width", "num_proposals-type", "max_depth-bool", "max_concurrent", "typo", "timeout", "params-one", "params-str", "params-empty", "params-dup"],
)
def test_bad_options_raise_naming_the_fix(options: dict[str, Any], error: type[Exception], message: str) -> None:
    """Each bad decorator option raises at decoration time with a message saying what to do."""
    with pytest.raises(error, match=message):
        trace.optimize(**options)(_noop)


def test_only_async_functions_can_be_optimized() -> None:
    """A sync function is refused with the fix in the message."""
    with pytest.raises(TypeError, match="needs an 'async def' workflow"):
        trace.optimize(lambda n: n)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        ({"train": []}, ValueError, r"train is empty"),
        ({"train": "abc"}, TypeError, r"train must be a list of workflow inputs, got str"),
        ({"train": [1], "validate": 3}, TypeError, r"validate must be a list of workflow inputs, got int"),
        ({"train": [1], "guide": "exact"}, TypeError, r"guide must be a callable guide\(input, output\)"),
        ({"train": [1], "proposer": [{"x": 1}]}, TypeError, r"proposer must be a callable proposer\(params, feedback\)"),
    ],
    ids=["empty", "str", "validate", "guide", "proposer"],
)
async def test_bad_optimize_arguments_raise_before_running(call: dict[str, Any], error: type[Exception], message: str) -> None:
    """Arguments of optimize() are checked before any evaluation."""
    ran = False

    @trace.optimize
    async def workflow(n: int) -> int:
        nonlocal ran
        ran = True
        return X.value

    with pytest.raises(error, match=message):
        await workflow.optimize(**{"guide": lambda n, out: out, **call})
    assert not ran


async def test_a_workflow_that_cannot_take_one_input_is_refused() -> None:
    """Examples are passed as the one argument; a two-argument workflow gets told so."""

    @trace.optimize
    async def workflow(a: int, b: int) -> int:
        return a + b

    with pytest.raises(TypeError, match=r"as the one argument of .*workflow\(a, b\), which cannot take it \(missing a required argument: 'b'\); make the workflow take one input"):
        await workflow.optimize([1], guide=lambda n, out: out)


@pytest.mark.parametrize("bad", ["good", None, float("nan"), True, (1, 2, 3)], ids=["str", "none", "nan", "bool", "triple"])
async def test_a_guide_returning_no_score_is_misuse(bad: Any) -> None:
    """The guide must return a number or (number, feedback); anything else raises TypeError at once."""

    @trace.optimize
    async def workflow(n: int) -> int:
        return X.value

    with pytest.raises(TypeError, match=r"guide must return a number or \(number, feedback\)"):
        await workflow.optimize([1, 2], guide=lambda n, out: bad)


@pytest.mark.parametrize(
    ("proposals", "error", "message"),
    [
        ({"x": 1}, TypeError, r"proposer must return a list of parameter sets"),
        (None, TypeError, r"proposer must return a list of parameter sets"),
        (["x=1"], TypeError, r"proposer must return parameter sets as dicts"),
        ([{"y": 1}], ValueError, r"proposer named unknown parameter\(s\) \['y'\]; known: \['x'\]"),
    ],
    ids=["dict", "none", "str-item", "unknown-name"],
)
async def test_bad_proposals_raise_naming_the_fix(proposals: Any, error: type[Exception], message: str) -> None:
    """What a proposer returns is checked, with a message saying the expected shape."""

    @trace.optimize
    async def workflow(n: int) -> int:
        return X.value

    with pytest.raises(error, match=message):
        await workflow.optimize([1], guide=lambda n, out: out, proposer=lambda p, f: proposals)


async def test_a_workflow_that_reads_no_param_cannot_be_optimized() -> None:
    """Nothing to search is a ValueError saying how to declare parameters."""

    @trace.optimize
    async def workflow(n: int) -> int:
        return n

    with pytest.raises(ValueError, match=r"read no parameter's .value: declare trainable values with opto.trace.param"):
        await workflow.optimize([1], guide=lambda n, out: out)


async def test_without_a_proposer_some_param_needs_choices() -> None:
    """The built-in proposer needs choices=[...]; without any, the error says to pass proposer=."""
    free = trace.param(0.5, name="temperature")

    @trace.optimize
    async def workflow(n: int) -> float:
        return free.value

    with pytest.raises(ValueError, match=r"none of the parameters \(temperature\) declares choices"):
        await workflow.optimize([1], guide=lambda n, out: out)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        ((1,), {"name": ""}, TypeError, r"param name must be a non-empty str"),
        ((1,), {"name": "n", "description": 3}, TypeError, r"param description must be a str"),
        ((1,), {"name": "n", "choices": "123"}, TypeError, r"param choices must be a list of values"),
        ((4,), {"name": "n", "choices": [1, 2]}, ValueError, r"initial value 4 must be one of choices \[1, 2\]"),
    ],
    ids=["name", "description", "choices-str", "not-a-choice"],
)
def test_bad_param_declarations_raise(args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    """trace.param checks its arguments at declaration."""
    with pytest.raises(error, match=message):
        trace.param(*args, **kwargs)


def test_a_param_outside_any_run_reads_its_declared_value() -> None:
    """Outside a workflow, `.value` is the initial value; the repr names it."""
    assert (X.value, X.initial, X.description, X.choices) == (0, 0, "a number", tuple(range(8)))
    assert repr(X) == "<opto.trace.param x=0>"
    assert isinstance(X, trace.Param)


def test_the_prompt_example_finds_a_perfect_prompt() -> None:
    """examples/optimize_prompt.py runs offline and reaches a score of 1.0 with one-word answers."""
    script = Path(__file__).parent.parent / "examples" / "optimize_prompt.py"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "1.0)" in proc.stdout and "Answer with one word" in proc.stdout
    assert "after: ['positive', 'positive', 'negative']" in proc.stdout


async def test_an_ambient_retry_policy_applies_to_evaluation_runs(spans: Any) -> None:
    """Inside an AsyncTraceContext, its RetryPolicy retries evaluation runs like any traced call."""
    tries = 0

    @trace.optimize(beam_width=1, num_proposals=1, max_depth=1)
    async def flaky(n: int) -> int:
        nonlocal tries
        tries += 1
        if tries <= 2:  # the starting values' run fails twice, then succeeds
            raise opto.RetryableError("rate limited")
        return X.value

    async with trace.AsyncTraceContext(retry_policy=trace.RetryPolicy(attempts=2, delay=0.0)):
        result = await flaky.optimize([1], guide=lambda n, out: out)
    assert [c.error for c in result.candidates] == [None, None]
    assert [s.attributes[semconv.ATTEMPTS] for s in spans.named(flaky.name)] == [3, 1]


async def test_unhashable_values_are_compared_for_duplicates() -> None:
    """Parameter sets holding lists are deduplicated by value, like hashable ones."""
    tools = trace.param(["search"], name="tools")

    @trace.optimize(beam_width=2, num_proposals=3, max_depth=2)
    async def workflow(n: int) -> int:
        return len(tools.value)

    def propose(params: dict[str, Any], feedback: Any) -> list[dict[str, Any]]:
        return [{"tools": ["search"]}, {"tools": ["search", "calc"]}, {"tools": ["search", "calc"]}]

    result = await workflow.optimize([1], guide=lambda n, out: out, proposer=propose)
    assert [c.params["tools"] for c in result.candidates] == [["search"], ["search", "calc"]]


async def test_a_proposer_error_keeps_its_own_cause_and_context() -> None:
    """Raised out of the search's task group as itself, with the chain the proposer gave it."""

    @trace.optimize(beam_width=1, num_proposals=1, max_depth=2, max_concurrent=4)
    async def workflow(n: int) -> int:
        return X.value

    cause = KeyError("root cause")

    def propose(params: dict[str, Any], feedback: Any) -> list[dict[str, Any]]:
        try:
            raise cause
        except KeyError as k:
            raise ValueError("proposer broke") from k

    with pytest.raises(ValueError, match="proposer broke") as raised:
        await workflow.optimize([1, 2], guide=lambda n, out: 1.0, proposer=propose)
    assert raised.value.__cause__ is cause and raised.value.__context__ is cause

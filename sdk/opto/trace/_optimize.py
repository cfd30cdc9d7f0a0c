"""`@opto.trace.optimize`: beam search over a workflow's `param`s, candidates evaluated concurrently.

Each candidate parameter set is bound through a ContextVar (see `_param`), so the candidates of
one depth run side by side in one process; every run is an `async_trace` call, and the search,
each depth and each candidate get a span of their own.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import math
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, TypeVar, overload

from opentelemetry.trace import Span

from .. import telemetry
from .._core import (
    OPTION_NAMES, Limiter, Options, capture_named, check_options, gather_in_task_group, outcome_of, record_error,
    running_loop, safe_repr, wrap_coroutine_function,
)
from ..telemetry import semconv
from ._param import Param, bound, recording

__all__ = ["optimize", "Workflow", "OptimizeResult", "Candidate", "Evaluation", "STRATEGIES", "FAILED"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

STRATEGIES = ("async_beam_search", "beam_search")
FAILED = float("-inf")  # the score of a candidate whose evaluation failed: below every real score


@dataclass(frozen=True, slots=True)
class Evaluation:
    """One run of the workflow on one example, scored by the guide (`error` set if either failed)."""

    input: Any
    output: Any
    score: float
    feedback: Any = None
    error: Exception | None = None


@dataclass(frozen=True, slots=True)
class Candidate:
    """A parameter set and how it scored.

    `evaluations` are its runs on `train` (the feedback its proposals come from); `validation`
    its runs on `validate`, when given, which then set `score`.
    """

    id: int
    parent: int | None
    depth: int
    params: Mapping[str, Any]
    score: float
    evaluations: tuple[Evaluation, ...]
    validation: tuple[Evaluation, ...] = ()

    @property
    def error(self) -> Exception | None:
        """The first error among its runs; a candidate with one scores `FAILED`."""
        return next((e.error for e in (*self.evaluations, *self.validation) if e.error is not None), None)


@dataclass(frozen=True, slots=True)
class OptimizeResult:
    """What a search found: the best candidate, the best score after each depth, every candidate by id."""

    best: Candidate
    history: tuple[float, ...]
    candidates: tuple[Candidate, ...]

    @property
    def best_params(self) -> Mapping[str, Any]:
        return self.best.params

    @property
    def best_score(self) -> float:
        return self.best.score


@dataclass(frozen=True, slots=True)
class _Settings:
    strategy: str
    beam_width: int
    num_proposals: int
    max_depth: int
    max_concurrent: int
    params: tuple[Param[Any], ...] | None


Proposer = Callable[[dict[str, Any], tuple[Evaluation, ...]], Iterable[Mapping[str, Any]] | Awaitable[Iterable[Mapping[str, Any]]]]
Guide = Callable[[Any, Any], Any]


class Workflow(Generic[P, R]):
    """An `async def` workflow with trainable parameters.

    Calling it runs it with the best parameters found so far (at first the declared values),
    traced like `async_trace`; `await workflow.optimize(train, guide=...)` searches for better ones.
    """

    def __init__(self, fn: Callable[P, Coroutine[Any, Any, R]], settings: _Settings, opts: Options) -> None:
        functools.update_wrapper(self, fn)
        self._fn = fn
        self._run = wrap_coroutine_function(fn, opts)
        self._settings = settings
        self._max_repr = opts.max_repr
        self._values: dict[Param[Any], Any] = {}
        self.name = opts.name or fn.__qualname__
        self.best: Candidate | None = None

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        with bound(self._values, override=False):  # a search evaluating a candidate binds over these
            return await self._run(*args, **kwargs)

    async def optimize(
        self,
        train: Iterable[Any],
        *,
        guide: Guide,
        proposer: Proposer | None = None,
        validate: Iterable[Any] | None = None,
    ) -> OptimizeResult:
        """Search for the parameters that score best; the workflow uses them from then on.

        Each example is passed as the workflow's one argument; `guide(input, output)` returns a
        score or `(score, feedback)`, higher is better. `proposer(params, feedback)` returns new
        parameter sets (partial ones keep the parent's other values); without one, parameters
        declared with `choices=[...]` are varied one at a time. Both may be sync or async.
        """
        examples = self._examples(train, "train")
        checks = self._examples(validate, "validate") if validate is not None else ()
        if not callable(guide):
            raise TypeError(f"guide must be a callable guide(input, output) returning a score or (score, feedback), got {guide!r}")
        if proposer is not None and not callable(proposer):
            raise TypeError(f"proposer must be a callable proposer(params, feedback) returning parameter sets, got {proposer!r}")
        return await _Search(self, guide, proposer, examples, checks).run()

    def _examples(self, examples: Iterable[Any], label: str) -> tuple[Any, ...]:
        if isinstance(examples, (str, bytes, Mapping)) or not isinstance(examples, Iterable):
            raise TypeError(f"{label} must be a list of workflow inputs, got {type(examples).__name__}")
        items = tuple(examples)
        if not items:
            raise ValueError(f"{label} is empty: give at least one workflow input to evaluate on")
        signature = inspect.signature(self._fn)
        try:
            signature.bind(items[0])
        except TypeError as exc:
            raise TypeError(
                f"optimize() passes each {label} example as the one argument of {self.name}({', '.join(signature.parameters)}), "
                f"which cannot take it ({exc}); make the workflow take one input"
            ) from None
        return items

    def _adopt(self, best: Candidate, params: Mapping[str, Param[Any]]) -> None:
        self._values = {**self._values, **{params[name]: value for name, value in best.params.items()}}
        self.best = best


class _Search:
    """One run of the beam search over one workflow."""

    def __init__(
        self, workflow: Workflow[Any, Any], guide: Guide, proposer: Proposer | None, train: tuple[Any, ...], validate: tuple[Any, ...]
    ) -> None:
        self.workflow = workflow
        self.settings = workflow._settings
        self.guide = guide
        self.proposer = proposer
        self.examples = (*train, *validate)
        self.n_train = len(train)
        self.concurrent = self.settings.strategy == "async_beam_search"
        self.limiter = Limiter(self.settings.max_concurrent) if self.concurrent else None
        self.params: dict[str, Param[Any]] = {}
        self.candidates: list[Candidate] = []
        self.seen: set[tuple[tuple[str, Any], ...]] = set()

    async def run(self) -> OptimizeResult:
        s = self.settings
        attrs = {
            semconv.SPAN_KIND: semconv.KIND_OPTIMIZE,
            semconv.FUNCTION: self.workflow.name,
            semconv.OPTIMIZE_STRATEGY: s.strategy,
            semconv.OPTIMIZE_BEAM_WIDTH: s.beam_width,
            semconv.OPTIMIZE_NUM_PROPOSALS: s.num_proposals,
            semconv.OPTIMIZE_MAX_DEPTH: s.max_depth,
            semconv.OPTIMIZE_MAX_CONCURRENT: s.max_concurrent,
        }
        with _span(semconv.SPAN_OPTIMIZE, attrs) as span:
            beam = [await self._start()]
            history = [beam[0].score]
            for depth in range(1, s.max_depth + 1):
                attrs = {semconv.SPAN_KIND: semconv.KIND_OPTIMIZE_DEPTH, semconv.OPTIMIZE_DEPTH: depth}
                with _span(semconv.SPAN_OPTIMIZE_DEPTH, attrs) as depth_span:
                    proposals = await self._propose(beam)
                    new = await _gather(
                        [functools.partial(self._evaluate, depth, *proposal) for proposal in proposals], self.concurrent
                    )
                    beam = sorted([*beam, *new], key=lambda c: c.score, reverse=True)[: s.beam_width]  # stable: ties keep the elder
                    history.append(beam[0].score)
                    self.workflow._adopt(beam[0], self.params)
                    depth_attrs: dict[str, Any] = {
                        semconv.OUTCOME: semconv.OUTCOME_OK,
                        semconv.OPTIMIZE_CANDIDATES: len(new),
                        semconv.OPTIMIZE_BEAM: [c.id for c in beam],
                    }
                    depth_span.set_attributes(depth_attrs | _best_attributes(beam[0]))
                if not new:
                    break  # the proposers have nothing new left to try
            search_attrs: dict[str, Any] = {semconv.OUTCOME: semconv.OUTCOME_OK, semconv.OPTIMIZE_CANDIDATES: len(self.candidates)}
            span.set_attributes(
                search_attrs
                | _best_attributes(beam[0])
                | self._param_attributes(beam[0].params)
            )
        return OptimizeResult(beam[0], tuple(history), tuple(sorted(self.candidates, key=lambda c: c.id)))

    async def _start(self) -> Candidate:
        """Evaluate the current values (candidate 0, depth 0), finding the parameters the workflow reads."""
        with _span(semconv.SPAN_OPTIMIZE_CANDIDATE, self._candidate_attributes(0, None, 0)) as span:
            with recording() as reads:
                runs = await self._runs({})
            self.params = self._parameters(self.settings.params or tuple(reads))
            with bound(self.workflow._values, override=False):  # what a run uses for a param it did not read
                values = {name: reads[p] if p in reads else p.value for name, p in self.params.items()}
            self.seen.add(_key(values))
            return self._scored(span, 0, None, 0, values, runs)

    def _parameters(self, found: Sequence[Param[Any]]) -> dict[str, Param[Any]]:
        if not found:
            raise ValueError(
                f"{self.workflow.name} read no parameter's .value: declare trainable values with "
                "opto.trace.param(...) and read .value inside the workflow, or pass params=[...]"
            )
        params = _by_name(found)
        if self.proposer is None and not any(p.choices for p in found):
            raise ValueError(
                f"no proposer given and none of the parameters ({', '.join(params)}) declares choices=[...]: "
                "pass proposer= or declare choices"
            )
        return params

    async def _propose(self, beam: list[Candidate]) -> list[tuple[int, Candidate, dict[str, Any]]]:
        """Up to `num_proposals` parameter sets not evaluated before for each beam member, numbered."""
        asked = await _gather([functools.partial(self._ask, parent) for parent in beam], self.concurrent)
        out: list[tuple[int, Candidate, dict[str, Any]]] = []
        for parent, proposals in zip(beam, asked):
            taken = 0
            for proposal in proposals:
                if taken == self.settings.num_proposals:
                    break
                values = {**parent.params, **self._checked(proposal)}
                key = _key(values)
                if key not in self.seen:
                    self.seen.add(key)
                    out.append((len(self.seen) - 1, parent, values))
                    taken += 1
        return out

    async def _ask(self, parent: Candidate) -> Iterable[Mapping[str, Any]]:
        if self.proposer is None:
            return _vary_choices(self.params, parent.params)
        proposals = self.proposer(dict(parent.params), parent.evaluations)
        if inspect.isawaitable(proposals):
            proposals = await proposals
        if isinstance(proposals, Mapping) or not isinstance(proposals, Iterable):
            raise TypeError(f"proposer must return a list of parameter sets (dicts of name to value), got {safe_repr(proposals, 200)}")
        return proposals

    def _checked(self, proposal: Any) -> Mapping[str, Any]:
        if not isinstance(proposal, Mapping):
            raise TypeError(f"proposer must return parameter sets as dicts of parameter name to value, got {safe_repr(proposal, 200)}")
        unknown = set(proposal) - set(self.params)
        if unknown:
            raise ValueError(f"proposer named unknown parameter(s) {sorted(unknown)}; known: {sorted(self.params)}")
        return proposal

    async def _evaluate(self, depth: int, candidate_id: int, parent: Candidate, values: dict[str, Any]) -> Candidate:
        """Run the workflow with `values` bound on every example, and score it."""
        # The values go on the span as it starts, so a live view shows what is being evaluated.
        attrs = self._candidate_attributes(candidate_id, parent, depth) | self._param_attributes(values)
        with _span(semconv.SPAN_OPTIMIZE_CANDIDATE, attrs) as span:
            runs = await self._runs({self.params[name]: value for name, value in values.items()})
            return self._scored(span, candidate_id, parent, depth, values, runs)

    async def _runs(self, bindings: Mapping[Param[Any], Any]) -> list[Evaluation]:
        """Every example's evaluation, with the workflow's adopted values bound under the candidate's."""
        with bound(self.workflow._values, override=False), bound(bindings, override=True):
            return await _gather([functools.partial(self._run_one, x) for x in self.examples], self.concurrent)

    async def _run_one(self, example: Any) -> Evaluation:
        """One workflow run and its guide verdict, holding a concurrency slot throughout."""
        limiter = self.limiter
        if limiter is not None:
            await limiter.acquire()
        output = None
        try:
            output = await self.workflow._run(example)
            verdict = self.guide(example, output)
            if inspect.isawaitable(verdict):
                verdict = await verdict
        except Exception as exc:
            return Evaluation(example, output, FAILED, None, exc)
        finally:
            if limiter is not None:
                limiter.release()
        score, feedback = _verdict(verdict)
        return Evaluation(example, output, score, feedback)

    def _scored(
        self, span: Span, candidate_id: int, parent: Candidate | None, depth: int, values: dict[str, Any], runs: list[Evaluation]
    ) -> Candidate:
        evaluations, validation = tuple(runs[: self.n_train]), tuple(runs[self.n_train :])
        scored = validation or evaluations
        failed = next((e.error for e in runs if e.error is not None), None)
        score = FAILED if failed is not None else math.fsum(e.score for e in scored) / len(scored)
        candidate = Candidate(candidate_id, parent.id if parent else None, depth, values, score, evaluations, validation)
        span.set_attributes(self._param_attributes(values))
        if failed is None:
            span.set_attributes({semconv.OUTCOME: semconv.OUTCOME_OK, semconv.OPTIMIZE_SCORE: score})
        else:
            _mark_failed(span, failed, escaped=False)
        self.candidates.append(candidate)
        return candidate

    def _candidate_attributes(self, candidate_id: int, parent: Candidate | None, depth: int) -> dict[str, Any]:
        attrs: dict[str, Any] = {
            semconv.SPAN_KIND: semconv.KIND_OPTIMIZE_CANDIDATE,
            semconv.OPTIMIZE_CANDIDATE_ID: candidate_id,
            semconv.OPTIMIZE_DEPTH: depth,
        }
        if parent is not None:
            attrs[semconv.OPTIMIZE_PARENT_ID] = parent.id
        return attrs

    def _param_attributes(self, values: Mapping[str, Any]) -> dict[str, str]:
        limit = self.workflow._max_repr
        out: dict[str, str] = {}
        for name, value in values.items():
            capture_named(out, semconv.OPTIMIZE_PARAM_PREFIX + name, name, value, limit)
        return out


@contextmanager
def _span(name: str, attributes: Mapping[str, Any]) -> Iterator[Span]:
    """A current span for a step of the search; an exception or cancellation sets its outcome."""
    with telemetry.TRACER.start_as_current_span(
        name, attributes=attributes, record_exception=False, set_status_on_exception=False
    ) as span:
        try:
            yield span
        except BaseException as exc:
            if outcome_of(exc) == semconv.OUTCOME_CANCELLED:
                span.set_attribute(semconv.OUTCOME, semconv.OUTCOME_CANCELLED)
                span.add_event(semconv.EVENT_CANCELLED)
            else:
                _mark_failed(span, exc, escaped=True)
            raise


def _mark_failed(span: Span, exc: BaseException, *, escaped: bool) -> None:
    span.set_attribute(semconv.OUTCOME, semconv.OUTCOME_ERROR)
    record_error(span, exc, escaped=escaped)


async def _gather(steps: Sequence[Callable[[], Coroutine[Any, Any, T]]], concurrent: bool) -> list[T]:
    """Run the steps side by side in a task group, or one after another; results in order.

    Evaluations catch their own errors, so what escapes is misuse (a bad guide or proposer
    result): the first such error is raised as itself rather than inside an ExceptionGroup.
    """
    if not concurrent:
        return [await step() for step in steps]
    if running_loop() is None:  # trio, or another library anyio runs on
        return await gather_in_task_group([step() for step in steps])
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(step()) for step in steps]
    except BaseExceptionGroup as errors:
        first = errors.exceptions[0]
    else:
        return [task.result() for task in tasks]
    raise first  # out of the except block, so that its own __cause__ and __context__ stay as they were


def _verdict(verdict: Any) -> tuple[float, Any]:
    """A guide's answer as (score, feedback)."""
    score, feedback = verdict if isinstance(verdict, tuple) and len(verdict) == 2 else (verdict, None)
    if isinstance(score, bool) or not isinstance(score, (int, float)) or math.isnan(score):
        raise TypeError(f"guide must return a number or (number, feedback), higher is better; got {safe_repr(verdict, 200)}")
    return float(score), feedback


def _vary_choices(params: Mapping[str, Param[Any]], values: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """The built-in proposer: every parameter set that changes one parameter to another of its choices."""
    for name, p in params.items():
        for choice in p.choices or ():
            if choice != values[name]:
                yield {name: choice}


def _key(values: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """What makes two parameter sets the same: equal values, compared by repr when unhashable."""
    return tuple((name, _hashable(values[name])) for name in sorted(values))


def _hashable(value: Any) -> Any:
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


def _by_name(params: Iterable[Param[Any]]) -> dict[str, Param[Any]]:
    out: dict[str, Param[Any]] = {}
    for p in params:
        if not isinstance(p, Param):
            raise TypeError(f"params must hold opto.trace.param(...) objects, got {p!r}")
    for p in sorted(params, key=lambda p: p.name):
        if out.setdefault(p.name, p) is not p:
            raise ValueError(f"two parameters are named {p.name!r}: give each opto.trace.param a distinct name")
    return out


def _best_attributes(best: Candidate) -> dict[str, Any]:
    attrs: dict[str, Any] = {semconv.OPTIMIZE_BEST_ID: best.id}
    if best.error is None:
        attrs[semconv.OPTIMIZE_BEST_SCORE] = best.score
    return attrs


def _positive_int(label: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{label} must be an int, got {value!r}")
    if value < 1:
        raise ValueError(f"{label} must be >= 1, got {value}")
    return int(value)


@overload
def optimize(fn: Callable[P, Coroutine[Any, Any, R]], /) -> Workflow[P, R]: ...
@overload
def optimize(
    *,
    strategy: str = "async_beam_search",
    beam_width: int = 3,
    num_proposals: int = 4,
    max_depth: int = 3,
    max_concurrent: int = 10,
    params: Iterable[Param[Any]] | None = None,
    name: str | None = None,
    loop: asyncio.AbstractEventLoop | None = None,
    retry_attempts: int | None = None,
    retry_delay: float = ...,
    retry_max_delay: float = ...,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] = ...,
    timeout: float | None = None,
    debug: bool = False,
    capture_args: bool = True,
    capture_result: bool = True,
    max_repr: int = ...,
) -> Callable[[Callable[P, Coroutine[Any, Any, R]]], Workflow[P, R]]: ...
def optimize(
    fn: Any = None,
    /,
    *,
    strategy: str = "async_beam_search",
    beam_width: int = 3,
    num_proposals: int = 4,
    max_depth: int = 3,
    max_concurrent: int = 10,
    params: Iterable[Param[Any]] | None = None,
    **trace_options: Any,
) -> Any:
    """Make an `async def` workflow's `param`s trainable by beam search, every step traced.

    Each depth asks the proposer for `num_proposals` new parameter sets per beam member, scores
    them, and keeps the best `beam_width`, for `max_depth` rounds. `"async_beam_search"` runs up
    to `max_concurrent` evaluations at once, `"beam_search"` one at a time. `params` names the
    parameters to search (default: those the workflow reads). Other options are `async_trace`'s
    (`timeout`, `retry_attempts`, ...) and apply to every run, evaluations included.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown optimize strategy {strategy!r}; known: {', '.join(map(repr, STRATEGIES))}")
    unknown = set(trace_options) - set(OPTION_NAMES)
    if unknown:
        raise TypeError(
            f"@trace.optimize got unknown option(s) {', '.join(sorted(unknown))}; known: strategy, beam_width, "
            f"num_proposals, max_depth, max_concurrent, params, and async_trace's {', '.join(OPTION_NAMES)}"
        )
    if params is not None:
        if isinstance(params, Param) or not isinstance(params, Iterable):
            raise TypeError(f"params must be a list of opto.trace.param(...) objects, got {params!r}")
        params = tuple(_by_name(tuple(params)).values())
        if not params:
            raise ValueError("params is empty: name the opto.trace.param(...) objects to search, or leave params out")
    settings = _Settings(
        strategy,
        _positive_int("beam_width", beam_width),
        _positive_int("num_proposals", num_proposals),
        _positive_int("max_depth", max_depth),
        _positive_int("max_concurrent", max_concurrent),
        params,
    )
    opts = check_options(trace_options, "optimize")

    def decorate(func: Any) -> Workflow[Any, Any]:
        if not inspect.iscoroutinefunction(func):
            raise TypeError(f"@trace.optimize needs an 'async def' workflow, got {getattr(func, '__qualname__', func)!r}")
        return Workflow(func, settings, opts)

    return decorate if fn is None else decorate(fn)

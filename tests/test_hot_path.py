"""The traced call's fast path writes span attributes directly; these are the cases where it must not,
or must notice what changed. Cases with their own global providers run in a fresh interpreter."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from opentelemetry import trace

import opto
from conftest import run_python
from opto.telemetry import _current, semconv

if TYPE_CHECKING:
    from conftest import Spans

_SETUP = """
import asyncio, json, opto
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exporter = InMemorySpanExporter()

def install(**provider_options):
    provider = TracerProvider(**provider_options)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)

@opto.trace.async_trace
async def agent(query, k=3):
    return {"query": query, "k": k}

def attributes():
    return [dict(s.attributes) for s in exporter.get_finished_spans()]
"""


def test_a_tracer_provider_without_a_meter_provider_gets_every_attribute() -> None:
    out = run_python(
        _SETUP
        + """
install()
asyncio.run(agent("what is tracing?", k=5))
print(json.dumps(attributes()))
"""
    )
    (attrs,) = json.loads(out)
    assert attrs[semconv.ARG_PREFIX + "query"] == "'what is tracing?'"
    assert attrs[semconv.ARG_PREFIX + "k"] == "5"
    assert attrs[semconv.RESULT] == "{'query': 'what is tracing?', 'k': 5}"
    assert attrs[semconv.OUTCOME] == "ok" and attrs[semconv.ATTEMPTS] == 1
    assert attrs[semconv.CONCURRENCY] == 1 and attrs[semconv.TASK_NAME]
    assert attrs[semconv.CODE_FUNCTION_NAME] == "agent"


def test_a_meter_provider_set_later_gets_the_durations() -> None:
    out = run_python(
        _SETUP
        + """
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

install()
asyncio.run(agent("before"))
reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
asyncio.run(agent("after"))
counts = [p.count for r in reader.get_metrics_data().resource_metrics for s in r.scope_metrics
          for m in s.metrics if m.name == "opto.call.duration" for p in m.data.data_points]
print(json.dumps(counts))
"""
    )
    assert json.loads(out) == [1]


def test_span_limits_are_kept() -> None:
    """With an attribute count or length limit, attributes go through the SDK, which enforces it."""
    out = run_python(
        _SETUP
        + """
from opentelemetry.sdk.trace import SpanLimits
install(span_limits=SpanLimits(max_span_attributes=4, max_span_attribute_length=6))
asyncio.run(agent("what is tracing?"))
print(json.dumps(attributes()))
"""
    )
    (attrs,) = json.loads(out)
    assert len(attrs) == 4
    assert attrs[semconv.RESULT] == "{'quer"  # the newest are kept, cut to 6 characters
    assert attrs[semconv.OUTCOME] == "ok"


def test_a_sampled_out_call_still_nests_its_context() -> None:
    out = run_python(
        _SETUP
        + """
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
install(sampler=ALWAYS_OFF)

@opto.trace.async_trace
async def inner():
    return trace.get_current_span().get_span_context().span_id

async def main():
    outer = trace.get_current_span()
    seen = await inner()
    return seen != 0 and trace.get_current_span() is outer

print(json.dumps([asyncio.run(main()), attributes()]))
"""
    )
    assert json.loads(out) == [True, []]


async def test_attributes_the_body_sets_are_kept_with_ours(spans: Spans) -> None:
    @opto.trace.async_trace
    async def tagged(x: int) -> int:
        trace.get_current_span().set_attribute("app.tag", "mine")
        return x

    assert await tagged(2) == 2
    attrs = spans.one("test_attributes_the_body_sets_are_kept_with_ours.<locals>.tagged").attributes
    assert attrs["app.tag"] == "mine"
    assert attrs[semconv.OUTCOME] == "ok" and attrs[semconv.RESULT] == "2"


def test_attach_span_makes_the_span_current_until_detached() -> None:
    span = trace.get_tracer("probe").start_span("probe")
    before = trace.get_current_span()
    token = _current.attach_span(span)
    try:
        assert trace.get_current_span() is span
    finally:
        _current.detach(token)
        span.end()
    assert trace.get_current_span() is before


def test_the_apps_sampler_and_processors_are_shown_the_callers_context() -> None:
    """The span starts under the context the call read once (`telemetry.current`): the app's sampler
    and its processors' `on_start` get that context, with its span and baggage, for a call and a stream."""
    out = run_python(
        _SETUP
        + """
from opentelemetry import baggage, context
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, Sampler, SamplingResult, Decision

seen = []

class Probe(SpanProcessor):
    def on_start(self, span, parent_context=None):
        seen.append(["processor", span.name, baggage.get_baggage("user", parent_context),
                     trace.get_current_span(parent_context).get_span_context().span_id])

class Sampling(Sampler):
    def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None, links=None, trace_state=None):
        seen.append(["sampler", name, baggage.get_baggage("user", parent_context),
                     trace.get_current_span(parent_context).get_span_context().span_id])
        return SamplingResult(Decision.RECORD_AND_SAMPLE)
    def get_description(self):
        return "probe"

provider = TracerProvider(sampler=Sampling())
provider.add_span_processor(Probe())
trace.set_tracer_provider(provider)

@opto.trace.async_stream
async def items():
    yield 1

async def main():
    token = context.attach(baggage.set_baggage("user", "ada"))
    try:
        with trace.get_tracer("app").start_as_current_span("request") as request:
            await agent("q")
            async for _ in items():
                pass
            return request.get_span_context().span_id
    finally:
        context.detach(token)

request_id = asyncio.run(main())
print(json.dumps([request_id, seen]))
"""
    )
    request_id, seen = json.loads(out)
    mine = [entry for entry in seen if entry[1] in ("agent", "items")]
    assert [entry[:2] for entry in mine] == [["sampler", "agent"], ["processor", "agent"], ["sampler", "items"], ["processor", "items"]]
    assert all(user == "ada" and parent == request_id for _, _, user, parent in mine)


def test_another_runtime_context_keeps_the_apis_functions() -> None:
    """With a runtime context other than the default contextvars one (OTEL_PYTHON_CONTEXT), calls
    and streams go through the API's get_current/attach/detach, and still nest and restore."""
    out = run_python(
        """
from opentelemetry import context
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext

class Other(ContextVarsRuntimeContext):
    pass

context._RUNTIME_CONTEXT = Other()
"""
        + _SETUP
        + """
from opto.telemetry import _current
install()

@opto.trace.async_stream
async def items():
    yield trace.get_current_span().get_span_context().span_id

async def main():
    with trace.get_tracer("app").start_as_current_span("request") as request:
        await agent("q")
        inside = [i async for i in items()]
        return trace.get_current_span() is request, inside

restored, inside = asyncio.run(main())
spans = {s.name: s for s in exporter.get_finished_spans()}
print(json.dumps([_current.fast_path_available(), restored, inside == [spans["items"].context.span_id],
                  spans["agent"].parent.span_id == spans["request"].context.span_id,
                  spans["items"].parent.span_id == spans["request"].context.span_id]))
"""
    )
    assert json.loads(out) == [False, True, True, True, True]

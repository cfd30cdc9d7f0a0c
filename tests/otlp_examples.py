"""Inputs of the OTLP tests: the specification's OTLP/JSON examples (opentelemetry-proto, `examples/`) and a traced program."""

from __future__ import annotations

__all__ = ["SPEC_TRACE_EXAMPLE", "SPEC_METRICS_EXAMPLE", "TRACED_PROGRAM"]

# examples/trace.json
SPEC_TRACE_EXAMPLE = """
{"resourceSpans": [{
  "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "my.service"}}]},
  "scopeSpans": [{
    "scope": {"name": "my.library", "version": "1.0.0",
              "attributes": [{"key": "my.scope.attribute", "value": {"stringValue": "some scope attribute"}}]},
    "spans": [{
      "traceId": "5B8EFFF798038103D269B633813FC60C",
      "spanId": "EEE19B7EC3C1B174",
      "parentSpanId": "EEE19B7EC3C1B173",
      "name": "I'm a server span",
      "startTimeUnixNano": 1544712660000000000,
      "endTimeUnixNano": 1544712661000000000,
      "kind": 2,
      "attributes": [{"key": "my.span.attr", "value": {"stringValue": "some value"}}]
    }]
  }]
}]}
"""

# examples/metrics.json, without the scope attributes and descriptions (ignored by the dashboard).
SPEC_METRICS_EXAMPLE = {"resourceMetrics": [{
    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "my.service"}}]},
    "scopeMetrics": [{
        "scope": {"name": "my.library", "version": "1.0.0"},
        "metrics": [
            {"name": "my.counter", "unit": "1", "sum": {"aggregationTemporality": 1, "isMonotonic": True, "dataPoints": [
                {"asDouble": 5, "startTimeUnixNano": 1544712660300000000, "timeUnixNano": 1544712660300000000,
                 "attributes": [{"key": "my.counter.attr", "value": {"stringValue": "some value"}}]}]}},
            {"name": "my.gauge", "unit": "1", "gauge": {"dataPoints": [
                {"asInt": "10", "timeUnixNano": 1544712660300000000,
                 "attributes": [{"key": "my.gauge.attr", "value": {"stringValue": "some value"}}]}]}},
            {"name": "my.histogram", "unit": "1", "histogram": {"aggregationTemporality": 1, "dataPoints": [
                {"startTimeUnixNano": 1544712660300000000, "timeUnixNano": 1544712660300000000, "count": 3, "sum": 3,
                 "bucketCounts": [1, 1, 1], "explicitBounds": [1], "min": 1, "max": 1}]}},
        ],
    }],
}]}


# A traced program: `opto.configure(**json.loads(argv[1]))`, then an opto agent retried once and a
# failing call inside a workflow, then plain OpenTelemetry spans (a server span, and a consumer
# linked to it with an error status). It prints every field of the spans its own SDK finished, as
# dashboard span records, and exits without opto.shutdown(): exporters flush at exit.
TRACED_PROGRAM = """
import asyncio, json, sys
import opto
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

opto.configure(**json.loads(sys.argv[1]))
seen = InMemorySpanExporter()
trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(seen))
opto.trace.set_testing(True)
failures = iter([opto.RetryableError("rate limited"), None])

@opto.trace.async_trace(retry_attempts=2)
async def agent(query: str) -> str:
    exc = next(failures)
    if exc is not None:
        raise exc
    return query.upper()

@opto.trace.async_trace
async def broken() -> None:
    raise ValueError("bad input")

@opto.trace.async_trace
async def workflow() -> None:
    await agent("hi")
    try:
        await broken()
    except ValueError:
        pass

asyncio.run(workflow())
tracer = trace.get_tracer("plain-sdk", "9.9")
with tracer.start_as_current_span("GET /cart", kind=SpanKind.SERVER) as server:
    server.set_attribute("http.route", "/cart")
with tracer.start_as_current_span(
    "consume", kind=SpanKind.CONSUMER, links=[Link(server.get_span_context(), {"link.kind": "queue"})]
) as consumer:
    consumer.add_event("received", {"bytes": 12})
    consumer.set_status(Status(StatusCode.ERROR, "boom"))

hexid = lambda n, width: format(n, f"0{width}x")
plain = lambda attrs: {k: list(v) if isinstance(v, tuple) else v for k, v in attrs.items()}
print(json.dumps([{
    "trace_id": hexid(s.context.trace_id, 32), "span_id": hexid(s.context.span_id, 16),
    "parent_span_id": hexid(s.parent.span_id, 16) if s.parent else None, "name": s.name,
    "kind": s.kind.name.lower(), "state": "ended", "start_ns": s.start_time, "end_ns": s.end_time,
    "status": {"code": s.status.status_code.name.lower(), "message": s.status.description or ""},
    "attributes": plain(s.attributes),
    "events": [{"name": e.name, "time_ns": e.timestamp, "attributes": plain(e.attributes)} for e in s.events],
    "links": [{"trace_id": hexid(l.context.trace_id, 32), "span_id": hexid(l.context.span_id, 16),
               "attributes": plain(l.attributes)} for l in s.links],
    "resource": plain(s.resource.attributes),
    "scope": {"name": s.instrumentation_scope.name, "version": s.instrumentation_scope.version or ""},
} for s in seen.get_finished_spans()]))
"""

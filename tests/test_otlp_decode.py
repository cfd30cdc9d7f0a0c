"""OTLP trace requests (protobuf and JSON) become the dashboard's span records unchanged."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry import trace as otel_trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

import opto
from opto.telemetry import semconv
from opto_dashboard.otlp_decode import DecodeError, decode_metrics, decode_traces, parse, process_of, to_records
from opto_dashboard.records import MAX_ITEMS
from otlp_examples import SPEC_METRICS_EXAMPLE, SPEC_TRACE_EXAMPLE



def to_otlp_json(request: ExportTraceServiceRequest) -> dict[str, Any]:
    """The OTLP/JSON form of a request: proto3 JSON with hex ids, as the specification writes it."""
    obj = json_format.MessageToDict(request)
    for rs in obj["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for holder in [span, *span.get("links", [])]:
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if key in holder:
                            holder[key] = base64.b64decode(holder[key]).hex()
    return obj


@pytest.fixture
def sdk_spans(spans: Any) -> list[ReadableSpan]:
    """Real SDK spans: an opto call that retried once, and plain producer/consumer spans with a link."""
    opto.trace.set_testing(True)
    attempts = iter([opto.RetryableError("transient"), None])

    @opto.trace.async_trace(retry_attempts=2)
    async def agent(query: str) -> str:
        exc = next(attempts)
        if exc is not None:
            raise exc
        return query.upper()

    assert asyncio.run(agent("hi")) == "HI"
    tracer = otel_trace.get_tracer("plain-sdk", "9.9")
    with tracer.start_as_current_span("producer", kind=SpanKind.PRODUCER) as producer:
        producer.set_attribute("messaging.system", "kafka")
    with tracer.start_as_current_span(
        "consumer", kind=SpanKind.CONSUMER, links=[Link(producer.get_span_context(), {"link.kind": "queue"})]
    ) as consumer:
        consumer.set_attribute("batch.sizes", [1, 2, 3])
        consumer.add_event("received", {"bytes": 12})
        consumer.set_status(Status(StatusCode.ERROR, "boom"))
    return spans.all()


def test_protobuf_spans_become_records_with_every_field(sdk_spans: list[ReadableSpan]) -> None:
    """Ids, parent, kind, times, status, attributes, events, links, resource and scope arrive unchanged."""
    body = encode_spans(sdk_spans).SerializeToString()
    decoded = decode_traces(body, "protobuf")
    assert decoded.rejected == 0
    assert len(decoded.items) == len(sdk_spans) == 3
    by_name = {r.name: r for r in decoded.items}
    for span in sdk_spans:
        record = by_name[span.name]
        ctx = span.get_span_context()
        assert record.trace_id == format(ctx.trace_id, "032x")
        assert record.span_id == format(ctx.span_id, "016x")
        assert record.parent_span_id == (None if span.parent is None else format(span.parent.span_id, "016x"))
        assert record.state == "ended"
        assert (record.start_ns, record.end_ns) == (span.start_time, span.end_time)
        assert record.attributes == {k: list(v) if isinstance(v, tuple) else v for k, v in span.attributes.items()}
        assert record.resource == dict(span.resource.attributes)
        assert record.scope == {"name": span.instrumentation_scope.name, "version": span.instrumentation_scope.version}
        assert [(e["name"], e["time_ns"], e["attributes"]) for e in record.events] == [
            (e.name, e.timestamp, dict(e.attributes)) for e in span.events
        ]
    agent = next(r for r in decoded.items if r.attributes.get(semconv.FUNCTION, "").endswith("agent"))
    assert agent.attributes[semconv.OUTCOME] == "ok"
    assert agent.attributes[semconv.ATTEMPTS] == 2
    assert [e["name"] for e in agent.events] == [semconv.EVENT_RETRY]
    assert agent.outcome == "ok"
    consumer, producer = by_name["consumer"], by_name["producer"]
    assert (consumer.kind, producer.kind) == ("consumer", "producer")
    assert (consumer.status_code, consumer.status_message) == ("error", "boom")
    assert consumer.outcome == "error"
    assert consumer.attributes["batch.sizes"] == [1, 2, 3]
    assert consumer.links == [
        {"trace_id": producer.trace_id, "span_id": producer.span_id, "attributes": {"link.kind": "queue"}}
    ]


def test_json_with_hex_ids_decodes_to_the_same_records_as_protobuf(sdk_spans: list[ReadableSpan]) -> None:
    """OTLP/JSON (hex ids, camelCase, int64 as strings) and protobuf give identical records."""
    request = encode_spans(sdk_spans)
    from_protobuf = decode_traces(request.SerializeToString(), "protobuf").items
    from_json = decode_traces(json.dumps(to_otlp_json(request)).encode(), "json").items
    assert [r.to_json() for r in from_json] == [r.to_json() for r in from_protobuf]


def test_the_specification_example_decodes() -> None:
    """The spec's trace.json: uppercase hex ids are accepted and stored lowercase."""
    decoded = decode_traces(SPEC_TRACE_EXAMPLE.encode(), "json")
    assert decoded.rejected == 0
    (record,) = decoded.items
    assert record.to_json() | {"duration_ms": None} == {
        "trace_id": "5b8efff798038103d269b633813fc60c",
        "span_id": "eee19b7ec3c1b174",
        "parent_span_id": "eee19b7ec3c1b173",
        "name": "I'm a server span",
        "kind": "server",
        "state": "ended",
        "start_ns": 1544712660000000000,
        "end_ns": 1544712661000000000,
        "status": {"code": "unset", "message": ""},
        "attributes": {"my.span.attr": "some value"},
        "events": [],
        "links": [],
        "resource": {"service.name": "my.service"},
        "scope": {"name": "my.library", "version": "1.0.0"},
        "duration_ms": None,
        "outcome": "ok",
        "process_id": None,
        "service": "my.service",
    }


@pytest.mark.parametrize(
    "rename",
    [
        pytest.param(lambda s: s, id="int64-as-numbers"),
        pytest.param(lambda s: s.replace("1544712660000000000", '"1544712660000000000"'), id="int64-as-strings"),
        pytest.param(lambda s: s.replace('"kind": 2', '"kind": "SPAN_KIND_SERVER"'), id="enum-by-name"),
        pytest.param(
            lambda s: s.replace("traceId", "trace_id").replace("spanId", "span_id").replace("parentSpan_id", "parent_span_id")
            .replace("resourceSpans", "resource_spans").replace("scopeSpans", "scope_spans"),
            id="snake-case-keys",
        ),
        pytest.param(lambda s: s.replace('"kind": 2', '"kind": 2, "futureField": {"x": 1}'), id="unknown-keys-ignored"),
    ],
)
def test_json_spellings_the_proto3_mapping_allows(rename: Any) -> None:
    """Receivers accept the proto3 JSON mapping's equivalent spellings and ignore unknown keys."""
    (record,) = decode_traces(rename(SPEC_TRACE_EXAMPLE).encode(), "json").items
    assert (record.trace_id, record.parent_span_id, record.kind) == (
        "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b173", "server"
    )


def _example() -> dict[str, Any]:
    return json.loads(SPEC_TRACE_EXAMPLE)


def _with_spans(*changes: dict[str, Any]) -> bytes:
    """The spec example with one span per change dict applied to a copy of its span."""
    obj = _example()
    base = obj["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    spans = []
    for i, change in enumerate(changes):
        span = copy.deepcopy(base) | {"spanId": f"{i + 1:016x}"}
        span.update(change)
        spans.append({k: v for k, v in span.items() if v is not None})
    obj["resourceSpans"][0]["scopeSpans"][0]["spans"] = spans
    return json.dumps(obj).encode()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        pytest.param({"traceId": "00" * 16}, "span.trace_id: expected a non-zero 16-byte id", id="zero-trace-id"),
        pytest.param({"traceId": "ab" * 15}, "span.trace_id: expected a non-zero 16-byte id", id="short-trace-id"),
        pytest.param({"spanId": "ab" * 9}, "span.span_id: expected a non-zero 8-byte id", id="long-span-id"),
        pytest.param({"endTimeUnixNano": None}, "span.end_ns: an OTLP span needs end_time_unix_nano", id="no-end"),
        pytest.param({"name": "x" * 5000}, "span.name: longer than", id="name-too-long"),
        pytest.param({"startTimeUnixNano": str(2**64 - 1)}, "span.start_ns: 18446744073709551615 is past", id="time-past-int64"),
        pytest.param(
            {"events": [{"name": "e", "timeUnixNano": str(2**63)}]}, "span.events[0].time_ns", id="event-time-past-int64"
        ),
        pytest.param(
            {"links": [{"traceId": "ab" * 16, "spanId": "00" * 8}]}, "span.links[0].span_id", id="bad-link-id"
        ),
        pytest.param(
            {"attributes": [{"key": f"k{i}", "value": {"intValue": i}} for i in range(MAX_ITEMS + 1)]},
            "span.attributes: more than",
            id="too-many-attributes",
        ),
    ],
)
def test_an_invalid_span_is_rejected_alone(change: dict[str, Any], reason: str) -> None:
    """A span that cannot be a valid record is counted as rejected with a reason; the others are kept."""
    decoded = decode_traces(_with_spans({}, change, {}), "json")
    assert [r.span_id for r in decoded.items] == ["0000000000000001", "0000000000000003"]
    assert decoded.rejected == 1
    assert reason in decoded.error


def test_attribute_values_of_every_otlp_type() -> None:
    """Scalars and scalar arrays stay as they are; maps and nested arrays become JSON; bytes base64; empty values drop."""
    request = parse(SPEC_TRACE_EXAMPLE.encode(), "json", ExportTraceServiceRequest())
    span = request.resource_spans[0].scope_spans[0].spans[0]
    del span.attributes[:]
    kv = KeyValueList(values=[KeyValue(key="a", value=AnyValue(int_value=1)), KeyValue(key="b", value=AnyValue(
        array_value=ArrayValue(values=[AnyValue(string_value="x")])))])
    span.attributes.extend([
        KeyValue(key="s", value=AnyValue(string_value="text")),
        KeyValue(key="i", value=AnyValue(int_value=-7)),
        KeyValue(key="d", value=AnyValue(double_value=0.5)),
        KeyValue(key="b", value=AnyValue(bool_value=True)),
        KeyValue(key="arr", value=AnyValue(array_value=ArrayValue(values=[AnyValue(int_value=1), AnyValue(string_value="two")]))),
        KeyValue(key="nested", value=AnyValue(array_value=ArrayValue(values=[AnyValue(array_value=ArrayValue(values=[AnyValue(int_value=1)]))]))),
        KeyValue(key="map", value=AnyValue(kvlist_value=kv)),
        KeyValue(key="raw", value=AnyValue(bytes_value=b"\x00\xff")),
        KeyValue(key="empty", value=AnyValue()),
    ])
    (record,) = to_records(request).items
    assert record.attributes == {
        "s": "text", "i": -7, "d": 0.5, "b": True, "arr": [1, "two"], "nested": "[[1]]",
        "map": '{"a":1,"b":["x"]}', "raw": "AP8=",
    }


@pytest.mark.parametrize(
    ("body", "encoding", "reason"),
    [
        pytest.param(b"\x0a\xff\xff", "protobuf", "not a protobuf ExportTraceServiceRequest", id="truncated-protobuf"),
        pytest.param(b"{not json", "json", "body is not JSON", id="malformed-json"),
        pytest.param(b"\xff\xfe", "json", "body is not JSON", id="invalid-utf8"),
        pytest.param(b"[]", "json", "must be a JSON object (an OTLP/JSON ExportTraceServiceRequest), got list", id="json-array"),
        pytest.param(b'{"resourceSpans": 5}', "json", "not an OTLP/JSON ExportTraceServiceRequest", id="wrong-type"),
        pytest.param(
            SPEC_TRACE_EXAMPLE.replace("EEE19B7EC3C1B174", "not-hex").encode(), "json",
            "resourceSpans[0].scopeSpans[0].spans[0].spanId: expected hex", id="non-hex-id",
        ),
    ],
)
def test_undecodable_bodies_raise_with_a_reason(body: bytes, encoding: Any, reason: str) -> None:
    """A body that is not an export request raises DecodeError saying what is wrong (the 400 reason)."""
    with pytest.raises(DecodeError) as info:
        decode_traces(body, encoding)
    assert reason in str(info.value)


def test_plain_sdk_resource_and_scope_of_another_provider() -> None:
    """Spans from another SDK's provider carry its resource; no opto attribute is needed."""
    provider = TracerProvider(resource=Resource.create({"service.name": "checkout", "deployment.environment": "prod"}))
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("shop").start_as_current_span("GET /cart", kind=SpanKind.SERVER):
        pass
    (record,) = decode_traces(encode_spans(exporter.get_finished_spans()).SerializeToString(), "protobuf").items
    assert (record.service, record.resource["deployment.environment"], record.kind) == ("checkout", "prod", "server")
    assert record.outcome == "ok"
    provider.shutdown()


def test_metric_points_in_the_websocket_door_shape() -> None:
    """Sums and gauges become value points, explicit-bucket histograms histogram points, under their resource."""
    decoded = decode_metrics(json.dumps(SPEC_METRICS_EXAMPLE).encode(), "json")
    assert (decoded.rejected, decoded.warning) == (0, "")
    (batch,) = decoded.batches
    assert batch.resource == {"service.name": "my.service"}
    t = 1544712660300000000
    assert batch.items == [
        {"name": "my.counter", "time_ns": t, "attributes": {"my.counter.attr": "some value"}, "value": 5.0},
        {"name": "my.gauge", "time_ns": t, "attributes": {"my.gauge.attr": "some value"}, "value": 10},
        {"name": "my.histogram", "time_ns": t, "attributes": {},
         "histogram": {"count": 3, "sum": 3.0, "min": 1.0, "max": 1.0, "bounds": [1.0], "counts": [1, 1, 1]}},
    ]


def test_invalid_metric_points_are_rejected_and_counted() -> None:
    """A point with a name too long or a time past int64 is rejected alone; a bad resource rejects all its points."""
    obj = copy.deepcopy(SPEC_METRICS_EXAMPLE)
    obj["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][1]["name"] = "m" * 5000
    obj["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][2]["histogram"]["dataPoints"][0]["timeUnixNano"] = str(2**64 - 1)
    decoded = decode_metrics(json.dumps(obj).encode(), "json")
    assert [p["name"] for p in decoded.items] == ["my.counter"]
    assert (decoded.rejected, decoded.error) == (2, f"data point of {'m' * 80!r} rejected: metric.name: longer than 1024 chars")
    obj["resourceMetrics"][0]["resource"]["attributes"] = [
        {"key": f"k{i}", "value": {"intValue": i}} for i in range(MAX_ITEMS + 1)
    ]
    decoded = decode_metrics(json.dumps(obj).encode(), "json")
    assert (decoded.items, decoded.rejected) == ([], 3)  # every point of the resource
    assert "resource: more than" in decoded.error


def test_process_of_a_resource_is_stable_and_named() -> None:
    """The same resource is the same process across requests; its service, pid, host and SDK are shown."""
    resource = {"service.name": "checkout", "process.pid": 42, "host.name": "box",
                "telemetry.sdk.name": "opentelemetry", "telemetry.sdk.version": "1.45.2"}
    first, again = process_of(resource, 1), process_of(dict(reversed(resource.items())), 2)
    assert first.id == again.id and len(first.id) == 32
    assert (first.service, first.pid, first.host, first.sdk) == ("checkout", 42, "box", "opentelemetry/1.45.2 (otlp)")
    other = process_of(resource | {"process.pid": 43}, 1)
    assert other.id != first.id
    assert process_of({}, 1).service == "unknown_service"

"""Generated hostile input at the real app: OTLP bodies (JSON and protobuf, plausible and garbage, compressed or not)
and Host/Origin headers. Whatever arrives: never a 500, the server keeps serving, and every refusal is counted."""

from __future__ import annotations

import base64
import gzip
import ipaddress
import json
import re
import socket
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from dashboard_server import Dashboard
from opto_dashboard.otlp_decode import DecodeError, parse

SETTINGS = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    with Dashboard(tmp_path_factory.mktemp("props") / "opto.db") as d:
        yield d


@pytest.fixture(scope="module")
def client(dashboard: Dashboard) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=dashboard.url, timeout=60) as c:
        yield c


# --- OTLP bodies ------------------------------------------------------------------------------

ids = st.one_of(st.binary(min_size=0, max_size=20).map(bytes.hex), st.text(max_size=40))
times = st.one_of(st.integers(min_value=0, max_value=2**64 - 1), st.integers(), st.text(max_size=30), st.floats())
scalars = st.one_of(
    st.builds(lambda v: {"stringValue": v}, st.text(max_size=50)),
    st.builds(lambda v: {"intValue": v}, st.one_of(st.integers(), st.text(max_size=25))),
    st.builds(lambda v: {"doubleValue": v}, st.one_of(st.floats(), st.text(max_size=10))),
    st.builds(lambda v: {"boolValue": v}, st.booleans()),
    st.builds(lambda v: {"bytesValue": base64.b64encode(v).decode()}, st.binary(max_size=20)),
)
any_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.builds(lambda vs: {"arrayValue": {"values": vs}}, st.lists(inner, max_size=4)),
        st.builds(lambda kvs: {"kvlistValue": {"values": [{"key": k, "value": v} for k, v in kvs]}},
                  st.lists(st.tuples(st.text(max_size=10), inner), max_size=4)),
    ),
    max_leaves=20,
)
attributes = st.lists(st.builds(lambda k, v: {"key": k, "value": v}, st.text(max_size=300), any_values), max_size=5)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
spans = st.fixed_dictionaries({}, optional={
    "traceId": ids, "spanId": ids, "parentSpanId": ids, "name": st.text(max_size=300), "kind": st.integers(-2, 9),
    "startTimeUnixNano": times, "endTimeUnixNano": times, "attributes": attributes,
    "status": st.fixed_dictionaries({}, optional={"code": st.integers(-1, 5), "message": st.text(max_size=50)}),
    "events": st.lists(st.fixed_dictionaries({"name": st.text(max_size=20), "timeUnixNano": times, "attributes": attributes}), max_size=3),
    "links": st.lists(st.fixed_dictionaries({"traceId": ids, "spanId": ids}), max_size=3),
    "extra": json_values,
})
trace_requests = st.builds(
    lambda resources: {"resourceSpans": resources},
    st.lists(st.fixed_dictionaries({
        "resource": st.fixed_dictionaries({"attributes": attributes}),
        "scopeSpans": st.lists(st.fixed_dictionaries({"spans": st.lists(spans, max_size=5)}), max_size=3),
    }), max_size=3),
)
points = st.fixed_dictionaries({"timeUnixNano": times, "attributes": attributes}, optional={
    "asDouble": st.floats(), "asInt": st.one_of(st.integers(), st.text(max_size=5)), "count": times, "sum": st.floats(),
    "min": st.one_of(st.floats(), st.text(max_size=5)), "max": st.floats(),
    "explicitBounds": st.lists(st.floats(), max_size=5), "bucketCounts": st.lists(times, max_size=6),
})
metric_requests = st.builds(
    lambda name, kind, pts: {"resourceMetrics": [{"resource": {}, "scopeMetrics": [{"metrics": [{"name": name, kind: {"dataPoints": pts}}]}]}]},
    st.one_of(st.text(max_size=300), st.integers()), st.sampled_from(["gauge", "sum", "histogram", "exponentialHistogram", "summary", "bogus"]),
    st.lists(points, max_size=4),
)


def to_protobuf(obj: dict[str, Any]) -> bytes:
    """The protobuf encoding of a generated request when it is a valid one; garbage bytes otherwise."""
    try:
        return parse(json.dumps(obj).encode(), "json", ExportTraceServiceRequest()).SerializeToString()
    except (DecodeError, ValueError, OverflowError):
        return json.dumps(obj).encode()[:200]


@st.composite
def otlp_requests(draw: st.DrawFn) -> tuple[str, dict[str, str], bytes]:
    """(path, headers, body): a plausible or garbage body, in the declared encoding or not, compressed or not."""
    path = draw(st.sampled_from(["/v1/traces", "/v1/metrics"]))
    shape = draw(st.sampled_from(["trace", "metrics", "json", "garbage", "protobuf", "protobuf-mangled"]))
    if shape == "trace":
        body = json.dumps(draw(trace_requests)).encode()
    elif shape == "metrics":
        body = json.dumps(draw(metric_requests)).encode()
    elif shape == "json":
        body = json.dumps(draw(json_values)).encode()
    elif shape == "garbage":
        body = draw(st.binary(max_size=300))
    else:
        body = to_protobuf(draw(trace_requests))
        if shape == "protobuf-mangled" and body:
            at = draw(st.integers(0, len(body) - 1))
            body = body[:at] + draw(st.binary(min_size=1, max_size=8)) + body[at + draw(st.integers(0, 8)):]
    content_type = draw(st.sampled_from(
        ["application/x-protobuf", "application/json"] * 3 + ["text/plain", "", "application/json; charset=utf-8"]
    ))
    headers = {"Content-Type": content_type}
    coding = draw(st.sampled_from(["identity", "gzip", "deflate", "gzip-members", "gzip-truncated", "gzip-lie", "br"]))
    if coding == "gzip":
        body = gzip.compress(body)
    elif coding == "deflate":
        body = zlib.compress(body)
    elif coding == "gzip-members":
        cut = draw(st.integers(0, len(body)))
        body = gzip.compress(body[:cut]) + gzip.compress(body[cut:]) * draw(st.integers(1, 80))
    elif coding == "gzip-truncated":
        body = gzip.compress(body)[: draw(st.integers(0, 30))]
    if coding != "identity":
        headers["Content-Encoding"] = coding.split("-")[0] if coding != "br" else "br"
    return path, headers, body


def counted(dashboard: Dashboard) -> int:
    """Every OTLP refusal lands in one of these counters."""
    return dashboard.app.state.stats.bad_frames + dashboard.app.state.refused.otlp_busy


@SETTINGS
@given(request=otlp_requests())
def test_generated_otlp_bodies_never_get_a_500_and_every_refusal_counts(dashboard: Dashboard, client: httpx.Client, request: tuple[str, dict[str, str], bytes]) -> None:
    path, headers, body = request
    before = counted(dashboard)
    response = client.post(path, content=body, headers=headers)
    assert response.status_code in (200, 400, 413, 415, 503), (response.status_code, response.text[:300])
    assert counted(dashboard) == before + (response.status_code != 200)
    assert client.get("/api/live").status_code == 200


# --- Host and Origin headers ------------------------------------------------------------------

VISIBLE = st.characters(min_codepoint=33, max_codepoint=126)
ports = st.one_of(st.just(""), st.integers(0, 99999).map(lambda p: f":{p}"), st.text(VISIBLE, max_size=6).map(lambda t: ":" + t))
names = st.one_of(
    st.sampled_from(["localhost", "LOCALHOST", "LocalHost", "127.0.0.1", "127.255.0.9", "[::1]", "[0:0:0:0:0:0:0:1]",
                     "evil.example", "localhost.evil.example", "127.0.0.1.nip.io", "0.0.0.0", "[::]", "10.0.0.1", "[::1", "::1"]),
    st.text(VISIBLE, min_size=1, max_size=30),
    st.from_regex(r"\A127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\Z"),
)
hosts = st.builds(lambda n, p: n + p, names, ports)


def loopback(host: str) -> bool:
    """The rule restated without the app's code: localhost, 127.x.x.x or [::1], any case, with an optional decimal port."""
    match = re.fullmatch(r"(\[[^\]]*\]|[^:\[\]]*)(:[0-9]{1,5})?", host)
    if match is None:
        return False
    name = match[1].lower()
    try:
        return name == "localhost" or (ipaddress.IPv6Address(name[1:-1]) if name.startswith("[") else ipaddress.IPv4Address(name)).is_loopback
    except ValueError:
        return False


@SETTINGS
@given(host=hosts)
def test_generated_hosts_are_served_only_when_loopback_and_refusals_count(dashboard: Dashboard, client: httpx.Client, host: str) -> None:
    before = dashboard.app.state.refused.host
    response = client.get("/api/live", headers={"Host": host})
    assert response.status_code == (200 if loopback(host) else 421), host
    assert dashboard.app.state.refused.host == before + (response.status_code == 421)
    if response.status_code == 421:
        assert "--allowed-host" in response.json()["detail"]


origins = st.one_of(
    st.builds(lambda scheme, host: f"{scheme}://{host}", st.sampled_from(["http", "https", "ws", "file"]), hosts),
    st.sampled_from(["null", ""]), st.text(VISIBLE, max_size=30),
)


@settings(SETTINGS, max_examples=60)
@given(origin=origins)
def test_generated_origins_open_the_live_socket_only_from_this_dashboard(dashboard: Dashboard, origin: str) -> None:
    here = dashboard.url.removeprefix("http://")
    refused = dashboard.app.state.refused
    before = refused.origin + refused.host
    _, scheme_end, netloc = origin.partition("://")
    expected = bool(scheme_end) and netloc.lower() == here
    host, port = here.split(":")
    with socket.create_connection((host, int(port))) as sock:
        try:
            with connect(dashboard.ws_url + "/ws/live", sock=sock, origin=origin, open_timeout=30):  # type: ignore[arg-type]
                opened = True
        except InvalidStatus as exc:
            assert exc.response.status_code == 403
            opened = False
    assert opened == expected, origin
    assert refused.origin + refused.host == before + (not opened)

"""A stand-in OTLP/HTTP collector for export tests, built only from `opentelemetry-proto`.

`python otlp_receiver.py OUT` listens on 127.0.0.1 (port printed on the first stdout line) and,
for every POST, appends one JSON line to OUT: the path, the headers and the decoded request with
plain values, written before the 200 reply so a finished exporter's data is already in OUT.
"""

from __future__ import annotations

import gzip
import json
import sys
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

__all__ = ["main"]


def plain(value: AnyValue) -> Any:
    """An AnyValue as the Python value the SDK was given."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [plain(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: plain(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


def attrs(pairs: Any) -> dict[str, Any]:
    return {kv.key: plain(kv.value) for kv in pairs}


def traces(body: bytes) -> list[dict[str, Any]]:
    """Every span of the request, with the fields of a dashboard span record (ended)."""
    request = ExportTraceServiceRequest.FromString(body)
    return [
        {
            "trace_id": span.trace_id.hex(),
            "span_id": span.span_id.hex(),
            "parent_span_id": span.parent_span_id.hex() or None,
            "name": span.name,
            "kind": Span.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_").lower(),
            "state": "ended",
            "start_ns": span.start_time_unix_nano,
            "end_ns": span.end_time_unix_nano,
            "status": {
                "code": Status.StatusCode.Name(span.status.code).removeprefix("STATUS_CODE_").lower(),
                "message": span.status.message,
            },
            "attributes": attrs(span.attributes),
            "events": [{"name": e.name, "time_ns": e.time_unix_nano, "attributes": attrs(e.attributes)} for e in span.events],
            "links": [
                {"trace_id": link.trace_id.hex(), "span_id": link.span_id.hex(), "attributes": attrs(link.attributes)}
                for link in span.links
            ],
            "resource": attrs(rs.resource.attributes),
            "scope": {"name": ss.scope.name, "version": ss.scope.version},
        }
        for rs in request.resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    ]


def metrics(body: bytes) -> list[dict[str, Any]]:
    """Each metric's name, resource and kind; for a histogram, also its temporality and points."""
    request = ExportMetricsServiceRequest.FromString(body)
    found = []
    for rm in request.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                metric: dict[str, Any] = {"resource": attrs(rm.resource.attributes), "scope": sm.scope.name, "name": m.name,
                                          "data": m.WhichOneof("data")}
                if metric["data"] == "histogram":
                    metric["temporality"] = m.histogram.aggregation_temporality
                    metric["points"] = [
                        {"attributes": attrs(p.attributes), "count": p.count, "sum": p.sum, "buckets": list(p.bucket_counts),
                         "bounds": list(p.explicit_bounds)}
                        for p in m.histogram.data_points
                    ]
                found.append(metric)
    return found


class Handler(BaseHTTPRequestHandler):
    out: Any = None
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        encoding = self.headers.get("Content-Encoding", "")
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        is_metrics = self.path.endswith("/v1/metrics")
        line = {
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "metrics" if is_metrics else "spans": metrics(body) if is_metrics else traces(body),
        }
        with self.lock:
            self.out.write(json.dumps(line) + "\n")
            self.out.flush()
        reply = (ExportMetricsServiceResponse() if is_metrics else ExportTraceServiceResponse()).SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main() -> None:
    with open(sys.argv[1], "a", encoding="utf-8") as out:
        Handler.out = out
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        print(server.server_address[1], flush=True)
        server.serve_forever()


if __name__ == "__main__":
    main()

"""`opto.configure(otlp_endpoint=...)` and the `OTEL_*` variables export over OTLP/HTTP to a collector.

The collector is `otlp_receiver.py`, a separate process built from `opentelemetry-proto`; the
traced programs run in subprocesses, since `configure()` installs process-wide providers.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import opto
from dashboard_server import Dashboard, DashboardProcess, run_program
from otlp_examples import TRACED_PROGRAM

RECEIVER = Path(__file__).with_name("otlp_receiver.py")



@dataclass
class Receiver:
    url: str
    out: Path

    def requests(self) -> list[dict[str, Any]]:
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text().splitlines()]

    def spans(self) -> list[dict[str, Any]]:
        return [span for r in self.requests() if "spans" in r for span in r["spans"]]


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    out = tmp_path / "received.jsonl"
    proc = subprocess.Popen([sys.executable, str(RECEIVER), str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield Receiver(f"http://127.0.0.1:{port}", out)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return env | extra


def run(program: str, config: dict[str, Any], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-c", program, json.dumps(config)], env=env, capture_output=True, text=True, timeout=50
    )
    assert proc.returncode == 0, proc.stderr
    return proc


def test_spans_reach_the_collector_with_opto_attributes_and_events_unchanged(receiver: Receiver) -> None:
    """Every span the program finished arrives, flushed at exit, with every field (opto attributes, events) unchanged."""
    config = {"otlp_endpoint": receiver.url, "otlp_headers": {"x-api-key": "k1"}, "service_name": "exporter-test"}
    # The argument wins over the environment variable, which points nowhere.
    proc = run(TRACED_PROGRAM, config, clean_env(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9"))
    sent = {s["span_id"]: s for s in json.loads(proc.stdout)}
    received = {s["span_id"]: s for s in receiver.spans()}
    assert received == sent and len(sent) == 5  # every field: ids, times, status, attributes, events, links, resource
    assert "did not get" not in proc.stderr
    agent = next(s for s in received.values() if s["name"] == "agent")
    assert agent["attributes"]["opto.outcome"] == "ok"
    assert agent["attributes"]["opto.attempts"] == 2
    assert [e["name"] for e in agent["events"]] == ["opto.retry"]
    assert agent["resource"]["service.name"] == "exporter-test"
    workflow = next(s for s in received.values() if s["name"] == "workflow")
    assert agent["parent_span_id"] == workflow["span_id"]
    requests = receiver.requests()
    assert {r["path"] for r in requests} == {"/v1/traces", "/v1/metrics"}
    assert all(r["headers"]["x-api-key"] == "k1" for r in requests)
    assert all(r["headers"]["content-type"] == "application/x-protobuf" for r in requests)
    metrics = {m["name"]: m for r in requests for m in r.get("metrics", [])}
    duration = metrics["opto.call.duration"]
    assert duration["data"] == "histogram" and duration["scope"] == "opto"
    assert duration["resource"]["service.name"] == "exporter-test"
    assert duration["temporality"] == 2  # cumulative, the exporter's default
    # Kept in process (not by the SDK's instrument), one point per function and outcome; the
    # retried agent is one call.
    counts = {(p["attributes"]["opto.function"], p["attributes"]["opto.outcome"]): p["count"] for p in duration["points"]}
    assert counts == {("workflow", "ok"): 1, ("agent", "ok"): 1, ("broken", "error"): 1}
    assert all(sum(p["buckets"]) == p["count"] and len(p["buckets"]) == len(p["bounds"]) + 1 for p in duration["points"])
    assert metrics["opto.calls.active"]["data"] == "sum"


def test_call_durations_follow_the_exporters_temporality(receiver: Receiver) -> None:
    env = clean_env(OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE="delta")
    run(TRACED_PROGRAM, {"otlp_endpoint": receiver.url}, env)
    (duration,) = [m for r in receiver.requests() for m in r.get("metrics", []) if m["name"] == "opto.call.duration"]
    assert duration["temporality"] == 1 and sum(p["count"] for p in duration["points"]) == 3


@pytest.mark.parametrize(
    ("env", "service", "extra"),
    [
        pytest.param(
            {"OTEL_SERVICE_NAME": "from-env", "OTEL_RESOURCE_ATTRIBUTES": "service.name=loses,deployment.environment=staging",
             "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"},
            "from-env", {"deployment.environment": "staging"}, id="service-name-var-wins-gzip",
        ),
        pytest.param(
            {"OTEL_RESOURCE_ATTRIBUTES": "service.name=billing,team=payments"},
            "billing", {"team": "payments"}, id="service-name-from-resource-attributes",
        ),
    ],
)
def test_standard_environment_variables(receiver: Receiver, env: dict[str, str], service: str, extra: dict[str, str]) -> None:
    """With no arguments, OTEL_EXPORTER_OTLP_ENDPOINT/HEADERS, OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES apply."""
    env = clean_env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, OTEL_EXPORTER_OTLP_HEADERS="authorization=Bearer%20t0k", **env)
    run(TRACED_PROGRAM, {}, env)
    spans = receiver.spans()
    assert len(spans) == 5
    assert all(s["resource"]["service.name"] == service and extra.items() <= s["resource"].items() for s in spans)
    requests = receiver.requests()
    assert all(r["headers"]["authorization"] == "Bearer t0k" for r in requests)
    if env.get("OTEL_EXPORTER_OTLP_COMPRESSION") == "gzip":
        assert all(r["headers"]["content-encoding"] == "gzip" for r in requests)


def test_traces_endpoint_variable_is_used_as_the_full_url(receiver: Receiver) -> None:
    """OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is taken as is, and alone exports no metrics."""
    run(TRACED_PROGRAM, {}, clean_env(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"{receiver.url}/custom/traces"))
    assert [r["path"] for r in receiver.requests()] == ["/custom/traces"]
    assert len(receiver.spans()) == 5


def test_live_dashboard_and_otlp_export_run_side_by_side(receiver: Receiver, tmp_path: Path) -> None:
    """With both `dashboard=` and `otlp_endpoint=`, every span reaches the dashboard and the collector."""
    with Dashboard(tmp_path / "opto.db") as dashboard:
        proc = run(TRACED_PROGRAM, {"otlp_endpoint": receiver.url, "dashboard": dashboard.url}, clean_env())
        sent = json.loads(proc.stdout)
        assert {s["span_id"] for s in receiver.spans()} == {s["span_id"] for s in sent}
        stored = [s for t in {s["trace_id"] for s in sent} for s in dashboard.get(f"/api/traces/{t}")["spans"]]
        assert {s["span_id"] for s in stored} == {s["span_id"] for s in sent}
        assert all(s["state"] == "ended" for s in stored)


def test_a_collector_that_never_answers_leaves_the_dashboard_whole_and_is_named(tmp_path: Path) -> None:
    """Exporters stop side by side: the dashboard gets every span while the OTLP exporter hangs; the warning names it."""
    with socket.socket() as black_hole, Dashboard(tmp_path / "opto.db") as dashboard:
        black_hole.bind(("127.0.0.1", 0))
        black_hole.listen(64)
        config = {"otlp_endpoint": f"http://127.0.0.1:{black_hole.getsockname()[1]}", "dashboard": dashboard.url}
        proc = run(TRACED_PROGRAM, config, clean_env(OTEL_EXPORTER_OTLP_TIMEOUT="600"))
        sent = json.loads(proc.stdout)
        stored = [s for t in {s["trace_id"] for s in sent} for s in dashboard.get(f"/api/traces/{t}")["spans"]]
        assert {s["span_id"] for s in stored} == {s["span_id"] for s in sent}
    assert "at shutdown was dropped (opto-shutdown-AccountedBatchProcessor" in proc.stderr
    assert f"did not get {len(sent)} spans: 0 in exports that failed, {len(sent)} dropped from the full queue or not sent by shutdown" in proc.stderr


def test_shutdown_returns_within_its_time_limit_when_the_collector_never_answers() -> None:
    """A collector that accepts connections but never replies cannot hold the program at exit."""
    with socket.socket() as black_hole:
        black_hole.bind(("127.0.0.1", 0))
        black_hole.listen(64)
        url = f"http://127.0.0.1:{black_hole.getsockname()[1]}"
        program = TRACED_PROGRAM + "\nopto.shutdown(timeout_s=0.5)\nprint('shutdown returned')\n"
        proc = run(program, {"otlp_endpoint": url}, clean_env(OTEL_EXPORTER_OTLP_TIMEOUT="600"))
    assert proc.stdout.splitlines()[-1] == "shutdown returned"
    assert "telemetry not exported within 0.5s at shutdown was dropped" in proc.stderr


def test_a_collector_that_answers_503_until_the_exporter_gives_up_every_span_is_counted() -> None:
    """A collector that is up but refuses every export (the dashboard's door on a full disk answers
    503): the exporter retries until its timeout, then every span is counted as failed, none lost."""
    refused: list[str] = []

    class Unavailable(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            refused.append(self.path)
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        proc = run(TRACED_PROGRAM, {"otlp_endpoint": url}, clean_env(OTEL_EXPORTER_OTLP_TIMEOUT="1"))
    finally:
        server.shutdown()
        server.server_close()
    sent = json.loads(proc.stdout)
    assert "/v1/traces" in refused
    assert f"did not get {len(sent)} spans: {len(sent)} in exports that failed, 0 dropped" in proc.stderr, proc.stderr


PHASED_PROGRAM = """
import asyncio, sys, opto
opto.configure(service_name="phased")  # OTLP from OTEL_EXPORTER_OTLP_ENDPOINT

@opto.trace.async_trace
async def work(i):
    return i

async def main():
    while line := await asyncio.to_thread(sys.stdin.readline):
        await asyncio.gather(*(work(i) for i in range(int(line))))
        print("done", flush=True)

asyncio.run(main())
"""


def test_a_collector_killed_mid_run_every_span_is_stored_or_counted_at_exit(tmp_path: Path) -> None:
    """The dashboard as the OTLP collector, killed between two phases of 1,000 spans: the first are
    stored, and the exit report counts the second, so stored + counted == emitted."""
    server = DashboardProcess(tmp_path / "opto.db")
    try:
        server.start()
        env = clean_env(OTEL_EXPORTER_OTLP_ENDPOINT=server.url, OTEL_EXPORTER_OTLP_TIMEOUT="1", OPTO_DASHBOARD_URL="")
        app = run_program(PHASED_PROGRAM, env)
        assert app.stdin is not None and app.stdout is not None
        app.stdin.write("1000\n")
        app.stdin.flush()
        assert app.stdout.readline() == "done\n"
        deadline = time.monotonic() + 60
        while server.get("/api/traces?name=work&limit=1")["total"] < 1000:  # exported on the processor's schedule
            assert time.monotonic() < deadline, "the first 1,000 spans were not stored"
            time.sleep(0.05)  # polls the API: no event crosses the processes
        server.kill()  # its socket stays open here: connections hang, as with a collector that froze
        app.stdin.write("1000\n")
        app.stdin.flush()
        assert app.stdout.readline() == "done\n"
        _, err = app.communicate(timeout=60)
    finally:
        server.close()
    # Read on a socket of its own: the killed one's backlog still holds the exports the app gave up
    # on, which a dashboard serving it again would store (a real collector's socket dies with it).
    reader = DashboardProcess(tmp_path / "opto.db")
    try:
        reader.start()
        stored = reader.get("/api/traces?name=work&limit=1")["total"]
    finally:
        reader.close()
    counted = int(re.search(r"did not get (\d+) spans", err)[1])  # type: ignore[index]
    assert stored == 1000 and stored + counted == 2000, err


FORKING_PROGRAM = """
import json, os, sys
import opto
opto.configure(**json.loads(sys.argv[1]))

@opto.trace
def work(i):
    return i

for i in range(10):
    work(i)  # queued in the batch processor when the process forks
pid = os.fork()
if pid == 0:
    for i in range(3):
        work(i)
    sys.exit(0)  # the child flushes at its exit, as the parent does
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0
"""


def test_a_forked_child_counts_only_its_own_spans(receiver: Receiver) -> None:
    """A child forked with the parent's spans queued reports nothing lost: it exports its own, and the parent its."""
    proc = run(FORKING_PROGRAM, {"otlp_endpoint": receiver.url}, clean_env())
    assert "did not get" not in proc.stderr, proc.stderr
    assert len(receiver.spans()) == 13


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        pytest.param({"otlp_endpoint": "localhost:4318"}, ValueError, "must start with http:// or https://", id="no-scheme"),
        pytest.param({"otlp_endpoint": 4318}, TypeError, "must be a URL string", id="not-a-string"),
        pytest.param(
            {"otlp_endpoint": "http://c:4318", "otlp_headers": {"x-api-key": 1}}, TypeError,
            "otlp_headers must map header names to string values", id="header-not-a-string",
        ),
        pytest.param({"otlp_headers": {"x-api-key": "k"}}, ValueError, "otlp_headers needs an otlp_endpoint", id="headers-alone"),
    ],
)
def test_misuse_raises_naming_the_fix(
    monkeypatch: pytest.MonkeyPatch, kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    """Bad OTLP arguments raise before anything is installed."""
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)
    with pytest.raises(error, match=message):
        opto.configure(**kwargs)


def test_grpc_protocol_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_EXPORTER_OTLP_PROTOCOL=grpc would silently send protobuf-over-HTTP to a gRPC port; it raises instead."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    with pytest.raises(ValueError, match="'grpc' is not supported: opto exports OTLP over http/protobuf"):
        opto.configure(otlp_endpoint="http://127.0.0.1:4317")


def test_missing_exporter_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without opentelemetry-exporter-otlp-proto-http, the error says to install opentrace[otlp]."""
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    with pytest.raises(ImportError, match=r"pip install 'opentrace\[otlp\]'"):
        opto.configure(otlp_endpoint="http://127.0.0.1:4318")

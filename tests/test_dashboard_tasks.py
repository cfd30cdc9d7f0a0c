"""An instrumented process's tasks, loop health and await stacks reach the dashboard over its live
connection: `/api/tasks`, `/api/loop`, `/api/await-stack`; bad asyncio frames are refused and counted."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from dashboard_server import Dashboard, hello_frame, run_program
from opto_dashboard import introspect

# Where a list comprehension runs: its own function until 3.12, then inlined in its caller (PEP 709).
LISTCOMP_IN_MAIN = "main.<locals>.<listcomp>" if sys.version_info < (3, 12) else "main"
PROGRAM = """
import asyncio, sys, time, opto

release = asyncio.Event()

@opto.trace.async_trace
async def stuck():
    await release.wait()  # the await line

async def main():
    opto.configure(service_name="tasks-prog", dashboard=sys.argv[1], asyncio=True)
    tasks = [asyncio.get_running_loop().create_task(stuck()) for _ in range(3)]  # the create line
    await asyncio.sleep(0)
    time.sleep(0.3)  # the blocking line
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    release.set()
    await asyncio.gather(*tasks)

asyncio.run(main())
opto.shutdown()
"""


def _line(text: str) -> int:
    return next(i for i, line in enumerate(PROGRAM.splitlines(), 1) if text in line)


def _until(dashboard: Dashboard, path: str, ready: Any) -> Any:
    """Poll the API (the SDK sends its picture every second) until `ready(answer)`, within 30 s."""
    deadline = time.monotonic() + 30
    while not ready(answer := dashboard.get(path)):
        assert time.monotonic() < deadline, f"{path} never got there: {answer}"
        time.sleep(0.05)
    return answer


def test_tasks_blocked_loop_and_await_stack_of_a_live_process(dashboard: Dashboard) -> None:
    prog = run_program(PROGRAM.replace("sys.argv[1]", repr(dashboard.url)))
    try:
        assert prog.stdout is not None and prog.stdout.readline() == "ready\n"
        answer = _until(dashboard, "/api/tasks", lambda a: any(s["live"] == 3 for p in a["processes"] for s in p["sites"]))
        (proc,) = answer["processes"]
        (site,) = [s for s in proc["sites"] if s["live"] == 3]
        assert (site["file"], site["line"], site["function"]) == ("<string>", _line("# the create line"), LISTCOMP_IN_MAIN)
        assert proc["process"]["service"] == "tasks-prog" and len(site["oldest"]) == 3
        process_id = proc["process"]["id"]

        loops = _until(dashboard, "/api/loop", lambda a: a["processes"] and a["processes"][0]["loops"][0]["incidents"])
        (incident,) = loops["processes"][0]["loops"][0]["incidents"]
        assert (incident["file"], incident["line"]) == ("<string>", _line("# the blocking line"))

        by_task = httpx.get(f"{dashboard.url}/api/await-stack", params={"process": process_id, "task": site["oldest"][0]["id"]}, timeout=30)
        assert by_task.status_code == 200, by_task.text
        assert {"file": "<string>", "line": _line("# the await line"), "function": "stuck"} in by_task.json()["frames"]

        in_flight = _until(dashboard, "/api/live", lambda a: a["in_flight"])["in_flight"][0]
        span_id = in_flight["spans"][0]["span_id"]
        by_span = httpx.get(f"{dashboard.url}/api/await-stack", params={"process": process_id, "span_id": span_id}, timeout=30)
        assert by_span.status_code == 200, by_span.text
        assert by_span.json()["frames"][0] == {"file": "<string>", "line": _line("# the await line"), "function": "stuck"}
        assert by_span.json()["awaiting"] == "Future"
    finally:
        prog.communicate("\n", timeout=60)
    assert prog.returncode == 0
    gone = httpx.get(f"{dashboard.url}/api/await-stack", params={"process": process_id, "task": 1}, timeout=30)
    assert gone.status_code == 404 and gone.json()["msg"] == "process not connected"


@pytest.mark.parametrize(("params", "detail"), [
    ({}, "process"), ({"process": "x"}, "process"), ({"process": "a" * 32}, "task or span_id"),
    ({"process": "a" * 32, "task": "1", "span_id": "b" * 16}, "task or span_id"),
    ({"process": "a" * 32, "span_id": "B" * 16}, "span_id"), ({"process": "a" * 32, "task": "-1"}, "task"),
], ids=["none", "bad-process", "neither", "both", "upper-hex", "negative-task"])
def test_bad_await_stack_parameters_get_a_400_naming_them(dashboard: Dashboard, params: dict[str, str], detail: str) -> None:
    response = httpx.get(f"{dashboard.url}/api/await-stack", params=params, timeout=30)
    assert response.status_code == 400 and response.json()["msg"] == "invalid parameter"
    assert response.json()["detail"].startswith(detail)


def test_a_process_that_does_not_answer_gets_a_504(dashboard: Dashboard, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(introspect, "TIMEOUT_S", 0.2)
    process_id = "c" * 32
    with connect(dashboard.ws_url + "/ws/ingest") as ws:
        ws.send(hello_frame(process_id))
        _until(dashboard, "/api/live", lambda a: a["processes"])
        response = httpx.get(f"{dashboard.url}/api/await-stack", params={"process": process_id, "task": 5}, timeout=30)
        assert response.status_code == 504 and "did not answer within 0.2 s" in response.json()["detail"]
        request = json.loads(ws.recv(timeout=30))
        assert request == {"type": "stack_request", "id": request["id"], "task": 5}
        ws.send(json.dumps({"type": "stack", "id": request["id"], "error": "not found", "detail": "late"}))  # too late: counted
        ws.send(json.dumps({"type": "asyncio", "loops": []}))
        _until(dashboard, "/api/tasks", lambda a: a["processes"])
    assert dashboard.app.state.introspect.late == 1


@pytest.mark.parametrize(("frame", "detail"), [
    ({"type": "asyncio", "tasks": {"live": 0, "sites": "x"}}, "tasks.sites: expected a list"),
    ({"type": "asyncio", "loops": [{"loop": 1}]}, "loops[0].threshold_s"),
    ({"type": "asyncio", "loops": [{}] * 9}, "loops: more than 8 items"),
    ({"type": "stack", "id": "1"}, "stack.id"),
    ({"type": "stack", "id": 1, "frames": [], "running": "no", "task": "t"}, "stack.running"),
], ids=["sites-not-a-list", "loop-without-threshold", "too-many-loops", "stack-id-text", "running-not-bool"])
def test_a_bad_asyncio_frame_is_refused_counted_and_the_connection_goes_on(dashboard: Dashboard, frame: dict[str, Any], detail: str) -> None:
    with connect(dashboard.ws_url + "/ws/ingest") as ws:
        ws.send(hello_frame())
        ws.send(json.dumps(frame))
        error = json.loads(ws.recv(timeout=30))
        assert error["type"] == "error" and error["retry"] is False and detail in error["detail"]
        ws.send(json.dumps({"type": "asyncio", "tasks": {"live": 0, "sites": [], "recent": []}, "loops": []}))
        _until(dashboard, "/api/tasks", lambda a: a["processes"])
    assert dashboard.get("/api/live")["ingest"]["bad_frames"] == 1


def test_an_asyncio_frame_before_hello_is_refused(dashboard: Dashboard) -> None:
    with connect(dashboard.ws_url + "/ws/ingest") as ws:
        ws.send(json.dumps({"type": "asyncio", "loops": []}))
        assert "send a hello frame first" in json.loads(ws.recv(timeout=30))["detail"]
    assert dashboard.get("/api/tasks") == {"processes": []}


def test_the_task_board_keeps_the_latest_picture_of_at_most_max_processes() -> None:
    from opto_dashboard.records import ProcessInfo
    from opto_dashboard.tasks import MAX_PROCESSES, TaskBoard

    board = TaskBoard()
    for i in range(MAX_PROCESSES + 5):
        board.take(ProcessInfo(f"{i:032x}", "svc", i, "h", "sdk", 0), {"type": "asyncio", "loops": []})
    board.take(ProcessInfo(f"{7:032x}", "svc", 7, "h", "sdk", 0), {"type": "asyncio", "loops": [], "tasks": {"live": 2, "sites": [], "recent": []}})
    listed = board.tasks()["processes"]
    assert len(listed) == MAX_PROCESSES
    assert listed[0]["process"]["pid"] == 7 and listed[0]["live"] == 2  # heard from last: listed first
    assert {p["process"]["pid"] for p in listed} == set(range(5, MAX_PROCESSES + 5))  # the first five went


@pytest.mark.parametrize("ids", [{"trace_id": "../../api/live?x=", "span_id": "b" * 16}, {"trace_id": "a" * 32, "span_id": "B" * 16}])
def test_an_incident_whose_ids_are_not_hex_is_refused(ids: dict[str, str]) -> None:
    """The Loop page links to the blocked span with these ids: only a span's hex ids are taken."""
    from opto_dashboard.records import RecordError
    from opto_dashboard.tasks import check_asyncio

    incident = {
        "start_ns": 1, "seen_after_s": 0.2, "duration_s": 0.3, "threshold_s": 0.1,
        "file": "app.py", "line": 3, "function": "f", "stack": [], "trace_id": "a" * 32, "span_id": "b" * 16,
    }
    loop = {"loop": 1, "threshold_s": 0.1, "samples": 1, "blocked": 1, "incidents": [incident]}
    assert check_asyncio({"loops": [loop]})["loops"][0]["incidents"][0]["trace_id"] == "a" * 32
    with pytest.raises(RecordError, match="lowercase hex"):
        check_asyncio({"loops": [loop | {"incidents": [incident | ids]}]})

"""Jaeger's other views of one trace, on ours: the critical path, the flamegraph, the trace graph,
the in-trace search kept in the URL (`?find=`), and a trace opened from a JSON file."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from harness import Dashboard, Feeder, span
from test_trace import ten_thousand_spans

__all__: list[str] = []

MS = 1_000_000
XSS = "<img src=x onerror=alert(1)>"


def feed_forked(feeder: Feeder) -> tuple[str, dict[str, str], int]:
    """root 0-100 ms; under it A 0-60 and B 10-90 at once; under B, C 20-50. The critical path is
    root 90-100 and 0-10, B 50-90 and 10-20, C 20-50: A ends before the cursor reaches it."""
    trace_id = secrets.token_hex(16)
    ids = {name: secrets.token_hex(8) for name in ("root", "A", "B", "C")}
    t0 = time.time_ns() - 1000 * MS
    feeder.send([
        span(trace_id, ids["root"], "root", t0, t0 + 100 * MS),
        span(trace_id, ids["A"], "A", t0, t0 + 60 * MS, parent=ids["root"]),
        span(trace_id, ids["B"], XSS, t0 + 10 * MS, t0 + 90 * MS, parent=ids["root"]),
        span(trace_id, ids["C"], "C", t0 + 20 * MS, t0 + 50 * MS, parent=ids["B"]),
    ])
    return trace_id, ids, t0


def open_trace(page: Page, dashboard: Dashboard, trace_id: str, query: str = "") -> None:
    page.goto(f"{dashboard.url}/traces/{trace_id}{query}")
    expect(page.locator("body[data-ready='trace']")).to_have_count(1)


def row(page: Page, span_id: str) -> Any:
    return page.locator(f".wf-row[data-span-id='{span_id}']")


def test_critical_path_is_marked_on_the_bars_in_the_detail_and_the_statistics(page: Page, dashboard: Dashboard, feeder: Feeder, dialogs: list[str]) -> None:
    """c marks the pieces that set the trace's duration (none on A, which ended early); the detail
    and the Statistics column give each span's time on the path; c again unmarks them."""
    trace_id, ids, _ = feed_forked(feeder)
    open_trace(page, dashboard, trace_id)
    expect(page.locator(".wf-crit")).to_have_count(0)
    page.locator("#waterfall").focus()
    page.keyboard.press("c")
    expect(page.get_by_role("button", name="Critical path")).to_have_attribute("aria-pressed", "true")
    counts = {name: row(page, sid).locator(".wf-crit").count() for name, sid in ids.items()}
    assert counts == {"root": 2, "A": 0, "B": 2, "C": 1}, counts
    widths = row(page, ids["C"]).evaluate("r => [r.querySelector('.wf-crit').style.width, r.querySelector('.wf-bar').style.width]")
    assert widths[0] == widths[1], widths  # C's whole bar is on the path
    row(page, ids["B"]).click()
    facts = page.locator("#detail-body tr", has_text="critical path")
    expect(facts).to_contain_text("50.0 ms (50% of the trace's)")
    row(page, ids["A"]).click()
    expect(facts).to_contain_text("none of its time")
    page.keyboard.press("t")
    critical = {name: page.locator(f"#stats-table tbody tr:has(td:text-is('{name}')) td").last for name in ("A", "C")}
    expect(critical["C"]).to_have_text("30.0 ms")
    expect(critical["A"]).to_have_text("–")
    page.keyboard.press("c")  # the waterfall's keys bring it back
    expect(page.locator("#waterfall")).to_be_visible()
    expect(page.locator(".wf-crit")).to_have_count(0)
    page.locator(".wf-keys summary").click()
    expect(page.get_by_test_id("keys")).to_contain_text("mark the critical path")
    assert dialogs == []


def test_flamegraph_zooms_to_a_box_and_back(page: Page, dashboard: Dashboard, feeder: Feeder, dialogs: list[str]) -> None:
    """f shows the spans as boxes below their parents, overlapping siblings in lanes, names as text; a click zooms to a box (only it and
    its descendants, the trail naming its ancestors) and shows it in the detail; the trail goes back."""
    trace_id, ids, t0 = feed_forked(feeder)
    feeder.send([span(trace_id, secrets.token_hex(8), "tiny", t0 + 70 * MS, t0 + 70 * MS + 10, parent=ids["root"])])
    open_trace(page, dashboard, trace_id)
    page.keyboard.press("f")
    expect(page.locator("#wf-flame")).to_be_visible()
    expect(page.get_by_role("tab", name="Flamegraph")).to_have_attribute("aria-selected", "true")
    boxes = page.locator("#flame-svg .fg-box")
    expect(boxes).to_have_count(4)  # tiny is 10 ns wide: under a pixel
    expect(page.get_by_test_id("flame-note")).to_contain_text("1 narrower than a pixel")
    levels = {b.get_attribute("data-span-id"): b.get_attribute("transform") for b in boxes.all()}
    # A and B overlap in time: each takes a lane below the root, and C goes below B.
    assert [levels[ids[n]].split(",")[1] for n in ("root", "A", "B", "C")] == ["0)", "20)", "40)", "60)"], levels
    expect(page.locator("#flame-svg text", has_text=XSS)).to_have_count(1)
    page.locator(f"#flame-svg .fg-box[data-span-id='{ids['B']}']").click()
    expect(boxes).to_have_count(2)
    expect(page.locator(f"#flame-svg .fg-box[data-span-id='{ids['B']}']")).to_have_attribute("transform", "translate(0.0,0)")
    expect(page.locator("#flame-trail button")).to_have_text(["Whole trace", "root", XSS])
    expect(page.locator("#detail-body h2")).to_have_text(XSS)
    page.locator("#flame-trail button", has_text="Whole trace").click()
    expect(boxes).to_have_count(4)
    page.keyboard.press("f")
    expect(page.locator("#waterfall")).to_be_visible()
    assert dialogs == []


def test_graph_merges_spans_by_service_and_name_under_the_same_path(page: Page, dashboard: Dashboard, feeder: Feeder) -> None:
    """Three fetches under the job are one node (×3, one failed) whose parses are one node too; a
    click on a node shows its first span in the waterfall."""
    trace_id, root = secrets.token_hex(16), secrets.token_hex(8)
    t0 = time.time_ns() - 1000 * MS
    spans = [span(trace_id, root, "job", t0, t0 + 100 * MS)]
    fetches = []
    for i in range(3):
        fetch = secrets.token_hex(8)
        fetches.append(fetch)
        spans.append(span(trace_id, fetch, "fetch", t0 + i * 30 * MS, t0 + (i * 30 + 20) * MS, parent=root, outcome="error" if i == 1 else "ok"))
        spans.append(span(trace_id, secrets.token_hex(8), "parse", t0 + (i * 30 + 5) * MS, t0 + (i * 30 + 10) * MS, parent=fetch))
    spans.append(span(trace_id, secrets.token_hex(8), "parse", t0 + 95 * MS, t0 + 99 * MS, parent=root))  # another path: its own node
    feeder.send(spans)
    open_trace(page, dashboard, trace_id)
    page.keyboard.press("g")
    nodes = page.locator("#graph-svg .tg-node")
    expect(nodes).to_have_count(4)
    assert [n.locator(".tg-name").text_content() for n in nodes.all()] == ["job ×1", "fetch ×3", "parse ×3", "parse ×1"]
    fetch = nodes.nth(1)
    expect(fetch.locator(".tg-figures")).to_have_text("e2e · total 60.0 ms · self 45.0 ms · 1 failed")
    expect(fetch).to_have_class("tg-node bad")
    expect(page.get_by_test_id("graph-note")).to_contain_text("8 spans merged into 4 nodes")
    fetch.click()
    expect(page.locator("#waterfall")).to_be_visible()
    expect(page.locator(".wf-row[aria-selected='true']")).to_have_attribute("data-span-id", fetches[0])


def test_ten_thousand_steps_are_one_graph_node_and_the_flamegraph_stays_bounded(page: Page, dashboard: Dashboard, feeder: Feeder) -> None:
    """10,000 spans of "step" under a root merge into two nodes; a 10,000-span flamegraph draws at most its cap."""
    trace_id, root = secrets.token_hex(16), secrets.token_hex(8)
    t0 = time.time_ns() - 100_000 * MS
    feeder.send([span(trace_id, root, "batch", t0, t0 + 20_000 * MS),
                 *(span(trace_id, secrets.token_hex(8), "step", t0 + i * 2 * MS, t0 + (i * 2 + 1) * MS, parent=root) for i in range(9_999))])
    open_trace(page, dashboard, trace_id)
    page.keyboard.press("g")
    expect(page.locator("#graph-svg .tg-node")).to_have_count(2)
    expect(page.locator("#graph-svg .tg-node").nth(1).locator(".tg-name")).to_have_text("step ×9,999")
    page.keyboard.press("f")
    expect(page.get_by_test_id("flame-note")).to_contain_text("drawn")
    drawn = int(page.locator("#flame-svg").get_attribute("data-boxes") or 0)
    assert 1 <= drawn <= 3000 and page.locator("#flame-svg .fg-box").count() == drawn


def test_a_ten_thousand_deep_chain_has_a_critical_path_a_flamegraph_and_a_graph(page: Page, dashboard: Dashboard, feeder: Feeder) -> None:
    """Nothing recurses per level: each span of a 10,000-deep chain is on the path for its own
    1 ms before and after its child; the flamegraph draws 500 rows, the graph its first 1,000 nodes."""
    trace_id = secrets.token_hex(16)
    t0 = time.time_ns() - 100_000 * MS
    depth = 10_000
    ids = [f"{i + 1:016x}" for i in range(depth)]
    feeder.send([span(trace_id, ids[i], f"level-{i}", t0 + i * MS, t0 + (2 * depth - i) * MS, parent=ids[i - 1] if i else None) for i in range(depth)])
    open_trace(page, dashboard, trace_id)
    page.keyboard.press("c")
    page.locator("#waterfall").focus()
    page.keyboard.press("End")
    expect(page.locator("#detail-body h2")).to_have_text("level-9999")
    expect(page.locator("#detail-body tr", has_text="critical path")).to_contain_text("2.0 ms")
    page.keyboard.press("Home")
    expect(page.locator("#detail-body tr", has_text="critical path")).to_contain_text("2.0 ms")
    expect(row(page, ids[0]).locator(".wf-crit")).to_have_count(2)
    page.keyboard.press("f")
    expect(page.get_by_test_id("flame-note")).to_contain_text("9,500 more than 500 rows down")
    page.keyboard.press("g")
    expect(page.get_by_test_id("graph-note")).to_contain_text("10,000 spans merged into 10,000 nodes")
    expect(page.locator("#graph-svg .tg-node")).to_have_count(1000)


def test_find_is_kept_in_the_url_and_a_link_opens_with_its_first_match(page: Page, dashboard: Dashboard, feeder: Feeder) -> None:
    """Typing sets ?find= (clearing removes it); ?find= opens the page with the search applied and
    its first match selected, even when that match arrives on a later page; Jaeger's ?uiFind= too."""
    trace_id = "9" * 32
    feeder.send(ten_thousand_spans(trace_id))
    open_trace(page, dashboard, trace_id)
    find = page.locator("#wf-find")
    find.fill("call-77 ")
    expect(page).to_have_url(f"{dashboard.url}/traces/{trace_id}?find=call-77+")
    find.fill("")
    expect(page).to_have_url(f"{dashboard.url}/traces/{trace_id}")
    page.goto(f"{dashboard.url}/traces/{trace_id}?find=worker-98")  # starts 19.6 s in: past the first page of 1,000
    expect(page.locator("body[data-ready='trace']")).to_have_count(1)
    expect(find).to_have_value("worker-98")
    expect(page.get_by_test_id("find-count")).to_have_text("1 of 1")
    expect(page.locator(".wf-row[aria-selected='true']")).to_contain_text("worker-98")
    expect(page.locator("#detail-body h2")).to_have_text("worker-98")
    open_trace(page, dashboard, trace_id, "?uiFind=call-77")
    expect(page.get_by_test_id("find-count")).to_have_text("1 of 99")
    expect(page.locator(".wf-row[aria-selected='true']")).to_contain_text("call-77")


def open_file_page(page: Page, dashboard: Dashboard) -> None:
    page.goto(f"{dashboard.url}/traces")
    page.get_by_role("link", name="Open a trace file").click()
    expect(page).to_have_url(f"{dashboard.url}/traces/file")
    expect(page.get_by_test_id("file-limit")).to_have_text("up to 128 MB and 200,000 spans")


def test_a_downloaded_trace_opens_from_its_file_in_every_view(page: Page, dashboard: Dashboard, feeder: Feeder, tmp_path: Path, dialogs: list[str]) -> None:
    """The JSON button's file, chosen on /traces/file, shows the same trace (names as text) with
    nothing sent to the server; a second file, dropped on the page, replaces it."""
    trace_id, ids, _ = feed_forked(feeder)
    open_trace(page, dashboard, trace_id)
    with page.expect_download() as info:
        page.get_by_role("button", name="JSON").click()
    saved = tmp_path / "trace.json"
    info.value.save_as(saved)
    open_file_page(page, dashboard)
    expect(page.locator("#trace-layout")).to_be_hidden()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.locator("#file-input").set_input_files(saved)
    expect(page.locator("body[data-ready='trace']")).to_have_count(1)
    expect(page.locator("#trace-title")).to_have_text("root")
    expect(page.locator("#file-trace-id")).to_have_text(f"trace.json · trace {trace_id}")
    expect(page.locator(".wf-row")).to_have_count(4)
    expect(page.locator(".wf-row", has_text=XSS)).to_have_count(1)
    page.keyboard.press("c")
    expect(row(page, ids["B"]).locator(".wf-crit")).to_have_count(2)
    page.keyboard.press("f")
    expect(page.locator("#flame-svg .fg-box")).to_have_count(4)
    page.keyboard.press("g")
    expect(page.locator("#graph-svg .tg-node")).to_have_count(4)
    assert not [u for u in requests if "/api/" in u], requests
    other = secrets.token_hex(16)
    now = time.time_ns()
    dropped = json.dumps({"trace_id": other, "spans": [span(other, "ab" * 8, "dropped", now, now + 5 * MS)]})
    transfer = page.evaluate_handle("""text => { const t = new DataTransfer();
        t.items.add(new File([text], 'dropped.json', { type: 'application/json' })); return t; }""", dropped)
    page.dispatch_event("#trace-file", "drop", {"dataTransfer": transfer})
    expect(page.locator("#trace-title")).to_have_text("dropped")
    expect(page.locator(".wf-row")).to_have_count(1)
    assert dialogs == []


def test_a_bad_file_says_what_is_wrong_and_leaves_the_page_working(page: Page, dashboard: Dashboard) -> None:
    """Not JSON, not a trace, a span with a wrong field, an id that is not hex, values nested too
    deep, a file over the size bound: each is a message on the page, never an error in it."""
    open_file_page(page, dashboard)
    error = page.get_by_test_id("file-error")
    good = span("ab" * 16, "cd" * 8, "ok", 1, 2)
    cases = [
        ("{not json", "bad.json is not JSON"),
        (json.dumps({"rows": []}), "bad.json is not a trace: expected the Trace page's JSON"),
        (json.dumps({"spans": []}), "bad.json holds no span"),
        (json.dumps({"spans": [good, {**good, "start_ns": "x"}]}), 'spans[1].start_ns: expected a number, got "x"'),
        (json.dumps({"spans": [{**good, "span_id": "javascript:alert(1)"}]}), "spans[0].span_id: expected an id of 1 to 32 hex digits"),
        (json.dumps({"spans": [{**good, "end_ns": 0}]}), "spans[0]: end_ns is before start_ns"),
        (json.dumps({"spans": [{**good, "attributes": {"deep": [[[[[[[[[[[[[[[[[["x"]]]]]]]]]]]]]]]]]]}}]}), "values nest more than 16 levels deep"),
        (json.dumps({"data": [{"spans": [{"spanID": "ab"}], "processes": {}}]}), "data[0].spans[0].startTime: expected a number, got undefined"),
    ]
    for text, message in cases:
        page.locator("#file-input").set_input_files({"name": "bad.json", "mimeType": "application/json", "buffer": text.encode()})
        expect(error).to_contain_text(message)
        expect(page.locator("#trace-layout")).to_be_hidden()
    big = page.evaluate_handle("""() => { const t = new DataTransfer();
        t.items.add(new File(Array(129).fill(new Uint8Array(1024 * 1024)), 'huge.json')); return t; }""")
    page.dispatch_event("#trace-file", "drop", {"dataTransfer": big})
    expect(error).to_have_text("huge.json is 129.0 MB; a trace file may be up to 128 MB")
    page.locator("#file-input").set_input_files({"name": "good.json", "mimeType": "application/json", "buffer": json.dumps({"spans": [good]}).encode()})
    expect(page.locator("#trace-title")).to_have_text("ok")
    expect(error).to_be_hidden()


def test_a_jaeger_download_opens_too(page: Page, dashboard: Dashboard) -> None:
    """Jaeger's "Download JSON" (µs times, tags, logs, CHILD_OF references, processes) reads as our spans."""
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    start_us = 1_700_000_000_000_000
    jaeger = {"data": [{
        "traceID": trace,
        "processes": {"p1": {"serviceName": "frontend", "tags": []}, "p2": {"serviceName": "db", "tags": []}},
        "spans": [
            {"traceID": trace, "spanID": "00f067aa0ba902b7", "operationName": "GET /cart", "references": [],
             "startTime": start_us, "duration": 50_000, "processID": "p1",
             "tags": [{"key": "http.method", "type": "string", "value": "GET"}, {"key": "span.kind", "type": "string", "value": "server"},
                      {"key": "__proto__", "type": "string", "value": "a key like any other"}], "logs": []},
            {"traceID": trace, "spanID": "1111111111111111", "operationName": "SELECT cart",
             "references": [{"refType": "CHILD_OF", "traceID": trace, "spanID": "00f067aa0ba902b7"}],
             "startTime": start_us + 5_000, "duration": 30_000, "processID": "p2",
             "tags": [{"key": "error", "type": "bool", "value": True}],
             "logs": [{"timestamp": start_us + 20_000, "fields": [{"key": "event", "type": "string", "value": "retrying"}, {"key": "attempt", "type": "int64", "value": 2}]}]},
            {"traceID": trace, "spanID": "2222222222222222", "operationName": "render",
             "references": [{"refType": "CHILD_OF", "traceID": trace, "spanID": "00f067aa0ba902b7"}],
             "startTime": start_us + 36_000, "duration": 10_000, "processID": "p1", "tags": [], "logs": []},
        ],
    }]}
    open_file_page(page, dashboard)
    page.locator("#file-input").set_input_files({"name": "jaeger.json", "mimeType": "application/json", "buffer": json.dumps(jaeger).encode()})
    expect(page.locator("#trace-title")).to_have_text("GET /cart")
    expect(page.locator("#trace-summary")).to_contain_text("3 spans · 50.0 ms")
    expect(page.locator(".wf-row")).to_have_count(3)
    expect(page.locator(".wf-row[data-depth='1']")).to_have_count(2)
    expect(page.get_by_test_id("error-count")).to_have_text("1 failed")
    expect(page.locator("#detail-body tr", has_text="__proto__")).to_contain_text("a key like any other")
    page.locator(".wf-row", has_text="SELECT cart").click()
    detail = page.locator("#detail-body")
    expect(detail.locator("tr", has_text="service")).to_contain_text("db")
    expect(detail.locator("[data-event='retrying']")).to_contain_text("attempt")
    expect(page.get_by_test_id("detail-outcome")).to_have_text("error")

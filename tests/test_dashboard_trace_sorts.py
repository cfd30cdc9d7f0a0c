"""Jaeger's sort orders and duration bounds on the Traces page: most and fewest spans or errors,
shortest, a maximum duration beside the minimum; each read from the trace summary rows, never the spans."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from dashboard_server import Dashboard, span_record
from opto_dashboard import queries
from opto_dashboard.queries import TraceFilter
from opto_dashboard.writer import open_database
from test_dashboard_api import Feed, call, ids, served  # noqa: F401  (the fixture)


def trace(name: str, spans: int, errors: int, start_ns: int, duration_ms: float) -> list[dict[str, Any]]:
    """A root named `name` with `spans - 1` children, the first `errors` of them failed."""
    root = call(name, duration_ms=duration_ms, start_ns=start_ns)
    children = []
    for i in range(spans - 1):
        outcome = "error" if i < errors else "ok"
        children.append(span_record(root["trace_id"], ids()[1], "step", parent=root["span_id"], start_ns=start_ns + 1,
                                    end_ns=start_ns + 2, attributes={"opto.outcome": outcome},
                                    status={"code": "error" if outcome == "error" else "unset", "message": ""}))
    return [root, *children]


def roots(doc: dict[str, Any]) -> list[str]:
    return [t["root_name"] for t in doc["traces"]]


async def test_sorts_by_span_and_error_counts_ties_by_start(served: tuple[Dashboard, Feed]) -> None:
    d, feed = served
    t0 = time.time_ns()
    await feed.send([*trace("small", 1, 0, t0, 5), *trace("wide", 6, 1, t0 + 1, 50), *trace("failing", 4, 3, t0 + 2, 1),
                     *trace("also-small", 1, 0, t0 + 3, 500)])
    assert roots(d.get("/api/traces?sort=spans")) == ["wide", "failing", "also-small", "small"]
    assert roots(d.get("/api/traces?sort=spans&order=asc")) == ["small", "also-small", "failing", "wide"]
    assert roots(d.get("/api/traces?sort=errors")) == ["failing", "wide", "also-small", "small"]
    assert roots(d.get("/api/traces?sort=errors&limit=2&offset=2")) == ["also-small", "small"]
    assert roots(d.get("/api/traces?sort=duration&order=asc")) == ["failing", "small", "wide", "also-small"]  # shortest
    assert [t["span_count"] for t in d.get("/api/traces?sort=spans&name=step")["traces"]] == [6, 4]


async def test_maximum_duration_bounds_the_list_alone_and_with_the_minimum(served: tuple[Dashboard, Feed]) -> None:
    d, feed = served
    t0 = time.time_ns()
    await feed.send([call("fast", duration_ms=5, start_ns=t0), call("medium", duration_ms=50, start_ns=t0 + 1),
                     call("slow", duration_ms=500, start_ns=t0 + 2),
                     span_record(*ids(), "running", ended=False, start_ns=t0 + 3)])
    assert roots(d.get("/api/traces?max_duration_ms=50")) == ["medium", "fast"]  # a running trace has no duration yet
    assert roots(d.get("/api/traces?min_duration_ms=10&max_duration_ms=50")) == ["medium"]
    assert roots(d.get("/api/traces?min_duration_ms=50&max_duration_ms=50&sort=duration")) == ["medium"]
    assert d.get("/api/traces?max_duration_ms=0.5")["total"] == 0


@pytest.mark.parametrize("query, detail", [
    ("max_duration_ms=-1", "max_duration_ms: expected milliseconds from 0"),
    ("max_duration_ms=nan", "max_duration_ms: expected milliseconds from 0"),
    ("max_duration_ms=soon", "max_duration_ms: cannot read 'soon'"),
    ("min_duration_ms=50&max_duration_ms=5", "max_duration_ms: expected at least min_duration_ms (50), got '5'"),
    ("sort=fewest", "sort: expected one of start, duration, spans, errors"),
], ids=["negative", "nan", "text", "below the minimum", "unknown sort"])
async def test_bad_bounds_and_sorts_get_400_naming_them(served: tuple[Dashboard, Feed], query: str, detail: str) -> None:
    d, _ = served
    response = httpx.get(f"{d.url}/api/traces?{query}")
    assert response.status_code == 400 and response.json() == {"msg": "invalid parameter", "detail": response.json()["detail"]}
    assert response.json()["detail"].startswith(detail)
    assert d.get("/api/live")["refused"]["parameters"]["traces"] == 1
    assert httpx.get(f"{d.url}/api/traces").status_code == 200


FILTERS = {
    "most spans": TraceFilter(sort="spans"),
    "fewest errors": TraceFilter(sort="errors", order="asc"),
    "most errors, filtered": TraceFilter(sort="errors", name="st", outcome="error", max_duration_ns=9),
    "shortest, bounded": TraceFilter(sort="duration", order="asc", min_duration_ns=1, max_duration_ns=9),
    "newest, bounded": TraceFilter(max_duration_ns=9, text="upstream"),
}


PLANS = {"walked in order": queries.Plan(), "driven by a term": queries.Plan(0, True), "a term tested in the walk": queries.Plan(0, False)}
PLANNED = [  # every filter with every plan it can have (a term can drive only a filter that has terms)
    pytest.param(f, plan, id=f"{f_id}-{plan_id}")
    for f_id, f in FILTERS.items() for plan_id, plan in PLANS.items()
    if plan.driver is None or queries.breadth_sql(f) is not None
]


@pytest.mark.parametrize(("f", "plan"), PLANNED)
def test_new_sorts_read_summary_rows_only(tmp_path: Path, f: TraceFilter, plan: queries.Plan) -> None:
    """No plan reads spans: start and duration walk their index; span and error counts read the
    summary table and sort it (a temporary B-tree that keeps LIMIT + OFFSET rows)."""
    db = open_database(str(tmp_path / "plan.db"))
    try:
        driver = plan.driver
        for sql, params in queries.traces_sql(f, plan, range(1, 10)):
            steps = [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, params)]
            assert not [step for step in steps if "spans" in step], steps
            scans = [step for step in steps if step.startswith("SCAN ") and not step.startswith("SCAN (subquery")]
            allowed = ["SCAN t USING INDEX", "SCAN t USING COVERING INDEX", "SCAN CONSTANT ROW", "SCAN terms_fts VIRTUAL TABLE"]
            if f.sort in ("spans", "errors"):
                allowed.append("SCAN t")  # the summary table, one row a trace
            elif driver is None or not plan.driven_page:  # walked in the order of its index
                assert not [step for step in steps if "TEMP B-TREE" in step], steps
            assert all(step.startswith(tuple(allowed)) for step in scans), steps
    finally:
        db.close()

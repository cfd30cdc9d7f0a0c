"""The Traces page's filters at scale: name prefixes, services, `key=value` attributes and free
text go through the writer's term index, every query's plan is index-driven, and suggestions come
from the names seen."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from dashboard_server import Dashboard, span_write
from opto.telemetry import semconv
from opto_dashboard import compact, queries, writer
from opto_dashboard.queries import TraceFilter
from opto_dashboard.writer import Prune, SpanWrite, open_database
from test_dashboard_api import Feed, call, served  # noqa: F401  (the fixture)


def names(doc: dict[str, Any]) -> list[str]:
    return sorted(t["root_name"] for t in doc["traces"])


async def test_name_filter_matches_any_span_by_prefix(served: tuple[Dashboard, Feed]) -> None:
    d, feed = served
    root = call("robust_async_agent")
    child = {**call("step_one"), "trace_id": root["trace_id"], "parent_span_id": root["span_id"]}
    await feed.send([root, child, call("stepper"), call("other")])
    assert names(d.get("/api/traces?name=step")) == ["robust_async_agent", "stepper"]
    assert names(d.get("/api/traces?name=robust")) == ["robust_async_agent"]
    assert names(d.get("/api/traces?name=tep")) == []  # a prefix, not a substring


async def test_service_and_attribute_filters(served: tuple[Dashboard, Feed]) -> None:
    d, feed = served
    billing = call("charge", **{"http.method": "POST", "retries": 3, "cached": True})
    billing["resource"] = {semconv.SERVICE_NAME: "billing"}
    await feed.send([billing, call("charge", **{"http.method": "GET", "retries": 30})])
    assert names(d.get("/api/traces?service=billing")) == ["charge"]
    assert d.get("/api/traces?service=bill")["traces"] == []  # services match exactly
    assert [t["trace_id"] for t in d.get("/api/traces?attr=http.method=POST")["traces"]] == [billing["trace_id"]]
    assert [t["trace_id"] for t in d.get("/api/traces?attr=retries=3&attr=cached=true")["traces"]] == [billing["trace_id"]]
    assert d.get("/api/traces?attr=retries=3&attr=http.method=GET")["traces"] == []
    assert len(d.get("/api/traces?service=test&attr=http.method=GET")["traces"]) == 1


async def test_values_new_for_every_span_are_not_terms(served: tuple[Dashboard, Feed]) -> None:
    """asyncio's "Task-8123" and the durations opto measures would each add a row to the vocabulary
    for every span; names the app gives its tasks are terms."""
    d, feed = served
    spans = [call("job", **{semconv.TASK_NAME: f"Task-{i}", semconv.QUEUE_WAIT_S: i / 7}) for i in range(50)]
    retried = call("job", **{semconv.TASK_NAME: "worker-7"})
    retried["events"] = [{"name": semconv.EVENT_RETRY, "time_ns": retried["start_ns"], "attributes": {semconv.RETRY_DELAY_S: 0.31, semconv.ATTEMPT: 1}}]
    await feed.send([*spans, retried])
    assert len(d.get("/api/traces?name=job&limit=100")["traces"]) == 51
    assert [t["trace_id"] for t in d.get("/api/traces?attr=opto.task.name=worker-7")["traces"]] == [retried["trace_id"]]
    assert [t["trace_id"] for t in d.get(f"/api/traces?attr={semconv.ATTEMPT}=1")["traces"]] == [retried["trace_id"]]
    assert d.get("/api/traces?attr=opto.task.name=Task-7")["traces"] == []
    assert d.get("/api/suggest?field=attribute&prefix=opto.") == {"values": [f"{semconv.ATTEMPT}=1", "opto.outcome=ok", "opto.task.name=worker-7"]}


async def test_search_finds_exception_messages_types_and_retry_causes(served: tuple[Dashboard, Feed]) -> None:
    """The two searches of issue 15 that found nothing: a message and a retry's cause, an exception type."""
    d, feed = served
    failed = call("fetch", "error")
    failed["events"] = [{"name": "exception", "time_ns": failed["start_ns"], "attributes": {
        semconv.EXCEPTION_TYPE: "ConnectionError", semconv.EXCEPTION_MESSAGE: "upstream reset by peer"}}]
    retried = call("poll", attempts=2)
    retried["events"] = [{"name": semconv.EVENT_RETRY, "time_ns": retried["start_ns"], "attributes": {
        semconv.ATTEMPT: 1, semconv.EXCEPTION_TYPE: "TimeoutError", semconv.EXCEPTION_MESSAGE: "no answer in 5 s"}}]
    await feed.send([failed, retried, call("quiet")])
    assert names(d.get("/api/traces?q=upstream reset")) == ["fetch"]
    assert names(d.get("/api/traces?q=TimeoutError")) == ["poll"]
    assert names(d.get("/api/traces?q=timeouterror")) == ["poll"]  # case-insensitive
    assert names(d.get(f"/api/traces?q={semconv.EVENT_RETRY}")) == ["poll"]  # event names
    assert names(d.get("/api/traces?q=quie")) == ["quiet"]  # span names, by prefix
    assert names(d.get("/api/traces?q=upstream res")) == ["fetch"]  # a phrase, its last word a prefix
    assert names(d.get('/api/traces?q="upstream reset"')) == ["fetch"]
    assert names(d.get("/api/traces?q=reset upstream")) == []  # words in their order
    assert names(d.get("/api/traces?q=eoutError")) == []  # words match from their start
    assert names(d.get("/api/traces?q=%25%25")) == []  # no words: only a trace id could match
    assert names(d.get(f"/api/traces?attr={semconv.EXCEPTION_TYPE}=TimeoutError")) == ["poll"]
    assert names(d.get(f"/api/traces?q={failed['trace_id']}")) == ["fetch"]


async def test_suggestions_list_names_services_and_attributes_seen(served: tuple[Dashboard, Feed]) -> None:
    d, feed = served
    billing = call("charge")
    billing["resource"] = {semconv.SERVICE_NAME: "billing"}
    await feed.send([call("step_b"), call("step_a"), call("step_a"), call("other", **{"region": "eu"}), billing])
    assert d.get("/api/suggest?field=name&prefix=step") == {"values": ["step_a", "step_b"]}
    assert d.get("/api/suggest?field=name&prefix=step&limit=1") == {"values": ["step_a"]}
    assert d.get("/api/suggest?field=service&prefix=") == {"values": ["billing", "test"]}
    assert d.get("/api/suggest?field=attribute&prefix=reg") == {"values": ["region=eu"]}


@pytest.mark.parametrize("query, detail", [
    ("field=nope", "field: expected one of name, service, attribute"),
    ("prefix=a", "field: expected one of name, service, attribute"),
    ("field=name&limit=101", "limit: expected 1 to 100"),
    ("field=name&prefix=" + "x" * 201, "prefix: expected at most 200 characters"),
])
async def test_bad_suggestion_parameters_get_400(served: tuple[Dashboard, Feed], query: str, detail: str) -> None:
    d, _ = served
    response = httpx.get(f"{d.url}/api/suggest?{query}")
    assert response.status_code == 400 and response.json()["detail"].startswith(detail)


@pytest.mark.parametrize("query, detail", [
    ("attr=novalue", "attr: expected key=value"),
    ("attr==x", "attr: expected key=value"),
    ("&".join(["attr=a=1"] * 9), "attr: expected at most 8"),
    ("service=" + "s" * 201, "service: expected at most 200 characters"),
])
async def test_bad_filter_parameters_get_400(served: tuple[Dashboard, Feed], query: str, detail: str) -> None:
    d, _ = served
    response = httpx.get(f"{d.url}/api/traces?{query}")
    assert response.status_code == 400 and response.json()["detail"].startswith(detail)


FILTERS = {
    "none": TraceFilter(),
    "by duration": TraceFilter(sort="duration", min_duration_ns=5),
    "name": TraceFilter(name="st"),
    "name, service, attributes": TraceFilter(name="st", service="x", attributes=(("a", "b"), ("c", "1"))),
    "outcome": TraceFilter(outcome="error"),
    "time range": TraceFilter(since_ns=1, until_ns=5, order="asc"),
    "text": TraceFilter(text="upstream"),
    "everything": TraceFilter(name="s", service="x", attributes=(("a", "b"),), outcome="ok", min_duration_ns=1,
                              since_ns=1, until_ns=9, text="t", sort="duration", order="asc"),
}


PLANS = {"walked in order": queries.Plan(), "driven by a term": queries.Plan(0, True), "a term tested in the walk": queries.Plan(0, False)}


# Every filter with every plan it can have (a term can drive only a filter that has terms).
PLANNED = [
    pytest.param(f, plan, id=f"{f_id}-{plan_id}")
    for f_id, f in FILTERS.items() for plan_id, plan in PLANS.items()
    if plan.driver is None or queries.breadth_sql(f) is not None
]


@pytest.mark.parametrize(("f", "plan"), PLANNED)
def test_trace_queries_are_index_driven(tmp_path: Path, f: TraceFilter, plan: queries.Plan) -> None:
    """No plan reads spans, and a scan is either in index order or a full-text match (free text)."""
    db = open_database(str(tmp_path / "plan.db"))
    try:
        breadth = queries.breadth_sql(f)
        statements = [*queries.traces_sql(f, plan, range(1, 10)), *([breadth] if breadth else [])]
        for sql, params in statements:
            plan_steps = [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, params)]
            assert not [step for step in plan_steps if "spans" in step], plan_steps
            scans = [step for step in plan_steps if step.startswith("SCAN ") and not step.startswith("SCAN (subquery")]
            allowed = ("SCAN t USING INDEX", "SCAN t USING COVERING INDEX", "SCAN CONSTANT ROW", *(["SCAN terms_fts VIRTUAL TABLE INDEX 0:M"] if f.text else []))
            assert all(step.startswith(allowed) for step in scans), plan_steps
            probes = [step for step in plan_steps if "trace_terms" in step]
            assert all(step.startswith("SEARCH") for step in probes), plan_steps
        sql, params = queries.suggest_sql("name", "st", 20)
        assert [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, params)] == [
            "SEARCH terms USING COVERING INDEX sqlite_autoindex_terms_1 (term>? AND term<?)"]
    finally:
        db.close()


def test_a_driven_count_starts_from_the_drivers_traces(tmp_path: Path) -> None:
    """With a driving term, the count query looks up the driver's traces by rowid, even when an
    index on the other columns (outcome and start) could serve it: walking that index called Python
    for every trace since `since` (99 ms at 200,000 spans); and the page query walks in sort order
    testing the driver's traces, or starts from them, as the plan says."""
    f = FILTERS["everything"]
    db = open_database(str(tmp_path / "plan.db"))
    try:
        def first_step(sql: str, params: list[Any]) -> str:
            return next(row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, params) if " t " in row[3] + " ")

        for driven_page in (False, True):
            (page, page_params), (count, count_params) = queries.traces_sql(f, queries.Plan(1, driven_page), range(1, 10))
            assert first_step(count, count_params) == "SEARCH t USING INTEGER PRIMARY KEY (rowid=?)"
            page_step = first_step(page, page_params)
            if driven_page:
                assert page_step == "SEARCH t USING INTEGER PRIMARY KEY (rowid=?)"
            else:  # an index of the columns (the driver's traces a set looked up as it goes)
                assert page_step.startswith(("SCAN t USING INDEX", "SEARCH t USING INDEX")), page_step
            assert count.index("opto_holds") > count.index("outcome"), "Python's checks come after SQLite's own"
    finally:
        db.close()


@pytest.mark.parametrize(("traces", "matches", "offset", "plan"), [
    (2_000_000, 30_000, 0, queries.Plan(None, False)),  # no term narrow enough: walked in order
    (2_000_000, 9_000, 0, queries.Plan(1, True)),  # 9,000 looked up beat 50 in 9,000/2,000,000 walked to
    (40_000, 9_000, 0, queries.Plan(1, False)),  # a page's worth is found in the first 225 traces walked
    (40_000, 9_000, 2_000, queries.Plan(1, True)),  # page 41: the walk would pass 9,100 traces
])
def test_the_plan_follows_the_terms_counts(traces: int, matches: int, offset: int, plan: queries.Plan) -> None:
    """The narrowest term filter under NARROW drives; the page query starts from its traces when
    they are fewer than a walk in sort order would pass to find offset + limit of them."""
    f = TraceFilter(name="a", service="b", offset=offset)
    assert queries.choose_plan(f, [traces, 40_000, "[1]", matches, "[2]"]) == queries.Plan(plan.driver, plan.driven_page, ("[1]", "[2]"))


async def test_broad_and_narrow_filters_find_the_same_traces(served: tuple[Dashboard, Feed], monkeypatch: pytest.MonkeyPatch) -> None:
    """Past NARROW matches a filter is checked per trace as traces are walked newest first, and
    matches are counted among the first WINDOW traces only (`more`); narrow filters count exactly."""
    monkeypatch.setattr(queries, "NARROW", 50)
    monkeypatch.setattr(queries, "WINDOW", 100)
    d, feed = served
    t0 = time.time_ns()
    await feed.send([call("common", start_ns=t0 + i, region="eu" if i % 2 else "us") for i in range(120)]
                    + [call("rare", start_ns=t0 - 1, region="eu")])
    broad = d.get("/api/traces?name=common&attr=region=eu&limit=500")
    assert [t["start_ns"] for t in broad["traces"]] == [t0 + i for i in range(119, 0, -2)]
    assert (broad["total"], broad["more"]) == (51, True)  # in the newest 101 traces (one over WINDOW: more)
    assert d.get("/api/traces?name=common&attr=region=eu&offset=50&limit=5")["traces"][0]["start_ns"] == t0 + 19
    rare = d.get("/api/traces?name=rare&attr=region=eu")
    assert names(rare) == ["rare"] and (rare["total"], rare["more"]) == (1, False)


def span_row(trace_id: str, span_id: str, name: str, attributes: dict[str, Any]) -> list[Any]:
    """A span's values in WIRE_COLUMNS order, its resource and attribute names as values (`span_write`)."""
    return [trace_id, span_id, None, name, "internal", "ended", 1, 2, "unset", "", "ok", None, (None, "svc", "{}", "{}"),
            json.dumps(list(attributes)), json.dumps(list(attributes.values())), None, None]


def store(db: sqlite3.Connection, request: SpanWrite | Prune) -> None:
    db.execute("BEGIN IMMEDIATE")
    writer._write(db, request) if isinstance(request, SpanWrite) else writer._prune(db, request)
    db.execute("COMMIT")


def terms(db: sqlite3.Connection) -> list[tuple[str, str]]:
    return db.execute(
        "SELECT lower(hex(t.trace_id)), terms.term FROM trace_terms JOIN terms ON terms.id = term_id "
        "JOIN traces t ON t.rowid = trace_ref ORDER BY 1, 2").fetchall()


def test_pruned_traces_take_their_terms_and_unused_vocabulary(tmp_path: Path) -> None:
    db = open_database(str(tmp_path / "prune.db"))
    try:
        old, new = "a" * 32, "b" * 32
        rows = [span_row(old, "1" * 16, "gone", {"k": "old"}), span_row(new, "2" * 16, "kept", {"k": "new"})]
        store(db, span_write(rows))
        db.execute("UPDATE traces SET start_ns = 0 WHERE trace_id = ?", (bytes.fromhex(old),))
        store(db, Prune(1, None))
        assert terms(db) == [(new, "a:k=new"), (new, "n:kept"), (new, "s:svc")]
        assert sorted(t for (t,) in db.execute("SELECT term FROM terms")) == ["a:k=new", "n:kept", "s:svc"]
    finally:
        db.close()


def test_rewritten_trace_keeps_its_terms(tmp_path: Path) -> None:
    """A trace's summary row is upserted, so the terms of its earlier writes still point at it."""
    db = open_database(str(tmp_path / "rewrite.db"))
    try:
        trace = "c" * 32
        for i, name in enumerate(("first", "second")):
            row = span_row(trace, f"{i:016x}", name, {})
            store(db, span_write([row]))
        assert [term for _, term in terms(db)] == ["n:first", "n:second", "s:svc"]
    finally:
        db.close()


async def test_retries_function_filter_matches_by_prefix(served: tuple[Dashboard, Feed]) -> None:
    d, feed = served
    retried = call("flaky_llm", **{semconv.ATTEMPTS: 2})
    retried["events"] = [{"name": semconv.EVENT_RETRY, "time_ns": retried["start_ns"], "attributes": {semconv.ATTEMPT: 1}}]
    await feed.send([retried])
    assert [r["name"] for r in d.get("/api/retries?name=flaky")["retries"]] == ["flaky_llm"]
    assert [f["name"] for f in d.get("/api/retries?name=flaky")["by_function"]] == ["flaky_llm"]
    assert d.get("/api/retries?name=llm")["retries"] == []


def test_term_sets_are_named_by_key_for_the_query_and_then_released() -> None:
    """`opto_holds` checks a trace's term list against the set its key names, while the query's
    block lasts; the sets go with it (the table of sets grows only with the queries running)."""
    terms = msgspec.msgpack.encode
    with compact.term_sets(["[1, 2]", "[]"]) as (both, none):
        assert compact.holds(terms([9, 2]), both) and not compact.holds(terms([3]), both)
        assert not compact.holds(terms([1]), none) and not compact.holds(None, both)
    with pytest.raises(KeyError):
        compact.holds(terms([1]), both)

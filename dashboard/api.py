"""The JSON API of docs/api.md: traces, one trace, live figures, queues, retries, metrics, debug events, searches."""

from __future__ import annotations

import asyncio
import bisect
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from opto.telemetry import semconv

from . import queries, shapes
from .introspect import Introspect, Unanswered
from .records import MAX_INT, RecordError, check_id
from .store import SPAN_TABLES, QueryTimeout, Store

__all__ = ["routes", "BadParameter"]

_MAX_LIMIT = 500


class BadParameter(ValueError):
    """An invalid query parameter; answered with a 400 naming it."""


def _param(query: Mapping[str, str], key: str, parse: Callable[[str], Any], default: Any = None) -> Any:
    raw = query.get(key)
    if raw is None or raw == "":
        return default
    try:
        return parse(raw)
    except BadParameter as exc:
        raise BadParameter(f"{key}: {exc}") from None
    except ValueError:
        raise BadParameter(f"{key}: cannot read {raw[:40]!r}") from None


def _nonneg_int(raw: str) -> int:
    """A whole number from 0 to 2^63 - 1 (SQLite's largest integer)."""
    if len(raw) > 20:
        raise ValueError(raw)
    value = int(raw)
    if not 0 <= value <= MAX_INT:
        raise ValueError(raw)
    return value


def _choice(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in options:
            raise BadParameter(f"expected one of {', '.join(options)}, got {raw[:40]!r}")
        return raw
    return parse


def _limit(query: Mapping[str, str], default: int) -> int:
    limit = _param(query, "limit", _nonneg_int, default)
    if not 1 <= limit <= _MAX_LIMIT:
        raise BadParameter(f"limit: expected 1 to {_MAX_LIMIT}, got {limit}")
    return limit  # type: ignore[no-any-return]


def _like(text: str) -> str:
    return "%" + re.sub(r"([\\%_])", r"\\\1", text) + "%"


def _store(request: Request) -> Store:
    return request.app.state.store  # type: ignore[no-any-return]


async def _disconnected(request: Request) -> None:
    """Return when the client goes away (the body of a GET is read by then)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _endpoint(fn: Callable[[Request], Any]) -> Callable[[Request], Any]:
    """Answer the handler's dict as JSON (a Response as it is), a BadParameter as a 400 naming it
    (counted by route in `/api/live`'s `refused.parameters`), and a query past its time limit as a 503; stop
    the handler, and so its query, if the client goes away first."""
    async def endpoint(request: Request) -> Response:
        work = asyncio.ensure_future(fn(request))
        gone = asyncio.ensure_future(_disconnected(request))
        try:
            await asyncio.wait([work, gone], return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not work.done():
                work.cancel()
                await asyncio.wait([work])
        if work.cancelled():
            return JSONResponse({"msg": "client gone", "detail": "the client went away; the query was stopped"}, status_code=503)
        try:
            answer = work.result()
        except (BadParameter, RecordError) as exc:
            request.app.state.refused.parameters[fn.__name__] += 1
            return JSONResponse({"msg": "invalid parameter", "detail": str(exc)}, status_code=400)
        except QueryTimeout as exc:
            return JSONResponse({"msg": "query timed out", "detail": f"{exc}; narrow the filters (a name, a time range)"},
                                status_code=503, headers={"Retry-After": "5"})
        return answer if isinstance(answer, Response) else JSONResponse(answer)
    endpoint.__name__ = fn.__name__
    return endpoint


_MAX_TEXT = 200  # characters of a name, service, attribute or search text
_MAX_ATTRIBUTES = 8


def _text(raw: str) -> str:
    if len(raw) > _MAX_TEXT:
        raise BadParameter(f"expected at most {_MAX_TEXT} characters, got {len(raw)}")
    return raw


def _duration_ns(raw: str) -> int:
    """Milliseconds as a finite number from 0 to 2^63 - 1 ns."""
    ms = float(raw)
    if not 0 <= ms <= MAX_INT / 1e6:  # also refuses nan
        raise BadParameter(f"expected milliseconds from 0 to {MAX_INT / 1e6:.0f}, got {raw[:40]!r}")
    return min(int(ms * 1e6), MAX_INT)  # the last few ms below the bound round up past it


def _attribute(raw: str) -> tuple[str, str]:
    key, equals, value = _text(raw).partition("=")
    if not key or not equals:
        raise BadParameter(f"expected key=value, got {raw[:40]!r}")
    return key, value


def _attributes(query: QueryParams) -> tuple[tuple[str, str], ...]:
    raws = [raw for raw in query.getlist("attr") if raw]
    if len(raws) > _MAX_ATTRIBUTES:
        raise BadParameter(f"attr: expected at most {_MAX_ATTRIBUTES}, got {len(raws)}")
    return tuple(_param({"attr": raw}, "attr", _attribute) for raw in raws)


async def traces(request: Request) -> dict[str, Any]:
    q = request.query_params
    shortest, longest = _param(q, "min_duration_ms", _duration_ns), _param(q, "max_duration_ms", _duration_ns)
    if shortest is not None and longest is not None and longest < shortest:
        raise BadParameter(f"max_duration_ms: expected at least min_duration_ms ({q['min_duration_ms'][:40]}), got {q['max_duration_ms'][:40]!r}")
    page = await queries.traces(_store(request), queries.TraceFilter(
        name=_param(q, "name", _text), service=_param(q, "service", _text), attributes=_attributes(q),
        outcome=_param(q, "outcome", _choice(*semconv.OUTCOMES)), min_duration_ns=shortest, max_duration_ns=longest,
        since_ns=_param(q, "since_ns", _nonneg_int), until_ns=_param(q, "until_ns", _nonneg_int), text=_param(q, "q", _text),
        sort=_param(q, "sort", _choice("start", "duration", "spans", "errors"), "start"),
        order=_param(q, "order", _choice("desc", "asc"), "desc"),
        limit=_limit(q, 50), offset=_param(q, "offset", _nonneg_int, 0),
    ))
    return {
        "traces": [
            {
                "trace_id": r.trace_id, "root_name": r.root_name, "service": r.service, "start_ns": r.start_ns, "end_ns": r.end_ns,
                "duration_ms": None if r.in_flight or r.end_ns is None else (r.end_ns - r.start_ns) / 1e6,
                "span_count": r.span_count, "in_flight": r.in_flight, "outcome": None if r.in_flight else r.outcome,
                "error_count": r.error_count, "retry_count": r.retry_count,
            }
            for r in page.rows
        ],
        "total": page.total,
        "more": page.more,
    }


async def suggest(request: Request) -> dict[str, Any]:
    """Names, services or `key=value` attributes seen that start with `prefix`: the filters' datalists."""
    q = request.query_params
    field = _param(q, "field", _choice(*queries.TERM_KINDS))
    if field is None:
        raise BadParameter(f"field: expected one of {', '.join(queries.TERM_KINDS)}")
    limit = _param(q, "limit", _nonneg_int, 20)
    if not 1 <= limit <= 100:
        raise BadParameter(f"limit: expected 1 to 100, got {limit}")
    return {"values": await queries.suggest(_store(request), field, _param(q, "prefix", _text, ""), limit)}


_MAX_TRACE_PAGE = 5000  # spans per answer of /api/traces/{id}: a big trace comes in pages


def _cursor(raw: str) -> queries.SpanCursor:
    start, colon, span_id = raw.partition(":")
    if not colon:
        raise BadParameter(f"expected START_NS:SPAN_ID, got {raw[:40]!r}")
    return _nonneg_int(start), check_id(span_id, 16, "after")


async def trace(request: Request) -> Response:
    trace_id = check_id(request.path_params["trace_id"], 32, "trace_id")
    q = request.query_params
    after = _param(q, "after", _cursor)
    limit = _param(q, "limit", _nonneg_int, _MAX_TRACE_PAGE)
    if not 1 <= limit <= _MAX_TRACE_PAGE:
        raise BadParameter(f"limit: expected 1 to {_MAX_TRACE_PAGE}, got {limit}")
    rows, following = await queries.trace_spans(_store(request), trace_id, after, limit)
    if not rows and after is None:
        return JSONResponse({"msg": "not found", "detail": f"no trace {trace_id}"}, status_code=404)
    # The stored JSON columns are spliced in as they are: decoding and re-encoding 10,000 spans'
    # attributes would take most of the trace page's time budget.
    cursor = "null" if following is None else f'"{following[0]}:{following[1]}"'
    body = "".join(('{"trace_id":"', trace_id, '","spans":[', ",".join(map(_span_json, rows)), '],"next":', cursor, "}"))
    return Response(body, media_type="application/json")


def _span_json(row: Sequence[Any]) -> str:
    """A `SELECT {SPAN_COLUMNS}` row as the JSON text of `SpanRecord.to_json()`."""
    (trace_id, span_id, parent, name, kind, state, start_ns, end_ns, code, message, outcome, _, process_id,
     service, attributes, events, links, resource, scope) = row
    dumps = json.dumps
    return (
        f'{{"trace_id":"{trace_id}","span_id":"{span_id}","parent_span_id":{dumps(parent)},"name":{dumps(name)},'
        f'"kind":"{kind}","state":"{state}","start_ns":{start_ns},"end_ns":{dumps(end_ns)},'
        f'"status":{{"code":"{code}","message":{dumps(message)}}},"attributes":{attributes},'
        f'"events":{events or "[]"},"links":{links or "[]"},"resource":{resource},"scope":{scope},'
        f'"duration_ms":{"null" if end_ns is None else repr((end_ns - start_ns) / 1e6)},'
        f'"outcome":{dumps(None if state == "started" else outcome)},"process_id":{dumps(process_id)},"service":{dumps(service)}}}'
    )


async def live(request: Request) -> dict[str, Any]:
    return {**request.app.state.stats.snapshot(), "storage": await _store(request).storage()}


def _quantile(h: dict[str, Any], q: float) -> float | None:
    """The upper bound (ms) of the bucket holding quantile `q`, capped at the recorded max (None if unknown)."""
    if not h["count"]:
        return None
    top = h["max"] if h["max"] is not None else (h["bounds"][-1] if h["bounds"] else None)
    rank = q * h["count"]
    seen = 0
    for bound, count in zip([*h["bounds"], top], h["counts"]):
        seen += count
        if seen >= rank:
            return None if bound is None else float(min(bound, bound if top is None else top) * 1000)
    return None if top is None else float(top * 1000)


def _histogram_summary(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One `wait_ms`-shaped summary of per-process cumulative histograms in seconds (`shapes.histogram`)."""
    if not parts:
        return {"count": 0, "p50": None, "p95": None, "max": None, "histogram": []}
    bounds = parts[0]["bounds"]
    parts = [p for p in parts if p["bounds"] == bounds]
    counts = [sum(col) for col in zip(*(p["counts"] for p in parts))]
    maxes = [p["max"] for p in parts if p["max"] is not None]
    merged = {"count": sum(p["count"] for p in parts), "bounds": bounds, "counts": counts, "max": max(maxes, default=None)}
    cumulative = 0
    histogram = []
    for bound, count in zip(bounds, counts):
        cumulative += count
        histogram.append({"le_ms": bound * 1000, "count": cumulative})
    histogram.append({"le_ms": None, "count": merged["count"]})
    return {
        "count": merged["count"], "p50": _quantile(merged, 0.5), "p95": _quantile(merged, 0.95),
        "max": None if merged["max"] is None else merged["max"] * 1000, "histogram": histogram,
    }


_QUEUE_METRICS = (
    semconv.METRIC_QUEUE_DEPTH, semconv.METRIC_QUEUE_WAIT, semconv.METRIC_QUEUE_PUT_BLOCKED,
    semconv.METRIC_QUEUE_PRODUCERS, semconv.METRIC_QUEUE_CONSUMERS,
)


_HISTOGRAM_LE_MS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


def _exact_summary(values_ms: list[float]) -> dict[str, Any]:
    """The `wait_ms` summary of individual waits (from spans)."""
    values_ms.sort()
    n = len(values_ms)
    histogram = [{"le_ms": le, "count": bisect.bisect_right(values_ms, le)} for le in _HISTOGRAM_LE_MS]
    return {
        "count": n,
        "p50": values_ms[min(n - 1, int(0.5 * n))],
        "p95": values_ms[min(n - 1, int(0.95 * n))],
        "max": values_ms[-1],
        "histogram": [*histogram, {"le_ms": None, "count": n}],
    }


async def queues(request: Request) -> dict[str, Any]:
    """Each AsyncQueue's depth over time, item waits, blocked puts, producers and consumers.

    Waits come from the spans (links and events) of the last 20,000 items per kind; a queue known
    only from OTLP metrics gets its waits from its histogram points instead.
    """
    store = _store(request)
    rows = await store.fetch(
        "SELECT process_id, name, time_ns, json_extract(attributes, '$.\"" + semconv.QUEUE_NAME + "\"') AS queue, "
        f"value, data FROM metrics WHERE name IN ({', '.join('?' * len(_QUEUE_METRICS))}) AND queue IS NOT NULL "
        "ORDER BY time_ns DESC LIMIT 50000", _QUEUE_METRICS,
    )
    found: dict[str, dict[str, Any]] = {}
    skipped = 0
    for process_id, name, time_ns, queue, value, data in rows:
        # A point of an unexpected shape (a non-text queue name, a non-finite value, a histogram
        # without matching counts) is skipped and counted.
        point = shapes.histogram(shapes.loads(data)) if data else shapes.number(value)
        if not isinstance(queue, str) or point is None or (name == semconv.METRIC_QUEUE_DEPTH and data):
            skipped += 1
            continue
        q = found.setdefault(queue, {"depth": [], "latest": {}, "waits": {}})
        if name == semconv.METRIC_QUEUE_DEPTH:
            if len(q["depth"]) < 600:
                q["depth"].append([time_ns, point])
        elif (name in (semconv.METRIC_QUEUE_WAIT, semconv.METRIC_QUEUE_PUT_BLOCKED)) == isinstance(point, dict):
            q["latest"].setdefault((name, process_id), point)  # newest first
        else:
            skipped += 1
    seconds = {"queue_wait": semconv.QUEUE_WAIT_S, "queue_blocked": semconv.QUEUE_BLOCKED_S}
    for kind, key in seconds.items():
        for queue, wait in await store.fetch(
            "SELECT json_extract(attributes, '$.\"" + semconv.QUEUE_NAME + "\"') AS queue, "
            "json_extract(attributes, '$.\"" + key + "\"') FROM span_events WHERE kind = ? AND queue IS NOT NULL "
            "ORDER BY time_ns DESC LIMIT 20000", (kind,),
        ):
            seconds_waited = shapes.number(wait)
            if not isinstance(queue, str) or seconds_waited is None:
                skipped += 1
                continue
            q = found.setdefault(queue, {"depth": [], "latest": {}, "waits": {}})
            q["waits"].setdefault(kind, []).append(seconds_waited * 1000)
    # Producers and consumers are counted in the processes still live: an exited process's last
    # count expires with it (stats.PROCESS_IDLE_S after it was last seen) instead of adding up.
    alive = request.app.state.stats.live_process_ids()
    return {"queues": [
        {
            "name": queue,
            "depth": q["depth"][::-1],
            "wait_ms": _waits(q, "queue_wait", semconv.METRIC_QUEUE_WAIT),
            "put_blocked_ms": _waits(q, "queue_blocked", semconv.METRIC_QUEUE_PUT_BLOCKED),
            "producers": sum(_latest(q, semconv.METRIC_QUEUE_PRODUCERS, alive)),
            "consumers": sum(_latest(q, semconv.METRIC_QUEUE_CONSUMERS, alive)),
        }
        for queue, q in sorted(found.items())
    ], "skipped": skipped}


def _waits(queue: dict[str, Any], kind: str, metric: str) -> dict[str, Any]:
    values = queue["waits"].get(kind)
    return _exact_summary(values) if values else _histogram_summary(_latest(queue, metric))


def _latest(queue: dict[str, Any], metric: str, alive: frozenset[str] | None = None) -> list[Any]:
    """The newest point of `metric` from each process (only those in `alive`, when given)."""
    return [v for (name, process), v in queue["latest"].items() if name == metric and (alive is None or process in alive)]


async def retries(request: Request) -> dict[str, Any]:
    q = request.query_params
    limit = _limit(q, 100)
    name = _param(q, "name", _text)  # a prefix, as on the Traces page
    where, params = ("AND span_name >= ? AND span_name < ?", list(queries.prefix_range(name))) if name else ("", [])
    store = _store(request)
    rows = await store.fetch(
        f"SELECT trace_id, span_id, span_name, time_ns, attributes FROM span_events WHERE kind = 'retry' {where} "
        "ORDER BY time_ns DESC LIMIT ?", [*params, limit]
    )
    events = []
    for trace_id, span_id, span_name, time_ns, attrs in rows:
        a = shapes.mapping(shapes.loads(attrs))
        events.append({
            "trace_id": trace_id, "span_id": span_id, "name": span_name, "attempt": a.get(semconv.ATTEMPT),
            "delay_s": a.get(semconv.RETRY_DELAY_S), "exception_type": a.get(semconv.EXCEPTION_TYPE),
            "exception_message": a.get(semconv.EXCEPTION_MESSAGE), "time_ns": time_ns,
        })
    by_function = await store.fetch(
        "SELECT name, calls, retries, exhausted FROM function_stats "
        f"WHERE retries > 0 {'AND name >= ? AND name < ?' if name else ''} ORDER BY name", params
    )
    return {
        "retries": events,
        "by_function": [
            {"name": n, "calls": calls, "retries": r, "retries_per_call": r / calls if calls else 0.0, "exhausted": ex}
            for n, calls, r, ex in by_function
        ],
    }


async def metrics(request: Request) -> dict[str, Any]:
    rows = await _store(request).fetch(
        "SELECT json_extract(attributes, '$.\"" + semconv.METRICS_NAME + "\"') AS n, time_ns, data FROM metrics "
        "WHERE name = ? AND n IS NOT NULL ORDER BY time_ns DESC LIMIT 5000", (semconv.METRIC_SUMMARY,)
    )
    history: dict[str, list[list[Any]]] = {}
    skipped = 0
    for name, time_ns, data in rows:
        summary = shapes.loads(data)
        if not isinstance(name, str) or not isinstance(summary, dict):  # a point of another shape: skipped, counted
            skipped += 1
            continue
        points = history.setdefault(name, [])
        if len(points) < 100:
            points.append([time_ns, summary])
    for points in history.values():
        points.reverse()
    return {
        "summaries": [{"name": n, "time_ns": p[-1][0], "summary": p[-1][1]} for n, p in sorted(history.items())],
        "history": history,
        "skipped": skipped,
    }


async def debug(request: Request) -> dict[str, Any]:
    q = request.query_params
    where = ["kind IN ('slow_callback', 'creation_stack')"]
    params: list[Any] = []
    since = _param(q, "since_ns", _nonneg_int)
    if since is not None:
        where.append("time_ns >= ?")
        params.append(since)
    kind = _param(q, "kind", _choice("slow_callback", "creation_stack", "log"))
    if kind:
        where.append("kind = ?")
        params.append(kind)
    text = _param(q, "q", _text)
    if text:
        where.append("(span_name LIKE ? ESCAPE '\\' OR attributes LIKE ? ESCAPE '\\')")
        params += [_like(text), _like(text)]
    rows = await _store(request).fetch(
        f"SELECT time_ns, kind, span_name, trace_id, span_id, attributes FROM span_events WHERE {' AND '.join(where)} "
        f"ORDER BY time_ns DESC LIMIT {_MAX_LIMIT}", params
    )
    return {
        "events": [
            {"time_ns": t, "kind": k, "name": n, "trace_id": tr, "span_id": s, "attributes": shapes.mapping(shapes.loads(a))}
            for t, k, n, tr, s, a in rows
        ]
    }


async def limits(request: Request) -> dict[str, Any]:
    """Concurrency limits (spans carrying `opto.concurrency.limit`) started since `since_ns`, newest
    first: the rows the writer keeps of them (`store._event_rows`), not a scan of the spans."""
    since = _param(request.query_params, "since_ns", _nonneg_int, 0)
    rows = await _store(request).fetch(
        "SELECT span_name, attributes ->> '$.limit', attributes ->> '$.peak', trace_id, span_id, time_ns, attributes ->> '$.end_ns' "
        "FROM span_events WHERE kind = 'concurrency' AND time_ns >= ? ORDER BY time_ns DESC LIMIT 20", [since]
    )
    keys = ("name", "limit", "peak", "trace_id", "span_id", "start_ns", "end_ns")
    return {"limits": [dict(zip(keys, row)) for row in rows]}


_SEARCH_ATTRS = {
    "workflow": semconv.FUNCTION, "strategy": semconv.OPTIMIZE_STRATEGY, "beam_width": semconv.OPTIMIZE_BEAM_WIDTH,
    "num_proposals": semconv.OPTIMIZE_NUM_PROPOSALS, "max_depth": semconv.OPTIMIZE_MAX_DEPTH,
    "max_concurrent": semconv.OPTIMIZE_MAX_CONCURRENT,
}
_ATTRIBUTES = "opto_attributes(s.attributes, k.keys)"
_SEARCH_FIELDS = f"lower(hex(t.trace_id)), lower(hex(s.span_id)), s.state, s.start_ns, s.end_ns, s.outcome, r.service, {_ATTRIBUTES}"
_STEP_FIELDS = (
    "lower(hex(s.span_id)), CASE WHEN s.parent_span_id IS NOT NULL THEN lower(hex(s.parent_span_id)) END, "
    f"s.state, s.start_ns, s.end_ns, s.outcome, s.status_message, {_ATTRIBUTES}, s.events"
)
_KIND = _ATTRIBUTES + " ->> '$.\"" + semconv.SPAN_KIND + "\"'"
# The traces holding a span of a name, from the filter index: a name's spans have no index of their own.
_NAMED = "s.trace_ref IN (SELECT trace_ref FROM trace_terms WHERE term_id = (SELECT id FROM terms WHERE term = ?)) AND s.name = ?"


async def optimize_searches(request: Request) -> dict[str, Any]:
    """`@trace.optimize` searches, newest first, each with its best score and parameters so far."""
    limit = _limit(request.query_params, 50)
    store = _store(request)
    rows = await store.fetch(
        f"SELECT {_SEARCH_FIELDS} FROM {SPAN_TABLES} WHERE {_NAMED} AND {_KIND} = ? ORDER BY s.start_ns DESC LIMIT ?",
        ("n:" + semconv.SPAN_OPTIMIZE, semconv.SPAN_OPTIMIZE, semconv.KIND_OPTIMIZE, limit),
    )
    steps = await _search_steps(store, sorted({r[0] for r in rows}))
    found = [_search(row, steps.get(row[0], [])) for row in rows]
    return {"searches": [f["search"] for f in found], "skipped": sum(f["skipped"] for f in found)}


async def optimize_search(request: Request) -> Response:
    """One search: its depths with their candidates (params, score, error, parent, kept), history and best."""
    trace_id = check_id(request.path_params["trace_id"], 32, "trace_id")
    span_id = check_id(request.path_params["span_id"], 16, "span_id")
    store = _store(request)
    rows = await store.fetch(
        f"SELECT {_SEARCH_FIELDS} FROM {SPAN_TABLES} WHERE s.trace_ref = (SELECT rowid FROM traces WHERE trace_id = ?) "
        f"AND s.span_id = ? AND {_KIND} = ?", (bytes.fromhex(trace_id), bytes.fromhex(span_id), semconv.KIND_OPTIMIZE),
    )
    if not rows:
        return JSONResponse({"msg": "not found", "detail": f"no search {trace_id}/{span_id}"}, status_code=404)
    steps = await _search_steps(store, [trace_id])
    return JSONResponse(_search(rows[0], steps.get(trace_id, [])))


async def _search_steps(store: Store, trace_ids: Sequence[str]) -> dict[str, list[Any]]:
    """The depth and candidate spans of the given traces, by trace id."""
    found: dict[str, list[Any]] = {}
    if not trace_ids:
        return found
    rows = await store.fetch(
        f"SELECT lower(hex(t.trace_id)), {_STEP_FIELDS} FROM {SPAN_TABLES} WHERE t.trace_id IN ({', '.join('?' * len(trace_ids))}) "
        "AND s.name IN (?, ?) ORDER BY s.start_ns, s.span_id",
        [*map(bytes.fromhex, trace_ids), semconv.SPAN_OPTIMIZE_DEPTH, semconv.SPAN_OPTIMIZE_CANDIDATE],
    )
    for trace_id, *step in rows:
        found.setdefault(trace_id, []).append(step)
    return found


def _params(attrs: Mapping[str, Any]) -> dict[str, Any]:
    prefix = semconv.OPTIMIZE_PARAM_PREFIX
    return {k.removeprefix(prefix): v for k, v in attrs.items() if k.startswith(prefix)}


def _timing(state: str, start_ns: int, end_ns: int | None) -> dict[str, Any]:
    duration_ms = (end_ns - start_ns) / 1e6 if state == "ended" and end_ns is not None else None
    return {"state": state, "start_ns": start_ns, "end_ns": end_ns, "duration_ms": duration_ms}


def _candidate(step: Sequence[Any], attrs: Mapping[str, Any]) -> dict[str, Any]:
    span_id, _, state, start_ns, end_ns, outcome, message, _, events = step
    error = None
    if state == "ended" and outcome == semconv.OUTCOME_ERROR:
        exc = next((shapes.mapping(e.get("attributes")) for e in shapes.loads(events) or [] if isinstance(e, dict) and e.get("name") == "exception"), {})
        error = {"type": shapes.text(attrs.get(semconv.ERROR_TYPE)) or shapes.text(exc.get(semconv.EXCEPTION_TYPE)),
                 "message": shapes.text(exc.get(semconv.EXCEPTION_MESSAGE, message))}
    return {
        "id": shapes.integer(attrs.get(semconv.OPTIMIZE_CANDIDATE_ID)), "parent_id": shapes.integer(attrs.get(semconv.OPTIMIZE_PARENT_ID)),
        "depth": shapes.integer(attrs.get(semconv.OPTIMIZE_DEPTH)), "span_id": span_id, **_timing(state, start_ns, end_ns),
        "outcome": outcome if state == "ended" else None, "score": shapes.number(attrs.get(semconv.OPTIMIZE_SCORE)),
        "params": _params(attrs), "error": error, "kept": None,
    }


def _misread(attrs: Mapping[str, Any], keys: Sequence[str], read: Callable[[Any], Any]) -> bool:
    """Whether any of `keys` is present in `attrs` with a value `read` cannot take."""
    return any(attrs.get(key) is not None and read(attrs[key]) is None for key in keys)


def _depth(index: int, span_id: str | None, state: str, start_ns: int, end_ns: int | None) -> dict[str, Any]:
    return {"depth": index, "span_id": span_id, **_timing(state, start_ns, end_ns), "beam": None, "candidates": []}


def _search(row: Sequence[Any], steps: list[Any]) -> dict[str, Any]:
    """A search span and the trace's depth and candidate spans as the `/api/optimize/...` document.

    Only steps under this search count (a trace may hold several); the best so far comes from the
    ended candidates, so it is known while the search runs.
    """
    trace_id, span_id, state, start_ns, end_ns, outcome, service, attributes = row
    attrs = shapes.mapping(shapes.loads(attributes))
    skipped = 0  # steps whose depth, id or score has an unexpected type: skipped (or the score ignored), counted
    children = ((s, shapes.mapping(shapes.loads(s[7]))) for s in steps if s[1] == span_id)
    depth_spans = {s[0]: (s, a) for s, a in children if a.get(semconv.SPAN_KIND) == semconv.KIND_OPTIMIZE_DEPTH}
    depths: dict[int, dict[str, Any]] = {}
    for depth_id, (step, a) in depth_spans.items():
        index = shapes.integer(a.get(semconv.OPTIMIZE_DEPTH, 0))
        beam = a.get(semconv.OPTIMIZE_BEAM)
        if index is None or (beam is not None and not isinstance(beam, list)):
            skipped += 1
            continue
        depth = depths[index] = _depth(index, depth_id, *step[2:5])
        depth["beam"] = beam if step[2] == "ended" else None
    for step in steps:
        a = shapes.mapping(shapes.loads(step[7]))
        if a.get(semconv.SPAN_KIND) == semconv.KIND_OPTIMIZE_CANDIDATE and (step[1] == span_id or step[1] in depth_spans):
            if _misread(a, (semconv.OPTIMIZE_DEPTH, semconv.OPTIMIZE_CANDIDATE_ID), shapes.integer):
                skipped += 1
                continue
            skipped += _misread(a, (semconv.OPTIMIZE_SCORE,), shapes.number)
            candidate = _candidate(step, a)
            index = candidate["depth"] or 0
            if index not in depths:  # the start (depth 0) has no depth span; any other arrives before its candidates
                depths[index] = _depth(index, None, step[2], step[3], step[4])
                depths[index]["beam"] = [candidate["id"]] if index == 0 and step[2] == "ended" else None
            depths[index]["candidates"].append(candidate)
    best: dict[str, Any] | None = None
    history = []
    for index in sorted(depths):
        depth = depths[index]
        depth["candidates"].sort(key=lambda c: c["id"] or 0)
        scored = [c for c in depth["candidates"] if c["score"] is not None]
        for c in depth["candidates"]:
            c["kept"] = None if depth.get("beam") is None else c["id"] in depth["beam"]
        top = max(scored, key=lambda c: c["score"], default=None)
        if top is not None and (best is None or top["score"] > best["score"]):
            best = top
        depth["best_score"] = None if top is None else top["score"]
        history.append({"depth": index, "best_score": None if best is None else best["score"], "depth_best": depth["best_score"]})
    summary = {
        "trace_id": trace_id, "span_id": span_id, "service": service,
        **{key: attrs.get(name) for key, name in _SEARCH_ATTRS.items()},
        **_timing(state, start_ns, end_ns), "outcome": outcome if state == "ended" else None,
        "best_id": None if best is None else best["id"], "best_score": None if best is None else best["score"],
        "best_params": {} if best is None else best["params"],
        "depths": max(depths, default=0), "candidates": sum(len(d["candidates"]) for d in depths.values()),
    }
    return {"search": summary, "depths": [depths[i] for i in sorted(depths)], "history": history, "skipped": skipped}


async def tasks(request: Request) -> dict[str, Any]:
    """Live tasks by creation site, per instrumented process (docs/asyncio.md)."""
    return request.app.state.tasks.tasks()  # type: ignore[no-any-return]


async def loop(request: Request) -> dict[str, Any]:
    """Each instrumented process's loop lag and blocked-loop incidents."""
    return request.app.state.tasks.loop()  # type: ignore[no-any-return]


_HEX16 = re.compile(r"[0-9a-f]{16}")
_STACK_STATUS = {"refused": 403, "not found": 404, "invalid": 400, "failed": 502}


async def await_stack(request: Request) -> Response:
    """Ask a connected process where a task (`task`) or the task running a span (`span_id`) is now."""
    q = request.query_params
    process = check_id(q.get("process"), 32, "process")
    task = _param(q, "task", _nonneg_int)
    span_id = q.get("span_id") or None
    if span_id is not None and _HEX16.fullmatch(span_id) is None:
        raise BadParameter(f"span_id: expected 16 lowercase hex chars, got {span_id[:40]!r}")
    if (task is None) == (span_id is None):
        raise BadParameter("task or span_id: give exactly one")
    introspect: Introspect = request.app.state.introspect
    try:
        answer = await introspect.ask(process, {"task": task} if task is not None else {"span_id": span_id})
    except Unanswered as exc:
        return JSONResponse({"msg": exc.msg, "detail": exc.detail}, status_code=exc.status)
    if "error" in answer:
        return JSONResponse({"msg": answer["error"], "detail": answer["detail"]}, status_code=_STACK_STATUS[answer["error"]])
    return JSONResponse({"process": process, **answer})


routes = [
    Route("/api/traces", _endpoint(traces)),
    Route("/api/traces/{trace_id}", _endpoint(trace)),
    Route("/api/suggest", _endpoint(suggest)),
    Route("/api/live", _endpoint(live)),
    Route("/api/queues", _endpoint(queues)),
    Route("/api/retries", _endpoint(retries)),
    Route("/api/metrics", _endpoint(metrics)),
    Route("/api/limits", _endpoint(limits)),
    Route("/api/debug", _endpoint(debug)),
    Route("/api/tasks", _endpoint(tasks)),
    Route("/api/loop", _endpoint(loop)),
    Route("/api/await-stack", _endpoint(await_stack)),
    Route("/api/optimize", _endpoint(optimize_searches)),
    Route("/api/optimize/{trace_id}/{span_id}", _endpoint(optimize_search)),
]

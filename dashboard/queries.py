"""The read queries of the Traces page, each driven by an index, returning typed rows.

Filters by span name, service, attribute and free text go through the term vocabulary the writer
keeps (`terms`, `trace_terms` in writer.SCHEMA): a filter looks its terms up by index, then the
traces holding them by rowid, so no query reads the spans of every trace.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from . import compact
from .store import SPAN_COLUMNS, SPAN_TABLES, Store

__all__ = ["TraceFilter", "TraceRow", "TracePage", "traces_sql", "traces", "suggest", "prefix_range", "fts_query", "MAX_TOTAL", "TERM_KINDS", "trace_spans", "SpanCursor", "breadth_sql", "choose_plan", "Plan", "NARROW", "WINDOW"]

MAX_TOTAL = 10_000  # matches counted past this are reported as "more": a count must not read every trace
TERM_KINDS = {"name": "n:", "service": "s:", "attribute": "a:"}
_TOP = "\U0010ffff"  # sorts after any text that starts with the same prefix


def prefix_range(prefix: str) -> tuple[str, str]:
    """Bounds `lo <= term < hi` of the terms starting with `prefix`, for an index range search."""
    return prefix, prefix + _TOP


@dataclass(frozen=True, slots=True)
class TraceFilter:
    """What the Traces page asks: every field optional; `name` is a prefix, `attributes` exact `key=value` pairs."""

    name: str | None = None
    service: str | None = None
    attributes: tuple[tuple[str, str], ...] = ()
    outcome: str | None = None
    min_duration_ns: int | None = None
    max_duration_ns: int | None = None
    since_ns: int | None = None
    until_ns: int | None = None
    text: str | None = None
    sort: Literal["start", "duration", "spans", "errors"] = "start"
    order: Literal["asc", "desc"] = "desc"
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True, slots=True)
class TraceRow:
    """One trace's summary row."""

    trace_id: str
    root_name: str
    service: str | None
    start_ns: int
    end_ns: int | None
    span_count: int
    in_flight: int
    outcome: str | None
    error_count: int
    retry_count: int


@dataclass(frozen=True, slots=True)
class TracePage:
    """A page of traces, the number that match (counted up to `MAX_TOTAL`), and whether more match."""

    rows: list[TraceRow]
    total: int
    more: bool


_FIELDS = "lower(hex(t.trace_id)), t.root_name, t.service, t.start_ns, t.end_ns, t.span_count, t.in_flight, t.outcome, t.error_count, t.retry_count"
# A term filter drives the query (the traces holding its terms, by rowid) when it matches fewer
# traces than this; a broader one is checked per trace as the traces are walked in sort order,
# which stops at a page's worth of matches. Walked so, matches are counted among the first WINDOW
# traces in that order only (`more` is then true if there are further traces).
NARROW = 20_000
WINDOW = 5_000
_DRIVING = "t.rowid IN (SELECT trace_ref FROM trace_terms WHERE term_id IN ({}))"
_TESTED = "+t.rowid IN (SELECT trace_ref FROM trace_terms WHERE term_id IN ({}))"  # its traces, looked up as the walk goes
# The trace's own list of its terms against the filter's ids, passed by key (compact.term_sets).
_CHECKED = "opto_holds(t.terms, ?)"


def _term_filters(f: TraceFilter) -> list[tuple[str, list[Any]]]:
    """Each of `f`'s name, service, attribute and search filters as a query of term ids."""
    terms: list[tuple[str, list[Any]]] = []
    if f.name:
        terms.append(("SELECT id FROM terms WHERE term >= ? AND term < ?", list(prefix_range("n:" + f.name))))
    if f.service:
        terms.append(("SELECT id FROM terms WHERE term = ?", ["s:" + f.service]))
    for key, value in f.attributes:
        terms.append(("SELECT id FROM terms WHERE term = ?", [f"a:{key}={value}"]))
    search = fts_query(f.text) if f.text else None
    if search is not None:
        terms.append(("SELECT rowid AS id FROM terms_fts WHERE terms_fts MATCH ?", [search]))
    return terms


def _conditions(
    f: TraceFilter, sets: Sequence[int], driver: int | None, driven: bool,
) -> tuple[list[str], list[Any], list[str], list[Any]]:
    """`f` as SQL conditions on `traces t`, in the order SQLite tests them: the driving term filter's
    and the plain columns' (with their parameters), then the other term filters', each a call into
    Python per trace (with theirs; `sets` holds their keys, by position). `driven`: only the
    driver can use an index (the others get a unary `+`), so the plan starts from the driver's
    traces; else the driver's traces are a set the walk in sort order looks each trace up in."""
    indexed: list[str] = []
    indexed_params: list[Any] = []
    checked: list[str] = []
    checked_params: list[Any] = []
    term_filters = _term_filters(f)
    searching = f.text is not None and fts_query(f.text) is not None  # then the last term filter is the search
    for i, (ids, ids_params) in enumerate(term_filters):
        params: list[Any] = ids_params if i == driver else [sets[i]]
        holding = (_DRIVING if driven else _TESTED).format(ids) if i == driver else _CHECKED
        if searching and i == len(term_filters) - 1:
            holding = f"(t.trace_id = ? OR {holding})"  # the search box also takes a trace id
            params = [_trace_id(f.text), *params]  # type: ignore[arg-type]
        (indexed if i == driver else checked).append(holding)
        (indexed_params if i == driver else checked_params).extend(params)
    t = "+t" if driven else "t"
    if f.text and not searching:
        indexed.append(f"{t}.trace_id = ?")
        indexed_params.append(_trace_id(f.text))
    if f.outcome:
        indexed.append(f"{t}.outcome = ?")
        indexed_params.append(f.outcome)
    if f.min_duration_ns is not None:
        indexed.append(f"t.in_flight = 0 AND {'+' if driven else ''}coalesce(t.end_ns, t.start_ns) - t.start_ns >= ?")  # traces_duration
        indexed_params.append(f.min_duration_ns)
    if f.max_duration_ns is not None:
        indexed.append(f"t.in_flight = 0 AND {'+' if driven else ''}coalesce(t.end_ns, t.start_ns) - t.start_ns <= ?")
        indexed_params.append(f.max_duration_ns)
    if f.since_ns is not None:
        indexed.append(f"{t}.start_ns >= ?")
        indexed_params.append(f.since_ns)
    if f.until_ns is not None:
        indexed.append(f"{t}.start_ns <= ?")
        indexed_params.append(f.until_ns)
    return indexed, indexed_params, checked, checked_params


def _trace_id(text: str) -> bytes | None:
    """The stored form of a trace id typed in the search box (None: the text is not one)."""
    return bytes.fromhex(text) if _TRACE_ID.fullmatch(text) else None


_TRACE_ID = re.compile(r"[0-9a-fA-F]{32}")


def _clause(conditions: list[str]) -> str:
    return f"WHERE {' AND '.join(conditions)}" if conditions else ""


def fts_query(text: str) -> str | None:
    """The FTS5 query for a search box's text: its words as a phrase, the last one a prefix
    (`upstream res` finds "upstream reset", `Timeout` finds "TimeoutError"); None if it has no words."""
    words = re.findall(r"\w+", text)
    return None if not words else '"' + " ".join(words) + '"*'


def breadth_sql(f: TraceFilter) -> tuple[str, list[Any]] | None:
    """What the plan of `f`'s queries is chosen from (None: `f` has no term filter): about how many
    traces are stored (the span of their rowids), then for each term filter the traces it matches,
    counted up to NARROW, and its term ids as a JSON list (`Plan.ids`)."""
    terms = _term_filters(f)
    if not terms:
        return None
    columns = ["coalesce((SELECT max(rowid) FROM traces) - (SELECT min(rowid) FROM traces) + 1, 0)"]  # each by the rowid's end
    for ids, _ in terms:
        columns.append(f"(SELECT count(*) FROM (SELECT 1 FROM trace_terms WHERE term_id IN ({ids}) LIMIT {NARROW}))")
        columns.append(f"(SELECT json_group_array(id) FROM ({ids}))")
    return "SELECT " + ", ".join(columns), [p for _, ids_params in terms for p in ids_params * 2]


@dataclass(frozen=True, slots=True)
class Plan:
    """How `traces_sql` reads: `driver`, the term filter (by position) whose traces are looked up
    first, or None to walk the traces in sort order; `driven_page`, whether the page query starts
    from the driver's traces too (else it walks in sort order, testing each against them); `ids`,
    each term filter's term ids (JSON lists, for `compact.term_sets`)."""

    driver: int | None = None
    driven_page: bool = False
    ids: tuple[str, ...] = ()


def choose_plan(f: TraceFilter, breadth: Sequence[Any]) -> Plan:
    """The plan for `f` from `breadth_sql`'s row: driven by the narrowest term filter if it matches
    fewer than NARROW traces. Its page query is driven too when that looks up fewer traces than a
    walk in sort order would pass to find a page's worth (offset + limit, one in `traces / matches`)."""
    traces, counts, ids = breadth[0], breadth[1::2], tuple(breadth[2::2])
    narrowest = min(range(len(counts)), key=counts.__getitem__)
    if counts[narrowest] >= NARROW:
        return Plan(None, False, ids)
    matches = max(counts[narrowest], 1)
    return Plan(narrowest, matches * matches < (f.offset + f.limit) * traces, ids)


# The sort keys: start and duration by their index; span and error counts by the summary rows
# (read whole, SQLite's sorter keeping a page's worth), ties by start in the same direction.
_ORDER = {
    "start": "t.start_ns {dir}",
    "duration": "coalesce(t.end_ns, t.start_ns) - t.start_ns {dir}",
    "spans": "t.span_count {dir}, t.start_ns {dir}",
    "errors": "t.error_count {dir}, t.start_ns {dir}",
}


def traces_sql(f: TraceFilter, plan: Plan = Plan(), sets: Sequence[int] = ()) -> list[tuple[str, list[Any]]]:
    """The page query and the (bounded) count query for `f` read as `plan` says, as (SQL,
    parameters); `sets`: the keys of `plan.ids` (`compact.term_sets`) for the term filters checked
    per trace. The count query starts from the driver's traces, if there is a driver.
    The count query answers (matches, whether more traces were left unread)."""
    order = _ORDER[f.sort].format(dir="DESC" if f.order == "desc" else "ASC")
    driver = plan.driver
    indexed, indexed_params, checked, checked_params = _conditions(f, sets, driver, plan.driven_page and driver is not None)
    page = f"SELECT {_FIELDS} FROM traces t {_clause(indexed + checked)} ORDER BY {order} LIMIT ? OFFSET ?"
    page_params = [*indexed_params, *checked_params, f.limit, f.offset]
    if driver is not None or not checked:
        indexed, indexed_params, checked, checked_params = _conditions(f, sets, driver, driver is not None)
        count = f"SELECT count(*), 0 FROM (SELECT 1 FROM traces t {_clause(indexed + checked)} LIMIT ?)"
        return [(page, page_params), (count, [*indexed_params, *checked_params, MAX_TOTAL + 1])]
    # Walked in sort order: the matches among the first WINDOW traces, and whether there were more.
    count = (
        f"SELECT coalesce(sum(ok), 0), count(*) > ? FROM (SELECT {' AND '.join(checked)} AS ok "
        f"FROM traces t {_clause(indexed)} ORDER BY {order} LIMIT ?)"
    )
    return [(page, page_params), (count, [WINDOW, *checked_params, *indexed_params, WINDOW + 1])]


async def traces(store: Store, f: TraceFilter) -> TracePage:
    """The traces matching `f`, one page of them, sorted as asked, read as `choose_plan` says."""
    breadth = breadth_sql(f)
    plan = Plan() if breadth is None else choose_plan(f, (await store.fetch(*breadth))[0])
    with compact.term_sets(plan.ids) as sets:
        (page, page_params), (count, count_params) = traces_sql(f, plan, sets)
        rows = [TraceRow(*r) for r in await store.fetch(page, page_params)]
        ((total, walked_past),) = await store.fetch(count, count_params)
    return TracePage(rows, min(total, MAX_TOTAL), total > MAX_TOTAL or bool(walked_past))


def suggest_sql(kind: str, prefix: str, limit: int) -> tuple[str, Sequence[Any]]:
    """The terms of `kind` (a key of TERM_KINDS) starting with `prefix`, in order."""
    return "SELECT substr(term, 3) FROM terms WHERE term >= ? AND term < ? ORDER BY term LIMIT ?", [
        *prefix_range(TERM_KINDS[kind] + prefix), limit
    ]


async def suggest(store: Store, kind: str, prefix: str, limit: int = 20) -> list[str]:
    """Names, services or `key=value` attributes seen, starting with `prefix`: the filters' suggestions."""
    sql, params = suggest_sql(kind, prefix, limit)
    return [term for (term,) in await store.fetch(sql, params)]


SpanCursor = tuple[int, str]  # (start_ns, span_id) of the last span of a page


async def trace_spans(store: Store, trace_id: str, after: SpanCursor | None, limit: int) -> tuple[list[Any], SpanCursor | None]:
    """A page of a trace's spans (`SELECT {SPAN_COLUMNS}` rows; `trace_id` and the cursor's span id checked hex) ordered by start then span id, after
    `after`, and the cursor of the next page (None: this was the last)."""
    start, span = after if after is not None else (-1, "")
    rows = await store.fetch(
        f"SELECT {SPAN_COLUMNS} FROM {SPAN_TABLES} WHERE s.trace_ref = (SELECT rowid FROM traces WHERE trace_id = ?) "
        "AND (s.start_ns > ? OR (s.start_ns = ? AND s.span_id > ?)) ORDER BY s.start_ns, s.span_id LIMIT ?",
        (bytes.fromhex(trace_id), start, start, bytes.fromhex(span), limit + 1),
    )
    more = len(rows) > limit
    del rows[limit:]
    return rows, (rows[-1][6], rows[-1][1]) if more else None

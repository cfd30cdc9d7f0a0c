"""The dashboard's SQLite database: schema, the batched write, retention, and the read queries.

One sqlite3 connection writes, on a thread of its own, each batch of writes in one call to it (one
thread hop per transaction: the writer then contends for the GIL with ingest's parsing a handful of
times per batch, not once per row); an aiosqlite connection reads, so in WAL mode reads never wait.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import orjson

from opto.telemetry import semconv

from .records import MAX_INT, ProcessInfo, SpanRecord, outcome_of

__all__ = ["Store", "Write", "SPAN_COLUMNS", "row_to_record"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spans (
    trace_id TEXT NOT NULL, span_id TEXT NOT NULL, parent_span_id TEXT, name TEXT NOT NULL,
    kind TEXT NOT NULL, state TEXT NOT NULL, start_ns INTEGER NOT NULL, end_ns INTEGER,
    status_code TEXT NOT NULL, status_message TEXT NOT NULL, outcome TEXT, attempts INTEGER,
    process_id TEXT, service TEXT, attributes TEXT NOT NULL, events TEXT, links TEXT,
    resource TEXT NOT NULL, scope TEXT NOT NULL,
    PRIMARY KEY (trace_id, span_id)
);
-- The key (trace_id, span_id) serves a trace's spans and, within it, a span's children.
CREATE INDEX IF NOT EXISTS spans_start ON spans (start_ns);
CREATE INDEX IF NOT EXISTS spans_name ON spans (name, start_ns);
CREATE INDEX IF NOT EXISTS spans_in_flight ON spans (start_ns) WHERE state = 'started';
CREATE TABLE IF NOT EXISTS traces (
    trace_id TEXT PRIMARY KEY, root_name TEXT NOT NULL, service TEXT, start_ns INTEGER NOT NULL,
    end_ns INTEGER, span_count INTEGER NOT NULL, in_flight INTEGER NOT NULL, outcome TEXT,
    error_count INTEGER NOT NULL, retry_count INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS traces_start ON traces (start_ns);
CREATE INDEX IF NOT EXISTS traces_root ON traces (root_name, start_ns);
CREATE INDEX IF NOT EXISTS traces_outcome ON traces (outcome, start_ns);
CREATE TABLE IF NOT EXISTS span_events (
    trace_id TEXT NOT NULL, span_id TEXT NOT NULL, span_name TEXT NOT NULL, kind TEXT NOT NULL,
    time_ns INTEGER NOT NULL, attributes TEXT NOT NULL,
    UNIQUE (span_id, kind, time_ns)
);
CREATE INDEX IF NOT EXISTS span_events_kind ON span_events (kind, time_ns);
CREATE TABLE IF NOT EXISTS metrics (
    process_id TEXT, name TEXT NOT NULL, time_ns INTEGER NOT NULL, attributes TEXT NOT NULL,
    value REAL, data TEXT  -- data: an AsyncMetrics summary or a histogram, as JSON
);
CREATE INDEX IF NOT EXISTS metrics_name ON metrics (name, time_ns);
CREATE TABLE IF NOT EXISTS processes (
    id TEXT PRIMARY KEY, service TEXT, pid INTEGER, host TEXT, sdk TEXT, started_ns INTEGER,
    last_seen_ns INTEGER, drop_spans INTEGER NOT NULL DEFAULT 0, drop_metrics INTEGER NOT NULL DEFAULT 0
);
"""

SPAN_COLUMNS = (
    "trace_id, span_id, parent_span_id, name, kind, state, start_ns, end_ns, status_code, "
    "status_message, outcome, attempts, process_id, service, attributes, events, links, resource, scope"
)
# Statement sizes in spans: the largest under SQLite's 32,766 parameters (19 per span), then powers
# of two. Each statement is one wait for the GIL when the writer comes back from SQLite, and the
# event loop holds the GIL through a whole frame's decoding: fewer statements, fewer such waits.
_ROWS_PER_INSERT = (32_766 // 19, 1024, 512, 256, 128, 64, 32, 16, 8, 4, 2, 1)
_UPSERT_SPANS = """
INSERT INTO spans ({columns}) VALUES {values}
ON CONFLICT (trace_id, span_id) DO UPDATE SET
    parent_span_id = excluded.parent_span_id, name = excluded.name, kind = excluded.kind,
    state = excluded.state, start_ns = excluded.start_ns, end_ns = excluded.end_ns,
    status_code = excluded.status_code, status_message = excluded.status_message,
    outcome = excluded.outcome, attempts = excluded.attempts, process_id = excluded.process_id,
    service = excluded.service, attributes = excluded.attributes, events = excluded.events,
    links = excluded.links, resource = excluded.resource, scope = excluded.scope
WHERE spans.state = 'started' AND excluded.state = 'ended'
"""
_T = TypeVar("_T")
# Recomputes the summary row of every trace named in the JSON list bound to `?`; the root is the
# earliest span without a parent (else the earliest span: its parent has not arrived).
_REFRESH_TRACES = """
INSERT OR REPLACE INTO traces
SELECT g.trace_id, r.name, r.service, g.start_ns, g.end_ns, g.n, g.open, r.outcome, g.errors, g.retries
FROM (
    SELECT trace_id, min(start_ns) AS start_ns, max(end_ns) AS end_ns, count(*) AS n,
           sum(state = 'started') AS open, sum(coalesce(outcome IN ('error', 'timeout'), 0)) AS errors,
           sum(max(coalesce(attempts, 1) - 1, 0)) AS retries,
           (SELECT x.rowid FROM spans x WHERE x.trace_id = s.trace_id
            ORDER BY x.parent_span_id IS NOT NULL, x.start_ns LIMIT 1) AS root
    FROM spans s WHERE trace_id IN (SELECT value FROM json_each(?)) GROUP BY trace_id
) g JOIN spans r ON r.rowid = g.root
"""
_INSERT_EVENT = "INSERT OR IGNORE INTO span_events VALUES (?, ?, ?, ?, ?, ?)"
_INSERT_METRIC = "INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?)"
_UPSERT_PROCESS = """
INSERT INTO processes (id, service, pid, host, sdk, started_ns, last_seen_ns) VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET last_seen_ns = excluded.last_seen_ns
"""
_EVENT_KINDS = {
    semconv.EVENT_RETRY: "retry", semconv.EVENT_SLOW_CALLBACK: "slow_callback", semconv.EVENT_QUEUE_BLOCKED: "queue_blocked",
}


def _dumps(value: Any) -> str:
    """Compact JSON text (orjson: ingest serialises every span's attributes)."""
    return orjson.dumps(value).decode()


@dataclass(slots=True)
class Write:
    """What one ingest frame (or OTLP request) stores, in one transaction with its neighbours.

    The spans' column values are made with the write, on the event loop, while the writer thread
    is busy in SQLite (which runs without the GIL) with the writes before it.
    """

    spans: Sequence[SpanRecord]
    process: ProcessInfo | None = None
    metrics: Sequence[dict[str, Any]] = ()
    drops: dict[str, int] | None = None
    params: list[Any] = field(init=False)

    def __post_init__(self) -> None:
        self.params = _span_params(self.spans)


class _Repeats:
    """JSON of the resource and scope of the previous span: consecutive spans nearly always share them."""

    __slots__ = ("value", "text")

    def __init__(self) -> None:
        self.value: dict[str, Any] | None = None
        self.text = ""

    def dumps(self, value: dict[str, Any]) -> str:
        if value != self.value:
            self.value, self.text = value, _dumps(value)
        return self.text


def _span_params(spans: Iterable[SpanRecord]) -> list[Any]:
    """The 19 column values of every span, flat, in `SPAN_COLUMNS` order (bound to multi-row INSERTs)."""
    resources, scopes = _Repeats(), _Repeats()
    params: list[Any] = []
    add = params.extend
    for r in spans:
        attrs = r.attributes
        attempts = attrs.get(semconv.ATTEMPTS)
        service = r.resource.get(semconv.SERVICE_NAME)
        add((
            r.trace_id, r.span_id, r.parent_span_id, r.name, r.kind, r.state, r.start_ns, r.end_ns,
            r.status_code, r.status_message, None if r.state == "started" else outcome_of(attrs, r.status_code),
            attempts if type(attempts) is int and 0 <= attempts <= MAX_INT else None, r.process_id, service if type(service) is str else None,
            _dumps(attrs), _dumps(r.events) if r.events else None, _dumps(r.links) if r.links else None,
            resources.dumps(r.resource), scopes.dumps(r.scope),
        ))
    return params


@functools.lru_cache(maxsize=len(_ROWS_PER_INSERT))
def _upsert_spans(rows: int) -> str:
    """The upsert of `rows` spans in one statement (one GIL release for SQLite's work on all of them)."""
    return _UPSERT_SPANS.format(columns=SPAN_COLUMNS, values=", ".join([f"({', '.join('?' * 19)})"] * rows))


def _insert_spans(db: sqlite3.Connection, writes: Sequence[Write]) -> None:
    """Upsert in the fewest statements of a few fixed sizes, so each is prepared once and cached."""
    params = list(chain.from_iterable(w.params for w in writes))
    i = 0
    for rows in _ROWS_PER_INSERT:
        width = 19 * rows
        while len(params) - i >= width:
            db.execute(_upsert_spans(rows), params[i:i + width])
            i += width


def _event_rows(r: SpanRecord) -> Iterable[tuple[Any, ...]]:
    """Retry, debug and queue events, indexed on their own for `/api/retries`, `/api/debug` and
    `/api/queues` (a queue item's wait is a link attribute on the consumer's span)."""
    if r.state != "ended" or not (r.events or r.links or semconv.DEBUG_CREATION_STACK in r.attributes):
        return
    for i, event in enumerate(r.events):
        kind = _EVENT_KINDS.get(event["name"])
        if kind is not None:
            yield (r.trace_id, r.span_id, r.name, kind, event["time_ns"] + i, _dumps(event.get("attributes", {})))
    for i, link in enumerate(r.links):
        attrs = link.get("attributes", {})
        if semconv.QUEUE_WAIT_S in attrs:
            yield (r.trace_id, r.span_id, r.name, "queue_wait", r.start_ns + i, _dumps(attrs))
    stack = r.attributes.get(semconv.DEBUG_CREATION_STACK)
    if stack is not None:
        yield (r.trace_id, r.span_id, r.name, "creation_stack", r.start_ns, _dumps({semconv.DEBUG_CREATION_STACK: stack}))


def _write_processes(db: sqlite3.Connection, writes: Sequence[Write], now: int) -> None:
    """Each process seen once per transaction (its latest drop counters), metrics in one statement."""
    latest: dict[str, tuple[ProcessInfo, dict[str, int] | None]] = {}
    metrics: list[tuple[Any, ...]] = []
    for w in writes:
        p = w.process
        if p is None:
            continue
        latest[p.id] = (p, w.drops if w.drops is not None else latest.get(p.id, (p, None))[1])
        metrics.extend(
            (p.id, m["name"], m["time_ns"], _dumps(m.get("attributes", {})), m.get("value"),
             _dumps(m.get("summary") or m.get("histogram")) if "value" not in m else None)
            for m in w.metrics
        )
    for p, drops in latest.values():
        db.execute(_UPSERT_PROCESS, (p.id, p.service, p.pid, p.host, p.sdk, p.started_ns, now))
        if drops is not None:
            db.execute("UPDATE processes SET drop_spans = ?, drop_metrics = ? WHERE id = ?", (drops.get("spans", 0), drops.get("metrics", 0), p.id))
    if metrics:
        db.executemany(_INSERT_METRIC, metrics)


def row_to_record(row: Sequence[Any]) -> SpanRecord:
    """A `SELECT {SPAN_COLUMNS}` row back into a record."""
    return SpanRecord(
        trace_id=row[0], span_id=row[1], parent_span_id=row[2], name=row[3], kind=row[4],
        state=row[5], start_ns=row[6], end_ns=row[7], status_code=row[8], status_message=row[9],
        process_id=row[12], attributes=json.loads(row[14]), events=json.loads(row[15]) if row[15] else [],
        links=json.loads(row[16]) if row[16] else [], resource=json.loads(row[17]), scope=json.loads(row[18]),
    )


class Store:
    """The SQLite file: `open()`, then `write()` from one task, `read()` from any."""

    def __init__(self, path: str | Path, *, max_spans: int = 1_000_000, retention_s: float | None = 7 * 86400) -> None:
        if max_spans < 1:
            raise ValueError(f"max_spans must be >= 1, got {max_spans}")
        if retention_s is not None and retention_s <= 0:
            raise ValueError(f"retention must be > 0 seconds, got {retention_s}")
        self.path = Path(path)
        self.max_spans = max_spans
        self.retention_s = retention_s
        self._thread: ThreadPoolExecutor | None = None
        self._writer: sqlite3.Connection | None = None
        self._reader: aiosqlite.Connection | None = None

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="opto-dashboard-writer")
        await self._run(self._open_writer)
        self._reader = await aiosqlite.connect(self.path, isolation_level=None)
        await self._reader.execute("PRAGMA query_only = ON")

    def _open_writer(self) -> None:
        db = self._writer = sqlite3.connect(self.path, isolation_level=None)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA cache_size = -65536")  # 64 MiB: index pages of a big file stay cached
        db.execute("PRAGMA temp_store = MEMORY")
        db.executescript(_SCHEMA)

    async def close(self) -> None:
        if self._reader is not None:
            await self._reader.close()
        if self._writer is not None:
            await self._run(self._writer.close)
        if self._thread is not None:
            self._thread.shutdown()
        self._reader = self._writer = self._thread = None

    async def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        """`fn(*args)` on the writer's thread, where the write connection lives."""
        if self._thread is None:
            raise RuntimeError("Store is not open; call `await store.open()` first")
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    @property
    def reader(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise RuntimeError("Store is not open; call `await store.open()` first")
        return self._reader

    async def write(self, writes: Sequence[Write]) -> None:
        """Store several writes in one transaction: spans upserted, their traces re-summarised."""
        await self._run(self._write, writes)

    def _write(self, writes: Sequence[Write]) -> None:
        db = self._writer
        assert db is not None, "write() before open()"
        spans = [r for w in writes for r in w.spans]
        now = time.time_ns()
        db.execute("BEGIN")
        try:
            if spans:
                _insert_spans(db, writes)
                db.execute(_REFRESH_TRACES, (_dumps(list({r.trace_id for r in spans})),))
                events = [row for r in spans for row in _event_rows(r)]
                if events:
                    db.executemany(_INSERT_EVENT, events)
            _write_processes(db, writes, now)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    async def prune(self) -> int:
        """Drop finished traces older than the retention, then the oldest past `max_spans`."""
        return await self._run(self._prune)

    def _prune(self) -> int:
        db = self._writer
        assert db is not None, "prune() before open()"
        victims: list[str] = []
        if self.retention_s is not None:
            cutoff = time.time_ns() - int(self.retention_s * 1e9)
            victims.extend(row[0] for row in db.execute("SELECT trace_id FROM traces WHERE in_flight = 0 AND start_ns < ?", (cutoff,)))
        (total,) = db.execute("SELECT count(*) FROM spans").fetchone()
        excess = total - self.max_spans
        if excess > 0:
            for trace_id, count in db.execute("SELECT trace_id, span_count FROM traces WHERE in_flight = 0 ORDER BY start_ns"):
                if excess <= 0:
                    break
                victims.append(trace_id)
                excess -= count
        if not victims:
            return 0
        ids = _dumps(victims)
        db.execute("BEGIN")
        for table in ("spans", "traces", "span_events"):
            db.execute(f"DELETE FROM {table} WHERE trace_id IN (SELECT value FROM json_each(?))", (ids,))
        if self.retention_s is not None:
            db.execute("DELETE FROM metrics WHERE time_ns < ?", (time.time_ns() - int(self.retention_s * 1e9),))
        db.execute("COMMIT")
        return len(victims)

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Rows of a read query, on the reader connection."""
        async with self.reader.execute(sql, params) as cur:
            return list(await cur.fetchall())

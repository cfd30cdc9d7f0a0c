"""The dashboard's one SQLite writer: a process of its own, fed ready-to-bind rows over a pipe.

SQLite's work on a span (about 13 µs: the row, its indexes, its trace's summary) runs on a core
of its own instead of contending for the GIL with ingest's parsing. The dashboard (`store.Store`)
starts `python -m opto_dashboard.writer DB`, sends length-prefixed msgpack requests on its stdin
and reads one reply per request on its stdout; end of input closes the database. This module
imports only the standard library and msgspec, so the process starts in a few tens of ms.
"""

from __future__ import annotations

import functools
import json
import math
import os
import signal
import sqlite3
import struct
import sys
import time
from typing import Any, BinaryIO

import msgspec

__all__ = ["SCHEMA", "SPAN_COLUMNS", "SpanWrite", "Prune", "Reply", "HEADER", "open_database", "serve", "used_bytes"]

SCHEMA = """
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
    error_count INTEGER NOT NULL, retry_count INTEGER NOT NULL, root_span_id TEXT
);
CREATE INDEX IF NOT EXISTS traces_start ON traces (start_ns);
CREATE INDEX IF NOT EXISTS traces_root ON traces (root_name, start_ns);
CREATE INDEX IF NOT EXISTS traces_outcome ON traces (outcome, start_ns);
CREATE INDEX IF NOT EXISTS traces_duration ON traces (coalesce(end_ns, start_ns) - start_ns);
-- The filter vocabulary: `n:` span name, `s:` service, `a:key=value` a scalar attribute of a span or
-- of one of its events (first 200 characters), `e:` event name; each term once, and the traces
-- holding it by their rowid (kept for a trace's life: its summary row is upserted, never replaced).
CREATE TABLE IF NOT EXISTS terms (id INTEGER PRIMARY KEY, term TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS trace_terms (
    term_id INTEGER NOT NULL, trace_ref INTEGER NOT NULL, PRIMARY KEY (term_id, trace_ref)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS trace_terms_trace ON trace_terms (trace_ref);
-- Ended calls, retries and exhausted retries by span name, for the Retries page: kept as spans end
-- and as they are pruned, so the page never counts the spans of a name.
CREATE TABLE IF NOT EXISTS function_stats (
    name TEXT PRIMARY KEY, calls INTEGER NOT NULL, retries INTEGER NOT NULL, exhausted INTEGER NOT NULL
);
-- Full-text search over the vocabulary (not the spans): each distinct name or value indexed once.
CREATE VIRTUAL TABLE IF NOT EXISTS terms_fts USING fts5 (term, content = 'terms', content_rowid = 'id');
CREATE TRIGGER IF NOT EXISTS terms_added AFTER INSERT ON terms BEGIN
    INSERT INTO terms_fts (rowid, term) VALUES (new.id, new.term);
END;
CREATE TRIGGER IF NOT EXISTS terms_removed AFTER DELETE ON terms BEGIN
    INSERT INTO terms_fts (terms_fts, rowid, term) VALUES ('delete', old.id, old.term);
END;
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
_WIDTH = SPAN_COLUMNS.count(",") + 1
# Statement sizes in spans: the largest under SQLite's 32,766 parameters, then powers of two, so
# a few statements, each prepared once and cached, store any number of spans.
_ROWS_PER_INSERT = (32_766 // _WIDTH, 1024, 512, 256, 128, 64, 32, 16, 8, 4, 2, 1)
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
# Recomputes the summary row of every trace named in the JSON list bound to `?`; the root is the
# earliest span without a parent (else the earliest span: its parent has not arrived).
_REFRESH_TRACES = """
INSERT INTO traces (trace_id, root_name, service, start_ns, end_ns, span_count, in_flight,
                    outcome, error_count, retry_count, root_span_id)
SELECT g.trace_id, r.name, r.service, g.start_ns, g.end_ns, g.n, g.open, r.outcome, g.errors, g.retries, r.span_id
FROM (
    SELECT trace_id, min(start_ns) AS start_ns, max(end_ns) AS end_ns, count(*) AS n,
           sum(state = 'started') AS open, sum(coalesce(outcome IN ('error', 'timeout'), 0)) AS errors,
           sum(max(coalesce(attempts, 1) - 1, 0)) AS retries,
           (SELECT x.rowid FROM spans x WHERE x.trace_id = s.trace_id
            ORDER BY x.parent_span_id IS NOT NULL, x.start_ns LIMIT 1) AS root
    FROM spans s WHERE trace_id IN (SELECT value FROM json_each(?)) GROUP BY trace_id
) g JOIN spans r ON r.rowid = g.root
WHERE true
ON CONFLICT (trace_id) DO UPDATE SET
    root_name = excluded.root_name, service = excluded.service, start_ns = excluded.start_ns,
    end_ns = excluded.end_ns, span_count = excluded.span_count, in_flight = excluded.in_flight,
    outcome = excluded.outcome, error_count = excluded.error_count, retry_count = excluded.retry_count,
    root_span_id = excluded.root_span_id
"""
RETRY_EXHAUSTED = "opto.retry.exhausted"  # semconv.RETRY_EXHAUSTED (this module imports no opto code)
_FUNCTION_COUNTS = f"""
SELECT name, count(*), sum(max(coalesce(attempts, 1) - 1, 0)), sum(json_extract(attributes, '$."{RETRY_EXHAUSTED}"') IS 1)
FROM spans WHERE state = 'ended' AND {{}} GROUP BY name
"""
_ADD_FUNCTION_COUNTS = """
INSERT INTO function_stats VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET
    calls = calls + excluded.calls, retries = retries + excluded.retries, exhausted = exhausted + excluded.exhausted
"""
_ENDED_BEFORE = """
SELECT trace_id, span_id FROM spans
WHERE (trace_id, span_id) IN (SELECT value ->> 0, value ->> 1 FROM json_each(?)) AND state = 'ended'
"""
# The filter terms of the spans named by the JSON list of [trace_id, span_id] bound to `?` (all
# spans if NULL), into the temporary table `written`; then into the vocabulary and `trace_terms`.
_SCALAR = "j.type IN ('text', 'integer', 'real', 'true', 'false')"
_VALUE = "substr(CASE j.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' ELSE CAST(j.value AS TEXT) END, 1, 200)"
_COLLECT_TERMS = f"""
INSERT INTO temp.written (trace_id, term)
WITH w AS (
    SELECT s.* FROM spans s WHERE ?1 IS NULL
    UNION ALL
    SELECT s.* FROM json_each(?1) k JOIN spans s ON s.trace_id = k.value ->> 0 AND s.span_id = k.value ->> 1
)
SELECT trace_id, 'n:' || name FROM w
UNION SELECT trace_id, 's:' || service FROM w WHERE service IS NOT NULL
UNION SELECT w.trace_id, 'a:' || j.key || '=' || {_VALUE} FROM w, json_each(w.attributes) j WHERE {_SCALAR}
UNION SELECT w.trace_id, 'e:' || (e.value ->> 'name') FROM w, json_each(w.events) e WHERE w.events IS NOT NULL
UNION SELECT w.trace_id, 'a:' || j.key || '=' || {_VALUE}
FROM w, json_each(w.events) e, json_each(e.value, '$.attributes') j WHERE w.events IS NOT NULL AND {_SCALAR}
"""
_WRITTEN_TERM = "INSERT INTO temp.written (trace_id, term) VALUES (?, ?)"
_STORE_TERMS = (
    "INSERT OR IGNORE INTO terms (term) SELECT DISTINCT term FROM temp.written WHERE term IS NOT NULL",
    "INSERT OR IGNORE INTO trace_terms (term_id, trace_ref) SELECT DISTINCT terms.id, traces.rowid "
    "FROM temp.written w JOIN terms ON terms.term = w.term JOIN traces ON traces.trace_id = w.trace_id ORDER BY 1, 2",
    "DELETE FROM temp.written",
)
# A trace this big has its summary updated from the write's spans instead of recounted: a recount
# reads every span of the trace, so one trace growing by many writes would cost quadratic time.
_BIG = 512
_BIG_TRACES = """
SELECT trace_id, root_span_id FROM traces
WHERE trace_id IN (SELECT value FROM json_each(?)) AND span_count >= ? AND root_span_id IS NOT NULL
"""
_STORED = """
SELECT span_id, state, outcome, attempts FROM spans
WHERE trace_id = ? AND span_id IN (SELECT value FROM json_each(?))
"""
_ROOT_KEY = "SELECT parent_span_id IS NOT NULL, start_ns FROM spans WHERE trace_id = ? AND span_id = ?"
_UPDATE_TRACE = """
UPDATE traces SET start_ns = min(start_ns, ?), end_ns = coalesce(max(end_ns, ?), end_ns, ?),
    span_count = span_count + ?, in_flight = in_flight + ?, error_count = error_count + ?,
    retry_count = retry_count + ?, root_span_id = ?,
    (root_name, service, outcome) = (SELECT name, service, outcome FROM spans WHERE trace_id = ? AND span_id = ?)
WHERE trace_id = ?
"""
# Column positions in a span row (SPAN_COLUMNS order).
_TRACE, _SPAN, _PARENT, _NAME, _STATE, _START, _END, _OUTCOME, _ATTEMPTS, _ATTRIBUTES = 0, 1, 2, 3, 5, 6, 7, 10, 11, 14
_INSERT_EVENT = "INSERT OR IGNORE INTO span_events VALUES (?, ?, ?, ?, ?, ?)"
_INSERT_METRIC = "INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?)"
_UPSERT_PROCESS = """
INSERT INTO processes (id, service, pid, host, sdk, started_ns, last_seen_ns) VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET last_seen_ns = excluded.last_seen_ns
"""
_SET_DROPS = "UPDATE processes SET drop_spans = ?, drop_metrics = ? WHERE id = ?"
HEADER = struct.Struct("!I")  # each message: its length, then its msgpack body


class SpanWrite(msgspec.Struct, array_like=True, tag=True):
    """One transaction: span column values flat in `SPAN_COLUMNS` order, their filter terms, the
    touched traces as a JSON list, and event, process, drop-counter and metric rows."""

    spans: list[Any]
    trace_ids: str
    events: list[tuple[Any, ...]]
    processes: list[tuple[Any, ...]]
    drops: list[tuple[Any, ...]]
    metrics: list[tuple[Any, ...]]
    # (trace id, term) pairs of the filter index, as the dashboard makes them from its records;
    # None: read back out of the stored rows here (`_COLLECT_TERMS`, the same terms, slower)
    terms: list[tuple[str, str]] | None = None


class Prune(msgspec.Struct, array_like=True, tag=True):
    """Drop finished traces older than `retention_s`, then the oldest past `max_spans` or while the
    database's pages in use exceed `max_db_bytes`."""

    max_spans: int
    retention_s: float | None
    max_db_bytes: int | None = None


class Reply(msgspec.Struct, array_like=True):
    """The writer's answer: a count (spans stored, traces pruned), or the error that undid the
    request and whether the same request may succeed later (disk full, database locked)."""

    value: int = 0
    error: str | None = None
    transient: bool = False


# SQLite's primary result codes for a database that cannot take a write now but may later.
_TRANSIENT = {
    sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL,
    sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PROTOCOL,
}


def open_database(path: str) -> sqlite3.Connection:
    """The write connection, in WAL mode, with the schema created (and a database of an earlier
    version given the columns it lacks)."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA busy_timeout = 10000")  # a writer left by a killed dashboard may finish its last write
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("PRAGMA cache_size = -65536")  # 64 MiB: index pages of a big file stay cached
    db.execute("PRAGMA temp_store = MEMORY")
    # SQLite checkpoints at each commit past 1,000 WAL pages and, once no reader holds an older
    # snapshot (reads are time-limited), starts the WAL over; a WAL grown by a burst is cut back to 64 MiB.
    db.execute("PRAGMA journal_size_limit = 67108864")
    indexed = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'trace_terms'").fetchone() is not None
    searchable = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'terms_fts'").fetchone() is not None
    counted = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'function_stats'").fetchone() is not None
    db.executescript(SCHEMA)
    db.execute("CREATE TEMP TABLE written (trace_id, term)")  # no affinity: terms, or term ids when pruning
    if "root_span_id" not in {row[1] for row in db.execute("PRAGMA table_info(traces)")}:
        db.execute("ALTER TABLE traces ADD COLUMN root_span_id TEXT")  # filled as each trace is next written
    if not indexed:  # a database of an earlier version: its spans' terms, once
        db.execute("BEGIN IMMEDIATE")
        _store_terms(db, None)
        db.execute("COMMIT")
    elif not searchable:  # terms kept before full-text search: index them once
        db.execute("INSERT INTO terms_fts (terms_fts) VALUES ('rebuild')")
    if not counted:  # a database of an earlier version: count its ended spans once
        db.execute("INSERT INTO function_stats " + _FUNCTION_COUNTS.format("true"))
    return db


def _store_terms(db: sqlite3.Connection, spans: str | None) -> None:
    """Add the filter terms of `spans` (a JSON list of [trace_id, span_id]; None: every span)."""
    db.execute(_COLLECT_TERMS, (spans,))
    for sql in _STORE_TERMS:
        db.execute(sql)


@functools.lru_cache(maxsize=len(_ROWS_PER_INSERT))
def _upsert_spans(rows: int) -> str:
    return _UPSERT_SPANS.format(columns=SPAN_COLUMNS, values=", ".join([f"({', '.join('?' * _WIDTH)})"] * rows))


def _write(db: sqlite3.Connection, w: SpanWrite) -> int:
    params = w.spans
    big = dict(db.execute(_BIG_TRACES, (w.trace_ids, _BIG)).fetchall()) if params else {}
    rows: dict[str, list[list[Any]]] = {t: [] for t in big}
    if big:
        for i in range(0, len(params), _WIDTH):
            if params[i] in rows:
                rows[params[i]].append(params[i:i + _WIDTH])
    stored = {t: _stored(db, t, rows[t]) for t in big}
    keys = json.dumps([params[i:i + 2] for i in range(0, len(params), _WIDTH)])
    ended_before = {tuple(k) for k in db.execute(_ENDED_BEFORE, (keys,))} if params else set()
    i = 0
    for count in _ROWS_PER_INSERT:
        width = _WIDTH * count
        while len(params) - i >= width:
            db.execute(_upsert_spans(count), params[i:i + width])
            i += width
    if params:
        small = [t for t in json.loads(w.trace_ids) if t not in big] if big else None
        if small is None or small:
            db.execute(_REFRESH_TRACES, (w.trace_ids if small is None else json.dumps(small),))
        for trace_id, root in big.items():
            _update_trace(db, trace_id, root, rows[trace_id], stored[trace_id])
        if w.terms is None:
            _store_terms(db, keys)
        else:
            db.executemany(_WRITTEN_TERM, w.terms)
            for sql in _STORE_TERMS:
                db.execute(sql)
        _count_functions(db, params, ended_before)
    if w.events:
        db.executemany(_INSERT_EVENT, w.events)
    if w.processes:
        db.executemany(_UPSERT_PROCESS, w.processes)
    if w.drops:
        db.executemany(_SET_DROPS, w.drops)
    if w.metrics:
        db.executemany(_INSERT_METRIC, w.metrics)
    return len(params) // _WIDTH


def _count_functions(db: sqlite3.Connection, params: list[Any], ended_before: set[tuple[Any, ...]]) -> None:
    """Add the spans this write ended (new ended rows, or started rows now ended; each once) to `function_stats`."""
    counts: dict[str, list[int]] = {}
    for i in range(0, len(params), _WIDTH):
        key = (params[i], params[i + _SPAN])
        if params[i + _STATE] != "ended" or key in ended_before:
            continue
        ended_before.add(key)  # a span sent twice in one write counts once, as the upsert stores it once
        attempts, attributes = params[i + _ATTEMPTS], params[i + _ATTRIBUTES]
        c = counts.setdefault(params[i + _NAME], [0, 0, 0])
        c[0] += 1
        c[1] += max((1 if attempts is None else attempts) - 1, 0)
        c[2] += RETRY_EXHAUSTED in attributes and json.loads(attributes).get(RETRY_EXHAUSTED) is True
    db.executemany(_ADD_FUNCTION_COUNTS, [(name, *c) for name, c in counts.items()])


def _stored(db: sqlite3.Connection, trace_id: str, rows: list[list[Any]]) -> dict[str, tuple[Any, ...]]:
    """(state, outcome, attempts) of the rows' spans already stored, before the write replaces them."""
    ids = json.dumps([r[_SPAN] for r in rows])
    return {span_id: rest for span_id, *rest in db.execute(_STORED, (trace_id, ids))}


def _counts(state: str, outcome: str | None, attempts: int | None) -> tuple[int, int, int]:
    """What a span adds to its trace's in-flight, error and retry counts (as `_REFRESH_TRACES` counts)."""
    return state == "started", outcome in ("error", "timeout"), max((1 if attempts is None else attempts) - 1, 0)


def _update_trace(db: sqlite3.Connection, trace_id: str, root: str, rows: list[list[Any]], stored: dict[str, Any]) -> None:
    """Bring a big trace's summary up to date from the write's rows, as `_REFRESH_TRACES` would.

    A row counts as the upsert treats it: new, or a started span now ended, or else ignored.
    """
    added = in_flight = errors = retries = 0
    start, end = None, None
    found = db.execute(_ROOT_KEY, (trace_id, root)).fetchone()
    root_key = tuple(found) if found else (True, math.inf)
    for r in rows:
        state, outcome, attempts = r[_STATE], r[_OUTCOME], r[_ATTEMPTS]
        before = stored.get(r[_SPAN])
        if before is None:
            added += 1
            old = (0, 0, 0)
        elif before[0] == "started" and state == "ended":
            old = _counts(*before)
        else:
            continue  # the upsert keeps the stored row
        stored[r[_SPAN]] = (state, outcome, attempts)
        new = _counts(state, outcome, attempts)
        in_flight += new[0] - old[0]
        errors += new[1] - old[1]
        retries += new[2] - old[2]
        start = r[_START] if start is None else min(start, r[_START])
        if r[_END] is not None:
            end = r[_END] if end is None else max(end, r[_END])
        key = (r[_PARENT] is not None, r[_START])
        if key < root_key:
            root, root_key = r[_SPAN], key
    if start is not None:
        db.execute(_UPDATE_TRACE, (start, end, end, added, in_flight, errors, retries, root, trace_id, root, trace_id))


def _prune(db: sqlite3.Connection, p: Prune) -> int:
    """Traces that started before the retention go, in flight or not (a span open that long will not
    end); then, past `max_spans`, the oldest finished traces, and if that is not enough the oldest
    traces still in flight."""
    victims: list[str] = []
    cutoff = None if p.retention_s is None else time.time_ns() - int(p.retention_s * 1e9)
    if cutoff is not None:
        victims.extend(row[0] for row in db.execute("SELECT trace_id FROM traces WHERE start_ns < ?", (cutoff,)))
    (total,) = db.execute("SELECT count(*) FROM spans").fetchone()
    if cutoff is not None:
        db.execute("DELETE FROM metrics WHERE time_ns < ?", (cutoff,))
    total -= _drop(db, victims)
    pruned = len(victims)
    victims = _oldest(db, total - p.max_spans)
    total -= _drop(db, victims)
    pruned += len(victims)
    for _ in range(_SIZE_ROUNDS):
        used = used_bytes(db)
        if p.max_db_bytes is None or used <= p.max_db_bytes or total <= 0:
            break
        # Spans take about used / total bytes each; prune to 90% of the limit, so the next writes fit
        # in the pages freed (a deleted row's pages are reused, the file does not shrink). Pages
        # left partly full free less than that: another round then takes more.
        victims = _oldest(db, max(1, total - int(total * 0.9 * p.max_db_bytes / used)))
        if not victims:
            break
        total -= _drop(db, victims)
        pruned += len(victims)
    return pruned


_SIZE_ROUNDS = 8


def _oldest(db: sqlite3.Connection, spans: int) -> list[str]:
    """The oldest traces holding at least `spans` spans between them (all there are, if fewer):
    finished traces first, then, if that is not enough, traces still in flight."""
    victims: list[str] = []
    for finished in (True, False):
        if spans <= 0:
            break
        for trace_id, count in db.execute(
            f"SELECT trace_id, span_count FROM traces WHERE in_flight {'=' if finished else '>'} 0 ORDER BY start_ns"
        ):
            if spans <= 0:
                break
            victims.append(trace_id)
            spans -= count
    return victims


def _drop(db: sqlite3.Connection, victims: list[str]) -> int:
    """Delete the traces `victims` (spans, summaries, events, terms); the number of spans deleted."""
    if not victims:
        return 0
    ids = json.dumps(victims)
    (spans,) = db.execute("SELECT coalesce(sum(span_count), 0) FROM traces WHERE trace_id IN (SELECT value FROM json_each(?))", (ids,)).fetchone()
    gone = db.execute(_FUNCTION_COUNTS.format("trace_id IN (SELECT value FROM json_each(?))"), (ids,)).fetchall()
    db.executemany(_ADD_FUNCTION_COUNTS, [(name, -calls, -retries, -exhausted) for name, calls, retries, exhausted in gone])
    db.execute("DELETE FROM function_stats WHERE calls <= 0")
    for sql in _PRUNE_TERMS:
        db.execute(sql, (ids,))
    for sql in _PRUNE_VOCABULARY:
        db.execute(sql)
    for table in ("spans", "traces", "span_events"):
        db.execute(f"DELETE FROM {table} WHERE trace_id IN (SELECT value FROM json_each(?))", (ids,))
    return int(spans)


def used_bytes(db: sqlite3.Connection) -> int:
    """Bytes of the database's pages in use (free pages are reused before the file grows)."""
    (pages,), (free,), (size,) = (db.execute(f"PRAGMA {name}").fetchone() for name in ("page_count", "freelist_count", "page_size"))
    return int((pages - free) * size)



# The victims' trace_terms, then the terms no trace holds any more (only the victims' terms are looked at).
_PRUNE_TERMS = (
    "INSERT INTO temp.written (term) SELECT DISTINCT term_id FROM trace_terms WHERE trace_ref IN "
    "(SELECT rowid FROM traces WHERE trace_id IN (SELECT value FROM json_each(?)))",
    "DELETE FROM trace_terms WHERE trace_ref IN (SELECT rowid FROM traces WHERE trace_id IN (SELECT value FROM json_each(?)))",
)
_PRUNE_VOCABULARY = (
    "DELETE FROM terms WHERE id IN (SELECT term FROM temp.written) "
    "AND NOT EXISTS (SELECT 1 FROM trace_terms WHERE term_id = terms.id)",
    "DELETE FROM temp.written",
)


def _transaction(db: sqlite3.Connection, request: SpanWrite | Prune) -> Reply:
    """Carry out one request in one transaction; on failure nothing of it stays, and the reply says why."""
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            value = _write(db, request) if isinstance(request, SpanWrite) else _prune(db, request)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:  # SQLite has already rolled back after some errors (disk full)
                try:
                    db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # the error that matters is the one that stopped the write
            raise
    except sqlite3.Error as exc:  # the database, or the request's data: the writer serves on
        code = getattr(exc, "sqlite_errorcode", None)
        name = getattr(exc, "sqlite_errorname", type(exc).__name__)
        return Reply(error=f"{name}: {exc}", transient=code is not None and code & 0xFF in _TRANSIENT)
    except Exception as exc:
        return Reply(error=f"{type(exc).__name__}: {exc}")
    return Reply(value)


def _read(stream: BinaryIO, size: int) -> bytes | None:
    data = stream.read(size)
    return data if len(data) == size else None


def serve(path: str, requests: BinaryIO, replies: BinaryIO) -> None:
    """Open the database, reply once (ready, or why not), then answer requests until end of input."""
    encode = msgspec.msgpack.Encoder().encode
    decode = msgspec.msgpack.Decoder(SpanWrite | Prune).decode

    def reply(r: Reply) -> None:
        body = encode(r)
        replies.write(HEADER.pack(len(body)) + body)
        replies.flush()

    try:
        db = open_database(path)
    except sqlite3.Error as exc:
        return reply(Reply(error=f"cannot open {path}: {exc}"))
    reply(Reply())
    try:
        while (header := _read(requests, HEADER.size)) is not None:
            body = _read(requests, HEADER.unpack(header)[0])
            if body is None:
                break
            reply(_transaction(db, decode(body)))
    finally:
        db.close()


def main() -> None:
    """`python -m opto_dashboard.writer DB`: requests on stdin, replies on stdout, logs on stderr."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the dashboard, which then closes our input
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print must not corrupt the replies
    serve(sys.argv[1], sys.stdin.buffer, replies)


if __name__ == "__main__":
    main()

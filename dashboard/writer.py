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
from collections.abc import Iterable
from typing import Any, BinaryIO

import msgspec

from . import compact

__all__ = [
    "SCHEMA", "SCHEMA_VERSION", "SPAN_COLUMNS", "SPAN_TABLES", "WIRE_COLUMNS", "SpanWrite", "Prune", "Reply", "HEADER",
    "OldDatabase", "open_database", "serve", "used_bytes",
]

SCHEMA = """
-- A span's trace by its summary row's rowid, its ids as 8-byte blobs, its process, resource and scope
-- once in `resources`, its attribute names once per distinct set in `attribute_keys` (`attributes`
-- holds the values: a JSON array in the order of those names). Keyed by (trace_ref, span_id) WITHOUT
-- ROWID: the key serves a trace's spans with no index of its own, and new traces' refs grow, so
-- rows are appended. About 185 bytes on disk a typical span, where JSON and hex text of everything took 457.
CREATE TABLE IF NOT EXISTS spans (
    trace_ref INTEGER NOT NULL, span_id BLOB NOT NULL, parent_span_id BLOB, name TEXT NOT NULL,
    kind TEXT NOT NULL, state TEXT NOT NULL, start_ns INTEGER NOT NULL, end_ns INTEGER,
    status_code TEXT NOT NULL, status_message TEXT NOT NULL, outcome TEXT, attempts INTEGER,
    resource_ref INTEGER NOT NULL, keys_ref INTEGER NOT NULL, attributes TEXT NOT NULL, events TEXT, links TEXT,
    PRIMARY KEY (trace_ref, span_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS spans_in_flight ON spans (start_ns) WHERE state = 'started';
-- Each (process, resource, scope) and each set of attribute names once; `last_ns`, the latest start
-- of a span using it, lets pruning drop the rows no span kept can use.
CREATE TABLE IF NOT EXISTS resources (
    id INTEGER PRIMARY KEY, process_id TEXT, service TEXT, resource TEXT NOT NULL, scope TEXT NOT NULL,
    last_ns INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS resources_key ON resources (resource, scope, coalesce(process_id, ''));
CREATE TABLE IF NOT EXISTS attribute_keys (id INTEGER PRIMARY KEY, keys TEXT NOT NULL UNIQUE, last_ns INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS traces (
    trace_id BLOB PRIMARY KEY, root_name TEXT NOT NULL, service TEXT, start_ns INTEGER NOT NULL,
    end_ns INTEGER, span_count INTEGER NOT NULL, in_flight INTEGER NOT NULL, outcome TEXT,
    error_count INTEGER NOT NULL, retry_count INTEGER NOT NULL, root_span_id BLOB,
    terms BLOB  -- the ids of the terms it holds (below), a msgpack array: `trace_terms` the other way round
);
CREATE INDEX IF NOT EXISTS traces_start ON traces (start_ns);
CREATE INDEX IF NOT EXISTS traces_root ON traces (root_name, start_ns);
CREATE INDEX IF NOT EXISTS traces_outcome ON traces (outcome, start_ns);
CREATE INDEX IF NOT EXISTS traces_duration ON traces (coalesce(end_ns, start_ns) - start_ns);
-- The filter vocabulary: `n:` span name, `s:` service, `a:key=value` a scalar attribute of a span or
-- of one of its events (first 200 characters), `e:` event name; each term once, and the traces
-- holding it by their rowid (kept for a trace's life: its summary row is updated, never replaced).
-- A trace's own terms are listed in its summary row (`traces.terms`), not in an index of this table
-- by trace: a 3-byte id a term there, where an index entry took 10.
CREATE TABLE IF NOT EXISTS terms (id INTEGER PRIMARY KEY, term TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS trace_terms (
    term_id INTEGER NOT NULL, trace_ref INTEGER NOT NULL, PRIMARY KEY (term_id, trace_ref)
) WITHOUT ROWID;
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

# A span as `SpanRecord.to_json()` has it, column by column (`SELECT {SPAN_COLUMNS} FROM {SPAN_TABLES}`;
# a connection given `compact.register`): ids as hex, the attributes as their JSON object.
SPAN_COLUMNS = (
    "lower(hex(t.trace_id)), lower(hex(s.span_id)), CASE WHEN s.parent_span_id IS NOT NULL THEN lower(hex(s.parent_span_id)) END, "
    "s.name, s.kind, s.state, s.start_ns, s.end_ns, s.status_code, s.status_message, s.outcome, s.attempts, r.process_id, "
    "r.service, opto_attributes(s.attributes, k.keys), s.events, s.links, r.resource, r.scope"
)
SPAN_TABLES = (
    "spans s JOIN traces t ON t.rowid = s.trace_ref JOIN resources r ON r.id = s.resource_ref "
    "JOIN attribute_keys k ON k.id = s.keys_ref"
)
# What the dashboard sends for each span, flat (`SpanWrite.spans`): ids in hex, the positions of its
# resource and attribute names in the request's lists (`SpanWrite.resources`, `.keys`), its
# attribute values as a JSON array.
WIRE_COLUMNS = (
    "trace_id, span_id, parent_span_id, name, kind, state, start_ns, end_ns, status_code, status_message, outcome, "
    "attempts, resource, keys, attributes, events, links"
)
_WIRE = WIRE_COLUMNS.count(",") + 1
_STORED_COLUMNS = (
    "trace_ref, span_id, parent_span_id, name, kind, state, start_ns, end_ns, status_code, status_message, outcome, "
    "attempts, resource_ref, keys_ref, attributes, events, links"
)
_WIDTH = _STORED_COLUMNS.count(",") + 1
# Statement sizes in spans: the largest under SQLite's 32,766 parameters, then powers of two, so
# a few statements, each prepared once and cached, store any number of spans.
_ROWS_PER_INSERT = (32_766 // _WIDTH, 1024, 512, 256, 128, 64, 32, 16, 8, 4, 2, 1)
_UPSERT_SPANS = """
INSERT INTO spans ({columns}) VALUES {values}
ON CONFLICT (trace_ref, span_id) DO UPDATE SET
    parent_span_id = excluded.parent_span_id, name = excluded.name, kind = excluded.kind,
    state = excluded.state, start_ns = excluded.start_ns, end_ns = excluded.end_ns,
    status_code = excluded.status_code, status_message = excluded.status_message,
    outcome = excluded.outcome, attempts = excluded.attempts, resource_ref = excluded.resource_ref,
    keys_ref = excluded.keys_ref, attributes = excluded.attributes, events = excluded.events, links = excluded.links
WHERE spans.state = 'started' AND excluded.state = 'ended'
"""
# Each trace of the write has its summary row first (a stub for a new trace, filled in the same
# transaction), so its spans can refer to it by rowid.
_ADD_TRACE = "INSERT OR IGNORE INTO traces (trace_id, root_name, start_ns, span_count, in_flight, error_count, retry_count) VALUES (?, '', 0, 0, 0, 0, 0)"
_TRACE_REFS = """
SELECT lower(hex(trace_id)), rowid, span_count, root_span_id FROM traces
WHERE trace_id IN (SELECT unhex(value) FROM json_each(?))
"""
# Recomputes the summary row of every trace whose rowid is in the JSON list bound to `?`; the root
# is the earliest span without a parent (else the earliest span: its parent has not arrived).
_REFRESH_TRACES = """
UPDATE traces SET root_name = g.name, service = g.service, start_ns = g.start_ns, end_ns = g.end_ns,
    span_count = g.n, in_flight = g.open, outcome = g.outcome, error_count = g.errors, retry_count = g.retries,
    root_span_id = g.root
FROM (
    SELECT a.*, r.name, res.service, r.outcome FROM (
        SELECT trace_ref, min(start_ns) AS start_ns, max(end_ns) AS end_ns, count(*) AS n,
               sum(state = 'started') AS open, sum(coalesce(outcome IN ('error', 'timeout'), 0)) AS errors,
               sum(max(coalesce(attempts, 1) - 1, 0)) AS retries,
               (SELECT x.span_id FROM spans x WHERE x.trace_ref = s.trace_ref
                ORDER BY x.parent_span_id IS NOT NULL, x.start_ns LIMIT 1) AS root
        FROM spans s WHERE trace_ref IN (SELECT value FROM json_each(?)) GROUP BY trace_ref
    ) a JOIN spans r ON r.trace_ref = a.trace_ref AND r.span_id = a.root JOIN resources res ON res.id = r.resource_ref
) g
WHERE traces.rowid = g.trace_ref
"""
RETRY_EXHAUSTED = "opto.retry.exhausted"  # semconv.RETRY_EXHAUSTED (this module imports no opto code)
_FUNCTION_COUNTS = f"""
SELECT s.name, count(*), sum(max(coalesce(s.attempts, 1) - 1, 0)),
       sum(instr(k.keys, '"{RETRY_EXHAUSTED}"') AND json_extract(opto_attributes(s.attributes, k.keys), '$."{RETRY_EXHAUSTED}"') IS 1)
FROM spans s JOIN attribute_keys k ON k.id = s.keys_ref WHERE s.state = 'ended' AND {{}} GROUP BY s.name
"""
_ADD_FUNCTION_COUNTS = """
INSERT INTO function_stats VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET
    calls = calls + excluded.calls, retries = retries + excluded.retries, exhausted = exhausted + excluded.exhausted
"""
# The spans of the JSON list of [trace_ref, hex span_id] bound to `?` that are stored ended.
_ENDED_BEFORE = """
SELECT s.trace_ref, s.span_id FROM json_each(?) k CROSS JOIN spans s
WHERE s.trace_ref = k.value ->> 0 AND s.span_id = unhex(k.value ->> 1) AND s.state = 'ended'
"""
# The filter terms of the spans named by the JSON list of [trace_ref, hex span_id] bound to `?`,
# read back out of the stored rows into the temporary table `written` (the dashboard sends each
# write's terms, made from its records; this is the reference they are tested against).
_SCALAR = "j.type IN ('text', 'integer', 'real', 'true', 'false')"
_VALUE = "substr(CASE j.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' ELSE CAST(j.value AS TEXT) END, 1, 200)"
_COLLECT_TERMS = f"""
INSERT INTO temp.written (trace_id, term)
WITH w AS (
    SELECT s.trace_ref, s.name, r.service, opto_attributes(s.attributes, k.keys) AS attributes, s.events
    FROM json_each(?1) e JOIN spans s ON s.trace_ref = e.value ->> 0 AND s.span_id = unhex(e.value ->> 1)
    JOIN resources r ON r.id = s.resource_ref JOIN attribute_keys k ON k.id = s.keys_ref
)
SELECT trace_ref, 'n:' || name FROM w
UNION SELECT trace_ref, 's:' || service FROM w WHERE service IS NOT NULL
UNION SELECT w.trace_ref, 'a:' || j.key || '=' || {_VALUE} FROM w, json_each(w.attributes) j WHERE {_SCALAR}
UNION SELECT w.trace_ref, 'e:' || (e.value ->> 'name') FROM w, json_each(w.events) e WHERE w.events IS NOT NULL
UNION SELECT w.trace_ref, 'a:' || j.key || '=' || {_VALUE}
FROM w, json_each(w.events) e, json_each(e.value, '$.attributes') j WHERE w.events IS NOT NULL AND {_SCALAR}
"""
_TRACE_TERMS = "SELECT rowid, terms FROM traces WHERE rowid IN (SELECT value FROM json_each(?))"
_SET_TRACE_TERMS = "UPDATE traces SET terms = ? WHERE rowid = ?"
# A trace this big has its summary updated from the write's spans instead of recounted: a recount
# reads every span of the trace, so one trace growing by many writes would cost quadratic time.
_BIG = 512
_STORED = """
SELECT span_id, state, outcome, attempts FROM spans
WHERE trace_ref = ? AND span_id IN (SELECT unhex(value) FROM json_each(?))
"""
_ROOT_KEY = "SELECT parent_span_id IS NOT NULL, start_ns FROM spans WHERE trace_ref = ? AND span_id = ?"
_UPDATE_TRACE = """
UPDATE traces SET start_ns = min(start_ns, ?), end_ns = coalesce(max(end_ns, ?), end_ns, ?),
    span_count = span_count + ?, in_flight = in_flight + ?, error_count = error_count + ?,
    retry_count = retry_count + ?, root_span_id = ?,
    (root_name, service, outcome) = (
        SELECT s.name, r.service, s.outcome FROM spans s JOIN resources r ON r.id = s.resource_ref
        WHERE s.trace_ref = ? AND s.span_id = ?)
WHERE rowid = ?
"""
_FIND_RESOURCE = "SELECT id FROM resources WHERE resource = ? AND scope = ? AND coalesce(process_id, '') = ?"
_ADD_RESOURCE = "INSERT INTO resources (process_id, service, resource, scope, last_ns) VALUES (?, ?, ?, ?, 0)"
_FIND_KEYS = "SELECT id FROM attribute_keys WHERE keys = ?"
_ADD_KEYS = "INSERT INTO attribute_keys (keys, last_ns) VALUES (?, 0)"
_USED = (
    "UPDATE resources SET last_ns = max(last_ns, ?) WHERE id IN (SELECT value FROM json_each(?))",
    "UPDATE attribute_keys SET last_ns = max(last_ns, ?) WHERE id IN (SELECT value FROM json_each(?))",
)
_UNUSED = (  # no span kept started after their last use
    "DELETE FROM resources WHERE last_ns < coalesce((SELECT min(start_ns) FROM traces), 9223372036854775807)",
    "DELETE FROM attribute_keys WHERE last_ns < coalesce((SELECT min(start_ns) FROM traces), 9223372036854775807)",
)
# Column positions in a stored span row (`_STORED_COLUMNS` order).
_TRACE, _SPAN, _PARENT, _NAME, _STATE, _START, _END, _OUTCOME, _ATTEMPTS, _KEYS_REF, _VALUES = 0, 1, 2, 3, 5, 6, 7, 10, 11, 13, 14
# An event is stored once; a concurrency limit's row (`store._event_rows`) is stored as its span
# starts and replaced by the ended span's, which adds the peak and the end.
_INSERT_EVENT = """
INSERT INTO span_events VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (span_id, kind, time_ns) DO UPDATE SET attributes = excluded.attributes
WHERE excluded.kind = 'concurrency' AND excluded.attributes ->> 'end_ns' IS NOT NULL
"""
_INSERT_METRIC = "INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?)"
_UPSERT_PROCESS = """
INSERT INTO processes (id, service, pid, host, sdk, started_ns, last_seen_ns) VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET last_seen_ns = excluded.last_seen_ns
"""
_SET_DROPS = "UPDATE processes SET drop_spans = ?, drop_metrics = ? WHERE id = ?"
HEADER = struct.Struct("!I")  # each message: its length, then its msgpack body


class SpanWrite(msgspec.Struct, array_like=True, tag=True):
    """One transaction: span values flat in `WIRE_COLUMNS` order, their filter terms, the touched
    traces (hex ids) as a JSON list, and event, process, drop-counter and metric rows."""

    spans: list[Any]
    trace_ids: str
    events: list[tuple[Any, ...]]
    processes: list[tuple[Any, ...]]
    drops: list[tuple[Any, ...]]
    metrics: list[tuple[Any, ...]]
    # The terms of the filter index by trace id, as the dashboard makes them from its records;
    # None: read back out of the stored rows here (`_COLLECT_TERMS`, the same terms, slower)
    terms: list[tuple[str, list[str]]] | None = None
    # (process id, service, resource JSON, scope JSON) and attribute-name lists (JSON) the spans name
    resources: list[tuple[str | None, str | None, str, str]] = []
    keys: list[str] = []


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


SCHEMA_VERSION = 2  # `PRAGMA user_version` of this schema (1: hex ids and JSON on every span, before it was set)


class OldDatabase(Exception):
    """The file holds a database of another schema version, which this version does not read."""


class _Connection(sqlite3.Connection):
    """The write connection, with the ids of the resources, attribute-name sets and terms it has stored
    (cleared when a transaction is undone or rows are pruned, as the ids may no longer exist)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.resources: dict[tuple[Any, ...], int] = {}
        self.keys: dict[str, int] = {}
        self.terms: dict[str, int] = {}

    def forget(self) -> None:
        self.resources.clear()
        self.keys.clear()
        self.terms.clear()


_MAX_CACHED = 10_000  # resources and attribute-name sets remembered; past it the memory starts over
_MAX_CACHED_TERMS = 100_000  # terms' ids remembered (about 10 MB)


def open_database(path: str) -> _Connection:
    """The write connection, in WAL mode, with the schema created; `OldDatabase` for a file
    written by an earlier version (its schema cannot be read)."""
    db = sqlite3.connect(path, isolation_level=None, factory=_Connection)
    try:
        db.execute("PRAGMA busy_timeout = 10000")  # a writer left by a killed dashboard may finish its last write
        (version,), (tables,) = db.execute("PRAGMA user_version").fetchone(), db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        if version != SCHEMA_VERSION and tables:
            raise OldDatabase(
                f"{path} holds a database of schema version {version or 1}, written by another opto-dashboard version; "
                f"this one reads version {SCHEMA_VERSION} only. Start with a new file (`opto-dashboard --db NEW.db`), "
                "or move this one away"
            )
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA cache_size = -65536")  # 64 MiB: index pages of a big file stay cached
        db.execute("PRAGMA temp_store = MEMORY")
        # SQLite checkpoints at each commit past 1,000 WAL pages and, once no reader holds an older
        # snapshot (reads are time-limited), starts the WAL over; a WAL grown by a burst is cut back to 64 MiB.
        db.execute("PRAGMA journal_size_limit = 67108864")
        db.executescript(SCHEMA)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute("CREATE TEMP TABLE written (trace_id, term)")  # no affinity: terms, or term ids when pruning
        compact.register(db)
    except BaseException:
        db.close()
        raise
    return db


_encode_terms = msgspec.msgpack.Encoder().encode
_decode_terms = msgspec.msgpack.Decoder(list[int]).decode


def _term_id(db: _Connection, term: str) -> int:
    """The id of a term of the vocabulary, added if new."""
    found = db.execute("SELECT id FROM terms WHERE term = ?", (term,)).fetchone()
    ref = int(found[0] if found else db.execute("INSERT INTO terms (term) VALUES (?)", (term,)).lastrowid)  # type: ignore[arg-type]
    if len(db.terms) >= _MAX_CACHED_TERMS:
        db.terms.clear()
    db.terms[term] = ref
    return ref


def _store_terms(db: _Connection, by_trace: Iterable[tuple[int, Iterable[str]]], existing: set[int]) -> None:
    """Store the terms of each trace (by rowid): the vocabulary, `trace_terms`, and the trace's list
    of its terms, appended to with those it did not hold (only `existing` traces held any)."""
    ids = db.terms
    written: dict[int, dict[int, None]] = {}
    for ref, terms in by_trace:
        into = written.setdefault(ref, {})
        for term in terms:
            into[ids.get(term) or _term_id(db, term)] = None
    held = existing.intersection(written)
    had = {ref: blob for ref, blob in db.execute(_TRACE_TERMS, (json.dumps(list(held)),)) if blob} if held else {}
    added: list[tuple[int, int]] = []
    lists: list[tuple[bytes, int]] = []
    for ref, term_ids in written.items():
        old = _decode_terms(had[ref]) if ref in had else []
        fresh = list(term_ids.keys() - old) if old else list(term_ids)
        if fresh:
            added += [(t, ref) for t in fresh]
            lists.append((_encode_terms(old + fresh), ref))
    added.sort()
    db.executemany("INSERT OR IGNORE INTO trace_terms (term_id, trace_ref) VALUES (?, ?)", added)
    db.executemany(_SET_TRACE_TERMS, lists)


@functools.lru_cache(maxsize=len(_ROWS_PER_INSERT))
def _upsert_spans(rows: int) -> str:
    return _UPSERT_SPANS.format(columns=_STORED_COLUMNS, values=", ".join([f"({', '.join('?' * _WIDTH)})"] * rows))


def _resource(db: _Connection, process_id: str | None, service: str | None, resource: str, scope: str) -> int:
    """The id of a (process, resource, scope) row, added if new."""
    found = db.execute(_FIND_RESOURCE, (resource, scope, process_id or "")).fetchone()
    ref = int(found[0] if found else db.execute(_ADD_RESOURCE, (process_id, service, resource, scope)).lastrowid)  # type: ignore[arg-type]
    if len(db.resources) >= _MAX_CACHED:
        db.resources.clear()
    db.resources[process_id, resource, scope] = ref
    return ref


def _keys(db: _Connection, keys: str) -> int:
    """The id of a set of attribute names, added if new."""
    found = db.execute(_FIND_KEYS, (keys,)).fetchone()
    ref = int(found[0] if found else db.execute(_ADD_KEYS, (keys,)).lastrowid)  # type: ignore[arg-type]
    if len(db.keys) >= _MAX_CACHED:
        db.keys.clear()
    db.keys[keys] = ref
    return ref


def _rows(db: _Connection, w: SpanWrite, refs: dict[str, int]) -> tuple[list[Any], dict[int, str]]:
    """The wire's span values (`WIRE_COLUMNS`) as stored rows (`_STORED_COLUMNS`), flat, and the
    attribute-name lists by id; the resources and name lists are marked used up to the write's
    latest start."""
    cached_resources, cached_keys = db.resources, db.keys
    resources = [cached_resources.get((p, r, s)) or _resource(db, p, service, r, s) for p, service, r, s in w.resources]
    keys = [cached_keys.get(k) or _keys(db, k) for k in w.keys]
    rows: list[Any] = []
    add = rows.extend
    fromhex = bytes.fromhex
    latest = 0
    it = iter(w.spans)
    for (trace_id, span_id, parent, name, kind, state, start, end, code, message, outcome, attempts, resource, key,
         values, events, links) in zip(*[it] * _WIRE):
        if start > latest:
            latest = start
        add((refs[trace_id], fromhex(span_id), None if parent is None else fromhex(parent), name, kind, state, start, end, code,
             message, outcome, attempts, resources[resource], keys[key], values, events, links))
    for sql, used in zip(_USED, (resources, keys)):
        db.execute(sql, (latest, json.dumps(used)))
    return rows, dict(zip(keys, w.keys))


def _trace_refs(db: _Connection, trace_ids: str) -> tuple[dict[str, int], dict[int, bytes], set[int]]:
    """Each trace's rowid (its summary row added if new), by hex id; the big ones' root span ids;
    the traces that held spans before this write."""
    db.executemany(_ADD_TRACE, [(bytes.fromhex(t),) for t in json.loads(trace_ids)])
    refs: dict[str, int] = {}
    big: dict[int, bytes] = {}
    existing: set[int] = set()
    for trace_id, ref, count, root in db.execute(_TRACE_REFS, (trace_ids,)):
        refs[trace_id] = ref
        if count:
            existing.add(ref)
            if count >= _BIG and root is not None:
                big[ref] = root
    return refs, big, existing


def _write(db: _Connection, w: SpanWrite) -> int:
    params = w.spans
    if params:
        refs, big, existing = _trace_refs(db, w.trace_ids)
        stored_rows, names = _rows(db, w, refs)
        rows: dict[int, list[list[Any]]] = {t: [] for t in big}
        if big:
            for i in range(0, len(stored_rows), _WIDTH):
                if stored_rows[i] in rows:
                    rows[stored_rows[i]].append(stored_rows[i:i + _WIDTH])
        stored = {t: _stored(db, t, rows[t]) for t in big}
        earlier = [[ref, span.hex()] for ref, span in zip(stored_rows[::_WIDTH], stored_rows[_SPAN::_WIDTH]) if ref in existing]
        ended_before = {tuple(k) for k in db.execute(_ENDED_BEFORE, (json.dumps(earlier),))} if earlier else set()
        i = 0
        for count in _ROWS_PER_INSERT:
            width = _WIDTH * count
            while len(stored_rows) - i >= width:
                db.execute(_upsert_spans(count), stored_rows[i:i + width])
                i += width
        small = [ref for ref in refs.values() if ref not in big]
        if small:
            db.execute(_REFRESH_TRACES, (json.dumps(small),))
        for ref, root in big.items():
            _update_trace(db, ref, root, rows[ref], stored[ref])
        if w.terms is None:
            keys = [[ref, span.hex()] for ref, span in zip(stored_rows[::_WIDTH], stored_rows[_SPAN::_WIDTH])]
            db.execute(_COLLECT_TERMS, (json.dumps(keys),))
            collected: dict[int, list[str]] = {}
            for ref, term in db.execute("SELECT DISTINCT trace_id, term FROM temp.written WHERE term IS NOT NULL"):
                collected.setdefault(ref, []).append(term)
            db.execute("DELETE FROM temp.written")
            _store_terms(db, collected.items(), existing)
        else:
            _store_terms(db, ((refs[t], terms) for t, terms in w.terms), existing)
        _count_functions(db, names, stored_rows, ended_before)
    if w.events:
        db.executemany(_INSERT_EVENT, w.events)
    if w.processes:
        db.executemany(_UPSERT_PROCESS, w.processes)
    if w.drops:
        db.executemany(_SET_DROPS, w.drops)
    if w.metrics:
        db.executemany(_INSERT_METRIC, w.metrics)
    return len(params) // _WIRE


def _count_functions(db: sqlite3.Connection, names: dict[int, str], rows: list[Any], ended_before: set[tuple[Any, ...]]) -> None:
    """Add the spans this write ended (new ended rows, or started rows now ended; each once) to `function_stats`."""
    exhaustible = {ref: k for ref, k in names.items() if RETRY_EXHAUSTED in k}  # attribute names that may hold it
    counts: dict[str, list[int]] = {}
    for ref, span, name, state, attempts, keys, values in zip(
        rows[_TRACE::_WIDTH], rows[_SPAN::_WIDTH], rows[_NAME::_WIDTH], rows[_STATE::_WIDTH], rows[_ATTEMPTS::_WIDTH],
        rows[_KEYS_REF::_WIDTH], rows[_VALUES::_WIDTH],
    ):
        if state != "ended" or (ref, span) in ended_before:
            continue
        ended_before.add((ref, span))  # a span sent twice in one write counts once, as the upsert stores it once
        c = counts.get(name) or counts.setdefault(name, [0, 0, 0])
        c[0] += 1
        if attempts is not None and attempts > 1:
            c[1] += attempts - 1
        if keys in exhaustible:
            c[2] += dict(zip(json.loads(exhaustible[keys]), json.loads(values))).get(RETRY_EXHAUSTED) is True
    db.executemany(_ADD_FUNCTION_COUNTS, [(name, *c) for name, c in counts.items()])


def _stored(db: sqlite3.Connection, trace_ref: int, rows: list[list[Any]]) -> dict[bytes, tuple[Any, ...]]:
    """(state, outcome, attempts) of the rows' spans already stored, before the write replaces them."""
    ids = json.dumps([r[_SPAN].hex() for r in rows])
    return {span_id: rest for span_id, *rest in db.execute(_STORED, (trace_ref, ids))}


def _counts(state: str, outcome: str | None, attempts: int | None) -> tuple[int, int, int]:
    """What a span adds to its trace's in-flight, error and retry counts (as `_REFRESH_TRACES` counts)."""
    return state == "started", outcome in ("error", "timeout"), max((1 if attempts is None else attempts) - 1, 0)


def _update_trace(db: sqlite3.Connection, trace_ref: int, root: bytes, rows: list[list[Any]], stored: dict[bytes, Any]) -> None:
    """Bring a big trace's summary up to date from the write's rows, as `_REFRESH_TRACES` would.

    A row counts as the upsert treats it: new, or a started span now ended, or else ignored.
    """
    added = in_flight = errors = retries = 0
    start, end = None, None
    found = db.execute(_ROOT_KEY, (trace_ref, root)).fetchone()
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
        db.execute(_UPDATE_TRACE, (start, end, end, added, in_flight, errors, retries, root, trace_ref, root, trace_ref))


def _prune(db: _Connection, p: Prune) -> int:
    """Traces that started before the retention go, in flight or not (a span open that long will not
    end); then, past `max_spans`, the oldest finished traces, and if that is not enough the oldest
    traces still in flight."""
    victims: list[int] = []
    cutoff = None if p.retention_s is None else time.time_ns() - int(p.retention_s * 1e9)
    if cutoff is not None:
        victims.extend(row[0] for row in db.execute("SELECT rowid FROM traces WHERE start_ns < ?", (cutoff,)))
    (total,) = db.execute("SELECT coalesce(sum(span_count), 0) FROM traces").fetchone()
    if cutoff is not None:
        db.execute("DELETE FROM metrics WHERE time_ns < ?", (cutoff,))
        db.execute("DELETE FROM processes WHERE last_seen_ns < ?", (cutoff,))  # not heard from within the retention
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
    if pruned:
        for sql in _UNUSED:
            db.execute(sql)
        db.forget()
    return pruned


_SIZE_ROUNDS = 8


def _oldest(db: sqlite3.Connection, spans: int) -> list[int]:
    """The oldest traces (rowids) holding at least `spans` spans between them (all there are, if
    fewer): finished traces first, then, if that is not enough, traces still in flight."""
    victims: list[int] = []
    for finished in (True, False):
        if spans <= 0:
            break
        for ref, count in db.execute(
            f"SELECT rowid, span_count FROM traces WHERE in_flight {'=' if finished else '>'} 0 ORDER BY start_ns"
        ):
            if spans <= 0:
                break
            victims.append(ref)
            spans -= count
    return victims


_VICTIMS = "(SELECT value FROM json_each(?))"


def _drop(db: sqlite3.Connection, victims: list[int]) -> int:
    """Delete the traces `victims` (spans, summaries, events, terms); the number of spans deleted."""
    if not victims:
        return 0
    ids = json.dumps(victims)
    (spans,) = db.execute(f"SELECT coalesce(sum(span_count), 0) FROM traces WHERE rowid IN {_VICTIMS}", (ids,)).fetchone()
    gone = db.execute(_FUNCTION_COUNTS.format(f"s.trace_ref IN {_VICTIMS}"), (ids,)).fetchall()
    db.executemany(_ADD_FUNCTION_COUNTS, [(name, -calls, -retries, -exhausted) for name, calls, retries, exhausted in gone])
    db.execute("DELETE FROM function_stats WHERE calls <= 0")
    pairs = [(term, ref) for ref, terms in db.execute(_TRACE_TERMS, (ids,)) if terms for term in _decode_terms(terms)]
    db.executemany("DELETE FROM trace_terms WHERE term_id = ? AND trace_ref = ?", pairs)
    db.executemany("INSERT INTO temp.written (term) VALUES (?)", [(term,) for term in {term for term, _ in pairs}])
    for sql in _PRUNE_VOCABULARY:
        db.execute(sql)
    db.execute(f"DELETE FROM span_events WHERE trace_id IN (SELECT lower(hex(trace_id)) FROM traces WHERE rowid IN {_VICTIMS})", (ids,))
    db.execute(f"DELETE FROM spans WHERE trace_ref IN {_VICTIMS}", (ids,))
    db.execute(f"DELETE FROM traces WHERE rowid IN {_VICTIMS}", (ids,))
    return int(spans)


def used_bytes(db: sqlite3.Connection) -> int:
    """Bytes of the database's pages in use (free pages are reused before the file grows)."""
    (pages,), (free,), (size,) = (db.execute(f"PRAGMA {name}").fetchone() for name in ("page_count", "freelist_count", "page_size"))
    return int((pages - free) * size)


# After the victims' trace_terms: the terms no trace holds any more (only the victims' terms are looked at).
_PRUNE_VOCABULARY = (
    "DELETE FROM terms WHERE id IN (SELECT term FROM temp.written) "
    "AND NOT EXISTS (SELECT 1 FROM trace_terms WHERE term_id = terms.id)",
    "DELETE FROM temp.written",
)


def _transaction(db: _Connection, request: SpanWrite | Prune) -> Reply:
    """Carry out one request in one transaction; on failure nothing of it stays, and the reply says why."""
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            value = _write(db, request) if isinstance(request, SpanWrite) else _prune(db, request)
            db.execute("COMMIT")
        except BaseException:
            db.forget()  # ids it added are undone
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
    except OldDatabase as exc:
        return reply(Reply(error=str(exc)))  # final: the same file will not do
    except sqlite3.Error as exc:
        return reply(Reply(error=f"cannot open {path}: {exc}", transient=True))
    reply(Reply())
    try:
        while (header := _read(requests, HEADER.size)) is not None:
            body = _read(requests, HEADER.unpack(header)[0])
            if body is None:
                break
            reply(_transaction(db, decode(body)))
    finally:
        db.close()


# The writer's OS priority below the dashboard's (nice 0 + this): on a machine short of cores, the
# server's requests get the CPU first, and ingest has what they leave (the writer still takes an
# idle core whole).
NICE = 5


def main() -> None:
    """`python -m opto_dashboard.writer DB`: requests on stdin, replies on stdout, logs on stderr."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the dashboard, which then closes our input
    os.nice(NICE)
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print must not corrupt the replies
    try:
        serve(sys.argv[1], sys.stdin.buffer, replies)
    except BrokenPipeError:  # the dashboard is gone (killed): what was committed stays, the rest it never acked
        os._exit(0)


if __name__ == "__main__":
    main()

"""The dashboard's SQLite database: the rows of each write, the writer process, and the read queries.

Ingest turns each write into column values on the event loop as it arrives; one writer process
(`writer.py`) stores them, a batch of writes to a transaction, on a core of its own; a pool of
reader connections (`readers.py`) reads, so in WAL mode reads never wait for writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import orjson

from opto.telemetry import semconv

from .readers import QueryTimeout, Readers
from .records import MAX_INT, ProcessInfo, SpanRecord, outcome_of
from .writer import HEADER, SPAN_COLUMNS, SPAN_TABLES, WIRE_COLUMNS, Prune, Reply, SpanWrite

__all__ = ["Store", "StoreError", "QueryTimeout", "Write", "SPAN_COLUMNS", "SPAN_TABLES", "row_to_record"]

logger = logging.getLogger("opto_dashboard")
_TERM_CHARS = 200  # an attribute value is indexed by its first 200 chars (as the writer's SQL does)
# Values new for nearly every span are not terms: as terms they grew the vocabulary by a row (and
# its indexes) a span, about 100 bytes and half the writer's time, for a filter nobody makes.
# asyncio's own task names ("Task-8123"; names the app gives its tasks, "worker-7", are terms), and
# the durations opto measures (a filter matches a value exactly; a duration is a range question).
_DEFAULT_TASK_NAME = re.compile(r"Task-\d+")
_NOT_TERMS = frozenset({
    semconv.TASK_NAME, semconv.RETRY_DELAY_S, semconv.QUEUE_WAIT_S, semconv.QUEUE_BLOCKED_S,
    semconv.DEBUG_DURATION_S, semconv.STREAM_FIRST_ITEM_S, semconv.LOOP_BLOCKED_S,
})  # keys whose values are not terms; of TASK_NAME's, asyncio's default names only (`_kept`)


def _kept(key: str, text: str) -> bool:
    """Whether the value of a key in `_NOT_TERMS` is a term all the same: a task name the app gave."""
    return key == semconv.TASK_NAME and _DEFAULT_TASK_NAME.fullmatch(text) is None


_EVENT_KINDS = {
    semconv.EVENT_RETRY: "retry", semconv.EVENT_SLOW_CALLBACK: "slow_callback", semconv.EVENT_QUEUE_BLOCKED: "queue_blocked",
}
_T = TypeVar("_T")
_MIN_DB_BYTES = 1 << 20
_WIRE = WIRE_COLUMNS.count(",") + 1
_RESOURCE = WIRE_COLUMNS.split(", ").index("resource")  # then the attribute names' position
_encode = msgspec.msgpack.Encoder().encode
_decode_reply = msgspec.msgpack.Decoder(Reply).decode


class StoreError(Exception):
    """A write or prune that was not stored, nothing of it; `transient` when the same request may
    succeed later (disk full, database locked, writer restarting), so the sender should resend it."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class _WriterEnded(Exception):
    """The writer process is gone; the request may or may not have been carried out."""


def _dumps(value: Any) -> str:
    """Compact JSON text (orjson: ingest serialises every span's attributes)."""
    return orjson.dumps(value).decode()


@dataclass(slots=True)
class Write:
    """What one ingest frame (or OTLP request) stores, in one transaction with its neighbours.

    Its rows are made when it is queued, on the event loop, while the writer process is busy
    with the writes before it.
    """

    spans: Sequence[SpanRecord]
    process: ProcessInfo | None = None
    metrics: Sequence[dict[str, Any]] = ()
    drops: dict[str, Any] | None = None
    params: list[Any] = field(init=False)
    resources: list[tuple[str | None, str | None, str, str]] = field(init=False)
    keys: list[str] = field(init=False)
    events: list[tuple[Any, ...]] = field(init=False)
    terms: list[tuple[str, list[str]]] = field(init=False)
    metric_rows: list[tuple[Any, ...]] = field(init=False)

    def __post_init__(self) -> None:
        """Raises (orjson's error) for data that cannot be encoded: that write alone is refused."""
        self.params, self.resources, self.keys = _span_params(self.spans)
        self.events = _event_rows(self.spans)
        self.terms = _terms(self.spans)
        p = self.process
        self.metric_rows = [] if p is None else [
            (p.id, m["name"], m["time_ns"], _dumps(m.get("attributes", {})), m.get("value"),
             _dumps(m.get("summary") or m.get("histogram")) if "value" not in m else None)
            for m in self.metrics
        ]


def _term_value(value: Any) -> str | None:
    """An attribute value as the filter index writes it (as SQLite's CAST AS TEXT would); None for a list."""
    if type(value) is str:
        return value[:_TERM_CHARS]
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) is int:
        return str(value)
    if type(value) is float:  # SQLite's "%!.15g": 15 digits, a decimal point always, -0.0 as 0.0
        mantissa, e, exponent = f"{value + 0.0:.15g}".partition("e")
        return (mantissa if "." in mantissa else mantissa + ".0") + e + exponent
    return None


def _terms(spans: Iterable[SpanRecord]) -> list[tuple[str, list[str]]]:
    """The terms of the filter index for these spans, by trace, each once: `n:` name, `s:` service,
    `a:key=value` of each scalar attribute (of the span and its events; not those of `_NOT_TERMS`), `e:` event name. Made
    here, on the event loop, from the records' dicts, instead of parsed back out of JSON by the writer."""
    by_trace: dict[str, set[str]] = {}
    for r in spans:
        terms = by_trace.get(r.trace_id)
        if terms is None:
            terms = by_trace[r.trace_id] = set()
        add = terms.add
        add("n:" + r.name)
        service = r.resource.get(semconv.SERVICE_NAME)
        if type(service) is str:
            add("s:" + service)
        for key, value in r.attributes.items():
            if (text := _term_value(value)) is not None and (key not in _NOT_TERMS or _kept(key, text)):
                add(f"a:{key}={text}")
        for event in r.events:
            add("e:" + event["name"])
            for key, value in event.get("attributes", {}).items():
                if (text := _term_value(value)) is not None and (key not in _NOT_TERMS or _kept(key, text)):
                    add(f"a:{key}={text}")
    return [(t, list(terms)) for t, terms in by_trace.items()]


class _Repeats:
    """JSON of the resource and scope of the previous span: consecutive spans nearly always share them."""

    __slots__ = ("value", "text")

    def __init__(self) -> None:
        self.value: dict[str, Any] | None = None
        self.text = ""

    def dumps(self, value: dict[str, Any]) -> str:
        if value is not self.value and value != self.value:
            self.value, self.text = value, _dumps(value)
        return self.text


def _span_params(spans: Iterable[SpanRecord]) -> tuple[list[Any], list[tuple[str | None, str | None, str, str]], list[str]]:
    """The 17 wire values of every span, flat, in `WIRE_COLUMNS` order; the write's distinct
    (process id, service, resource JSON, scope JSON) and attribute-name lists (JSON), which the
    spans name by position."""
    resources, scopes = _Repeats(), _Repeats()
    resource_at: dict[tuple[str | None, str, str], int] = {}
    resource_rows: list[tuple[str | None, str | None, str, str]] = []
    keys_at: dict[str, int] = {}
    params: list[Any] = []
    add = params.extend
    dumps = orjson.dumps
    for r in spans:
        attrs = r.attributes
        attempts = attrs.get(semconv.ATTEMPTS)
        key = (r.process_id, resources.dumps(r.resource), scopes.dumps(r.scope))
        resource = resource_at.get(key)
        if resource is None:
            resource = resource_at[key] = len(resource_rows)
            service = r.resource.get(semconv.SERVICE_NAME)
            resource_rows.append((key[0], service if type(service) is str else None, key[1], key[2]))
        names = dumps(list(attrs)).decode()
        keys = keys_at.get(names)
        if keys is None:
            keys = keys_at[names] = len(keys_at)
        add((
            r.trace_id, r.span_id, r.parent_span_id, r.name, r.kind, r.state, r.start_ns, r.end_ns,
            r.status_code, r.status_message, None if r.state == "started" else outcome_of(attrs, r.status_code),
            attempts if type(attempts) is int and 0 <= attempts <= MAX_INT else None, resource, keys,
            dumps(list(attrs.values())).decode(), _dumps(r.events) if r.events else None, _dumps(r.links) if r.links else None,
        ))
    return params, resource_rows, list(keys_at)


def _event_rows(spans: Iterable[SpanRecord]) -> list[tuple[Any, ...]]:
    """Retry, debug and queue events, and concurrency limits, indexed on their own for `/api/retries`,
    `/api/debug`, `/api/queues` and `/api/limits` (a queue item's wait is a link attribute on the
    consumer's span; a limit's row is stored as its span starts and replaced as it ends)."""
    rows: list[tuple[Any, ...]] = []
    for r in spans:
        limit = r.attributes.get(semconv.CONCURRENCY_LIMIT)
        if limit is not None:
            peak = r.attributes.get(semconv.CONCURRENCY_PEAK)
            rows.append((r.trace_id, r.span_id, r.name, "concurrency", r.start_ns, _dumps({"limit": limit, "peak": peak, "end_ns": r.end_ns})))
        if r.state != "ended" or not (r.events or r.links or semconv.DEBUG_CREATION_STACK in r.attributes):
            continue
        # `+ i` keeps a span's rows apart (unique by span, kind and time); the time is first held
        # below the top of SQLite's INTEGER, so that an absurd time cannot fail the shared write
        for i, event in enumerate(r.events):
            kind = _EVENT_KINDS.get(event["name"])
            if kind is not None:
                at = min(event["time_ns"], MAX_INT - len(r.events)) + i
                rows.append((r.trace_id, r.span_id, r.name, kind, at, _dumps(event.get("attributes", {}))))
        for i, link in enumerate(r.links):
            attrs = link.get("attributes", {})
            if semconv.QUEUE_WAIT_S in attrs:
                at = min(r.start_ns, MAX_INT - len(r.links)) + i
                rows.append((r.trace_id, r.span_id, r.name, "queue_wait", at, _dumps(attrs)))
        stack = r.attributes.get(semconv.DEBUG_CREATION_STACK)
        if stack is not None:
            rows.append((r.trace_id, r.span_id, r.name, "creation_stack", r.start_ns, _dumps({semconv.DEBUG_CREATION_STACK: stack})))
    return rows


def _request(writes: Sequence[Write], now: int) -> SpanWrite:
    """The writer's request for a batch of writes: each process once (its latest drop counters)."""
    latest: dict[str, tuple[ProcessInfo, dict[str, Any] | None]] = {}
    metrics: list[tuple[Any, ...]] = []
    for w in writes:
        p = w.process
        if p is None:
            continue
        latest[p.id] = (p, w.drops if w.drops is not None else latest.get(p.id, (p, None))[1])
        metrics.extend(w.metric_rows)
    spans: list[Any] = []
    resources: list[tuple[str | None, str | None, str, str]] = []
    keys: list[str] = []
    for w in writes:  # each write's positions in its own lists, moved past the writes' before it
        if resources or keys:
            first = len(spans)
            spans += w.params
            for i in range(first + _RESOURCE, len(spans), _WIRE):
                spans[i] += len(resources)
                spans[i + 1] += len(keys)
        else:
            spans += w.params
        resources += w.resources
        keys += w.keys
    return SpanWrite(
        spans=spans, resources=resources, keys=keys,
        terms=list(chain.from_iterable(w.terms for w in writes)),
        trace_ids=_dumps(list({r.trace_id for w in writes for r in w.spans})),
        events=list(chain.from_iterable(w.events for w in writes)),
        processes=[(p.id, p.service, p.pid, p.host, p.sdk, p.started_ns, now) for p, _ in latest.values()],
        drops=[(d.get("spans", 0), d.get("metrics", 0), p.id) for p, d in latest.values() if d is not None],
        metrics=metrics,
    )


def row_to_record(row: Sequence[Any]) -> SpanRecord:
    """A `SELECT {SPAN_COLUMNS} FROM {SPAN_TABLES}` row back into a record."""
    return SpanRecord(
        trace_id=row[0], span_id=row[1], parent_span_id=row[2], name=row[3], kind=row[4],
        state=row[5], start_ns=row[6], end_ns=row[7], status_code=row[8], status_message=row[9],
        process_id=row[12], attributes=json.loads(row[14]), events=json.loads(row[15]) if row[15] else [],
        links=json.loads(row[16]) if row[16] else [], resource=json.loads(row[17]), scope=json.loads(row[18]),
    )


class Store:
    """The SQLite file: `open()`, then `write()` and `prune()` from one task, `fetch()` from any."""

    def __init__(
        self, path: str | Path, *, max_spans: int = 1_000_000, retention_s: float | None = 7 * 86400,
        max_db_bytes: int | None = None, query_timeout_s: float = 5.0,
    ) -> None:
        if max_spans < 1:
            raise ValueError(f"max_spans must be >= 1, got {max_spans}")
        if max_db_bytes is not None and max_db_bytes < _MIN_DB_BYTES:
            raise ValueError(f"max_db_bytes must be >= {_MIN_DB_BYTES} (1 MiB), got {max_db_bytes}")
        if retention_s is not None and retention_s <= 0:
            raise ValueError(f"retention must be > 0 seconds, got {retention_s}")
        self.path = Path(path)
        self.max_spans = max_spans
        self.retention_s = retention_s
        self.max_db_bytes = max_db_bytes
        self._writer: subprocess.Popen[bytes] | None = None
        # The pipe is driven from a thread with blocking calls: a transaction's megabytes go across
        # at the kernel's pace, not a pipe buffer per turn of a busy event loop.
        self._thread: ThreadPoolExecutor | None = None
        self._readers = Readers(self.path, query_timeout_s)

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="opto-dashboard-writer")
        try:
            await self._run(self._start_writer)
        except BaseException:
            self._thread.shutdown()
            self._thread = None
            raise
        self._readers.open()

    async def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        if self._thread is None:
            raise RuntimeError("Store is not open; call `await store.open()` first")
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    def _start_writer(self) -> None:
        self._writer = subprocess.Popen(
            [sys.executable, "-m", "opto_dashboard.writer", str(self.path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        try:
            reply = self._exchange(None)
        except _WriterEnded as exc:
            raise StoreError(f"{exc} as it started; its error is in the log above", transient=True) from None
        if reply.error is not None:
            self._stop_writer()
            raise StoreError(reply.error, transient=reply.transient)  # transient: the file may come back (a disk remounted, a lock freed)

    def _stop_writer(self) -> None:
        """End of input: the writer finishes its request, closes the database and exits."""
        proc, self._writer = self._writer, None
        if proc is not None:
            with proc:  # closes the pipes, waits for the exit
                assert proc.stdin is not None
                proc.stdin.close()

    def _exchange(self, request: SpanWrite | Prune | None) -> Reply:
        """Send `request` (None: just read the ready reply) and read its reply; `_WriterEnded` if
        the writer is gone (killed, crashed), which is then reaped."""
        proc = self._writer
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        try:
            if request is not None:
                body = _encode(request)
                proc.stdin.write(HEADER.pack(len(body)))
                proc.stdin.write(body)
                proc.stdin.flush()
            header = proc.stdout.read(HEADER.size)
            if len(header) == HEADER.size:
                (size,) = HEADER.unpack(header)
                if len(reply := proc.stdout.read(size)) == size:
                    return _decode_reply(reply)
        except (BrokenPipeError, ConnectionResetError):
            pass
        self._writer = None
        proc.kill()
        with contextlib.suppress(BrokenPipeError), proc:  # closes the pipes, waits for the exit
            pass
        raise _WriterEnded(f"the SQLite writer process ended (exit code {proc.returncode})")

    def _call(self, request: SpanWrite | Prune) -> int:
        """One request to the writer, on the writer thread. A writer that has ended is started
        again and sent the request once more (spans and events are upserts: a repeat changes
        nothing); if that one ends too, the failure is transient: the sender resends later."""
        if self._writer is None:  # its last start failed
            self._start_writer()
        try:
            reply = self._exchange(request)
        except _WriterEnded as exc:
            logger.warning("opto-dashboard: %s; starting it again", exc)
            self._start_writer()
            try:
                reply = self._exchange(request)
            except _WriterEnded as again:
                raise StoreError(str(again), transient=True) from None
        if reply.error is not None:
            raise StoreError(reply.error, transient=reply.transient)
        return reply.value

    async def close(self) -> None:
        self._readers.close()
        if self._thread is not None:
            await self._run(self._stop_writer)
            self._thread.shutdown()
        self._thread = None

    async def write(self, writes: Sequence[Write]) -> int:
        """Store several writes in one transaction: spans upserted, their traces re-summarised."""
        return await self._run(self._call, _request(writes, time.time_ns()))

    async def prune(self) -> int:
        """Drop finished traces older than the retention, then the oldest past `max_spans` or `max_db_bytes`."""
        return await self._run(self._call, Prune(self.max_spans, self.retention_s, self.max_db_bytes))

    async def storage(self) -> dict[str, Any]:
        """The database's size on disk (file, WAL, pages in use) and the retention limits."""
        ((pages,),), ((free,),), ((page_size,),) = [await self.fetch(f"PRAGMA {n}") for n in ("page_count", "freelist_count", "page_size")]
        sizes = {}
        for key, path in (("file_bytes", self.path), ("wal_bytes", self.path.with_name(self.path.name + "-wal"))):
            try:
                sizes[key] = path.stat().st_size
            except FileNotFoundError:
                sizes[key] = 0
        return {
            **sizes, "used_bytes": (pages - free) * page_size, "max_db_bytes": self.max_db_bytes,
            "max_spans": self.max_spans, "retention_s": self.retention_s,
        }

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Rows of a read query, on a free reader connection; `QueryTimeout` past the time limit."""
        return await self._readers.fetch(sql, params)

"""The read side of the database: a small pool of WAL reader connections, each query time-limited.

Each connection serves one query at a time on a thread of its own, so reads run concurrently with
each other and with the writer process, and no query waits behind a slow one while a connection is
free. SQLite's progress handler stops a query past its time limit (`QueryTimeout`); a query whose
caller is cancelled (its HTTP client went away) is interrupted at once, and its connection only
goes back to the pool once the query has stopped.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from . import compact

__all__ = ["Readers", "QueryTimeout", "READERS"]

READERS = 4  # connections (and threads): queries running at once; more wait for a free one
_CHECK_EVERY = 1000  # SQLite virtual-machine steps between two looks at the clock


class QueryTimeout(Exception):
    """A read query ran past its time limit and was stopped."""


class Readers:
    """`READERS` read-only connections to the SQLite file at `path`; `open()`, `fetch()`, `close()`."""

    def __init__(self, path: Path, timeout_s: float) -> None:
        if not timeout_s > 0:
            raise ValueError(f"query timeout must be > 0 seconds, got {timeout_s}")
        self.path = path
        self.timeout_s = timeout_s
        self._idle: asyncio.Queue[sqlite3.Connection] = asyncio.Queue()
        self._all: list[sqlite3.Connection] = []
        self._threads: ThreadPoolExecutor | None = None

    def open(self) -> None:
        self._threads = ThreadPoolExecutor(READERS, thread_name_prefix="opto-dashboard-reader")
        for _ in range(READERS):
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA query_only = ON")
            compact.register(db)
            self._all.append(db)
            self._idle.put_nowait(db)

    def close(self) -> None:
        if self._threads is not None:
            self._threads.shutdown()
        for db in self._all:
            db.close()
        self._all.clear()
        self._threads = None

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Rows of a read query; `QueryTimeout` past the time limit."""
        if self._threads is None:
            raise RuntimeError("Store is not open; call `await store.open()` first")
        db = await self._idle.get()
        stop = threading.Event()
        try:
            job = asyncio.get_running_loop().run_in_executor(self._threads, self._query, db, sql, params, stop)
            try:
                return await asyncio.shield(job)
            except asyncio.CancelledError:
                # The caller is gone: stop the query (at once if it runs, at its first check if it
                # has yet to start), and hand the connection back once it has stopped.
                stop.set()
                db.interrupt()
                await asyncio.wait([job])
                job.exception()  # retrieved ("interrupted", or none if it had just finished): nobody is waiting for it
                raise
        finally:
            self._idle.put_nowait(db)

    def _query(self, db: sqlite3.Connection, sql: str, params: Sequence[Any], stop: threading.Event) -> list[Any]:
        deadline = time.monotonic() + self.timeout_s
        db.set_progress_handler(lambda: stop.is_set() or time.monotonic() > deadline, _CHECK_EVERY)
        try:
            return db.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if str(exc) == "interrupted" and time.monotonic() > deadline:
                raise QueryTimeout(f"the query took more than {self.timeout_s:g} s and was stopped") from None
            raise
        finally:
            db.set_progress_handler(None, 0)

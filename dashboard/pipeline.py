"""The ingest pipeline both doors share: a bounded queue in front of the store's one writer task.

A door calls `await pipeline.submit(records, process=...)`, which returns once the records are
committed; `pipeline.full` tells a door that cannot wait (OTLP answers 503) without blocking.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .priority import BIG_WRITE_SPANS, RequestsFirst
from .records import ProcessInfo, SpanRecord
from .store import Store, StoreError, Write

__all__ = ["Pipeline", "Listener", "WriteHealth"]

logger = logging.getLogger("opto_dashboard")
Listener = Callable[[Sequence[Write]], None]
_PRUNE_EVERY_S = 10.0
_MAX_TRANSACTION_SPANS = 20_000


@dataclass(slots=True)
class WriteHealth:
    """Whether writes are being stored: a transient failure going on (disk full, database locked:
    since when, how many spans it has turned away so far, which their senders resend), and the
    totals of writes not stored, for any reason."""

    path: str = ""  # the database file
    failing: bool = False
    error: str = ""
    since_ns: int | None = None
    spans_not_stored: int = 0  # since the failure began
    failed_writes: int = 0  # since the dashboard started
    failed_spans: int = 0

    def stored(self) -> None:
        if self.failing:
            logger.warning("opto-dashboard: storing works again after %d spans were not stored", self.spans_not_stored)
            self.failing, self.since_ns, self.spans_not_stored = False, None, 0

    def failed(self, error: StoreError, spans: int) -> None:
        """Count a write not stored; a transient error means storage is failing until a write succeeds."""
        self.failed_writes += 1
        self.failed_spans += spans
        if not error.transient:  # that write's own data: refused to its sender, the rest goes on
            logger.error("opto-dashboard: a write of %d spans was refused: %s", spans, error)
            return
        if not self.failing or str(error) != self.error:
            logger.error("opto-dashboard: storing is failing (senders will resend): %s", error)
        if not self.failing:
            self.failing, self.since_ns = True, time.time_ns()
        self.error = str(error)
        self.spans_not_stored += spans

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path, "failing": self.failing, "error": self.error, "since_ns": self.since_ns,
            "spans_not_stored": self.spans_not_stored, "failed_writes": self.failed_writes, "failed_spans": self.failed_spans,
        }


class Pipeline:
    """Queue writes (at most `max_pending` spans waiting), commit them in batches, tell listeners."""

    def __init__(self, store: Store, *, max_pending: int = 100_000) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        self.store = store
        self.max_pending = max_pending
        self.listeners: list[Listener] = []
        self._queue: deque[tuple[Write, asyncio.Future[int]]] = deque()
        self._pending = 0
        self._work = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._telling = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.health = WriteHealth(str(store.path))
        self.requests = RequestsFirst()  # HTTP requests in flight: a write's rows are made after them

    @property
    def full(self) -> bool:
        """True while the queue holds `max_pending` spans or more; a non-waiting door refuses."""
        return self._pending >= self.max_pending

    @property
    def pending(self) -> int:
        return self._pending

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="opto-dashboard-writer")

    async def stop(self) -> None:
        """Write what is queued, then stop the writer task."""
        task = self._task
        if task is None:
            return
        self._stopping = True
        self._work.set()
        await task
        self._task = None

    async def submit(
        self,
        spans: Sequence[SpanRecord],
        *,
        process: ProcessInfo | None = None,
        metrics: Sequence[dict[str, Any]] = (),
        drops: dict[str, int] | None = None,
    ) -> int:
        """Queue one write, waiting for room, and return the number of spans once committed."""
        if self._task is None or self._stopping:
            raise RuntimeError("Pipeline is not running; call pipeline.start() inside the app's lifespan")
        while self._pending and self._pending + len(spans) > self.max_pending:
            self._room.clear()
            await self._room.wait()
        if len(spans) >= BIG_WRITE_SPANS:  # a big write's rows are made after the HTTP requests in flight
            await self.requests.turn()
        if process is not None:
            for r in spans:
                r.process_id = process.id
        try:
            write = Write(spans, process, metrics, drops)
        except (TypeError, ValueError, OverflowError) as exc:  # data no check foresaw that cannot be encoded
            raise StoreError(f"cannot be encoded: {exc}") from exc
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.append((write, future))
        self._pending += len(spans)
        self._work.set()
        return await asyncio.shield(future)

    def _take(self) -> list[tuple[Write, asyncio.Future[int]]]:
        batch: list[tuple[Write, asyncio.Future[int]]] = []
        n = 0
        while self._queue and (not batch or n + len(self._queue[0][0].spans) <= _MAX_TRANSACTION_SPANS):
            item = self._queue.popleft()
            batch.append(item)
            n += len(item[0].spans)
        return batch

    async def _store(self, writes: list[Write]) -> list[StoreError | None]:
        """Each write's failure, or None once stored. Writes share a transaction; when the database
        refuses one's data, each is stored alone, so only that one fails."""
        try:
            await self.store.write(writes)
            return [None] * len(writes)
        except Exception as exc:
            error = exc if isinstance(exc, StoreError) else StoreError(f"{type(exc).__name__}: {exc}")
            if error.transient or len(writes) == 1:
                return [error] * len(writes)
        results: list[StoreError | None] = []
        for write in writes:
            results.extend(await self._store([write]))
        return results

    async def _commit(self, batch: list[tuple[Write, asyncio.Future[int]]]) -> None:
        writes = [w for w, _ in batch]
        errors = await self._store(writes)
        self._pending -= sum(len(w.spans) for w in writes)
        self._room.set()
        stored = []
        for (write, future), error in zip(batch, errors):
            if error is None:
                stored.append(write)
                self.health.stored()
            else:
                self.health.failed(error, len(write.spans))
            if not future.done():
                if error is None:
                    future.set_result(len(write.spans))
                else:
                    future.set_exception(error)
        # Listeners hear of one write at a time, with a turn of the event loop between: folding a
        # 20,000-span transaction into the live figures at once held every request up for tens of
        # ms. The lock keeps commits' turns in order (the next commit may be stored meanwhile).
        async with self._telling:
            for i, told in enumerate([stored[i:i + 1] for i in range(len(stored))] or [[]]):
                if i:
                    await asyncio.sleep(0)
                for listener in self.listeners:  # told even when nothing was stored: the live view shows failures
                    try:
                        listener(told)
                    except Exception:
                        logger.exception("opto-dashboard: listener %r failed", listener)

    async def _run(self) -> None:
        """Commit batch after batch, the next one queued at the store while the last is stored, so
        the writer goes straight on to it; listeners still hear of commits in order."""
        last_prune = time.monotonic()
        committing: asyncio.Task[None] | None = None
        while not (self._stopping and not self._queue):
            if not self._queue:
                self._work.clear()
                try:
                    async with asyncio.timeout(_PRUNE_EVERY_S):
                        await self._work.wait()
                except TimeoutError:
                    pass
            if self._queue:
                following = asyncio.create_task(self._commit(self._take()))
                if committing is not None:
                    await committing
                committing = following
            if not self._stopping and time.monotonic() - last_prune >= _PRUNE_EVERY_S:
                last_prune = time.monotonic()
                try:
                    await self.store.prune()
                except Exception:
                    logger.exception("opto-dashboard: pruning old spans failed")
        if committing is not None:
            await committing

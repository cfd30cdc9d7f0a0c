"""`create_app()`: the dashboard's Starlette application, its store, pipeline, live figures and hub."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.routing import BaseRoute

from . import api, hub, ingest, otlp, pages
from .headers import SecurityHeadersMiddleware
from .hosts import HostRule
from .hub import Hub
from .introspect import Introspect
from .pipeline import Pipeline
from .priority import RequestsFirstMiddleware
from .refusals import Refusals
from .security import AccessMiddleware, check_token
from .stats import Stats
from .store import Store
from .tasks import TaskBoard

__all__ = ["create_app"]


def create_app(
    db_path: str | Path,
    *,
    max_spans: int = 1_000_000,
    retention_s: float | None = 7 * 86400,
    token: str | None = None,
    allowed_hosts: Iterable[str] = (),
    max_db_bytes: int | None = None,
    query_timeout_s: float = 5.0,
) -> Starlette:
    """The dashboard on the SQLite file `db_path`; with `token`, every route asks for it; a read
    query running past `query_timeout_s` is stopped (the request answers 503); with `max_db_bytes`,
    the oldest finished traces are pruned while the database's pages in use exceed it.

    Requests must address it by a loopback name, a name in `allowed_hosts` or, with a token, any
    IP address (see `hosts`). The store, `pipeline` (shared by the ingest doors), `stats`, `hub`
    and `refused` (refusals by reason) are on `app.state`.
    """
    if token is not None and (problem := check_token(token)) is not None:
        raise ValueError(f"{problem}; pass None for no token")
    hosts = HostRule(allowed_hosts, any_address=token is not None)
    refused = Refusals()
    store = Store(db_path, max_spans=max_spans, retention_s=retention_s, max_db_bytes=max_db_bytes, query_timeout_s=query_timeout_s)
    pipeline = Pipeline(store)
    stats = Stats(pipeline.health, refused)
    pipeline.listeners.append(stats.stored)
    live_hub = Hub(stats)
    pipeline.listeners.append(live_hub.nudge)  # after stats: the hub reads what stats just counted

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await store.open()
        try:
            await stats.load(store)
            pipeline.start()
            live_hub.start()
            try:
                yield
            finally:
                await live_hub.stop()
                await pipeline.stop()
        finally:
            await store.close()

    routes: list[BaseRoute] = [*ingest.routes, *otlp.routes, *hub.routes, *api.routes, *pages.routes]
    # Outermost, ingest frames wait while requests are answered (priority.py); JSON answers and
    # static files of 1 KB or more go gzipped to clients that accept it.
    middleware = [
        Middleware(RequestsFirstMiddleware, requests=pipeline.requests),
        Middleware(GZipMiddleware, minimum_size=1024, compresslevel=1),
        Middleware(SecurityHeadersMiddleware, script_hashes=pages.SCRIPT_HASHES),
        Middleware(AccessMiddleware, token=token, hosts=hosts, refused=refused),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, middleware=middleware, exception_handlers={404: pages.not_found})
    app.state.store = store
    app.state.stats = stats
    app.state.pipeline = pipeline
    app.state.hub = live_hub
    app.state.token = token
    app.state.refused = refused
    app.state.otlp_gate = otlp.decode_gate()
    app.state.tasks = TaskBoard()  # asyncio pictures of instrumented processes (tasks.py)
    app.state.introspect = Introspect()  # await-stack requests to connected processes (introspect.py)
    return app

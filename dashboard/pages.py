"""The browser pages: HTML rendered from `templates/`, data fetched by each page from `/api/`.

Static files are served under `/static/` and referenced with a content hash (`?v=`), both from
templates and, through an import map, from ES module imports, so a browser never runs stale code.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from jinja2.utils import htmlsafe_json_dumps
from starlette.requests import Request
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import Scope

from opto.telemetry import semconv

__all__ = ["routes", "templates", "static_url", "not_found", "SCRIPT_HASHES"]

_HERE = Path(__file__).parent
_STATIC = _HERE / "static"
_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_SPAN_ID = re.compile(r"[0-9a-f]{16}")

# Name -> content hash, computed once at import: the files ship with the package and do not change.
_HASHES = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:12] for p in _STATIC.iterdir() if p.is_file()}


def static_url(name: str) -> str:
    """The URL of a static file, carrying its content hash so caches never serve a stale copy."""
    if name not in _HASHES:
        raise ValueError(f"no static file {name!r} in {_STATIC}; known: {', '.join(sorted(_HASHES))}")
    return f"/static/{name}?v={_HASHES[name]}"


class _HashedStatic(StaticFiles):
    """Static files; a URL naming the file's current hash may be cached for good."""

    def file_response(self, full_path: Any, stat_result: os.stat_result, scope: Scope, status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        version = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("v", [None])[0]
        if version is not None and version == _HASHES.get(Path(full_path).name):
            response.headers["cache-control"] = "public, max-age=31536000, immutable"
        return response


# ES modules import each other as "/static/x.js"; the import map points those at hashed URLs.
_IMPORT_MAP = {"imports": {f"/static/{n}": static_url(n) for n in sorted(_HASHES) if n.endswith(".js")}}

templates = Jinja2Templates(directory=str(_HERE / "templates"))
# Telemetry names reach the scripts from the module the SDK writes them with, so they cannot drift.
_NAMES = {name: getattr(semconv, name) for name in semconv.__all__}
# The import map is the one inline script; rendered once here so the CSP can allow it by its hash.
_IMPORT_MAP_JSON = htmlsafe_json_dumps(_IMPORT_MAP, dumps=templates.env.policies["json.dumps_function"], **templates.env.policies["json.dumps_kwargs"])
SCRIPT_HASHES = ("sha256-" + base64.b64encode(hashlib.sha256(_IMPORT_MAP_JSON.encode()).digest()).decode(),)
templates.env.globals.update(static=static_url, import_map=_IMPORT_MAP, import_map_json=_IMPORT_MAP_JSON, semconv=_NAMES)

# (path, template, nav label): the order of the navigation bar.
_PAGES = [
    ("/live", "live.html", "Live"),
    ("/traces", "traces.html", "Traces"),
    ("/queues", "queues.html", "Queues"),
    ("/retries", "retries.html", "Retries"),
    ("/tasks", "tasks.html", "Tasks"),
    ("/debug", "debug.html", "Debug"),
    ("/metrics", "metrics.html", "Metrics"),
    ("/optimize", "optimize.html", "Optimization"),
]
templates.env.globals["nav"] = [(path, label) for path, _, label in _PAGES]


def _render(request: Request, template: str, section: str, status: int = 200, **context: Any) -> Response:
    return templates.TemplateResponse(request, template, {"section": section, **context}, status_code=status)


def _page(path: str, template: str) -> Route:
    async def endpoint(request: Request) -> Response:
        return _render(request, template, path)

    return Route(path, endpoint, name=template.removesuffix(".html"))


async def index(request: Request) -> Response:
    """The landing page is the Live page, so `make demo`'s URL shows activity at once."""
    return _render(request, "live.html", "/live")


async def trace_page(request: Request) -> Response:
    """One trace's waterfall; the id is checked here so a bad link gets a clear 404 page."""
    trace_id = request.path_params["trace_id"]
    if _TRACE_ID.fullmatch(trace_id) is None:
        return _render(request, "not_found.html", "/traces", 404, what=f"{trace_id!r} is not a trace id (32 lowercase hex chars)")
    return _render(request, "trace.html", "/traces", trace_id=trace_id, page_data={"trace_id": trace_id})


async def trace_file_page(request: Request) -> Response:
    """The Trace page with no trace from the store: the browser reads one from a file the person chooses."""
    return _render(request, "trace.html", "/traces", trace_id=None, page_data={"trace_id": None})


async def search_page(request: Request) -> Response:
    """One `@trace.optimize` search: its beams by depth, scores and best so far."""
    trace_id, span_id = request.path_params["trace_id"], request.path_params["span_id"]
    if _TRACE_ID.fullmatch(trace_id) is None or _SPAN_ID.fullmatch(span_id) is None:
        what = f"{trace_id!r}/{span_id!r} is not a search id (32 and 16 lowercase hex chars)"
        return _render(request, "not_found.html", "/optimize", 404, what=what)
    return _render(request, "optimize_search.html", "/optimize", page_data={"trace_id": trace_id, "span_id": span_id})


async def not_found(request: Request, exc: Exception) -> Response:
    """Any unknown path: a page in the app's style for a browser, the API's JSON error for `/api/`."""
    status = exc.status_code if isinstance(exc, HTTPException) else 404
    if request.url.path.startswith("/api/"):
        return JSONResponse({"msg": "not found", "detail": f"no API route {request.url.path}"}, status_code=status)
    return _render(request, "not_found.html", "", status, what=f"No page at {request.url.path}.")


routes: list[BaseRoute] = [
    Route("/", index, name="index"),
    *(_page(path, template) for path, template, _ in _PAGES),
    Route("/traces/file", trace_file_page, name="trace_file"),
    Route("/traces/{trace_id}", trace_page, name="trace"),
    Route("/optimize/{trace_id}/{span_id}", search_page, name="optimize_search"),
    Mount("/static", _HashedStatic(directory=str(_STATIC)), name="static"),
]

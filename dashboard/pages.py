"""The browser pages: HTML rendered from `templates/`, data fetched by the page from `/api/`."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.templating import Jinja2Templates

__all__ = ["routes", "templates"]

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


async def index(request: Request) -> Response:
    """The landing page: a stand-in until the dashboard UI lands."""
    return templates.TemplateResponse(request, "index.html")


routes: list[BaseRoute] = [Route("/", index, name="index")]

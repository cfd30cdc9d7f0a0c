"""`create_app()`: the dashboard's Starlette application."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from . import pages

__all__ = ["create_app"]


def create_app() -> Starlette:
    """The dashboard app: pages from `pages.routes`."""
    routes: list[BaseRoute] = [*pages.routes]
    return Starlette(routes=routes)

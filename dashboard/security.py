"""Access checks: the optional token on every route, and no cross-origin websocket connections.

The token is accepted as `Authorization: Bearer <token>`, as `?token=<token>` (which also sets a
cookie, so a browser opening `http://host:port/?token=...` can then use the pages), or as that cookie.
"""

from __future__ import annotations

import hmac
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["AccessMiddleware", "COOKIE", "same_origin"]

COOKIE = "opto_token"


def same_origin(headers: Headers) -> bool:
    """True unless a browser's Origin names another host:port than the one it connected to."""
    origin = headers.get("origin")
    if origin is None:
        return True  # not a browser: the SDK and scripts send no Origin
    return urlsplit(origin).netloc.lower() == headers.get("host", "").lower()


class AccessMiddleware:
    """Refuses requests without the token (when one is set) and cross-origin websockets."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token

    def _presented(self, scope: Scope, headers: Headers) -> tuple[str | None, bool]:
        """The token the client presented, and whether it came in the query string."""
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip(), False
        query = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
        if query:
            return query[0], True
        cookie = SimpleCookie(headers.get("cookie", "")).get(COOKIE)
        return (cookie.value if cookie else None), False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        problem = None
        from_query = False
        if scope["type"] == "websocket" and not same_origin(headers):
            problem = "cross-origin websocket connections are refused"
        elif self.token is not None:
            presented, from_query = self._presented(scope, headers)
            if presented is None:
                problem = "this dashboard needs its token: send 'Authorization: Bearer <token>' or add ?token=<token>"
            elif not hmac.compare_digest(presented.encode(), self.token.encode()):
                problem = "wrong token"
        if problem is not None:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008, "reason": problem})
            else:
                await JSONResponse({"msg": "forbidden", "detail": problem}, status_code=403)(scope, receive, send)
            return
        if not from_query or scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                cookie = f"{COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"
                message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie.encode())]}
            await send(message)

        await self.app(scope, receive, send_with_cookie)

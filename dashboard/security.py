"""Access checks: the Host of every request, the optional token on every route, and no cross-origin websockets.

The token is accepted as `Authorization: Bearer <token>`, as `?token=<token>` (which also sets a
cookie, so a browser opening `http://host:port/?token=...` can then use the pages), or as that cookie.
The cookie carries the token percent-encoded, so any token `check_token` accepts fits in it.
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qs, quote, unquote

from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .hosts import HostRule
from .refusals import Refusals

__all__ = ["AccessMiddleware", "COOKIE", "check_token", "same_origin"]

COOKIE = "opto_token"


def check_token(token: str) -> str | None:
    """Why `token` cannot be carried by a header, a query string and a cookie alike; None if it can."""
    if not token:
        return "the token must not be empty"
    if token != token.strip():
        return "the token must not start or end with white space"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in token):
        return "the token must not contain control characters"
    try:
        token.encode()
    except UnicodeEncodeError:
        return "the token must be valid text (it contains bytes that are not UTF-8)"
    return None


def same_origin(headers: Headers, hosts: HostRule) -> bool:
    """True unless a browser's Origin names another host:port than the one it connected to, or a foreign name."""
    origin = headers.get("origin")
    if origin is None:
        return True  # not a browser: the SDK and scripts send no Origin
    scheme, _, netloc = origin.partition("://")  # an Origin is scheme://host[:port], nothing more
    netloc = netloc.lower()
    # a page of the dashboard's own is served over http, or https behind a proxy: no other scheme
    return scheme.lower() in ("http", "https") and netloc == headers.get("host", "").lower() and hosts.allows(netloc)


class AccessMiddleware:
    """Refuses a foreign Host (421), requests without the token when one is set (403), cross-origin websockets.

    Websocket refusals close with 1008 and the reason. Each refusal is counted in `refused`.
    """

    def __init__(self, app: ASGIApp, token: str | None, hosts: HostRule, refused: Refusals) -> None:
        self.app = app
        self.token = None if token is None else token.encode()
        self.cookie = None if token is None else f"{COOKIE}={quote(token, safe='')}; Path=/; HttpOnly; SameSite=Strict".encode()
        self.hosts = hosts
        self.refused = refused

    def _presented(self, scope: Scope, headers: Headers) -> tuple[bytes | None, bool]:
        """The token the client presented (as UTF-8), and whether it came in the query string."""
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip().encode("latin-1"), False  # the header's own bytes
        query = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
        if query:
            return query[0].encode(), True
        cookie = cookie_parser(headers.get("cookie", "")).get(COOKIE)
        return (None if cookie is None else unquote(cookie).encode()), False

    def _problem(self, scope: Scope, headers: Headers) -> tuple[int, str] | None:
        """The refusal's HTTP status and reason (ASCII, short enough for a close frame), or None to let it through."""
        if not self.hosts.allows(headers.get("host", "")):
            self.refused.host += 1
            return 421, "Host is not a name of this dashboard: use 127.0.0.1 or localhost, or start it with --allowed-host NAME"
        if scope["type"] == "websocket" and not same_origin(headers, self.hosts):
            self.refused.origin += 1
            return 403, "cross-origin websocket refused: Origin must be this dashboard's own address"
        if self.token is None:
            return None
        presented, _ = self._presented(scope, headers)
        if presented is None:
            self.refused.token += 1
            return 403, "this dashboard needs its token: send 'Authorization: Bearer <token>' or add ?token=<token>"
        if not hmac.compare_digest(presented, self.token):
            self.refused.token += 1
            return 403, "wrong token"
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        problem = self._problem(scope, headers)
        if problem is not None:
            status, reason = problem
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008, "reason": reason})
            else:
                msg = "misdirected request" if status == 421 else "forbidden"
                await JSONResponse({"msg": msg, "detail": reason}, status_code=status)(scope, receive, send)
            return
        if self.cookie is None or scope["type"] != "http" or not self._presented(scope, headers)[1]:
            await self.app(scope, receive, send)
            return
        cookie = self.cookie

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie)]}
            await send(message)

        await self.app(scope, receive, send_with_cookie)

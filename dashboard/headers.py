"""Security headers on every HTTP response: a Content-Security-Policy, nosniff and no referrer.

Scripts run only from this origin, plus the inline import map allowed by its hash; the JSON data
blocks of the pages are not executed, so the policy need not name them. Styles come from this
origin's style sheet only: no `style` attribute or element in markup takes effect (the scripts set
positions through the CSSOM, which the policy allows). No plugin, no `<base>`, and no framing by
any other page.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["SecurityHeadersMiddleware", "content_security_policy"]


def content_security_policy(script_hashes: Sequence[str]) -> str:
    """The policy for pages whose only inline scripts have these `sha256-...` hashes."""
    scripts = " ".join(["'self'", *(f"'{h}'" for h in script_hashes)])
    return (
        f"default-src 'self'; script-src {scripts}; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


class SecurityHeadersMiddleware:
    """Adds the headers to each response start; websockets pass through untouched."""

    def __init__(self, app: ASGIApp, script_hashes: Sequence[str]) -> None:
        self.app = app
        self.headers = [
            (b"content-security-policy", content_security_policy(script_hashes).encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *self.headers]}
            await send(message)

        await self.app(scope, receive, send_with_headers)

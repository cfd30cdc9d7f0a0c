"""The Host rule (DNS rebinding), the websocket Origin rule, the token cookie and the security headers, on a real server."""

from __future__ import annotations

import base64
import hashlib
import re
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from starlette.datastructures import Headers
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from dashboard_server import Dashboard, hello_frame
from opto_dashboard.app import create_app
from opto_dashboard.hosts import HostRule, host_name
from opto_dashboard.security import same_origin

ROUTES = ["/", "/traces", "/api/live", "/api/traces", "/static/app.css"]


def port(d: Dashboard) -> int:
    return int(d.url.rsplit(":", 1)[1])


async def ws_status(d: Dashboard, path: str, host: str, **kwargs: object) -> int:
    """The HTTP status of a websocket handshake on `path` sent with `Host: host` (101 when it opens)."""
    with socket.create_connection(("127.0.0.1", port(d))) as sock:
        try:
            async with connect(f"ws://{host}{path}", sock=sock, **kwargs):  # type: ignore[arg-type]
                return 101
        except InvalidStatus as refused:
            return refused.response.status_code


async def test_a_rebound_name_is_refused_on_every_route_and_websocket(dashboard: Dashboard) -> None:
    """With Host and Origin both naming the attacker, as after DNS rebinding, nothing is served and each refusal counts."""
    evil = f"evil.example:{port(dashboard)}"
    for path in ROUTES:
        response = httpx.get(dashboard.url + path, headers={"Host": evil, "Origin": f"http://{evil}"})
        assert response.status_code == 421, path
        assert response.json()["msg"] == "misdirected request" and "--allowed-host NAME" in response.json()["detail"]
    otlp = httpx.post(dashboard.url + "/v1/traces", headers={"Host": evil, "Content-Type": "application/json"}, content=b"{}")
    assert otlp.status_code == 421
    for path in ("/ws/ingest", "/ws/live"):
        assert await ws_status(dashboard, path, evil, origin=f"http://{evil}") == 403
    refused = dashboard.app.state.refused
    assert refused.host == len(ROUTES) + 3 and refused.origin == 0
    live = httpx.get(dashboard.url + "/api/live")  # still serving, and says so
    assert live.status_code == 200 and live.json()["refused"]["host"] == len(ROUTES) + 3


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LocalHost", "[::1]:{port}", "127.8.9.10", "localhost:80"])
def test_loopback_names_are_accepted_with_or_without_a_port(dashboard: Dashboard, host: str) -> None:
    response = httpx.get(dashboard.url + "/api/live", headers={"Host": host.format(port=port(dashboard))})
    assert response.status_code == 200


@pytest.mark.parametrize("host", ["", "evil.example", "localhost.evil.example", "127.0.0.1.evil.example", "10.0.0.1:80", "[::2]", "localhost:http", "[::1", "localhost:123456"])
def test_other_hosts_are_refused(dashboard: Dashboard, host: str) -> None:
    response = httpx.get(dashboard.url + "/api/live", headers={"Host": host})
    assert response.status_code == 421
    assert dashboard.app.state.refused.host == 1


def test_allowed_host_names_are_accepted_in_any_case(tmp_path: Path) -> None:
    with Dashboard(tmp_path / "opto.db", allowed_hosts=["dash.example"]) as d:
        assert httpx.get(d.url + "/api/live", headers={"Host": "Dash.Example:443"}).status_code == 200
        assert httpx.get(d.url + "/api/live", headers={"Host": "other.example"}).status_code == 421


def test_with_a_token_an_address_host_is_accepted_but_a_name_is_not(tmp_path: Path) -> None:
    """An IP address cannot be rebound; the token guards it. A name still needs --allowed-host."""
    with Dashboard(tmp_path / "opto.db", token="s3cret") as d:
        auth = {"Authorization": "Bearer s3cret"}
        assert httpx.get(d.url + "/api/live", headers={**auth, "Host": "10.1.2.3:8765"}).status_code == 200
        assert httpx.get(d.url + "/api/live", headers={**auth, "Host": "myhost.lan:8765"}).status_code == 421
        assert httpx.get(d.url + "/api/live", headers={"Host": "10.1.2.3:8765"}).status_code == 403
        assert d.app.state.refused.host == 1 and d.app.state.refused.token == 1


async def test_websocket_origin_must_be_this_dashboard(dashboard: Dashboard) -> None:
    here = f"127.0.0.1:{port(dashboard)}"
    assert await ws_status(dashboard, "/ws/live", here, origin=f"http://{here}") == 101
    assert await ws_status(dashboard, "/ws/live", here, origin=f"http://localhost:{port(dashboard)}") == 403
    assert await ws_status(dashboard, "/ws/live", here, origin="null") == 403  # type: ignore[arg-type]
    assert await ws_status(dashboard, "/ws/ingest", here, origin=f"http://evil.example:{port(dashboard)}") == 403
    assert await ws_status(dashboard, "/ws/ingest", here, origin="http://[::1") == 403  # not a URL: refused, not a 500
    assert dashboard.app.state.refused.origin == 4


def test_an_origin_must_equal_the_host_and_be_an_accepted_name() -> None:
    """After rebinding, Origin and Host both carry the attacker's name: equal, yet refused."""
    rule = HostRule(["dash.example"])
    assert same_origin(Headers({"host": "dash.example:1", "origin": "http://dash.example:1"}), rule)
    assert not same_origin(Headers({"host": "evil.example:1", "origin": "http://evil.example:1"}), rule)
    assert not same_origin(Headers({"host": "dash.example:1", "origin": "http://dash.example:2"}), rule)
    assert same_origin(Headers({"host": "dash.example:1", "origin": "https://dash.example:1"}), rule)  # behind a TLS proxy
    for scheme in ("evil", "file", "chrome-extension", ""):
        assert not same_origin(Headers({"host": "dash.example:1", "origin": f"{scheme}://dash.example:1"}), rule)


@pytest.mark.parametrize("token", ["semi;colon", "with space", 'dq"uote', "tökén✓", "a,b=c\\d%41"], ids=["semicolon", "space", "quote", "non-ascii", "punctuation"])
async def test_the_token_cookie_carries_any_token_the_cli_accepts(tmp_path: Path, token: str) -> None:
    """Opening /?token=... sets a cookie that then opens the API and the live websocket; the Bearer header works too."""
    with Dashboard(tmp_path / "opto.db", token=token) as d:
        with httpx.Client(base_url=d.url) as client:
            assert client.get("/api/live").status_code == 403
            assert client.get(f"/?token={quote(token, safe='')}").status_code == 200
            cookie = client.cookies["opto_token"]
            assert client.get("/api/live").status_code == 200  # the cookie alone
        assert httpx.get(d.url + "/api/live", headers={"Authorization": b"Bearer " + token.encode()}).status_code == 200
        assert httpx.get(d.url + "/api/live", headers={"Authorization": "Bearer wrong"}).status_code == 403
        async with connect(d.ws_url + "/ws/ingest", additional_headers={"Cookie": f"opto_token={cookie}"}) as ws:
            await ws.send(hello_frame())


@pytest.mark.parametrize("token, problem", [
    (" lead", "white space"), ("tab\t", "white space"), ("new\nline", "control characters"), ("bell\x07", "control characters"),
])
def test_tokens_that_cannot_be_carried_are_refused(tmp_path: Path, token: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        create_app(tmp_path / "opto.db", token=token)
    result = subprocess.run([sys.executable, "-m", "opto_dashboard", "--token", token], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--token: the token must not" in result.stderr and problem in result.stderr


def test_cli_refuses_an_allowed_host_that_is_not_a_name() -> None:
    result = subprocess.run([sys.executable, "-m", "opto_dashboard", "--allowed-host", "http://x/"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--allowed-host: allowed host 'http://x/' is not a host name" in result.stderr


@pytest.mark.parametrize("value, name", [
    ("Example.COM:8080", "example.com"), ("[::1]:1", "::1"), ("[::1]", "::1"), ("127.0.0.1", "127.0.0.1"),
    ("[zz]:1", None), ("a:b", None), ("a:", None), (":80", None), ("a:١٢", None),
])
def test_host_name(value: str, name: str | None) -> None:
    assert host_name(value) == name


def test_no_page_has_a_style_attribute_and_every_tables_row_class_has_its_rule(tmp_path: Path) -> None:
    """The policy applies no style from markup (style-src 'self'): a page that needed one would
    render wrong, so none has one; the tables' heights come from `rows-N` classes instead."""
    pages = ["/", "/live", "/traces", "/traces/file", "/queues", "/retries", "/debug", "/metrics", "/optimize", "/tasks"]
    with Dashboard(tmp_path / "opto.db") as d:
        texts = [httpx.get(d.url + path).text for path in pages]
        css = httpx.get(d.url + "/static/app.css").text
    assert not [m for text in texts for m in re.findall(r"<[^>]*\sstyle=[^>]*>|<style", text)]
    used = {n for text in texts for n in re.findall(r"\brows-(\d+)\b", text)}
    assert used and all(f".rows-{n} {{ --rows: {n}; }}" in css for n in used), used


def test_every_response_carries_the_security_headers(tmp_path: Path) -> None:
    """Pages, JSON, static files, 404s, refusals and OTLP replies; the CSP allows the page's import map by its hash."""
    with Dashboard(tmp_path / "opto.db") as d:
        responses = [httpx.get(d.url + path) for path in [*ROUTES, "/nowhere", "/traces/nope"]]
        responses.append(httpx.get(d.url + "/api/live", headers={"Host": "evil.example"}))
        responses.append(httpx.post(d.url + "/v1/traces", headers={"Content-Type": "application/json"}, content=b"{}"))
        for response in responses:
            assert response.headers["x-content-type-options"] == "nosniff", response.url
            assert response.headers["referrer-policy"] == "no-referrer"
            csp = response.headers["content-security-policy"]
            for directive in ("frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'", "default-src 'self'"):
                assert directive in csp
        page = responses[0]
        script_src = re.search(r"script-src ([^;]+)", page.headers["content-security-policy"])[1]  # type: ignore[index]
        assert "unsafe-inline" not in page.headers["content-security-policy"]  # neither scripts nor styles
        assert "style-src 'self';" in page.headers["content-security-policy"]
        inline = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>(.*?)</script>", page.text, re.S)
        executed = [body for attrs, body in inline if 'type="application/json"' not in attrs]
        assert len(executed) == 1  # the import map
        digest = base64.b64encode(hashlib.sha256(executed[0].encode()).digest()).decode()
        assert f"'sha256-{digest}'" in script_src

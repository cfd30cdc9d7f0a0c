"""Pages and static files over plain HTTP: hashed URLs, the import map, and a bad trace id."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import httpx

from harness import Dashboard

__all__: list[str] = []

STATIC = Path(__file__).resolve().parent.parent / "dashboard" / "static"


def digest(name: str) -> str:
    return hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:12]


def test_static_urls_carry_the_content_hash_and_modules_import_through_the_map(dashboard: Dashboard) -> None:
    """Every script and stylesheet URL, and every module import, names the file's current content."""
    html = httpx.get(f"{dashboard.url}/traces").text
    urls = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
    assert {u.split("?")[0] for u in urls} >= {"/static/app.css", "/static/shell.js", "/static/traces.js"}
    for url in urls:
        name, version = re.fullmatch(r"/static/([\w.-]+)\?v=([0-9a-f]{12})", url).groups()  # type: ignore[union-attr]
        assert version == digest(name), url
        response = httpx.get(dashboard.url + url)
        assert response.content == (STATIC / name).read_bytes()
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    imports = json.loads(re.search(r'<script type="importmap">(.*?)</script>', html, re.S)[1])["imports"]  # type: ignore[index]
    modules = sorted(p.name for p in STATIC.glob("*.js"))
    assert imports == {f"/static/{m}": f"/static/{m}?v={digest(m)}" for m in modules}
    stale = httpx.get(f"{dashboard.url}/static/app.css?v=000000000000")
    assert stale.status_code == 200 and "cache-control" not in stale.headers  # an old hash is served, not kept


def test_malformed_trace_id_gets_a_404_page_that_shows_it_as_text(dashboard: Dashboard) -> None:
    """The id is named in the page, escaped: it cannot inject markup."""
    response = httpx.get(f"{dashboard.url}/traces/%3Cimg%20src=x%20onerror=alert(1)%3E")
    assert response.status_code == 404
    assert "&#39;&lt;img src=x onerror=alert(1)&gt;&#39; is not a trace id" in response.text
    assert "<img src=x" not in response.text

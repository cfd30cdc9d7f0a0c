"""`/traces/file`: the Trace page with no trace from the store, for a file the browser reads."""

from __future__ import annotations

from pathlib import Path

import httpx

from dashboard_server import Dashboard


def test_the_file_page_is_the_trace_page_without_a_stored_trace(tmp_path: Path) -> None:
    """It is served before `/traces/{trace_id}` takes "file" for a bad id, has the file input, and neither preloads nor names a trace."""
    with Dashboard(tmp_path / "opto.db") as d:
        page = httpx.get(f"{d.url}/traces/file")
        assert page.status_code == 200
        assert 'id="file-input"' in page.text and 'id="trace-layout" hidden' in page.text
        assert 'rel="preload"' not in page.text and '{"trace_id": null}' in page.text
        assert "script-src" in page.headers["content-security-policy"]
        stored = httpx.get(f"{d.url}/traces/{'a' * 32}")
        assert stored.status_code == 200 and 'id="file-input"' not in stored.text and 'rel="preload"' in stored.text
        assert httpx.get(f"{d.url}/traces/files").status_code == 404

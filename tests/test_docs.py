"""Every Python code block in README.md and docs/*.md runs, and every JSON block parses.

The blocks of one file run in order, in one namespace, in a fresh interpreter (so no test's
OpenTelemetry setup leaks in). A block right after a `<!-- no-run -->` line is skipped: use it
only for fragments that cannot run alone, such as a shell session shown as Python.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"(?P<marker><!-- no-run -->\s*\n)?```python\n(?P<code>.*?)```", re.S)
_JSON_BLOCK = re.compile(r"```json\n(?P<text>.*?)```", re.S)


def json_values(path: Path) -> list[Any]:
    """The JSON values of the file's ```json blocks (a block may hold several, one after another)."""
    decoder = json.JSONDecoder()
    values = []
    for block in _JSON_BLOCK.finditer(path.read_text()):
        text, at = block["text"], 0
        while text[at:].strip():
            at += len(text[at:]) - len(text[at:].lstrip())
            value, at = decoder.raw_decode(text, at)
            values.append(value)
    return values


def python_blocks(path: Path) -> list[str]:
    return [m["code"] for m in _BLOCK.finditer(path.read_text()) if not m["marker"]]


_RUNNER = """
import sys
namespace = {"__name__": "__main__"}
for index, code in enumerate(BLOCKS):
    try:
        exec(compile(code, f"{PATH}[block {index}]", "exec"), namespace)
    except BaseException:
        print(f"block {index} of {PATH} failed:\\n{code}", file=sys.stderr)
        raise
"""


@pytest.mark.parametrize("path", [p for p in FILES if p.exists() and python_blocks(p)], ids=lambda p: p.name)
def test_python_blocks_run(path: Path, tmp_path: Path) -> None:
    """The file's Python blocks run, in order, without error."""
    script = f"BLOCKS = {python_blocks(path)!r}\nPATH = {str(path.relative_to(ROOT))!r}\n{_RUNNER}"
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-4000:]


@pytest.mark.parametrize("path", [p for p in FILES if p.exists() and _JSON_BLOCK.search(p.read_text())], ids=lambda p: p.name)
def test_json_blocks_parse(path: Path) -> None:
    assert json_values(path)

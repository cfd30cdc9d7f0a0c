"""Type checkers see through our decorators, and the SDK and the dashboard pass `mypy --strict`."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

USAGE = '''
from collections.abc import AsyncIterator
from typing import assert_type

import opto


@opto.trace.async_trace
async def agent(query: str, n: int = 1) -> str:
    return query * n


@opto.trace.async_trace(retry_attempts=3, timeout=1.0)
async def robust(query: str) -> int:
    return len(query)


@opto.trace.async_stream
async def numbers(n: int) -> AsyncIterator[int]:
    yield n


async def main() -> None:
    assert_type(await agent("q", n=2), str)
    assert_type(await robust("q"), int)
    async for x in numbers(3):
        assert_type(x, int)
    await agent(1)  # the one error: the original signature is enforced
'''


def mypy(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--cache-dir", str(ROOT / ".mypy_cache"), *args],
        cwd=cwd, capture_output=True, text=True, timeout=600,
        env={**os.environ, "MYPYPATH": str(ROOT / "sdk")},  # the editable install's finder is opaque to mypy
    )


@pytest.mark.timeout(600)
def test_decorated_functions_keep_their_signatures(tmp_path: Path) -> None:
    (tmp_path / "usage.py").write_text(textwrap.dedent(USAGE))
    proc = mypy("usage.py", cwd=tmp_path)
    errors = [line for line in proc.stdout.splitlines() if line.startswith("usage.py") and ": error:" in line]
    assert len(errors) == 1, proc.stdout
    assert 'Argument 1 to "agent" has incompatible type "int"; expected "str"' in errors[0]


@pytest.mark.timeout(600)
def test_sdk_passes_mypy_strict() -> None:
    proc = mypy("-p", "opto", cwd=ROOT / "sdk")
    assert proc.returncode == 0, proc.stdout


@pytest.mark.timeout(600)
def test_dashboard_passes_mypy_strict() -> None:
    proc = mypy("dashboard", cwd=ROOT)
    assert proc.returncode == 0, proc.stdout

"""Type checkers see through our decorators, and the SDK and the dashboard pass `mypy --strict`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# A user's file: every line marked `# error` must be reported, by both checkers, and nothing else.
USAGE = '''
from collections.abc import AsyncIterator
from typing import assert_type

import opto
from opto.trace import AsyncBatchProcessor, AsyncQueue, BatchResult


@opto.trace
def plain(query: str, n: int = 1) -> str:
    return query * n


@opto.trace(name="named", retry_attempts=2)
def named(query: str) -> int:
    return len(query)


@opto.trace
async def bare_async(query: str) -> str:
    return query


@opto.trace(timeout=1.0)
async def with_timeout(query: str) -> str:
    return query


@opto.trace.async_trace
async def agent(query: str, n: int = 1) -> str:
    return query * n


@opto.trace.async_trace(retry_attempts=3, timeout=1.0)
async def robust(query: str) -> int:
    return len(query)


@opto.trace.async_stream
async def numbers(n: int) -> AsyncIterator[int]:
    yield n


@opto.trace.async_stream(name="counted")
async def counted(n: int) -> AsyncIterator[int]:
    yield n


@opto.trace.optimize
async def workflow(question: str) -> str:
    return question


async def double(items: list[int]) -> list[int]:
    return [2 * i for i in items]


async def main() -> None:
    assert_type(plain("q", n=2), str)
    assert_type(named("q"), int)
    assert_type(await bare_async("q"), str)
    assert_type(await with_timeout("q"), str)
    assert_type(await agent("q", n=2), str)
    assert_type(await robust("q"), int)
    async for x in numbers(3):
        assert_type(x, int)
    async for y in counted(3):
        assert_type(y, int)
    assert_type(await workflow("q"), str)

    batches = AsyncBatchProcessor(batch_size=2, handler=double)
    async for result in batches.process([1, 2, 3]):
        assert_type(result, BatchResult[int, list[int]])

    queue = AsyncQueue[int | None]()
    await queue.put(1)
    item = await queue.get()
    assert_type(item, int | None)
    strict: AsyncQueue[int] = AsyncQueue(sentinel=AsyncQueue.NO_SENTINEL)
    assert_type(await strict.get(), int)

    plain(1)  # error
    await agent(1)  # error
    opto.trace(nmae="x")  # error
    opto.trace.async_trace(retry_atempts=3)  # error
    opto.trace.async_stream(timeout=1.0)  # error
    opto.trace(timeout="1")  # error
    opto.trace.optimize(beam_widht=2)  # error
    wrong: AsyncQueue[int] = AsyncQueue()  # error
    del wrong
'''


def mypy(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--cache-dir", str(ROOT / ".mypy_cache"), *args],
        cwd=cwd, capture_output=True, text=True, timeout=600,
        env={**os.environ, "MYPYPATH": str(ROOT / "sdk")},  # the editable install's finder is opaque to mypy
    )


PYRIGHT = ROOT / ".venv" / "node_modules" / ".bin" / "pyright"  # installed by `make install-test`
EXPECTED_ERRORS = {n for n, line in enumerate(USAGE.splitlines(), 1) if line.endswith("# error")}


def _error_lines(output: str, pattern: str) -> set[int]:
    return {int(m.group(1)) for m in re.finditer(pattern, output)}


@pytest.mark.timeout(600)
def test_mypy_sees_signatures_and_options_through_every_decorator(tmp_path: Path) -> None:
    """`@opto.trace`, `@opto.trace(...)`, async_trace, async_stream, optimize, AsyncQueue and
    AsyncBatchProcessor keep their types under mypy --strict; a wrong argument or option is an error."""
    (tmp_path / "usage.py").write_text(USAGE)
    proc = mypy("usage.py", cwd=tmp_path)
    assert _error_lines(proc.stdout, r"(?m)^usage\.py:(\d+): error:") == EXPECTED_ERRORS, proc.stdout


@pytest.mark.timeout(600)
def test_pyright_sees_signatures_and_options_through_every_decorator(tmp_path: Path) -> None:
    """The same user file under pyright: the same lines, and only those, are errors."""
    assert PYRIGHT.exists(), "pyright is missing: run `make install-test`"
    (tmp_path / "usage.py").write_text(USAGE)
    (tmp_path / "pyrightconfig.json").write_text(json.dumps({"extraPaths": [str(ROOT / "sdk")], "pythonVersion": "3.11"}))
    proc = subprocess.run(
        [str(PYRIGHT), "--pythonpath", sys.executable, "usage.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert _error_lines(proc.stdout, r"usage\.py:(\d+):\d+ - error:") == EXPECTED_ERRORS, proc.stdout


@pytest.mark.timeout(600)
def test_sdk_passes_mypy_strict() -> None:
    proc = mypy("-p", "opto", cwd=ROOT / "sdk")
    assert proc.returncode == 0, proc.stdout


@pytest.mark.timeout(600)
def test_dashboard_passes_mypy_strict() -> None:
    proc = mypy("dashboard", cwd=ROOT)
    assert proc.returncode == 0, proc.stdout

"""The SDK's layers hold: trace/ -> _core/ -> telemetry/, nothing imported upward, no private name
imported across packages, `__all__` on every module; and the public surface of opto is pinned."""

from __future__ import annotations

import ast
import inspect
import tomllib
from pathlib import Path

import pytest

import opto
import opto._core

ROOT = Path(__file__).resolve().parent.parent
SDK = ROOT / "sdk"
# Lower layers first: a module may import only from its own layer or a lower one.
LAYERS = ["opto.telemetry", "opto._core", "opto.trace", "opto"]
LEAVES = {"opto.errors", "opto._version"}  # import nothing of ours: every layer may use them


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted((SDK / "opto").rglob("*.py")):
        parts = path.relative_to(SDK).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def _package(module: str) -> str:
    if module in LEAVES:
        return module
    for layer in LAYERS[:-1]:
        if module == layer or module.startswith(layer + "."):
            return layer
    return "opto"


def _imports(module: str, path: Path) -> list[tuple[str, str | None]]:
    """(module imported from, name imported or None for `import x`) for each import in `path`."""
    is_package = path.name == "__init__.py"
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "opto":
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    found.append((sub, None) if sub in MODULES else (target, alias.name))
        elif isinstance(node, ast.Import):
            found += [(a.name, None) for a in node.names if a.name.split(".")[0] == "opto"]
    return found


CASES = [(m, target, name) for m, p in MODULES.items() for target, name in _imports(m, p)]


@pytest.mark.parametrize(("module", "target", "name"), CASES, ids=[f"{m}:{t}:{n}" for m, t, n in CASES])
def test_no_import_points_up_or_reaches_a_private_name(module: str, target: str, name: str | None) -> None:
    """telemetry imports nothing above it, _core nothing from trace; across packages only public
    names of the package itself (trace takes only `opto._core.__all__`)."""
    mine, theirs = _package(module), _package(target)
    if theirs in LEAVES or mine == theirs:
        return
    assert mine not in LEAVES, f"{module} is a leaf but imports {target}"
    assert LAYERS.index(theirs) < LAYERS.index(mine), f"{module} imports {target}: upward, from {theirs}"
    inner = target[len(theirs):].split(".")[1:]
    assert not any(part.startswith("_") for part in inner), f"{module} imports {target}: a private module of {theirs}"
    if name is not None:
        assert not name.startswith("_"), f"{module} imports the private name {name} from {target}"
    if theirs == "opto._core":
        assert target == theirs and name in opto._core.__all__, f"{module} imports {name}, not a public name of opto._core"


@pytest.mark.parametrize("module", [m for m in MODULES if m not in LEAVES])
def test_every_module_declares_all(module: str) -> None:
    tree = ast.parse(MODULES[module].read_text())
    assert any(
        isinstance(n, (ast.Assign, ast.AnnAssign)) and any(getattr(t, "id", None) == "__all__" for t in getattr(n, "targets", [getattr(n, "target", None)]))
        for n in tree.body
    ), f"{module} has no __all__"


def test_every_package_folder_is_packaged() -> None:
    """pyproject's package list names every folder that holds files (data-only ones too), so no wheel lacks one."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    roots = {"opto": SDK / "opto", "opto_dashboard": ROOT / "dashboard"}
    on_disk = {
        ".".join((name, *folder.relative_to(root).parts))
        for name, root in roots.items()
        for folder in [root, *root.rglob("*")]
        if folder.is_dir() and folder.name != "__pycache__" and any(f.is_file() for f in folder.iterdir())
    }
    assert listed == on_disk


def test_the_public_surface_of_opto_is_pinned() -> None:
    assert opto.__all__ == ["trace", "RetryableError", "configure", "shutdown", "Scrub", "ScrubMatch", "span", "set_attributes", "add_event",
                            "instrument_asyncio", "uninstrument_asyncio", "__version__"]
    assert sorted(opto.trace.__all__) == sorted([
        "async_trace", "set_async_debug", "set_testing", "RetryPolicy", "optimize", "param", "Param", "Workflow",
        "OptimizeResult", "Candidate", "Evaluation", "async_stream", "AsyncQueue", "QueueClosed", "QueueStats",
        "AsyncMetrics", "BlockMetrics", "MetricsSummary", "AsyncTraceContext", "ContextStats",
        "AsyncBatchProcessor", "BatchResult",
    ])
    for name in opto.trace.__all__:
        assert getattr(opto.trace, name) is getattr(type(opto.trace), name, getattr(opto.trace, name))
    assert callable(opto.trace)


def test_the_decorators_options_are_pinned() -> None:
    """One set of options for @opto.trace and async_trace; streams take the ones that mean something."""
    options = ["name", "loop", "retry_attempts", "retry_delay", "retry_max_delay", "retry_on", "timeout", "debug",
               "capture_args", "capture_result", "max_repr", "max_concurrent"]
    assert list(opto._core.OPTION_NAMES) == options
    assert list(inspect.signature(opto.trace.async_trace).parameters)[1:] == options
    stream = list(inspect.signature(opto.trace.async_stream).parameters)[1:]
    assert stream == ["name", "debug", "capture_args", "capture_result", "max_repr", "unsupported"]

"""The wheel as built for users: it holds every dashboard page template and static file, and builds without setuptools warnings."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_built_wheel_holds_every_template_and_static_file(tmp_path: Path) -> None:
    """`pip wheel .` packs dashboard/static/* and templates/* as opto_dashboard's, and warns of no package left out."""
    source = tmp_path / "source"  # a copy: building in place would leave build/ and *.egg-info in the tree
    for name in ("sdk", "dashboard"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--verbose", "--wheel-dir", str(tmp_path), str(source)],
        capture_output=True, text=True, timeout=55,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    assert "is absent from the `packages` configuration" not in build.stdout + build.stderr
    (wheel,) = tmp_path.glob("opentrace-*.whl")
    packed = set(zipfile.ZipFile(wheel).namelist())
    for folder in ("static", "templates"):
        files = {f"opto_dashboard/{folder}/{p.name}" for p in (ROOT / "dashboard" / folder).iterdir() if p.is_file()}
        assert files and files <= packed, sorted(files - packed)
    assert "opto_dashboard/templates/base.html" in packed and "opto/py.typed" in packed

"""Run a module as `python -m` would, with the offline guard installed first: `offline_run.py MODULE ARGS...`."""

from __future__ import annotations

import runpy
import sys

import offline

__all__: list[str] = []

if __name__ == "__main__":
    offline.install()
    module, sys.argv = sys.argv[1], sys.argv[1:]
    runpy.run_module(module, run_name="__main__", alter_sys=True)

"""Run a program with the offline guard installed first.

    offline_run.py MODULE ARGS...            as `python -m MODULE ARGS...`
    offline_run.py MODULE:FUNCTION ARGS...   as a console script calling MODULE.FUNCTION()
"""

from __future__ import annotations

import importlib
import runpy
import sys

import offline

__all__: list[str] = []

if __name__ == "__main__":
    offline.install()
    target, sys.argv = sys.argv[1], sys.argv[1:]
    module, _, function = target.partition(":")
    if function:
        sys.argv[0] = module
        sys.exit(getattr(importlib.import_module(module), function)())
    runpy.run_module(module, run_name="__main__", alter_sys=True)

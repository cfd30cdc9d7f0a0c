"""`bench/get_flood.py`: a flood of page requests during ingest loses no span without saying so."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from get_flood import accounted, run  # noqa: E402


def test_every_span_is_stored_or_reported_while_pages_are_asked_for_back_to_back() -> None:
    result = run(seconds=2, clients=4)
    assert result["emitted"] > 0 and result["answered"] > 0
    assert accounted(result), result

"""Fixtures shared by the command-line tests of several folders."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def small_trace(tmp_path: Path) -> Path:
    """90 minutes of traffic and no history before it: a replay in well under a second (the bundled slice
    warms perfpilot up on its week of history first)."""
    path = tmp_path / "small.csv"
    path.write_text("timestamp_seconds,rps\n" + "".join(f"{60 * i},{10 + i % 7}\n" for i in range(90)))
    return path
